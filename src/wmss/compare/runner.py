"""`wmss compare`: every arm x seed x sweep point as a resumable stage in one run directory, then the report.

Per seed s (all training seeds set to s): Phase 1 (M0 -> M1, or one shared M1), the weak/strong entropies, the
curriculum (one per distinct curriculum setting), then every arm trained from the same M1, data and curriculum,
each evaluated greedily on the same problems (per-problem outcomes kept for paired statistics), and the logit
diagnostics of M1 and every arm's model. Finished stages are skipped on a re-run; a changed setting re-runs what
depends on it.
"""

from __future__ import annotations

import argparse
import itertools
import logging
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from transformers import TrainerCallback

from wmss.baselines.undial import UndialTrainer
from wmss.cli_args import add_config_arguments, config_from_args
from wmss.compare.arms import Arm, make_arm, stage_slug
from wmss.compare.branches import branches_stage
from wmss.compare.evaluation import evaluate_model, load_eval_records
from wmss.compare.gates import token_stage
from wmss.compare.plan import M0, M1, ComparePlan, SeedPlan
from wmss.compare.report import build_report, render_table, write_report
from wmss.compare.sampled import sampling_stage
from wmss.config import RunConfig, require, with_values
from wmss.diagnostics import diagnose
from wmss.errors import ConfigError
from wmss.eval.records import BenchmarkRecord
from wmss.io import atomic_write_json, ensure_directory
from wmss.method.curriculum import FINGERPRINT_NAMES
from wmss.models import load_causal_lm, load_tokenizer
from wmss.phases.common import load_training_data
from wmss.pipeline import DATA_CACHE, Steps, add_rerun_argument, check_run, check_stage_outputs, run_inputs
from wmss.runlock import lock_run_directory
from wmss.stages import MANIFEST, Manifest, Stage, run_stages, settings_hash
from wmss.training import process_state

logger = logging.getLogger(__name__)

_CURRICULUM_KEYS = ("alpha", "beta", "gamma", "sample_multiplier", "weighting")


def parse_sweep(spec: str) -> list[dict[str, Any]]:
    """'wmss.lam=0.3,0.5' or 'wmss.alpha:wmss.beta=0.1:0.8,0.2:0.6' -> one dict of dotted keys per point."""
    keys_text, sep, values_text = spec.partition("=")
    keys = [key.strip() for key in keys_text.split(":") if key.strip()]
    if not sep or not keys or not values_text.strip():
        raise ConfigError(
            f"'compare.sweeps': {spec!r} must look like wmss.lam=0.3,0.5 (or k1:k2=a1:a2,b1:b2)"
        )
    points = []
    for point in values_text.split(","):
        values = [yaml.safe_load(v) for v in point.split(":")]
        if len(values) != len(keys):
            raise ConfigError(f"'compare.sweeps': point {point!r} of {spec!r} needs {len(keys)} values")
        points.append(dict(zip(keys, values, strict=True)))
    return points


def sweep_points(specs: Sequence[str]) -> list[dict[str, Any]]:
    """The cartesian product of every sweep (an empty list when there are none)."""
    if not specs:
        return []
    return [
        {k: v for point in combination for k, v in point.items()}
        for combination in itertools.product(*(parse_sweep(spec) for spec in specs))
    ]


def _arms_for(config: RunConfig) -> list[Arm]:
    c = config.compare
    arms = [make_arm(name, config) for name in dict.fromkeys(c.arms)]
    base = {arm.name: arm for arm in arms}
    for name in c.sweep_arms:
        for point in sweep_points(c.sweeps):
            arm = make_arm(name, config, point)
            # A sweep point equal to the arm's own settings is that arm, not a second training run.
            if name in base and arm.config.to_dict() == base[name].config.to_dict():
                continue
            arms.append(arm)
    return arms


def _phase1_location(run_dir: Path, seed: int, shared: bool) -> tuple[Path, str]:
    return (run_dir / "phase1", "phase1.") if shared else (run_dir / f"seed-{seed}", f"seed{seed}.")


class _Records:
    """The evaluation problems, loaded on first use (only when an evaluation stage runs)."""

    def __init__(self, config: RunConfig) -> None:
        self.config = config
        self._records: dict[str, list[BenchmarkRecord]] | None = None

    def get(self) -> dict[str, list[BenchmarkRecord]]:
        if self._records is None:
            self._records = load_eval_records(self.config.compare)
        return self._records


def build_plan(config: RunConfig, run_dir: Path) -> ComparePlan:
    """The stage graph of a comparison: Phase 1, entropies, curricula, arms, evaluations, diagnostics."""
    c = config.compare
    plan = ComparePlan(run_dir=run_dir)
    records = _Records(config)
    eval_settings = {
        "compare": {
            k: getattr(c, k) for k in ("eval_file", "eval_kind", "benchmarks", "data_dir", "eval_limit")
        },
        "max_new_tokens": c.max_new_tokens,
        "system_prompt": config.data.system_prompt,
    }
    if c.eval_file:
        eval_settings["eval_file_state"] = Path(c.eval_file).stat().st_mtime_ns

    def evaluation(name: str, row: tuple[Path, str | None], output: Path, cfg: RunConfig) -> str:
        return plan.add(
            Stage(
                name,
                output,
                {**eval_settings, "model": str(row[0])},
                [row[1]] if row[1] else [],
                output,
                lambda cb: evaluate_model(row[0], cfg, records.get(), output),
                all_processes=False,
            )
        )

    m0 = (Path(str(config.model.base)), None)
    if c.evaluate_base_models:
        plan.evals[(c.seeds[0], M0)] = run_dir / "eval" / "m0.json"
        evaluation("eval.m0", m0, run_dir / "eval" / "m0.json", config)
    for seed in c.seeds:
        cfg = with_values(config, {"sft.seed": seed, "joint.seed": seed, "wmss.seed": seed}, f"seed {seed}")
        steps = Steps(cfg, run_dir)
        seed_plan = SeedPlan(seed, cfg)
        # Phase 1 and the entropies do not depend on the curriculum's seed: shared when Phase 1 is.
        p1_dir, p1 = _phase1_location(run_dir, seed, c.shared_phase1 or bool(config.model.sft))
        if config.model.sft:
            # A given M1 (model.sft) is every seed's: no Phase 1 stage, one pair of entropy files.
            m1: tuple[Path, str | None] = (Path(config.model.sft), None)
        else:
            p1_cfg = with_values(config, {"sft.seed": c.seeds[0]}) if c.shared_phase1 else cfg
            m1 = (
                p1_dir / "sft" / "model",
                plan.add(Steps(p1_cfg, run_dir).sft(p1 + "sft", p1_dir / "sft", m0[0], None)),
            )
        entropies = (p1_dir / "entropy_weak.json", p1_dir / "entropy_strong.json")
        plan.add(steps.entropy(p1 + "entropy_weak", m0[0], None, entropies[0]))
        plan.add(steps.entropy(p1 + "entropy_strong", m1[0], m1[1], entropies[1]))
        seed_plan.entropies = entropies
        seed_plan.models[M1] = m1
        prefix, seed_dir = f"seed{seed}.", run_dir / f"seed-{seed}"
        for arm in _arms_for(cfg):
            slug = stage_slug(arm.name)
            w = arm.config.wmss
            cur_settings = {k: getattr(w, k) for k in _CURRICULUM_KEYS}
            cur_settings["weighting"] = FINGERPRINT_NAMES.get(w.weighting, w.weighting)
            cur_default = all(getattr(w, k) == getattr(cfg.wmss, k) for k in _CURRICULUM_KEYS)
            cur_name = prefix + (
                "curriculum" if cur_default else f"curriculum-{settings_hash(cur_settings)[:8]}"
            )
            cur_dir = seed_dir / cur_name.removeprefix(prefix)
            plan.add(
                steps.curriculum(
                    cur_name, cur_dir, entropies, [p1 + "entropy_weak", p1 + "entropy_strong"], arm.config
                )
            )
            seed_plan.curricula[cur_name] = cur_dir
            curriculum = (cur_dir, cur_name) if arm.spec.data == "curriculum" else None
            arm_dir, arm_stage = seed_dir / "arms" / slug, prefix + slug
            init = m0 if arm.spec.init == M0 else m1
            if arm.spec.method == "joint":
                weak = (Path(arm.weak), None) if arm.weak else m0
                plan.add(steps.joint(arm_stage, arm_dir / "joint", weak, m1, curriculum, arm.config))
                model_stage = plan.add(
                    steps.extract(
                        arm_stage + ".extract", arm_dir / "joint", arm_stage, "strong", arm_dir / "model"
                    )
                )
                seed_plan.arm_stages[arm.name] = [arm_stage, model_stage]
            else:
                trainer = _undial_trainer(arm, init[0]) if arm.spec.method == "undial" else None
                extra = {"arm": arm.name, "method": arm.spec.method}
                if arm.spec.method == "undial":
                    extra |= {
                        "beta": arm.config.compare.undial_beta,
                        "noise": arm.config.compare.undial_noise,
                    }
                model_stage = plan.add(
                    steps.sft(
                        arm_stage,
                        arm_dir,
                        init[0],
                        init[1],
                        config=arm.config,
                        section=arm.train_section,
                        curriculum=curriculum,
                        extra=extra,
                        trainer=trainer,
                    )
                )
                seed_plan.arm_stages[arm.name] = [model_stage]
            seed_plan.arms[arm.name] = arm
            seed_plan.models[arm.name] = (arm_dir / "model", model_stage)
            if arm.name not in plan.arm_order:
                plan.arm_order.append(arm.name)
        for row, model in seed_plan.models.items():
            if row == M1 and not c.evaluate_base_models:
                continue
            output = seed_dir / "eval" / f"{stage_slug(row)}.json"
            plan.evals[(seed, row)] = output
            evaluation(f"{prefix}eval.{stage_slug(row)}", model, output, cfg)
            if c.sampling_problems > 0:
                output = seed_dir / "sampling" / f"{stage_slug(row)}.json"
                plan.sampling.setdefault(row, []).append(output)
                name = f"{prefix}sample.{stage_slug(row)}"
                plan.add(sampling_stage(name, model, cfg, records.get, output, eval_settings))
        for arm in seed_plan.arms.values():
            w = arm.config.wmss
            if not (
                c.branches and arm.spec.method == "joint" and w.weak_trainable and w.weak_control == "none"
            ):
                continue
            slug = stage_slug(arm.name)
            output = seed_dir / "branches" / f"{slug}.json"
            plan.branches.setdefault(arm.name, []).append(output)
            starts = (m1[0], Path(arm.weak) if arm.weak else m0[0])
            model_stage = seed_plan.models[arm.name][1]
            plan.add(
                branches_stage(
                    f"{prefix}branches.{slug}",
                    seed_dir / "arms" / slug,
                    starts,
                    str(model_stage),
                    arm.config,
                    records.get,
                    output,
                    eval_settings,
                )
            )
        if c.diagnostics_samples > 0:
            output = seed_dir / "premises_tokens.json"
            plan.premise_tokens[seed] = output
            plan.add(token_stage(prefix + "premises", seed_plan, m0[0], output, run_dir / DATA_CACHE))
            output = seed_dir / "diagnostics.json"
            plan.diagnostics[seed] = output
            plan.add(
                _diagnostics_stage(prefix + "diagnostics", seed_plan, m0[0], output, run_dir / DATA_CACHE)
            )
        plan.seeds.append(seed_plan)
    return plan


def _undial_trainer(arm: Arm, init: Path) -> Any:
    c = arm.config.compare

    def factory() -> tuple[type, dict[str, Any]]:
        # The teacher is a frozen copy of the model UNDIAL starts from.
        teacher = load_causal_lm(str(init), arm.config.model)
        return UndialTrainer, {"teacher": teacher, "beta": c.undial_beta, "noise": c.undial_noise}

    return factory


def _write_diagnostics(
    config: RunConfig, models: dict[str, Path], weak: Path, output: Path, data_cache: Path
) -> None:
    # The run's tokenised data (cached once per run) serves every model: they share one vocabulary.
    data = load_training_data(config, load_tokenizer(str(weak), config.model), data_cache)
    result = diagnose(
        {row: str(path) for row, path in models.items()},
        data,
        n=config.compare.diagnostics_samples,
        seed=config.wmss.seed,
        weak=str(weak),
        lam=config.wmss.lam,
    )
    atomic_write_json(output, result)


def _diagnostics_stage(name: str, seed_plan: SeedPlan, weak: Path, output: Path, data_cache: Path) -> Stage:
    cfg = seed_plan.config
    # M0 is in the table too: Table 6 of the paper reads the base model's statistics beside M1's.
    models = {M0: weak, **{row: path for row, (path, _) in seed_plan.models.items()}}
    return Stage(
        name,
        output,
        {"models": {row: str(path) for row, path in models.items()}, "n": cfg.compare.diagnostics_samples},
        [stage for _, stage in seed_plan.models.values() if stage],
        output,
        lambda cb: _write_diagnostics(cfg, models, weak, output, data_cache),
        all_processes=False,
    )


def run_compare(
    config: RunConfig,
    run_dir: str | Path | None = None,
    callbacks: Mapping[str, Sequence[TrainerCallback]] | None = None,
    rerun: Collection[str] = (),
) -> dict[str, Any]:
    """Run (or resume) the comparison in `run_dir` (default `pipeline.output_dir`) and write its report."""
    require(config, "model.base", "data.train")
    check_run(config)
    run_dir = ensure_directory(run_dir or config.pipeline.output_dir, run_inputs(config))
    with lock_run_directory(run_dir):
        plan = build_plan(config, run_dir)
        check_stage_outputs(plan.stages, run_inputs(config))
        if process_state().is_main_process:
            config.save(run_dir / "config.yaml")
        total = len(plan.stages)

        def progress(position: int, stage: Stage) -> None:
            print(f"[compare {position + 1}/{total}] {stage.name}", file=sys.stderr, flush=True)

        outcome = run_stages(
            plan.stages, Manifest(run_dir / MANIFEST), callbacks, on_stage=progress, rerun=rerun
        )
        report = build_report(config, plan)
        report["stages"] = {"executed": outcome.executed, "skipped": outcome.skipped}
        if process_state().is_main_process:
            write_report(report, run_dir)
    return report


SHORTCUTS = {
    "model": "model.base",
    "data": "data.train",
    "output": "pipeline.output_dir",
    "eval_file": "compare.eval_file",
    "data_dir": "compare.data_dir",
    "limit": "compare.eval_limit",
    "reference": "compare.reference",
    "arms": "compare.arms",
    "seeds": "compare.seeds",
    "sweep": "compare.sweeps",
    "benchmarks": "compare.benchmarks",
}


def _csv(text: str) -> list[str]:
    return [item.strip() for item in text.split(",") if item.strip()]


def _int_csv(text: str) -> list[int]:
    try:
        return [int(item) for item in _csv(text)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Options of `wmss compare`."""
    add_config_arguments(parser)
    parser.add_argument("--model", help="base model M0: local directory or hub id (model.base)")
    parser.add_argument("--data", help="training data: JSONL file or HF dataset name (data.train)")
    parser.add_argument("--output", help="run directory (pipeline.output_dir)")
    parser.add_argument(
        "--arms", type=_csv, help="comma-separated arms (compare.arms), e.g. sft_continued,wmss"
    )
    parser.add_argument("--reference", help="the arm every other arm is compared with (compare.reference)")
    parser.add_argument("--seeds", type=_int_csv, help="comma-separated training seeds (compare.seeds)")
    parser.add_argument(
        "--sweep",
        action="append",
        default=None,
        help="sweep applied to compare.sweep_arms, e.g. wmss.lam=0.1,0.3,0.5 (repeatable: cartesian product)",
    )
    parser.add_argument("--eval-file", help="held-out JSONL with question/answer records (compare.eval_file)")
    parser.add_argument("--benchmarks", type=_csv, help="benchmarks for wmss.eval, e.g. gsm8k,svamp")
    parser.add_argument("--data-dir", help="directory of local benchmark files (compare.data_dir)")
    parser.add_argument("--limit", type=int, help="first N problems of each benchmark (compare.eval_limit)")
    add_rerun_argument(parser)


def run_cli(args: argparse.Namespace) -> None:
    """Run `wmss compare`."""
    config = config_from_args(args, SHORTCUTS)
    report = run_compare(config, rerun=args.rerun)
    print(render_table(report))
    print(f"report: {Path(config.pipeline.output_dir) / 'report.md'} and report.json, plots in plots/")
