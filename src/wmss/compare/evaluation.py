"""Evaluation of one model for `wmss compare`: greedy generations graded per problem, kept for paired statistics."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wmss.config import CompareConfig, RunConfig
from wmss.errors import ConfigError, DataError
from wmss.eval.backends import HFBackend
from wmss.eval.datasets import load_benchmark, load_records_file
from wmss.eval.records import BenchmarkRecord
from wmss.eval.runner import evaluate
from wmss.io import atomic_write_json, read_json
from wmss.models import load_tokenizer
from wmss.prompts import resolve_system_prompt

HELDOUT = "heldout"  # benchmark name of `compare.eval_file`


def load_eval_records(c: CompareConfig) -> dict[str, list[BenchmarkRecord]]:
    """The problems every arm is evaluated on: the held-out file and/or named benchmarks."""
    records: dict[str, list[BenchmarkRecord]] = {}
    if c.eval_file:
        loaded = load_records_file(c.eval_file, name=HELDOUT, kind=c.eval_kind)
        records[HELDOUT] = loaded[: c.eval_limit] if c.eval_limit else loaded
    for name in c.benchmarks:
        records[name] = load_benchmark(name, c.data_dir, c.eval_limit)
    if not records:
        raise ConfigError(
            "'compare.eval_file' and 'compare.benchmarks' are both empty: give a held-out JSONL "
            "(--eval-file) or benchmark names (--benchmarks gsm8k,svamp --data-dir DIR)"
        )
    return records


def evaluate_model(
    model_dir: Path,
    config: RunConfig,
    records: dict[str, list[BenchmarkRecord]],
    output: Path,
    mix_with: Path | None = None,
) -> dict[str, Any]:
    """Generate greedily for every problem, grade, and write per-problem outcomes to `output` (JSON);
    `mix_with` decodes from λ·z_model + (1-λ)·z_mix_with instead (the two branches of a joint run)."""
    c = config.compare
    tokenizer = load_tokenizer(str(model_dir), config.model)
    backend = HFBackend(
        str(model_dir),
        tokenizer,
        batch_size=c.eval_batch_size,
        max_new_tokens=c.max_new_tokens,
        mix_with=None if mix_with is None else str(mix_with),
        mix_lambda=config.wmss.lam,
    )
    # Evaluation prompts are rendered as in training: same chat template, same system prompt.
    result = evaluate(
        backend,
        records,
        model_name=str(model_dir),
        tokenizer=tokenizer,
        system_prompt=resolve_system_prompt(config.data.system_prompt),
    )
    outcomes: dict[str, dict[str, Any]] = {}
    for sample in result.samples:
        entry = outcomes.setdefault(
            sample.benchmark, {"ids": [], "correct": [], "truncated": 0, "examples": []}
        )
        entry["ids"].append(sample.prompt_id)
        entry["correct"].append(int(sample.correct))
        entry["truncated"] += int(sample.truncated)
        if len(entry["examples"]) < 3:
            entry["examples"].append({"id": sample.prompt_id, "output": sample.output, "gold": sample.gold})
    payload = {
        "model": str(model_dir),
        "mixed_with": None if mix_with is None else str(mix_with),
        "prompt_format": result.settings["prompt_format"],
        "benchmarks": outcomes,
    }
    atomic_write_json(output, payload)
    return payload


def sampling_subset(records: dict[str, list[BenchmarkRecord]], n: int) -> list[BenchmarkRecord]:
    """The fixed problems every model is also sampled on: the first n of each evaluation set."""
    return [record for problems in records.values() for record in problems[:n]]


def read_outcomes(path: Path, records: dict[str, list[BenchmarkRecord]]) -> dict[str, list[int]]:
    """Per-benchmark 0/1 outcomes from an evaluation file, in the order of `records` (checked to match)."""
    data = read_json(path)
    outcomes = {}
    for name, problems in records.items():
        entry = data.get("benchmarks", {}).get(name)
        expected = [record.id for record in problems]
        if entry is None or entry.get("ids") != expected:
            raise DataError(
                f"{path}: outcomes for '{name}' do not match the evaluation problems; "
                "delete the file to re-evaluate this model"
            )
        outcomes[name] = [int(v) for v in entry["correct"]]
    return outcomes
