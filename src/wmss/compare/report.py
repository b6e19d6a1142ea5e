"""The comparison's report: accuracies with paired confidence intervals, budgets, ablations, sweeps, logit
statistics, curriculum statistics and plots, as report.json + report.md + plots/*.png.

Every number comes from the run directory: per-problem outcomes of greedy generations, stage summaries, metric logs,
entropy and curriculum files, diagnostics. Wording follows the intervals (`wmss.compare.stats.describe_difference`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from wmss.compare import plots
from wmss.compare.arms import M0, M1, stage_slug
from wmss.compare.branches import branches_markdown, branches_report
from wmss.compare.evaluation import load_eval_records, read_outcomes
from wmss.compare.gates import premises_report
from wmss.compare.plan import ComparePlan, SeedPlan
from wmss.compare.regime import regime_markdown
from wmss.compare.sampled import sampling_markdown, sampling_report
from wmss.compare.stats import (
    compare_arms,
    describe_difference,
    effective_sample_size,
    paired_bootstrap,
    weight_entropy,
)
from wmss.config import RunConfig
from wmss.io import atomic_write_json, atomic_write_text, read_json
from wmss.phases.curriculum_file import read_curriculum
from wmss.phases.entropy_file import read_entropy_file
from wmss.stages import MANIFEST
from wmss.training import read_metrics

logger = logging.getLogger(__name__)

ALL = "all"  # every evaluation problem pooled
LABELS = {M0: "M0 (base)", M1: "M1 (Phase 1 SFT)"}
# Table 3 of the paper: the two components of WMSS switched on one at a time.
ABLATION = ("sft_continued_plain", "sft_continued", "joint_plain", "wmss")


def _rows(plan: ComparePlan) -> list[str]:
    rows = [row for row in (M0, M1) if any(key[1] == row for key in plan.evals)]
    return rows + plan.arm_order


def _outcomes(plan: ComparePlan, records: dict[str, list]) -> dict[str, dict[str, np.ndarray]]:
    """row -> benchmark (and ALL) -> array [n_seeds, n_problems] of 0/1 outcomes."""
    seeds = [seed_plan.seed for seed_plan in plan.seeds]
    table: dict[str, dict[str, np.ndarray]] = {}
    for row in _rows(plan):
        # M0 is the same model for every seed: evaluated once, its outcomes stand for every seed.
        per_seed = [
            read_outcomes(plan.evals[(seeds[0] if row == M0 else seed, row)], records) for seed in seeds
        ]
        table[row] = {name: np.array([outcome[name] for outcome in per_seed]) for name in records}
        table[row][ALL] = np.concatenate([table[row][name] for name in records], axis=1)
    return table


def _budget(seed_plan: SeedPlan, arm: str) -> dict[str, Any]:
    spec = seed_plan.arms[arm].spec
    summary = read_json(seed_plan.trained_in[arm] / "summary.json")
    steps = int(summary["optimizer_steps"])
    return {
        "optimizer_steps": steps,
        "completion_tokens_per_epoch": summary.get("completion_tokens_per_epoch"),
        "num_train_epochs": summary.get("num_train_epochs"),
        "forward_passes": steps * spec.passes[0],
        "backward_passes": steps * spec.passes[1],
        "init": spec.init,
        "data": spec.data,
    }


def _loss_curve(seed_plan: SeedPlan, arm: str) -> list[tuple[int, float]]:
    metrics = read_metrics(seed_plan.trained_in[arm] / "metrics.jsonl")
    return [(int(r["step"]), float(r["loss"])) for r in metrics if "loss" in r]


def _curriculum(seed_plan: SeedPlan) -> dict[str, Any]:
    name = f"seed{seed_plan.seed}.curriculum"
    directory = seed_plan.curricula.get(name) or next(iter(seed_plan.curricula.values()))
    data = read_curriculum(directory)
    weights = np.asarray(data["weights"], dtype=float)
    return {
        **data["stats"],
        "effective_sample_size": effective_sample_size(weights),
        "weight_entropy": weight_entropy(weights),
        "max_weight_entropy": float(np.log(len(weights))),
        "n": len(weights),
    }


def _accuracy_ci(outcomes: np.ndarray, n_resamples: int) -> tuple[float, float]:
    # The CI of an accuracy is that of its difference with an all-wrong arm: the same bootstrap over problems.
    result = paired_bootstrap(outcomes, np.zeros_like(outcomes), n_resamples=n_resamples, seed=0)
    return result["ci_low"], result["ci_high"]


def _sweep_curves(plan: ComparePlan, config: RunConfig, comparisons: dict[str, Any]) -> list[dict[str, Any]]:
    """One curve per swept arm and single swept key (e.g. accuracy vs wmss.lam), with the unswept point."""
    first = plan.seeds[0]
    curves: dict[tuple[str, str], list[tuple[Any, str]]] = {}
    for name, arm in first.arms.items():
        if len(arm.sweep) == 1:
            ((key, value),) = arm.sweep.items()
            base = name.split("[", 1)[0]
            curves.setdefault((base, key), []).append((value, name))
    result = []
    for (base, key), points in curves.items():
        if base in first.arms:
            section, field = key.split(".", 1)
            points.append((getattr(getattr(config, section), field), base))
        points.sort(key=lambda point: float(point[0]))
        result.append(
            {
                "arm": base,
                "key": key,
                "points": [{"value": value, "row": row, **comparisons[row]} for value, row in points],
            }
        )
    return result


def _diagnostics(plan: ComparePlan) -> dict[str, Any]:
    if not plan.diagnostics:
        return {}
    first = plan.seeds[0].seed
    return read_json(plan.diagnostics[first]) if first in plan.diagnostics else {}


def _timings(run_dir: Path) -> dict[str, float]:
    stages = read_json(run_dir / MANIFEST).get("stages", {})
    return {name: record.get("duration_s", 0.0) for name, record in stages.items()}


def build_report(config: RunConfig, plan: ComparePlan) -> dict[str, Any]:
    """Assemble the report dictionary of a finished comparison."""
    c = config.compare
    records = load_eval_records(c)
    outcomes = _outcomes(plan, records)
    reference = c.reference if c.reference in outcomes else plan.arm_order[0]
    rows = _rows(plan)
    comparisons_by_benchmark = {
        name: compare_arms(
            {row: outcomes[row][name] for row in rows}, reference, n_resamples=c.n_resamples, seed=0
        )
        for name in [ALL, *records]
    }
    pooled = comparisons_by_benchmark[ALL]
    models = {}
    for row in rows:
        low, high = _accuracy_ci(outcomes[row][ALL], c.n_resamples)
        models[row] = {
            "accuracy": pooled[row]["mean"],
            "accuracy_std": pooled[row]["std"],
            "accuracy_per_seed": pooled[row]["per_seed"],
            "accuracy_ci": [low, high],
            "n": int(outcomes[row][ALL].shape[1]),
            "per_benchmark": {
                name: {k: comparisons_by_benchmark[name][row][k] for k in ("mean", "std", "per_seed")}
                for name in records
            },
        }
    comparisons = {
        row: {
            **{
                k: pooled[row][k]
                for k in ("diff", "ci_low", "ci_high", "p_value", "mcnemar_p", "significant")
            },
            "sentence": describe_difference(pooled[row], _label(row), _label(reference)),
            "per_benchmark": {
                name: {k: comparisons_by_benchmark[name][row][k] for k in ("diff", "ci_low", "ci_high")}
                for name in records
            },
        }
        for row in rows
        if row != reference
    }
    budgets = {arm: [_budget(seed_plan, arm) for seed_plan in plan.seeds] for arm in plan.arm_order}
    reference_steps = [b["optimizer_steps"] for b in budgets.get(reference, [])]
    matched = {
        arm: [b["optimizer_steps"] for b in budgets[arm]] == reference_steps
        for arm in plan.arm_order
        if plan.seeds[0].arms[arm].spec.init == M1 and not plan.seeds[0].arms[arm].sweep
    }
    curricula = [_curriculum(seed_plan) for seed_plan in plan.seeds]
    regime = premises_report(
        config, plan.seeds, plan.premise_tokens, {row: outcomes[row][ALL] for row in rows}
    )
    report = {
        "premises": regime["premises"],
        "regime": regime,
        "setup": {
            "arms": {arm: _describe_arm(plan, arm) for arm in plan.arm_order},
            "reference": reference,
            "seeds": [seed_plan.seed for seed_plan in plan.seeds],
            "shared_phase1": c.shared_phase1,
            "sweeps": c.sweeps,
            "evaluation": {name: len(problems) for name, problems in records.items()},
            "n_resamples": c.n_resamples,
            "lam": config.wmss.lam,
            "sft": {
                "epochs": config.sft.num_train_epochs,
                "max_steps": config.sft.max_steps,
                "lr": config.sft.learning_rate,
            },
            "joint": {
                "epochs": config.joint.num_train_epochs,
                "max_steps": config.joint.max_steps,
                "lr": config.joint.learning_rate,
            },
        },
        "models": models,
        "comparisons": comparisons,
        "budgets": budgets,
        "budget_matches_reference": matched,
        "curriculum": {**curricula[0], "per_seed": curricula},
        "diagnostics": _diagnostics(plan),
        "sampling": sampling_report(plan.sampling, reference, c.n_resamples) if plan.sampling else {},
        "branches": branches_report(
            plan.branches, {arm: outcomes[arm][ALL] for arm in plan.branches}, records
        ),
        "sweeps": _sweep_curves(plan, config, {row: {**pooled[row]} for row in rows}),
        "loss_curves": {arm: _loss_curve(plan.seeds[0], arm) for arm in plan.arm_order},
        "timings_s": _timings(plan.run_dir),
    }
    add_histograms(report, plan)
    return report


def _label(row: str) -> str:
    return LABELS.get(row, row)


def _describe_arm(plan: ComparePlan, arm: str) -> dict[str, Any]:
    spec = plan.seeds[0].arms[arm].spec
    return {
        "summary": spec.summary,
        "source": spec.source,
        "method": spec.method.name,
        "init": spec.init,
        "data": spec.data,
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100.0 * value:.1f}"


def _interval(entry: dict[str, Any]) -> str:
    return f"{100 * entry['diff']:+.1f} [{100 * entry['ci_low']:+.1f}, {100 * entry['ci_high']:+.1f}]"


def _mean_std(entry: dict[str, Any]) -> str:
    std = entry.get("std") if "std" in entry else entry.get("accuracy_std")
    mean = entry.get("mean") if "mean" in entry else entry.get("accuracy")
    return _pct(mean) + ("" if std is None else f" ± {100 * std:.1f}")


def render_plots(report: dict[str, Any], run_dir: Path) -> list[str]:
    """Draw every plot of the report under run_dir/plots and return their paths relative to run_dir."""
    out = run_dir / "plots"
    out.mkdir(parents=True, exist_ok=True)
    rows = list(report["models"])
    reference = report["setup"]["reference"]
    paths = [
        plots.plot_accuracy(
            [_label(r) for r in rows],
            [report["models"][r]["accuracy"] for r in rows],
            [report["models"][r]["accuracy_ci"][0] for r in rows],
            [report["models"][r]["accuracy_ci"][1] for r in rows],
            out / "accuracy.png",
            reference=_label(reference),
            title="Held-out accuracy (95% bootstrap CI)",
        )
    ]
    compared = list(report["comparisons"])
    if compared:
        paths.append(
            plots.plot_differences(
                [_label(r) for r in compared],
                [report["comparisons"][r]["diff"] for r in compared],
                [report["comparisons"][r]["ci_low"] for r in compared],
                [report["comparisons"][r]["ci_high"] for r in compared],
                out / "differences.png",
                reference=_label(reference),
            )
        )
    curves = {arm: curve for arm, curve in report["loss_curves"].items() if curve}
    if curves:
        paths.append(plots.plot_loss_curves(curves, out / "loss_curves.png"))
    for sweep in report["sweeps"]:
        points = sweep["points"]
        paths.append(
            plots.plot_sweep(
                [float(p["value"]) for p in points],
                [p["mean"] for p in points],
                [p["mean"] + p["ci_low"] - p["diff"] for p in points],
                [p["mean"] + p["ci_high"] - p["diff"] for p in points],
                out / f"sweep_{stage_slug(sweep['arm'])}_{stage_slug(sweep['key'])}.png",
                xlabel=sweep["key"],
                reference_value=report["models"][reference]["accuracy"],
            )
        )
    entropy = report.get("entropy_histogram")
    if entropy:
        paths.append(
            plots.plot_histograms(
                {k: np.asarray(v) for k, v in entropy.items()},
                out / "entropies.png",
                title="Per-sample mean completion entropy",
                xlabel="entropy (nats)",
            )
        )
    weights = report.get("weights_histogram")
    if weights:
        ess = report["curriculum"]["effective_sample_size"]
        paths.append(
            plots.plot_histograms(
                {"curriculum weight": np.asarray(weights)},
                out / "weights.png",
                title=f"Eq. 10 weights (effective sample size {ess:.0f} of {report['curriculum']['n']})",
                xlabel="sampling probability",
            )
        )
    stats = {m: s for m, s in report["diagnostics"].items() if isinstance(s, dict) and "target_logit" in s}
    if stats:
        paths.append(plots.plot_logit_stats(stats, out / "logit_stats.png"))
    sampling = report.get("sampling") or {}
    if sampling:
        curves = {
            _label(row): {int(k.removeprefix("pass@")): v for k, v in entry.items() if k.startswith("pass@")}
            for row, entry in sampling.items()
        }
        paths.append(plots.plot_pass_at_k(curves, out / "pass_at_k.png", title="pass@k (sampled)"))
    return [str(Path(p).relative_to(run_dir)) for p in paths]


def render_markdown(report: dict[str, Any]) -> str:
    """The report as Markdown: verdicts first, then the tables and the plots."""
    setup = report["setup"]
    reference = setup["reference"]
    evaluation = ", ".join(f"{name} ({n} problems)" for name, n in setup["evaluation"].items())
    lines = [
        "# WMSS comparison",
        "",
        f"Seeds {', '.join(map(str, setup['seeds']))} ({'one shared' if setup['shared_phase1'] else 'one'} "
        f"Phase 1 {'for all seeds' if setup['shared_phase1'] else 'per seed'}); evaluation: {evaluation}, greedy. "
        f"Differences are paired (same problems{', same seeds' if len(setup['seeds']) > 1 else ''}) against "
        f"**{_label(reference)}**, with 95% bootstrap confidence intervals ({setup['n_resamples']} resamples).",
        "",
        *regime_markdown(report["regime"]),
        "## Verdicts",
        "",
        f"{report['regime']['verdict']}",
        "",
        *[f"- {entry['sentence']}" for entry in report["comparisons"].values()],
        "",
        "## Accuracy (Table 1 style, %)",
        "",
    ]
    benchmarks = list(setup["evaluation"])
    header = ["model", *benchmarks, "all (mean ± std)", f"Δ vs {reference} [95% CI]", "per seed"]
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row, entry in report["models"].items():
        cells = [_label(row)]
        cells += [_mean_std(entry["per_benchmark"][name]) for name in benchmarks]
        cells.append(_mean_std(entry))
        cells.append("reference" if row == reference else _interval(report["comparisons"][row]))
        cells.append(", ".join(_pct(v) for v in entry["accuracy_per_seed"]))
        lines.append("| " + " | ".join(cells) + " |")
    ablation = [row for row in ABLATION if row in report["models"]]
    if len(ablation) > 1:
        lines += [
            "",
            "## Ablation (Table 3 style)",
            "",
            "| curriculum | joint training | model | accuracy % |",
            "|---|---|---|---|",
        ]
        for row in ablation:
            spec = setup["arms"][row]
            lines.append(
                f"| {'yes' if spec['data'] == 'curriculum' else 'no'} | {'yes' if spec['method'] == 'joint' else 'no'} "
                f"| {row} | {_mean_std(report['models'][row])} |"
            )
    for sweep in report["sweeps"]:
        lines += [
            "",
            f"## Sweep of {sweep['key']} ({sweep['arm']})",
            "",
            f"| {sweep['key']} | accuracy % | Δ vs {reference} [95% CI] |",
            "|---|---|---|",
        ]
        for point in sweep["points"]:
            delta = (
                "reference" if point["row"] == reference else _interval(report["comparisons"][point["row"]])
            )
            lines.append(f"| {point['value']} | {_mean_std(point)} | {delta} |")
    lines += sampling_markdown(report.get("sampling") or {}, _label)
    lines += branches_markdown(report.get("branches") or {})
    lines += _diagnostics_markdown(report)
    lines += [
        "",
        "## Arms and budgets",
        "",
        "| arm | what it is | source | optimizer steps | forward / backward passes |",
        "|---|---|---|---|---|",
    ]
    for arm, spec in setup["arms"].items():
        budgets = report["budgets"][arm]
        steps = ", ".join(str(b["optimizer_steps"]) for b in budgets)
        passes = ", ".join(f"{b['forward_passes']} / {b['backward_passes']}" for b in budgets)
        lines.append(f"| {arm} | {spec['summary']} | {spec['source']} | {steps} | {passes} |")
    unmatched = [arm for arm, ok in report["budget_matches_reference"].items() if not ok]
    lines += [
        "",
        "Arms continued from M1 with the joint stage's budget take the same optimizer steps as the reference"
        + (f"; these do not: {', '.join(unmatched)}." if unmatched else ": checked, they all do."),
    ]
    cur = report["curriculum"]
    lines += [
        "",
        "## Curriculum (first seed)",
        "",
        f"Mean entropy under the weak model {cur['mean_entropy_weak']:.3f}, under the strong model "
        f"{cur['mean_entropy_strong']:.3f}; entropy reduced on {100 * cur['frac_entropy_reduced']:.1f}% of samples. "
        f"Effective sample size of the weights {cur['effective_sample_size']:.1f} of {cur['n']} "
        f"(weight entropy {cur['weight_entropy']:.3f} of at most {cur['max_weight_entropy']:.3f}): "
        + (
            "the curriculum is close to uniform."
            if cur["effective_sample_size"] > 0.95 * cur["n"]
            else "the curriculum concentrates on part of the data."
        ),
    ]
    if report.get("plots"):
        lines += ["", "## Plots", "", *[f"![{Path(p).stem}]({p})" for p in report["plots"]]]
    lines += ["", "## Stage times (s)", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {name} | {seconds:.1f} |" for name, seconds in report["timings_s"].items()]
    return "\n".join(lines) + "\n"


def _diagnostics_markdown(report: dict[str, Any]) -> list[str]:
    diag = report["diagnostics"]
    stats = {m: s for m, s in diag.items() if isinstance(s, dict) and "target_logit" in s}
    if not stats:
        return []
    keys = list(next(iter(stats.values())))
    lines = [
        "",
        f"## Logit statistics on {diag.get('n_samples', '?')} training samples (Tables 2/6 style)",
        "",
        "| statistic | " + " | ".join(_label(m) for m in stats) + " |",
        "|---|" + "---|" * len(stats),
    ]
    base = stats.get(M1)
    for key in keys:
        cells = []
        for model, values in stats.items():
            cell = f"{values[key]:.3f}"
            if base is not None and model != M1 and abs(base[key]) > 1e-12:
                cell += f" ({100 * (values[key] - base[key]) / abs(base[key]):+.0f}%)"
            cells.append(cell)
        lines.append(f"| {key} | " + " | ".join(cells) + " |")
    probe = diag.get("gradient_probe")
    if probe:
        lines += [
            "",
            f"Gradient probe (Appendix B): per trained position, ‖∂L/∂z_strong‖ under plain CE vs under the mixed "
            f"CE with M0 as the weak model (λ = {next(iter(probe.values()))['lam']}).",
            "",
            "| model | plain CE mean (p10-p90) | mixed CE mean (p10-p90) | mixed / plain |",
            "|---|---|---|---|",
        ]
        lines += [
            f"| {_label(model)} | {p['plain_mean']:.3g} ({p['plain_p10']:.2g}-{p['plain_p90']:.2g}) | "
            f"{p['mixed_mean']:.3g} ({p['mixed_p10']:.2g}-{p['mixed_p90']:.2g}) | {p['mixed_over_plain']:.2f} |"
            for model, p in probe.items()
        ]
    lines += ["", "Percentages: change relative to M1."]
    return lines


def render_table(report: dict[str, Any]) -> str:
    """Accuracies, differences with CIs and verdicts as plain text for the terminal."""
    reference = report["setup"]["reference"]
    width = max(len(_label(row)) for row in report["models"])
    lines = [f"{'model':<{width}}  {'accuracy %':>14}  Δ vs {reference} [95% CI]", "-" * (width + 48)]
    for row, entry in report["models"].items():
        delta = "reference" if row == reference else _interval(report["comparisons"][row])
        lines.append(f"{_label(row):<{width}}  {_mean_std(entry):>14}  {delta}")
    lines += [
        "",
        report["regime"]["verdict"],
        *[entry["sentence"] for entry in report["comparisons"].values()],
    ]
    return "\n".join(lines)


def add_histograms(report: dict[str, Any], plan: ComparePlan) -> None:
    """Attach the first seed's entropies and curriculum weights (for the histograms)."""
    seed_plan = plan.seeds[0]
    if seed_plan.entropies is not None:
        weak, strong = (read_entropy_file(path) for path in seed_plan.entropies)
        report["entropy_histogram"] = {"weak (M0)": weak["entropy"], "strong (M1)": strong["entropy"]}
    directory = seed_plan.curricula.get(f"seed{seed_plan.seed}.curriculum")
    if directory is not None:
        report["weights_histogram"] = read_curriculum(directory)["weights"]


def write_report(report: dict[str, Any], run_dir: Path) -> tuple[Path, Path]:
    """Draw the plots, then write report.json and report.md into run_dir atomically."""
    report["plots"] = render_plots(report, run_dir)
    json_path, md_path = run_dir / "report.json", run_dir / "report.md"
    atomic_write_json(json_path, report)
    atomic_write_text(md_path, render_markdown(report))
    return json_path, md_path
