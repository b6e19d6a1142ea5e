"""Greedy evaluation throughput: the real-model study's settings against the settings it had before (issue 20).

Both variants decode the same held-out problems greedily with `HFBackend`, prompted as `wmss compare` prompts
them (the model's chat template, no system prompt), in turn in one process:
  before   the smollm2 preset's old settings: batches of 125, stop on the end-of-turn token only
  study    the study's settings (`wmss.demo.real.REAL_PRESETS["smollm2"]`): its batch size, and stop at the
           closing answer tag `</answer>` as well
Both generate at most the study's `max_new_tokens`. Reported: wall seconds, generated tokens per second (tokens up
to and including the stop), problems per minute, and how many greedy outputs are identical once the old one is
cut after its first `</answer>` (the goal: all of them).

The model: `--model DIR` (e.g. a study's M1, which writes the tag; M0 writes prose without it), else the
cached SmolLM2-135M-Instruct checkpoint when `make demo-real` has converted it, on the study's held-out problems;
else the offline demo's shipped M0 (a 1M-parameter Qwen3 that answers in the tag format) on the demo's problems,
so that `make bench` needs no download.

    python benchmarks/bench_greedy_eval.py [--model DIR] [--problems 125] [--repeats 1] [--device cpu] [--json -]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
from _measure import emit

from wmss.demo.presets import PRESETS
from wmss.demo.real import REAL_PRESETS
from wmss.demo.setup import SHIPPED_M0, demo_task
from wmss.demo.smollm2 import default_cache_dir
from wmss.demo.word_problems import benchmark_records, make_word_problems
from wmss.eval.backends import ANSWER_CLOSE, STOP_STRINGS, HFBackend
from wmss.eval.prompting import build_prompt, format_question
from wmss.eval.records import BenchmarkRecord
from wmss.models import load_causal_lm, load_tokenizer

BEFORE_BATCH_SIZE = 125  # the smollm2 preset's evaluation batch before issue 20


def cached_smollm2() -> Path | None:
    """The converted SmolLM2 checkpoint in the wmss cache, if any (never converts: that needs the real extra)."""
    found = sorted(default_cache_dir().glob("smollm2-135m-instruct-*"))
    return found[-1] if found and (found[-1] / "config.json").is_file() else None


def problems(model: Path, n: int) -> list[BenchmarkRecord]:
    """The held-out problems that go with the model: the demo's for the shipped M0, else the study's."""
    if model == SHIPPED_M0:
        task = demo_task(PRESETS["default"], 0)
        return [BenchmarkRecord(r["id"], r["question"], r["answer"], "numeric") for r in task.test[:n]]
    preset = REAL_PRESETS["smollm2"]
    task = make_word_problems(0, preset.n_train, preset.n_test, max_number=preset.max_number)
    return benchmark_records(task.test[:n])


def cut_at_tag(text: str) -> str:
    """The text up to and including its first closing answer tag (all of it when there is none)."""
    end = text.find(ANSWER_CLOSE)
    return text if end < 0 else text[: end + len(ANSWER_CLOSE)]


def main() -> None:
    """Decode the problems under both settings in turn; print and emit the throughput and the output check."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", type=Path, help="model directory (default: cached SmolLM2, else demo M0)")
    parser.add_argument("--problems", type=int, default=BEFORE_BATCH_SIZE)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", help="also write the results as JSON to this file ('-': stdout)")
    args = parser.parse_args()
    model = args.model or cached_smollm2() or SHIPPED_M0
    records = problems(model, args.problems)
    tokenizer = load_tokenizer(str(model))
    prompts = [build_prompt(tokenizer, format_question(r), None)[0] for r in records]
    study = REAL_PRESETS["smollm2"]
    variants = {
        "before": {"batch_size": BEFORE_BATCH_SIZE, "stop_strings": ()},
        "study": {"batch_size": study.eval_batch_size, "stop_strings": STOP_STRINGS},
    }
    # Loaded once, as `wmss compare` loads a model to evaluate it (the checkpoint's own dtype).
    net = load_causal_lm(str(model)).to(args.device)
    outputs: dict[str, list[str]] = {}
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, settings in variants.items():
            backend = HFBackend(net, tokenizer, max_new_tokens=study.max_new_tokens, **settings)
            began = time.perf_counter()
            generations = [g for (g,) in backend.generate(prompts)]
            seconds = time.perf_counter() - began
            outputs[name] = [g.text for g in generations]
            tokens = sum(g.n_tokens for g in generations)
            samples[name].append({"seconds": seconds, "tokens": tokens})
    results: dict[str, Any] = {}
    for name, runs in samples.items():
        seconds = sorted(r["seconds"] for r in runs)[len(runs) // 2]
        tokens = runs[0]["tokens"]
        results[name] = {
            **variants[name],
            "stop_strings": list(variants[name]["stop_strings"]),
            "seconds": seconds,
            "generated_tokens": tokens,
            "tokens_per_s": tokens / seconds,
            "problems_per_min": 60 * len(prompts) / seconds,
        }
    identical = sum(cut_at_tag(a) == b for a, b in zip(outputs["before"], outputs["study"], strict=True))
    results["study"]["identical_outputs"] = identical
    results["study"]["speedup"] = results["before"]["seconds"] / results["study"]["seconds"]
    print(
        f"greedy evaluation: {model}, {len(prompts)} held-out problems, max_new_tokens {study.max_new_tokens}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print(f"{'settings':34}{'s':>8}{'tokens':>8}{'tok/s':>8}{'problems/min':>14}")
    for name, r in results.items():
        label = f"{name}: batch {r['batch_size']}, stop {'+'.join(r['stop_strings']) or 'EOS only'}"
        print(
            f"{label:34}{r['seconds']:>8.1f}{r['generated_tokens']:>8}{r['tokens_per_s']:>8.1f}"
            f"{r['problems_per_min']:>14.1f}"
        )
    print(f"identical greedy outputs up to {ANSWER_CLOSE}: {identical} of {len(prompts)}")
    emit({"model": str(model), "problems": len(prompts), "results": results}, args.json)


if __name__ == "__main__":
    main()
