"""Is this the paper's regime? The premises of WMSS measured on a weak and a strong model, before any verdict.

`run_regime` is `wmss regime`: it measures them on a user's own pair and writes OUTPUT/regime.json, regime.md and,
with checkpoints, OUTPUT/plots/saturation.png; `wmss compare` puts the same section first in its report.

- Sample level: every training sample's mean completion entropy under both models (Eq. 3/8): the fraction whose
  entropy fell (ΔH < 0), the mean entropies, the curriculum's effective sample size under both readings of
  Eq. 10, and, when the data has a group field (e.g. difficulty), each group's share of the curriculum's mass.
- Token level: `wmss.compare.diagnostics.mixing_stats` on drawn training samples.
- Saturation: per Phase-1 checkpoint, the logit statistics of the paper's Figure 4 (target logit, mean
  non-target logit, margin) and the validation accuracy; and a continued-SFT probe: the accuracy gain of M1 plus
  more plain SFT over M1, paired, with its 95% CI.
- The gates of `wmss.compare.premises`, and the sentence a report puts before its verdict.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from wmss import defaults
from wmss.compare import plots, premises
from wmss.compare.arms import stage_slug
from wmss.compare.diagnostics import diagnose, model_mixing_stats
from wmss.compare.evaluation import HELDOUT, evaluate_model, read_outcomes
from wmss.compare.stats import paired_bootstrap
from wmss.config import RunConfig, require
from wmss.errors import ConfigError, DataError
from wmss.eval.datasets import load_records_file
from wmss.io import atomic_write_json, atomic_write_text, ensure_directory, iter_json_rows
from wmss.method.curriculum import EQ10_WEIGHTINGS, WEIGHTINGS, effective_sample_sizes
from wmss.models import check_model_path, load_tokenizer
from wmss.phases.common import load_training_data
from wmss.phases.entropy_file import model_entropies

_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")


def sample_level(
    h_weak: Sequence[float],
    h_strong: Sequence[float],
    groups: Sequence[str] | None = None,
    alpha: float = defaults.ALPHA,
    beta: float = defaults.BETA,
    gamma: float = defaults.GAMMA,
) -> dict[str, Any]:
    """Entropy shift and curriculum concentration of one weak/strong pair (groups: one label per sample)."""
    weak, strong = np.asarray(h_weak, dtype=np.float64), np.asarray(h_strong, dtype=np.float64)
    gap = strong - weak
    coefs = {"alpha": alpha, "beta": beta, "gamma": gamma}
    result: dict[str, Any] = {
        "n": int(weak.size),
        "frac_entropy_reduced": float((gap < 0).mean()),
        "mean_entropy_weak": float(weak.mean()),
        "mean_entropy_strong": float(strong.mean()),
        "effective_sample_size": effective_sample_sizes(weak, strong, **coefs),
    }
    if groups is not None:
        if len(groups) != weak.size:
            raise ValueError(f"groups has {len(groups)} labels for {weak.size} samples")
        labels = np.asarray([str(g) for g in groups])
        weights = {name: WEIGHTINGS[name](weak, strong, **coefs) for name in EQ10_WEIGHTINGS}
        result["groups"] = {
            label: {
                "share_of_samples": float((labels == label).mean()),
                "frac_entropy_reduced": float((gap[labels == label] < 0).mean()),
                "mass": {name: float(w[labels == label].sum()) for name, w in weights.items()},
            }
            for label in sorted(set(labels.tolist()))
        }
    return result


def group_labels(path: str | Path, field: str, ids: Sequence[int]) -> list[str]:
    """The `field` of each training record (JSON lines or array) in the order of `ids` (idx field, else row)."""
    by_idx: dict[int, str] = {}
    for row in iter_json_rows(Path(path)):
        record = row.as_object()
        if field not in record:
            raise DataError(f"{row.where}: no field {field!r} to group by (fields: {sorted(record)})")
        by_idx[int(record.get("idx", row.position))] = str(record[field])
    missing = [i for i in ids if i not in by_idx]
    if missing:
        raise DataError(f"{path}: no record with idx {missing[0]} ({len(missing)} scored samples missing)")
    return [by_idx[i] for i in ids]


def continued_probe(m1: Any, continued: Any, n_resamples: int = 10000, seed: int = 0) -> dict[str, float]:
    """Gain of continued plain SFT over M1 (0/1 outcomes per problem, or [seeds, problems]), paired, with 95% CI."""
    result = paired_bootstrap(continued, m1, n_resamples=n_resamples, seed=seed)
    return {
        "m1_accuracy": float(np.mean(m1)),
        "continued_accuracy": float(np.mean(continued)),
        "gain": result["diff"],
        "ci_low": result["ci_low"],
        "ci_high": result["ci_high"],
        "n": int(np.asarray(m1).shape[-1]),
    }


def checkpoint_dirs(directory: str | Path) -> list[tuple[int, Path]]:
    """The `checkpoint-N` model directories under `directory`, by step (a directory holding a model counts too)."""
    found = sorted(
        (int(match.group(1)), path)
        for path in Path(directory).iterdir()
        if (match := _CHECKPOINT.search(path.name)) and (path / "config.json").is_file()
    )
    if not found:
        raise DataError(f"{directory}: no checkpoint-N directories with a config.json (Trainer checkpoints)")
    return found


def gates(
    sample: Mapping[str, Any] | None,
    token: Mapping[str, Any] | None,
    probe: Mapping[str, Any] | None,
) -> list[premises.Premise]:
    """Every premise of `wmss.compare.premises` from what was measured (None where a part was not)."""
    return [
        premises.weak_softer(sample["frac_entropy_reduced"] if sample else None),
        premises.mix_lowers_target(token["frac_mix_lowers_target"] if token else None),
        premises.weak_margin_le_strong(token["frac_weak_margin_le_strong"] if token else None),
        premises.m1_saturated(
            *((probe[k] for k in ("gain", "ci_low", "ci_high", "m1_accuracy")) if probe else (None,))
        ),
    ]


def regime_section(
    sample: Mapping[str, Any] | None = None,
    token: Mapping[str, Any] | None = None,
    probe: Mapping[str, Any] | None = None,
    saturation: Sequence[Mapping[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON section every report puts first: premises, the verdict sentence, and what they were read from."""
    checked = gates(sample, token, probe)
    return {
        "premises": [p.to_dict() for p in checked],
        "in_regime": all(p.holds for p in checked),
        "verdict": premises.verdict_sentence(checked),
        "sample_level": dict(sample) if sample else None,
        "token_level": dict(token) if token else None,
        "continued_probe": dict(probe) if probe else None,
        "saturation": list(saturation) if saturation else None,
    }


def _value(premise: Mapping[str, Any]) -> str:
    value = premise["value"]
    if value is None:
        return "not measured"
    if premise["name"] == "m1_saturated":
        return premise["detail"] or f"{100 * value:+.1f} points"
    return f"{value:.3f}"


def regime_markdown(section: Mapping[str, Any], heading: str = "##") -> list[str]:
    """Markdown lines of the premises section (table, verdict sentence, the measurements behind them)."""
    lines = [
        f"{heading} Premises: is this the paper's regime?",
        "",
        "| premise | value | rule | holds |",
        "|---|---|---|---|",
    ]
    for p in section["premises"]:
        holds = {True: "yes", False: "**no**", None: "n/a"}[p["holds"]]
        lines.append(f"| `{p['name']}` | {_value(p)} | {p['rule']} | {holds} |")
    lines += ["", f"**{section['verdict']}**", ""]
    sample = section.get("sample_level")
    if sample:
        ess = sample["effective_sample_size"]
        lines.append(
            f"- Samples: ΔH < 0 on {100 * sample['frac_entropy_reduced']:.1f}% of {sample['n']}; mean completion "
            f"entropy weak {sample['mean_entropy_weak']:.3f}, strong {sample['mean_entropy_strong']:.3f}; "
            f"curriculum effective sample size {ess['authors_code']:.0f} (authors' code, per-term) and "
            f"{ess['paper_eq10']:.0f} (Eq. 10 as printed) of {sample['n']}."
        )
        for label, group in (sample.get("groups") or {}).items():
            mass = group["mass"]
            lines.append(
                f"  - group {label}: {100 * group['share_of_samples']:.0f}% of samples, ΔH < 0 on "
                f"{100 * group['frac_entropy_reduced']:.0f}%, curriculum mass {100 * mass['authors_code']:.0f}% "
                f"(authors' code) / {100 * mass['paper_eq10']:.0f}% (as printed)"
            )
    token = section.get("token_level")
    if token:
        lines.append(
            f"- Tokens ({token['n_positions']:.0f} trained positions): weak more uncertain on "
            f"{100 * token['frac_weak_more_uncertain']:.1f}%, mixing lowers P(y) on "
            f"{100 * token['frac_mix_lowers_target']:.1f}%, weak margin <= strong on "
            f"{100 * token['frac_weak_margin_le_strong']:.1f}%, weak confidently wrong (p > 0.9) on "
            f"{100 * token['frac_weak_confidently_wrong']:.1f}%; share of the strong logits' gradient on the strong "
            f"model's errors: {100 * token['grad_share_strong_errors_sft']:.1f}% under plain CE, "
            f"{100 * token['grad_share_strong_errors_mixed']:.1f}% under the mixed CE."
        )
    probe = section.get("continued_probe")
    if probe:
        lines.append(
            f"- Continued plain SFT: M1 {100 * probe['m1_accuracy']:.1f}% -> {100 * probe['continued_accuracy']:.1f}% "
            f"on {probe['n']} problems (gain {100 * probe['gain']:+.1f} points, 95% CI "
            f"[{100 * probe['ci_low']:+.1f}, {100 * probe['ci_high']:+.1f}])."
        )
    for point in section.get("saturation") or []:
        accuracy = point.get("accuracy")
        lines.append(
            f"- checkpoint {point['step']}: target logit {point['target_logit']:.2f}, mean non-target "
            f"{point['distractor_logit_mean']:.2f}, margin {point['margin']:.2f}"
            + (f", validation accuracy {100 * accuracy:.1f}%" if accuracy is not None else "")
        )
    return [*lines, ""]


SATURATION_STATS = ("target_logit", "distractor_logit_mean", "margin", "gap")


class _Evaluator:
    """Greedy outcomes of models on the validation file, each written once under OUTPUT/eval (resumable)."""

    def __init__(self, config: RunConfig, eval_file: str, output: Path) -> None:
        self.config = config
        self.records = {HELDOUT: load_records_file(eval_file, name=HELDOUT, kind=config.compare.eval_kind)}
        self.output = output

    def outcomes(self, model: str | Path) -> np.ndarray:
        path = self.output / f"{stage_slug(str(model))}.json"
        if not path.is_file():
            evaluate_model(Path(model), self.config, self.records, path)
        return np.asarray(read_outcomes(path, self.records)[HELDOUT])


def run_regime(
    config: RunConfig,
    weak: str,
    strong: str,
    output: str | Path,
    eval_file: str | None = None,
    checkpoints: str | None = None,
    continued: str | None = None,
    group_field: str | None = None,
    n: int = 200,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure every premise of `wmss.compare.premises` for one weak/strong pair; write regime.json and regime.md."""
    require(config, "data.train")
    if continued and not eval_file:
        raise ConfigError("--continued needs --eval-file: the probe compares accuracies on held-out problems")
    models = {"the weak model": weak, "the strong model": strong, "the continued model": continued}
    for path in filter(None, models.values()):
        check_model_path(path)
    output = ensure_directory(output, {**models, "the training data": config.data.train})
    tokenizer = load_tokenizer(strong, config.model)
    training = load_training_data(config, tokenizer, output / "data_cache")
    h_weak, h_strong = (
        {i: h for i, (h, _) in model_entropies(config, model, training, tokenizer).items()}
        for model in (weak, strong)
    )
    ids = sorted(h_weak)
    w = config.wmss
    sample = sample_level(
        [h_weak[i] for i in ids],
        [h_strong[i] for i in ids],
        group_labels(str(config.data.train), group_field, ids) if group_field else None,
        alpha=w.alpha,
        beta=w.beta,
        gamma=w.gamma,
    )
    token = model_mixing_stats(
        strong, weak, training, n=n, seed=seed, lam=w.lam, chunk_size=w.loss_chunk_size
    )
    evaluator = _Evaluator(config, eval_file, output / "eval") if eval_file else None
    probe = None
    if continued and evaluator:
        probe = continued_probe(evaluator.outcomes(strong), evaluator.outcomes(continued))
    saturation = None
    if checkpoints:
        saturation = []
        for step, path in checkpoint_dirs(checkpoints):
            stats = diagnose({"model": str(path)}, training, n=n, seed=seed)["model"]
            accuracy = float(evaluator.outcomes(path).mean()) if evaluator else None
            saturation.append({"step": step, **{k: stats[k] for k in SATURATION_STATS}, "accuracy": accuracy})
        plots.plot_saturation(saturation, output / "plots" / "saturation.png")
    section = regime_section(sample, token, probe, saturation)
    section["models"] = {"weak": weak, "strong": strong, "continued": continued}
    atomic_write_json(output / "regime.json", section)
    lines = [f"# WMSS premises: weak {weak}, strong {strong}", "", *regime_markdown(section)]
    atomic_write_text(output / "regime.md", "\n".join(lines) + "\n")
    return section
