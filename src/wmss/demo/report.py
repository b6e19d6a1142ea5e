"""The demo's result: accuracies of the four models, a plainly worded verdict, JSON + Markdown output."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from wmss.io import atomic_write_json, atomic_write_text

MODELS = ("base", "sft", "sft_continued", "wmss")
LABELS = {
    "base": "M0 (base)",
    "sft": "M1 (SFT)",
    "sft_continued": "continued SFT of M1",
    "wmss": "WMSS (strong model)",
}
MIN_INFORMATIVE_SFT_ACCURACY = 0.05


def _std(values: list[float]) -> float | None:
    # A spread over one seed does not exist; reporting 0 would read as "no noise".
    return statistics.stdev(values) if len(values) > 1 else None


def _binomial_se(p: float, n: int) -> float:
    return math.sqrt(p * (1.0 - p) / n) if n > 0 else float("nan")


def _verdict(accuracies: dict[str, list[float]], n: int) -> dict[str, Any]:
    wmss, cont = accuracies["wmss"], accuracies["sft_continued"]
    diffs = [w - c for w, c in zip(wmss, cont, strict=True)]
    mean_diff = statistics.fmean(diffs)
    # Equal accuracies means the same number of correct answers; anything below half a problem is rounding.
    outcome = "tie" if abs(mean_diff) < 0.5 / max(n, 1) else ("win" if mean_diff > 0 else "loss")
    if len(diffs) > 1:
        spread = statistics.stdev(diffs)
        standard_error = spread / math.sqrt(len(diffs))
    else:
        spread = None
        # Unpaired binomial errors overstate the noise of a paired difference, so this errs toward caution.
        standard_error = math.hypot(_binomial_se(wmss[0], n), _binomial_se(cont[0], n))
    return {
        "outcome": outcome,
        "wmss_beats_sft_continued": outcome == "win",
        "wmss_minus_sft_continued_points": 100.0 * mean_diff,
        "spread_points": None if spread is None else 100.0 * spread,
        "standard_error_points": 100.0 * standard_error,
        "within_noise": abs(mean_diff) <= 2.0 * standard_error,
        "seeds_won": sum(d > 0 for d in diffs),
        "seeds_lost": sum(d < 0 for d in diffs),
        "n_seeds": len(diffs),
        # Below this M1 has not learned the task, so neither stage has anything to build on.
        "informative": statistics.fmean(accuracies["sft"]) >= MIN_INFORMATIVE_SFT_ACCURACY,
    }


def build_report(
    preset_name: str,
    seeds: list[int],
    accuracies: dict[str, list[float]],
    n: int,
    timings_s: dict[str, float],
    curriculum: dict,
    extra: dict | None = None,
) -> dict:
    """Assemble the demo report: per-model accuracy (mean, std, per seed), timings, curriculum and verdict."""
    for name in MODELS:
        values = accuracies.get(name)
        if values is None or len(values) != len(seeds):
            raise ValueError(f"accuracies['{name}'] needs one value per seed ({len(seeds)}), got {values!r}")
        if not all(0.0 <= v <= 1.0 for v in values):
            raise ValueError(f"accuracies['{name}'] must be fractions in [0, 1], got {values!r}")
    report: dict[str, Any] = {
        "preset": preset_name,
        "seeds": list(seeds),
        "models": {
            name: {
                "accuracy": statistics.fmean(accuracies[name]),
                "accuracy_std": _std(accuracies[name]),
                "n": n,
                "accuracy_per_seed": list(accuracies[name]),
            }
            for name in MODELS
        },
        "timings_s": {key: round(float(value), 2) for key, value in timings_s.items()},
        "curriculum": curriculum,
        "verdict": _verdict(accuracies, n),
    }
    if extra:
        report["extra"] = extra
    return report


def _pct(value: float) -> str:
    return f"{100.0 * value:.1f}%"


def verdict_sentence(report: dict) -> str:
    """One plain-English paragraph: did WMSS beat continued SFT, by how many points, and how noisy is that."""
    v = report["verdict"]
    models = report["models"]
    wmss, cont = models["wmss"]["accuracy"], models["sft_continued"]["accuracy"]
    n = models["wmss"]["n"]
    points = abs(v["wmss_minus_sft_continued_points"])
    if v["outcome"] == "win":
        head = f"WMSS beat continued SFT by {points:.1f} points ({_pct(wmss)} vs {_pct(cont)})."
    elif v["outcome"] == "loss":
        head = f"WMSS did NOT beat continued SFT: it was {points:.1f} points worse ({_pct(wmss)} vs {_pct(cont)})."
    else:
        head = f"WMSS tied continued SFT ({_pct(wmss)} vs {_pct(cont)}): no difference on this test set."
    if v["n_seeds"] == 1:
        se_w = 100.0 * _binomial_se(wmss, n)
        se_c = 100.0 * _binomial_se(cont, n)
        noise = (
            f" This comes from a single seed on n={n} test problems; the binomial standard error "
            f"sqrt(p(1-p)/n) is {se_w:.1f} points for WMSS and {se_c:.1f} points for continued SFT "
            f"(about {v['standard_error_points']:.1f} points for their difference)"
        )
    else:
        noise = (
            f" Averaged over {v['n_seeds']} seeds on n={n} test problems each: the difference has a spread "
            f"(std over seeds) of {v['spread_points']:.1f} points and a standard error of "
            f"{v['standard_error_points']:.1f} points; WMSS won {v['seeds_won']}, lost {v['seeds_lost']} "
            f"and tied {v['n_seeds'] - v['seeds_won'] - v['seeds_lost']} of the seeds"
        )
    if v["outcome"] == "tie":
        tail = "."
    elif v["within_noise"]:
        tail = ", so the difference is within noise: it does not show that either method is better."
    else:
        tail = ", so the difference is larger than twice its standard error."
    caveat = (
        ""
        if v["informative"]
        else f" M1 itself solves only {_pct(models['sft']['accuracy'])} of the problems, so this run says "
        "nothing about WMSS; the `smoke` preset only checks that every stage runs."
    )
    return head + noise + tail + caveat


def _accuracy_cell(entry: dict) -> str:
    std = entry["accuracy_std"]
    return _pct(entry["accuracy"]) + ("" if std is None else f" ± {100.0 * std:.1f}")


def render_markdown(report: dict) -> str:
    """Render the report as Markdown: verdict first, then accuracies, timings and curriculum."""
    lines = [
        f"# WMSS demo: preset `{report['preset']}`",
        "",
        f"Seeds: {', '.join(str(s) for s in report['seeds'])}. "
        f"Held-out accuracy is greedy decoding graded on the final `<answer>` "
        f"(n={report['models']['wmss']['n']} problems per seed).",
        "",
        "## Verdict",
        "",
        verdict_sentence(report),
        "",
        "## Accuracy",
        "",
        "| model | accuracy (mean ± std over seeds) | per seed |",
        "|---|---|---|",
    ]
    for name in MODELS:
        entry = report["models"][name]
        per_seed = ", ".join(_pct(a) for a in entry["accuracy_per_seed"])
        lines.append(f"| {LABELS[name]} | {_accuracy_cell(entry)} | {per_seed} |")
    lines += ["", "## Timings", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {stage} | {seconds:.1f} |" for stage, seconds in report["timings_s"].items()]
    losses = (report.get("extra") or {}).get("sft_final_train_loss")
    if losses:
        lines += [
            "",
            "## Saturation",
            "",
            "Last logged SFT training loss of M1 (per seed): "
            + ", ".join(f"{loss:.4f}" for loss in losses)
            + ". Per-step losses and gradient norms of every stage are in `seed-*/run/*/metrics.jsonl`.",
        ]
    if report["curriculum"]:
        lines += [
            "",
            "## Curriculum (seed " + str(report["seeds"][0]) + ")",
            "",
            "| statistic | value |",
            "|---|---|",
        ]
        lines += [
            f"| {key} | {value:.4g} |" if isinstance(value, float) else f"| {key} | {value} |"
            for key, value in report["curriculum"].items()
            if not isinstance(value, list)
        ]
    return "\n".join(lines) + "\n"


def render_table(report: dict) -> str:
    """Render accuracies and the verdict as a plain-text table for the terminal."""
    width = max(len(label) for label in LABELS.values())
    lines = [f"{'model':<{width}}  accuracy", f"{'-' * width}  {'-' * 16}"]
    lines += [f"{LABELS[name]:<{width}}  {_accuracy_cell(report['models'][name])}" for name in MODELS]
    timings = report["timings_s"]
    total = timings.get("total", sum(timings.values()))
    return "\n".join([*lines, "", verdict_sentence(report), f"Total time: {total:.0f} s."])


def write_report(report: dict, output_dir: Path) -> tuple[Path, Path]:
    """Write report.json and report.md into `output_dir` atomically; return their paths."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    json_path, md_path = output_dir / "report.json", output_dir / "report.md"
    atomic_write_json(json_path, report)
    atomic_write_text(md_path, render_markdown(report))
    return json_path, md_path
