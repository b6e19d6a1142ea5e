"""`wmss compare`: every arm x seed x sweep point as a resumable stage in one run directory, then the report.

Per seed s (all training seeds set to s): Phase 1 (M0 -> M1, or one shared M1), the weak/strong entropies and the
curricula (one per distinct curriculum setting), built by the same `StageGraph` steps as Algorithm 1; then every
arm, whose method builds its stages from the same M1, data and curriculum; every model evaluated greedily on the
same problems (per-problem outcomes kept for paired statistics); and the premises and logit diagnostics of M1
and every arm's model. Finished stages are skipped on a re-run; a changed setting re-runs what depends on it.
"""

from __future__ import annotations

import itertools
import logging
import sys
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml
from transformers import TrainerCallback

from wmss.compare.arms import M0, M1, Arm, ArmStart, check_arms, make_arm, stage_slug
from wmss.compare.branches import branches_stage
from wmss.compare.diagnostics import diagnose
from wmss.compare.evaluation import evaluate_model, load_eval_records
from wmss.compare.gates import token_stage
from wmss.compare.plan import ComparePlan, SeedPlan
from wmss.compare.report import build_report, write_report
from wmss.compare.sampled import sampling_stage
from wmss.config import RunConfig, with_values
from wmss.errors import ConfigError
from wmss.eval.records import BenchmarkRecord
from wmss.io import atomic_write_json, ensure_directory
from wmss.method.settings import CurriculumSettings
from wmss.models import load_tokenizer
from wmss.phases.common import load_training_data
from wmss.pipeline import DATA_CACHE, Artifact, StageGraph, check_run, execute, run_inputs
from wmss.runlock import lock_run_directory
from wmss.stages import Stage, depends_on, settings_hash
from wmss.training import process_state

logger = logging.getLogger(__name__)


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


class _Evaluations:
    """Greedy evaluations of models on the same problems, loaded on first use (when an evaluation stage runs)."""

    def __init__(self, config: RunConfig) -> None:
        c = config.compare
        self.config = config
        self._records: dict[str, list[BenchmarkRecord]] | None = None
        self.settings: dict[str, Any] = {
            "compare": {
                k: getattr(c, k) for k in ("eval_file", "eval_kind", "benchmarks", "data_dir", "eval_limit")
            },
            "max_new_tokens": c.max_new_tokens,
            "system_prompt": config.data.system_prompt,
        }
        if c.eval_file:
            self.settings["eval_file_state"] = Path(c.eval_file).stat().st_mtime_ns

    def records(self) -> dict[str, list[BenchmarkRecord]]:
        """The evaluation problems by benchmark."""
        if self._records is None:
            self._records = load_eval_records(self.config.compare)
        return self._records

    def stage(self, name: str, model: Artifact, output: Path, config: RunConfig) -> Stage:
        """A stage writing one model's per-problem outcomes to `output`."""

        def run(_: Any) -> None:
            evaluate_model(model.path, config, self.records(), output)

        settings = {**self.settings, "model": str(model.path)}
        return Stage(name, output, settings, depends_on(model.stage), output, run, all_processes=False)


def build_plan(config: RunConfig, run_dir: Path) -> ComparePlan:
    """The stage graph of a comparison: Phase 1, entropies, curricula, arms, evaluations, premises, diagnostics."""
    c = config.compare
    graph = StageGraph(config, run_dir)
    plan = ComparePlan(run_dir=run_dir, stages=graph.stages)
    evaluations = _Evaluations(config)
    if c.evaluate_base_models:
        plan.evals[(c.seeds[0], M0)] = run_dir / "eval" / "m0.json"
        graph.add(evaluations.stage("eval.m0", graph.base_model(), run_dir / "eval" / "m0.json", config))
    for seed in c.seeds:
        cfg = with_values(config, {"sft.seed": seed, "joint.seed": seed, "wmss.seed": seed}, f"seed {seed}")
        seed_plan = SeedPlan(seed, cfg)
        co_trained = _train(graph, plan, seed_plan)
        _evaluate(graph, plan, seed_plan, evaluations, co_trained)
        plan.seeds.append(seed_plan)
    return plan


def _curriculum_name(settings: CurriculumSettings, seed_default: CurriculumSettings) -> str:
    """'curriculum' for the seed's own settings, else a name from the settings' hash (the seed's own seed left out)."""
    if settings == seed_default:
        return "curriculum"
    key = settings.fingerprint()
    if settings.seed == seed_default.seed:
        del key["seed"]
    return f"curriculum-{settings_hash(key)[:8]}"


def _train(graph: StageGraph, plan: ComparePlan, s: SeedPlan) -> list[str]:
    """One seed's Phase 1, entropies, curricula and arms; returns the co-trained joint arms."""
    config, c, seed = graph.config, graph.config.compare, s.seed
    # Phase 1 and the entropies do not depend on the curriculum's seed: shared when Phase 1 is (or M1 is given).
    shared = c.shared_phase1 or bool(config.model.sft)
    p1_dir, p1 = (
        (graph.run_dir / "phase1", "phase1.") if shared else (graph.run_dir / f"seed-{seed}", f"seed{seed}.")
    )
    p1_config = with_values(config, {"sft.seed": c.seeds[0]}) if c.shared_phase1 else s.config
    m0, m1 = graph.base_model(), graph.phase1(p1 + "sft", p1_dir / "sft", p1_config)
    entropies = graph.entropies(p1, p1_dir, m0, m1)
    s.entropies, s.models[M1] = (entropies[0].path, entropies[1].path), m1
    prefix, seed_dir = f"seed{seed}.", graph.run_dir / f"seed-{seed}"
    co_trained: list[str] = []
    for arm in _arms_for(s.config):
        settings = arm.config.wmss.curriculum
        name = prefix + _curriculum_name(settings, s.config.wmss.curriculum)
        curriculum = graph.curriculum(name, seed_dir / name.removeprefix(prefix), entropies, settings)
        s.curricula[name] = curriculum.path
        slug = stage_slug(arm.name)
        drawn = curriculum if arm.spec.data == "curriculum" else None
        built = arm.spec.method.build(
            arm, ArmStart(graph, prefix + slug, seed_dir / "arms" / slug, m0, m1, drawn)
        )
        s.arms[arm.name], s.models[arm.name] = arm, built.model
        s.arm_stages[arm.name], s.trained_in[arm.name] = built.training, built.trained_in
        w = arm.config.wmss
        if built.joint is not None and w.weak_trainable and w.weak_control == "none":
            co_trained.append(arm.name)
        if arm.name not in plan.arm_order:
            plan.arm_order.append(arm.name)
    return co_trained


def _evaluate(
    graph: StageGraph, plan: ComparePlan, s: SeedPlan, evaluations: _Evaluations, co_trained: list[str]
) -> None:
    """One seed's evaluations (and samples) of every model, its co-trained branches, premises and diagnostics."""
    c, prefix, seed_dir = graph.config.compare, f"seed{s.seed}.", graph.run_dir / f"seed-{s.seed}"
    shared_m1 = c.shared_phase1 or bool(graph.config.model.sft)
    for row, model in s.models.items():
        if row == M1 and not c.evaluate_base_models:
            continue
        slug = stage_slug(row)
        # A shared M1 is the same model for every seed: evaluated and sampled once, its outcomes stand for all.
        at, where = ("phase1.", graph.run_dir / "phase1") if row == M1 and shared_m1 else (prefix, seed_dir)
        plan.evals[(s.seed, row)] = output = where / "eval" / f"{slug}.json"
        graph.add(evaluations.stage(f"{at}eval.{slug}", model, output, s.config))
        if c.sampling_problems > 0:
            output = where / "sampling" / f"{slug}.json"
            plan.sampling.setdefault(row, []).append(output)
            name = f"{at}sample.{slug}"
            graph.add(
                sampling_stage(name, model, s.config, evaluations.records, output, evaluations.settings)
            )
    for arm_name in co_trained if c.branches else ():
        arm, slug = s.arms[arm_name], stage_slug(arm_name)
        output = seed_dir / "branches" / f"{slug}.json"
        plan.branches.setdefault(arm_name, []).append(output)
        starts = (s.models[M1].path, Path(arm.weak) if arm.weak else graph.base_model().path)
        upstream = str(s.models[arm_name].stage)
        stage = branches_stage(
            f"{prefix}branches.{slug}",
            seed_dir / "arms" / slug,
            starts,
            upstream,
            arm.config,
            evaluations.records,
            output,
            evaluations.settings,
        )
        graph.add(stage)
    if c.diagnostics_samples > 0:
        weak, cache = graph.base_model().path, graph.run_dir / DATA_CACHE
        plan.premise_tokens[s.seed] = output = seed_dir / "premises_tokens.json"
        graph.add(token_stage(prefix + "premises", s, weak, output, cache))
        plan.diagnostics[s.seed] = output = seed_dir / "diagnostics.json"
        graph.add(_diagnostics_stage(prefix + "diagnostics", s, weak, output, cache))


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
    check_arms(config.compare)
    check_run(config)
    run_dir = ensure_directory(run_dir or config.pipeline.output_dir, run_inputs(config))
    with lock_run_directory(run_dir):
        plan = build_plan(config, run_dir)
        total = len(plan.stages)

        def progress(position: int, stage: Stage) -> None:
            print(f"[compare {position + 1}/{total}] {stage.name}", file=sys.stderr, flush=True)

        outcome, _ = execute(config, run_dir, plan.stages, callbacks, rerun, on_stage=progress)
        report = build_report(config, plan)
        report["stages"] = {"executed": outcome.executed, "skipped": outcome.skipped}
        if process_state().is_main_process:
            write_report(report, run_dir)
    return report
