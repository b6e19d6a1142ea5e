"""The premises of the paper's claim in a comparison: measured per seed on M0 and M1, put before every verdict.

Sample level from the run's entropy files, token level from one stage per seed (`mixing_stats` of M1 against
M0 on drawn training samples), saturation from the arms themselves: `sft_continued_plain` against M1 on the
evaluation problems, paired over problems and seeds. Values are means over seeds; each seed's are kept.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from wmss.compare.arms import M0, M1
from wmss.compare.diagnostics import model_mixing_stats
from wmss.compare.plan import SeedPlan
from wmss.compare.regime import continued_probe, group_labels, regime_section, sample_level
from wmss.config import RunConfig
from wmss.io import atomic_write_json, read_json
from wmss.models import load_tokenizer
from wmss.phases.common import load_training_data
from wmss.phases.entropy_file import read_entropy_file
from wmss.stages import Stage

PROBE_ARM = "sft_continued_plain"


def token_stage(name: str, seed_plan: SeedPlan, weak: Path, output: Path, data_cache: Path) -> Stage:
    """A stage writing `mixing_stats` of M1 (strong) against the weak model on drawn training samples."""
    cfg = seed_plan.config
    strong, strong_stage = seed_plan.models[M1]
    n = cfg.compare.diagnostics_samples

    def run(_: Any) -> None:
        data = load_training_data(cfg, load_tokenizer(str(strong), cfg.model), data_cache)
        stats = model_mixing_stats(
            str(strong),
            str(weak),
            data,
            n=n,
            seed=cfg.wmss.seed,
            lam=cfg.wmss.lam,
            chunk_size=cfg.wmss.loss_chunk_size,
        )
        atomic_write_json(output, stats)

    settings = {"weak": str(weak), "strong": str(strong), "n": n, "lam": cfg.wmss.lam, "seed": cfg.wmss.seed}
    return Stage(
        name, output, settings, [strong_stage] if strong_stage else [], output, run, all_processes=False
    )


def _mean_dict(dicts: list[Mapping[str, Any]]) -> dict[str, Any]:
    """Element-wise mean of numeric leaves (nested dicts recursed); the first dict's other values kept."""
    result: dict[str, Any] = {}
    for key, value in dicts[0].items():
        values = [d[key] for d in dicts]
        if isinstance(value, Mapping):
            result[key] = _mean_dict(values)
        elif all(v == value for v in values):
            result[key] = value  # counts such as n stay integers when every seed agrees
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            result[key] = float(np.mean(values))
        else:
            result[key] = value
    return result


def premises_report(
    config: RunConfig, seeds: list[SeedPlan], token_files: dict[int, Path], outcomes: Mapping[str, Any]
) -> dict[str, Any]:
    """The premises section: gates on the seed-mean values, the verdict sentence, and every seed's values."""
    w, c = config.wmss, config.compare
    samples, tokens = [], []
    labels: dict[int, str] | None = None  # every seed scores the same records: their groups are read once
    for seed_plan in seeds:
        if seed_plan.entropies is None:
            continue
        weak, strong = (read_entropy_file(path) for path in seed_plan.entropies)
        if c.group_field and labels is None:
            ids = weak["idx"]
            labels = dict(zip(ids, group_labels(str(config.data.train), c.group_field, ids), strict=True))
        groups = [labels[i] for i in weak["idx"]] if labels is not None else None
        strong_by_idx = dict(zip(strong["idx"], strong["entropy"], strict=True))
        samples.append(
            sample_level(
                weak["entropy"],
                [strong_by_idx[i] for i in weak["idx"]],
                groups,
                alpha=w.alpha,
                beta=w.beta,
                gamma=w.gamma,
            )
        )
        if seed_plan.seed in token_files:
            tokens.append(read_json(token_files[seed_plan.seed]))
    probe = None
    if M1 in outcomes and PROBE_ARM in outcomes:
        probe = continued_probe(outcomes[M1], outcomes[PROBE_ARM], n_resamples=c.n_resamples)
    section = regime_section(
        _mean_dict(samples) if samples else None, _mean_dict(tokens) if tokens else None, probe
    )
    section["per_seed"] = {
        "seeds": [s.seed for s in seeds],
        "sample_level": samples,
        "token_level": tokens,
    }
    section["weak"] = M0
    return section
