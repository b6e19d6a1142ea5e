"""`wmss demo`: WMSS against its baselines offline, in minutes, on a tiny model and a synthetic reasoning task.

Build a tokenizer, generate the task (train split and a held-out split), pretrain a tiny base model M0, then run
the real `wmss compare` on it: Phase 1 SFT, entropies, curriculum, and the arms (SFT for the total budget, continued
SFT, WMSS, and the uniform-weak-logit control) for every training seed, each evaluated by greedy generation on the
held-out split, compared with paired bootstrap confidence intervals, with logit statistics and plots. Every step is
cached in the output directory, so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import Any

from wmss.compare.plan import M0, M1
from wmss.compare.report import render_table, write_report
from wmss.compare.runner import run_compare
from wmss.config import RunConfig, load_config
from wmss.demo import real
from wmss.demo.base_model import pretrain_base_model
from wmss.demo.phase1 import saturation_search
from wmss.demo.presets import DEMO_ARMS, PRESETS, DemoPreset
from wmss.demo.real import REAL_PRESETS
from wmss.demo.recipe import RECIPE_FILE, m0_recipe, read_recipe
from wmss.demo.task import (
    DemoTask,
    easier_problems,
    make_task,
    pretraining_corpus,
    validation_problems,
    write_jsonl,
)
from wmss.demo.tokenizer import build_demo_tokenizer
from wmss.errors import ConfigError
from wmss.io import atomic_directory, atomic_write_json, read_json
from wmss.phases.common import StageLayout
from wmss.prompts import apply_template
from wmss.training import read_metrics

logger = logging.getLogger(__name__)

M0_INFO = "m0_pretraining.json"
# The default preset's M0 for data seed 0, built by `make demo-m0`: like the paper's Qwen3-Base, M0 comes
# pretrained, so its pretraining is not part of the demo's run time. Any other recipe is pretrained on the spot.
SHIPPED_M0 = Path(__file__).parent / "m0"


def demo_settings(preset: DemoPreset, seeds: list[int]) -> dict[str, Any]:
    """Dotted config keys the demo sets: paper defaults for the method, the preset's sizes, equal phase budgets."""
    # Phase 1 and Phase 3 get the same schedule; Phase 1 runs to saturation, Phase 3 for the paper's epoch.
    common = {
        "per_device_train_batch_size": preset.batch_size,
        "warmup_steps": preset.warmup_ratio,
        "lr_scheduler_type": "cosine",
        "logging_steps": 10,
        "save_steps": 200,
        "save_total_limit": 1,
        "learning_rate": preset.learning_rate,
    }
    values: dict[str, Any] = {f"{stage}.{key}": v for stage in ("sft", "joint") for key, v in common.items()}
    values |= {
        "sft.num_train_epochs": float(preset.phase1_epochs),
        "joint.num_train_epochs": float(preset.epochs),
        "data.max_length": preset.max_position_embeddings,
        "wmss.entropy_batch_size": preset.entropy_batch_size,
        "compare.arms": list(DEMO_ARMS),
        "compare.reference": "sft_continued",
        "compare.seeds": list(seeds),
        "compare.eval_kind": "numeric",
        "compare.eval_batch_size": preset.eval_batch_size,
        "compare.max_new_tokens": preset.max_new_tokens,
        "compare.diagnostics_samples": preset.diagnostics_samples,
    }
    return values


def demo_config(preset: DemoPreset, output: Path, seeds: list[int]) -> RunConfig:
    """The `wmss compare` configuration of the demo (paths inside `output`)."""
    paths = {
        "model.base": str(output / "m0"),
        "data.train": str(output / "data" / "train.jsonl"),
        "compare.eval_file": str(output / "data" / "test.jsonl"),
        "pipeline.output_dir": str(output),
    }
    return load_config(None, values={**demo_settings(preset, seeds), **paths})


def task_and_corpus(
    preset: DemoPreset, data_seed: int, tokenizer: Any
) -> tuple[DemoTask, list[str], list[tuple[str, str]]]:
    """The task's splits, M0's pretraining corpus and its mid-training (prompt, chat) pairs; neither of the last two
    holds a held-out problem's arithmetic."""
    task = make_task(
        data_seed,
        preset.n_train,
        preset.n_test,
        min_steps=preset.min_steps,
        max_steps=preset.max_steps,
        max_start=preset.max_start,
        max_operand=preset.max_operand,
        distractor_prob=preset.distractor_prob,
    )
    corpus = pretraining_corpus(
        data_seed,
        preset.corpus_size,
        max_start=preset.max_start,
        max_operand=preset.max_operand,
        max_steps=preset.max_steps,
        worked_fraction=preset.worked_fraction,
        worked_max_steps=preset.worked_max_steps,
        render=lambda question, answer: chat_text(tokenizer, question, answer),
        exclude=task.test_keys,
    )
    easier = easier_problems(
        data_seed,
        preset.midtrain_problems if preset.midtrain_steps else 0,
        max_start=preset.max_start,
        max_operand=preset.max_operand,
        max_steps=preset.worked_max_steps,
        exclude=task.test_keys,
    )
    chats = [
        (chat_prompt(tokenizer, question), chat_text(tokenizer, question, answer))
        for question, answer in easier
    ]
    return task, corpus, chats


def prepare_task_and_base_model(
    preset: DemoPreset, output: Path, data_seed: int, *, m0_dir: Path | None = None
) -> dict[str, Any]:
    """Write the tokenizer, the task's splits and M0 under `output`: M0 is kept while its recipe (preset sizes,
    data seed, corpus) holds, copied from the shipped one when that has the recipe, else pretrained here.
    `m0_dir` pretrains M0 into that directory instead, whatever exists."""
    tokenizer = build_demo_tokenizer(output / "tokenizer")
    task, corpus, easier = task_and_corpus(preset, data_seed, tokenizer)
    write_jsonl(task.train, output / "data" / "train.jsonl")
    write_jsonl(task.test, output / "data" / "test.jsonl")
    write_jsonl(validation_split(preset, data_seed, task), output / "data" / "validation.jsonl")
    recipe = m0_recipe(preset, data_seed, corpus, easier)
    if m0_dir is not None:
        pretrain_base_model(tokenizer, corpus, m0_dir, preset, data_seed, recipe, easier)
        return read_json(m0_dir / RECIPE_FILE)["pretraining"]
    info_path, m0 = output / M0_INFO, output / "m0"
    if (m0 / "config.json").is_file() and info_path.is_file() and read_recipe(m0) == recipe:
        return read_json(info_path)
    if read_recipe(SHIPPED_M0) == recipe:
        with atomic_directory(m0) as tmp:
            shutil.copytree(SHIPPED_M0, tmp, dirs_exist_ok=True)
        source = "shipped with wmss (make demo-m0 rebuilds it)"
    else:
        logger.info("pretraining M0 for %d steps (the shipped M0 has another recipe)", preset.pretrain_steps)
        pretrain_base_model(tokenizer, corpus, m0, preset, data_seed, recipe, easier)
        source = "pretrained in this run"
    info = {
        "source": source,
        "data_seed": data_seed,
        "corpus_documents": len(corpus),
        **read_json(m0 / RECIPE_FILE)["pretraining"],
    }
    atomic_write_json(info_path, info)
    return info


def validation_split(preset: DemoPreset, data_seed: int, task: DemoTask) -> list[dict[str, Any]]:
    """The validation problems (model selection only): the test's distribution, disjoint from train and test."""
    return validation_problems(
        data_seed,
        preset.n_validation,
        min_steps=preset.min_steps,
        max_steps=preset.max_steps,
        max_start=preset.max_start,
        max_operand=preset.max_operand,
        distractor_prob=preset.distractor_prob,
        exclude=task.test_keys | task.train_keys,
    )


def search_phase1_epochs(preset_name: str, output: Path, data_seed: int) -> dict[str, Any]:
    """Run the Phase 1 saturation rule (wmss.demo.phase1) on the preset's M0 under `output`/phase1-search."""
    preset = PRESETS[preset_name]
    prepare_task_and_base_model(preset, output, data_seed)
    data = output / "data"
    paths = {
        "model.base": str(output / "m0"),
        "data.train": str(data / "train.jsonl"),
        "compare.eval_file": str(data / "validation.jsonl"),
    }
    return saturation_search(preset, demo_settings(preset, [0]), paths, output / "phase1-search")


def chat_text(tokenizer: Any, question: str, answer: str) -> str:
    """A worked problem as the chat the demo trains and evaluates on (no system prompt), ending the turn."""
    return tokenizer.apply_chat_template(
        [{"role": "user", "content": question}, {"role": "assistant", "content": answer}], tokenize=False
    )


def chat_prompt(tokenizer: Any, question: str) -> str:
    """The generation prompt of a problem, exactly as evaluation renders it (no system prompt)."""
    return apply_template(tokenizer, [{"role": "user", "content": question}], None)[0]


def _final_sft_loss(output: Path, seed: int) -> float | None:
    losses = [
        r["loss"] for r in read_metrics(StageLayout(output / f"seed-{seed}" / "sft").metrics) if "loss" in r
    ]
    return losses[-1] if losses else None


def run_demo(preset_name: str, output: Path, seeds: list[int], data_seed: int = 0) -> dict[str, Any]:
    """Run the demo and write report.json / report.md / plots under `output`."""
    preset = PRESETS[preset_name]
    output.mkdir(parents=True, exist_ok=True)
    m0_info = prepare_task_and_base_model(preset, output, data_seed)
    report = run_compare(demo_config(preset, output, seeds), output)
    curriculum = report["curriculum"]
    report |= {
        "preset": preset_name,
        "seeds": seeds,
        "demo": {
            "m0_pretraining": m0_info,
            "sft_final_train_loss": [_final_sft_loss(output, seed) for seed in seeds],
            # What shows the demo is in the paper's regime: a partly competent M0, a saturated M1, and a
            # curriculum that is not uniform.
            "regime": {
                "m0_accuracy": report["models"][M0]["accuracy"],
                "m1_accuracy": report["models"][M1]["accuracy"],
                "effective_sample_size": curriculum["effective_sample_size"],
                "n_train": curriculum["n"],
            },
        },
    }
    write_report(report, output)
    return report


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss demo`."""
    parser.add_argument(
        "--preset",
        choices=[*sorted(PRESETS), *sorted(REAL_PRESETS)],
        default="default",
        help="size of the tiny demo, or the real-model study (smollm2, smollm2-smoke: needs `make demo-real`)",
    )
    parser.add_argument("--output", default="runs/demo", help="demo directory (re-running resumes)")
    parser.add_argument(
        "--seeds", type=int, default=1, help="number of training seeds (paired over problems)"
    )
    parser.add_argument("--seed", type=int, default=0, help="first training seed")
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the task and of M0's pretraining")
    parser.add_argument(
        "--build-m0",
        metavar="DIR",
        help="only pretrain the preset's M0 into DIR (make demo-m0 rebuilds the shipped one this way)",
    )
    parser.add_argument(
        "--phase1-search",
        action="store_true",
        help="only apply the Phase 1 saturation rule (epoch grid, validation split) and print its table",
    )
    parser.add_argument(
        "--data-dir",
        help="benchmark files (e.g. ../shared/benchmarks) for the real-model preset's transfer check",
    )


def run_cli(args: argparse.Namespace) -> None:
    """Run `wmss demo`."""
    if args.seeds < 1:  # before any work: M0 is built first
        raise ConfigError(f"--seeds must be >= 1 (the number of training seeds), got {args.seeds}")
    if args.preset in REAL_PRESETS:
        real.run_cli(args)
        return
    output = Path(args.output)
    if args.phase1_search:
        selection = search_phase1_epochs(args.preset, output, args.data_seed)
        for point in selection["grid"]:
            print(
                f"{point['epochs']:g} epochs: M1 {100 * point['m1_accuracy']:.1f}%, + plain SFT "
                f"{100 * point['probe_accuracy']:.1f}%, gain {100 * point['gain']:+.1f} "
                f"[{100 * point['gain_ci'][0]:+.1f}, {100 * point['gain_ci'][1]:+.1f}], saturated: {point['saturated']}"
            )
        print(f"Phase 1 epochs by the rule: {selection['chosen_epochs']:g} ({output / 'phase1-search'})")
        return
    if args.build_m0:
        info = prepare_task_and_base_model(
            PRESETS[args.preset], output, args.data_seed, m0_dir=Path(args.build_m0)
        )
        print(f"M0 pretrained into {args.build_m0}: {info}")
        return
    seeds = list(range(args.seed, args.seed + args.seeds))
    report = run_demo(args.preset, output, seeds, args.data_seed)
    regime = report["demo"]["regime"]
    print(render_table(report))
    print(
        f"Regime: M0 solves {100 * regime['m0_accuracy']:.1f}% and M1 {100 * regime['m1_accuracy']:.1f}% of the "
        f"held-out problems; curriculum effective sample size {regime['effective_sample_size']:.0f} of "
        f"{regime['n_train']}."
    )
    print(f"report: {output / 'report.md'} and {output / 'report.json'}; plots in {output / 'plots'}")
