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
from pathlib import Path
from typing import Any

from wmss.compare.arms import M0, M1
from wmss.compare.comparison import run_compare
from wmss.compare.regime import regime_markdown
from wmss.compare.report import render_table, write_report
from wmss.demo import real
from wmss.demo.m0_search import m0_search
from wmss.demo.phase1 import saturation_search
from wmss.demo.presets import PRESETS
from wmss.demo.real import REAL_PRESETS
from wmss.demo.setup import demo_config, demo_settings, prepare_task_and_base_model
from wmss.errors import ConfigError
from wmss.phases.common import StageLayout
from wmss.training import read_metrics

logger = logging.getLogger(__name__)


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
            # The premises themselves are report["premises"]; these say how competent M0 and M1 are.
            "regime": {
                "m0_accuracy": report["models"][M0]["accuracy"],
                "m1_accuracy": report["models"][M1]["accuracy"],
                "effective_sample_size": curriculum["effective_sample_size"],
                "effective_sample_size_by_weighting": curriculum.get("effective_sample_size_by_weighting"),
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
        "--m0-search",
        action="store_true",
        help="only apply the rule that picks M0 among mid-training checkpoints (wmss.demo.m0_search)",
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
    if args.m0_search:
        selection = m0_search(args.preset, output, args.data_seed)
        for c in selection["candidates"]:
            values = ", ".join(f"{name} {gate['value']:.3f}" for name, gate in c["gates"].items())
            print(
                f"M0 at {c['midtrain_steps']} mid-training steps ({100 * c['m0_validation_accuracy']:.1f}% of "
                f"validation): M1 {c['phase1_epochs']:g} epochs ({100 * c['m1_validation_accuracy']:.1f}%); "
                f"{values}; weak gates hold: {c['weak_gates_hold']}"
            )
        print(
            f"M0 by the rule: {selection['chosen_midtrain_steps']} mid-training steps ({selection['model']})"
        )
        return
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
    # The premises come first: a verdict outside the paper's regime does not test its claim.
    print("\n".join(regime_markdown(report["regime"], heading="#")))
    print(render_table(report))
    print(
        f"Regime: M0 solves {100 * regime['m0_accuracy']:.1f}% and M1 {100 * regime['m1_accuracy']:.1f}% of the "
        f"held-out problems; curriculum effective sample size {regime['effective_sample_size']:.0f} of "
        f"{regime['n_train']}."
    )
    print(f"report: {output / 'report.md'} and {output / 'report.json'}; plots in {output / 'plots'}")
