"""What a gain is made of: every evaluated model also sampled n times per problem on a fixed subset.

Greedy accuracy cannot tell a model that solves more problems (correction) from one that became more certain of
the answers it already preferred (sharpening: pass@1 up, while pass@k for large k and the number of distinct
answers go down). Per model and seed, one stage samples `compare.sampling_n` generations for the first
`compare.sampling_problems` problems of each evaluation set at the paper's temperature and top-p; the report
gives mean accuracy, unbiased pass@k, distinct final answers, truncation and token entropy, and paired
differences against the reference (per problem, over problems and seeds) with 95% bootstrap CIs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from wmss import defaults
from wmss.compare.evaluation import sampling_subset
from wmss.compare.stats import paired_bootstrap
from wmss.config import RunConfig
from wmss.eval.code import pass_at_k
from wmss.eval.records import BenchmarkRecord
from wmss.eval.sampling import distinct_answers, sample_metrics
from wmss.io import atomic_write_json, read_json
from wmss.models import load_tokenizer
from wmss.prompts import resolve_system_prompt
from wmss.stages import Stage

SUMMARY_KEYS = ("mean_accuracy", "distinct_answers", "truncation_rate", "mean_token_entropy")


def sampling_stage(
    name: str,
    model: tuple[Path, str | None],
    config: RunConfig,
    records: Callable[[], dict[str, list[BenchmarkRecord]]],
    output: Path,
    settings: dict[str, Any],
) -> Stage:
    """A stage sampling one model on the subset and writing its `sample_metrics` (per problem kept) to `output`."""
    c = config.compare

    def run(_: Any) -> None:
        path = str(model[0])
        metrics = sample_metrics(
            path,
            sampling_subset(records(), c.sampling_problems),
            tokenizer=load_tokenizer(path, config.model),
            n=c.sampling_n,
            temperature=defaults.SAMPLING_TEMPERATURE,
            top_p=defaults.SAMPLING_TOP_P,
            seed=0,
            max_new_tokens=c.max_new_tokens,
            batch_size=c.eval_batch_size,
            system_prompt=resolve_system_prompt(config.data.system_prompt),
        )
        atomic_write_json(output, {"model": path, **metrics})

    stage_settings = {
        **settings,
        "model": str(model[0]),
        "n": c.sampling_n,
        "problems": c.sampling_problems,
        "temperature": defaults.SAMPLING_TEMPERATURE,
        "top_p": defaults.SAMPLING_TOP_P,
    }
    return Stage(
        name, output, stage_settings, [model[1]] if model[1] else [], output, run, all_processes=False
    )


def _per_problem(data: dict[str, Any], k: int) -> dict[str, np.ndarray]:
    rows = data["per_problem"]
    n = data["n"]
    return {
        "pass@1": np.array([np.mean(p["correct"]) for p in rows]),
        f"pass@{k}": np.array([pass_at_k(n, int(sum(p["correct"])), k) for p in rows]),
        "distinct_answers": np.array([float(distinct_answers(p["answers"])) for p in rows]),
    }


def sharpening_sentence(row: str, reference: str, diffs: dict[str, dict[str, float]], k: int) -> str:
    """Whether `row`'s change against `reference` looks like sharpening or correction, worded by the CIs."""

    def direction(key: str) -> int:
        d = diffs[key]
        return 1 if d["ci_low"] > 0 else -1 if d["ci_high"] < 0 else 0

    p1, pk, distinct = direction("pass@1"), direction(f"pass@{k}"), direction("distinct_answers")
    words = {1: "up", -1: "down", 0: "no significant change"}
    detail = f"pass@1 {words[p1]}, pass@{k} {words[pk]}, distinct answers {words[distinct]}"
    if p1 > 0 and (pk < 0 or distinct < 0):
        return f"{row} vs {reference}: sharpened ({detail})."
    if p1 > 0 and pk > 0:
        return f"{row} vs {reference}: corrected, it solves more problems at every k ({detail})."
    if pk > 0:
        return f"{row} vs {reference}: broader, more problems solved by some sample ({detail})."
    if p1 < 0:
        return f"{row} vs {reference}: less accurate per sample ({detail})."
    return f"{row} vs {reference}: neither sharpened nor corrected significantly ({detail})."


def sampling_report(files: dict[str, list[Path]], reference: str, n_resamples: int) -> dict[str, Any]:
    """Per row: metrics averaged over seeds (and per seed), and paired differences against the reference."""
    loaded = {row: [read_json(path) for path in paths] for row, paths in files.items()}
    report: dict[str, Any] = {}
    for row, per_seed in loaded.items():
        keys = [key for key in per_seed[0] if key.startswith("pass@")] + list(SUMMARY_KEYS)
        entry = {key: _mean_of(per_seed, key) for key in keys}
        entry |= {"n": per_seed[0]["n"], "n_problems": per_seed[0]["n_problems"]}
        entry["per_seed"] = [{key: data.get(key) for key in keys} for data in per_seed]
        report[row] = entry
    if reference not in loaded:
        return report
    k = loaded[reference][0]["n"]
    base = [_per_problem(data, k) for data in loaded[reference]]
    for row, per_seed in loaded.items():
        if row == reference:
            continue
        mine = [_per_problem(data, k) for data in per_seed]
        diffs = {}
        for key in base[0]:
            result = paired_bootstrap(
                np.stack([m[key] for m in mine]), np.stack([b[key] for b in base]), n_resamples=n_resamples
            )
            diffs[key] = {name: result[name] for name in ("diff", "ci_low", "ci_high")}
        report[row]["vs_reference"] = diffs
        report[row]["sentence"] = sharpening_sentence(row, reference, diffs, k)
    return report


def _mean_of(per_seed: list[dict[str, Any]], key: str) -> float | None:
    values = [data.get(key) for data in per_seed]
    return None if any(v is None for v in values) else float(np.mean(values))


def sampling_markdown(sampling: dict[str, Any], label: Callable[[str], str]) -> list[str]:
    """The sampling table and the sharpening sentences."""
    if not sampling:
        return []
    first = next(iter(sampling.values()))
    ks = [key for key in first if key.startswith("pass@")]
    lines = [
        "",
        f"## What a gain is made of: {first['n']} samples per problem on {first['n_problems']} problems "
        f"(temperature {defaults.SAMPLING_TEMPERATURE}, top-p {defaults.SAMPLING_TOP_P})",
        "",
        "| model | mean accuracy % | "
        + " | ".join(f"{k} %" for k in ks)
        + " | distinct answers | truncated % | "
        "token entropy |",
        "|---|---|" + "---|" * len(ks) + "---|---|---|",
    ]
    for row, entry in sampling.items():
        entropy = entry["mean_token_entropy"]
        lines.append(
            f"| {label(row)} | {100 * entry['mean_accuracy']:.1f} | "
            + " | ".join(f"{100 * entry[k]:.1f}" for k in ks)
            + f" | {entry['distinct_answers']:.2f} | {100 * entry['truncation_rate']:.1f} | "
            + ("-" if entropy is None else f"{entropy:.3f}")
            + " |"
        )
    sentences = [entry["sentence"] for entry in sampling.values() if "sentence" in entry]
    if sentences:
        lines += ["", *[f"- {sentence}" for sentence in sentences]]
    return lines
