"""`wmss demo`: watch WMSS work offline, in minutes, on a tiny model and a synthetic reasoning task.

Per seed: build a tokenizer, generate the task, pretrain a tiny base model M0, run the real `wmss run`
pipeline on it (Phase 1 SFT, entropy, curriculum, joint training, extraction, plus the continued-SFT baseline with
the same budget), then evaluate M0, M1, continued SFT and WMSS by greedy generation on the held-out split.
Every step is cached in the output directory, so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path
from typing import Any

from wmss.config import WMSSConfig, load_config
from wmss.demo.base_model import pretrain_base_model
from wmss.demo.presets import PRESETS, DemoPreset
from wmss.demo.report import build_report, render_table, write_report
from wmss.demo.task import make_task, pretraining_corpus, write_jsonl
from wmss.demo.tokenizer import build_demo_tokenizer
from wmss.eval.backends import HFBackend
from wmss.eval.records import BenchmarkRecord
from wmss.eval.runner import evaluate
from wmss.io import atomic_write_json, read_json
from wmss.models import load_tokenizer
from wmss.phases.common import StageLayout
from wmss.phases.curriculum import read_curriculum
from wmss.pipeline import MANIFEST, run_pipeline
from wmss.training import read_metrics

logger = logging.getLogger(__name__)

MODELS = ("base", "sft", "sft_continued", "wmss")


def demo_settings(preset: DemoPreset, seed: int) -> dict[str, Any]:
    """Dotted config keys the demo sets (paper defaults for the method, demo sizes for training)."""
    common = {
        "per_device_train_batch_size": preset.batch_size,
        "warmup_steps": preset.warmup_ratio,
        "lr_scheduler_type": "cosine",
        "logging_steps": 10,
        "save_steps": 200,
        "save_total_limit": 1,
        "seed": seed,
    }
    values: dict[str, Any] = {
        "data.max_length": preset.max_position_embeddings,
        "wmss.seed": seed,
        "wmss.entropy_batch_size": preset.entropy_batch_size,
        "pipeline.sft_baseline": True,
    }
    for stage, (epochs, lr) in {
        "sft": (preset.sft_epochs, preset.sft_learning_rate),
        "joint": (preset.joint_epochs, preset.joint_learning_rate),
    }.items():
        values |= {f"{stage}.{key}": value for key, value in common.items()}
        values |= {f"{stage}.num_train_epochs": float(epochs), f"{stage}.learning_rate": lr}
    return values


def pipeline_config(preset: DemoPreset, base: Path, train_file: Path, run_dir: Path, seed: int) -> WMSSConfig:
    """The `wmss run` configuration of one demo seed."""
    paths = {"model.base": str(base), "data.train": str(train_file), "pipeline.output_dir": str(run_dir)}
    return load_config(None, values={**demo_settings(preset, seed), **paths})


def heldout_records(task_test: list[dict[str, Any]]) -> list[BenchmarkRecord]:
    """The held-out split as evaluation records (numeric answers)."""
    return [
        BenchmarkRecord(id=str(r["id"]), question=r["question"], gold=str(r["answer"]), kind="numeric")
        for r in task_test
    ]


def evaluate_model(
    name: str, model_dir: Path, records: list[BenchmarkRecord], preset: DemoPreset, cache: Path
) -> dict[str, Any]:
    """Greedy-generate and grade one model on the held-out split (cached in `cache`)."""
    if cache.is_file():
        return read_json(cache)
    tokenizer = load_tokenizer(str(model_dir))
    backend = HFBackend(
        str(model_dir), tokenizer, batch_size=preset.eval_batch_size, max_new_tokens=preset.max_new_tokens
    )
    result = evaluate(backend, {"demo": records}, model_name=name, tokenizer=tokenizer, system_prompt=None)
    correct = [s.correct for s in result.samples]
    summary = {
        "model": str(model_dir),
        "accuracy": sum(correct) / len(correct),
        "n": len(correct),
        "truncated": sum(s.truncated for s in result.samples),
        "samples": [
            {
                "id": s.prompt_id,
                "output": s.output,
                "extracted": s.extracted,
                "gold": s.gold,
                "correct": s.correct,
            }
            for s in result.samples
        ],
    }
    atomic_write_json(cache, summary)
    return summary


def run_seed(preset: DemoPreset, seed: int, out: Path) -> dict[str, Any]:
    """Run the whole demo for one seed under `out`; returns accuracies, timings and curriculum stats."""
    timings: dict[str, float] = {}
    started = time.time()
    tokenizer = build_demo_tokenizer(out / "tokenizer")
    task = make_task(
        seed,
        preset.n_train,
        preset.n_test,
        min_steps=preset.min_steps,
        max_steps=preset.max_steps,
        max_start=preset.max_start,
        max_operand=preset.max_operand,
    )
    write_jsonl(task.train, out / "data" / "train.jsonl")
    write_jsonl(task.test, out / "data" / "test.jsonl")
    timings["data"] = time.time() - started

    base = out / "m0"
    if not (base / "config.json").is_file():
        began = time.time()
        corpus = pretraining_corpus(
            seed,
            preset.corpus_size,
            max_start=preset.max_start,
            max_operand=preset.max_operand,
            max_steps=preset.max_steps,
        )
        pretrain_base_model(tokenizer, corpus, base, preset, seed)
        timings["pretrain_m0"] = time.time() - began

    config = pipeline_config(preset, base, out / "data" / "train.jsonl", out / "run", seed)
    result = run_pipeline(config)
    manifest = read_json(result.run_dir / MANIFEST)["stages"]
    timings |= {name: record.get("duration_s", 0.0) for name, record in manifest.items()}

    paths = {
        "base": base,
        "sft": result.sft_model,
        "sft_continued": result.sft_continued_model,
        "wmss": result.final_model,
    }
    records = heldout_records(task.test)
    accuracies = {}
    for name in MODELS:
        began = time.time()
        summary = evaluate_model(name, Path(paths[name]), records, preset, out / "eval" / f"{name}.json")
        accuracies[name] = summary["accuracy"]
        timings[f"eval_{name}"] = time.time() - began
    curriculum = read_curriculum(result.run_dir / "round-1" / "curriculum")["stats"]
    sft_losses = [
        row["loss"] for row in read_metrics(StageLayout(result.run_dir / "sft").metrics) if "loss" in row
    ]
    return {
        "accuracies": accuracies,
        "n": len(records),
        "timings": timings,
        "curriculum": curriculum,
        "sft_final_train_loss": sft_losses[-1] if sft_losses else None,
    }


def run_demo(preset_name: str, output: Path, seeds: list[int]) -> dict[str, Any]:
    """Run the demo for every seed and write report.json / report.md under `output`."""
    preset = PRESETS[preset_name]
    per_seed = [run_seed(preset, seed, output / f"seed-{seed}") for seed in seeds]
    accuracies = {name: [run["accuracies"][name] for run in per_seed] for name in MODELS}
    timings: dict[str, float] = {}
    for run in per_seed:
        for stage, seconds in run["timings"].items():
            timings[stage] = round(timings.get(stage, 0.0) + seconds, 3)
    report = build_report(
        preset_name,
        seeds,
        accuracies,
        per_seed[0]["n"],
        timings,
        per_seed[0]["curriculum"],
        extra={
            "sft_final_train_loss": [run["sft_final_train_loss"] for run in per_seed],
            "curriculum_per_seed": [run["curriculum"] for run in per_seed],
        },
    )
    write_report(report, output)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss demo`."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default="default", help="size of the demo")
    parser.add_argument("--output", default="runs/demo", help="demo directory (re-running resumes)")
    parser.add_argument("--seeds", type=int, default=1, help="repeat the comparison over this many seeds")
    parser.add_argument("--seed", type=int, default=0, help="first seed")


def run_cli(args: argparse.Namespace) -> None:
    """Run `wmss demo`."""
    output = Path(args.output)
    report = run_demo(args.preset, output, list(range(args.seed, args.seed + args.seeds)))
    print(render_table(report))
    print(f"report: {output / 'report.md'} and {output / 'report.json'}")
