"""One run per directory: an exclusive OS file lock on `<run_dir>/.lock`, held while a run writes there.

The lock is `flock(2)` on an open file, so the kernel drops it when the process exits or is killed: a crashed
run never leaves a stale lock behind. Under torchrun/accelerate only the main process takes it (one lock per run,
not one per rank). The file's content (pid, host, start time) only serves the message of a refused second run.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from wmss.errors import WMSSError
from wmss.io import ensure_directory
from wmss.training import process_state

LOCK_FILE = ".lock"

# Directories this process already holds: re-entering (compare calling a helper that locks too) is not a conflict.
_held: dict[Path, int] = {}


class RunDirectoryInUse(WMSSError):
    """Another live process holds the run directory's lock."""


def _holder(fd: int) -> str:
    os.lseek(fd, 0, os.SEEK_SET)
    raw = os.read(fd, 4096)
    try:
        info = json.loads(raw.decode("utf-8"))
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(info["started"])))
        return f"process {int(info['pid'])} on {info.get('host', '?')} (started {started})"
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        # The holder is between taking the lock and writing its details.
        return "another process"


@contextlib.contextmanager
def lock_run_directory(run_dir: str | Path) -> Iterator[Path]:
    """Hold `run_dir` exclusively for the block; RunDirectoryInUse at once if a live process holds it."""
    run_dir = ensure_directory(run_dir)
    key = run_dir.resolve()
    if not process_state().is_main_process or key in _held:
        yield run_dir
        return
    path = run_dir / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise WMSSError(f"cannot create the lock file {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = _holder(fd)
        os.close(fd)
        raise RunDirectoryInUse(
            f"run directory {run_dir} is in use by {holder}; wait for it to finish, "
            "or give this run another output directory"
        ) from None
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.time()}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        _held[key] = fd
        yield run_dir
    finally:
        _held.pop(key, None)
        os.close(fd)  # releases the lock; the file stays, so no second process can race on unlinking it
