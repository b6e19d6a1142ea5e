"""Side-by-side measurement in one process: each variant's wall time and peak memory growth, repeated, medians.

CPU peak = growth of the process's peak resident set (VmHWM, reset before each run through /proc/self/clear_refs)
over its resident set just before the run; glibc is told to return every allocation above 1 MiB to the system
on free, so what one variant freed is not counted for the next. CUDA peak = growth of max allocated memory.
"""

from __future__ import annotations

import ctypes
import gc
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

_M_MMAP_THRESHOLD = -3


def _status_mib(key: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"{key} not in /proc/self/status")


def prepare_cpu_memory() -> None:
    """Serve allocations above 1 MiB by mmap, so freed tensors leave the resident set at once."""
    ctypes.CDLL("libc.so.6").mallopt(_M_MMAP_THRESHOLD, 1 << 20)


def measure_once(
    run: Callable[[], Any], device: str, reset: Callable[[], Any] | None = None
) -> tuple[float, float]:
    """(seconds, peak MiB above the memory in use before) of one call of `run`, after `reset` (not measured)."""
    if reset is not None:
        reset()
    gc.collect()
    if device == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    else:
        before = _status_mib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current resident set
    began = time.perf_counter()
    run()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    if device == "cuda":
        peak = (torch.cuda.max_memory_allocated() - before) / 2**20
    else:
        peak = _status_mib("VmHWM") - before
    return seconds, peak


def interleaved(
    variants: dict[str, Callable[[], Any]],
    repeats: int,
    device: str,
    warmup: bool = True,
    reset: Callable[[], Any] | None = None,
) -> dict[str, dict[str, float]]:
    """Run the variants in turn `repeats` times (after one warm-up round); median seconds and peak MiB each.

    `reset` runs before every measured call, outside the measurement (e.g. dropping the previous gradients).
    """
    if device == "cpu":
        prepare_cpu_memory()
    if warmup:
        for run in variants.values():
            run()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            samples[name].append(measure_once(run, device, reset))
    return {
        name: {
            "seconds": statistics.median(s for s, _ in values),
            "peak_mib": statistics.median(p for _, p in values),
            "seconds_all": [round(s, 4) for s, _ in values],
        }
        for name, values in samples.items()
    }


def emit(result: dict[str, Any], json_path: str | None) -> None:
    """Write the result as JSON to `json_path` ('-' = stdout) when asked."""
    if json_path == "-":
        json.dump(result, sys.stdout)
        print()
    elif json_path:
        Path(json_path).write_text(json.dumps(result, indent=1))
