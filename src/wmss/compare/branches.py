"""Where the knowledge went: the two branches of a co-trained joint arm, each alone and mixed at inference.

WMSS keeps only the strong branch. Per co-trained joint arm and seed, one stage evaluates the weak branch alone
and the two branches decoded together from λ·z_strong + (1-λ)·z_weak (greedy, same problems), and measures how
far each branch moved in Phase 3 (‖Δθ‖/‖θ‖ against the model it started from). The strong branch's accuracy is
the arm's own evaluation.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from wmss.compare.evaluation import evaluate_model, read_outcomes
from wmss.config import RunConfig
from wmss.eval.records import BenchmarkRecord
from wmss.io import atomic_write_json, read_json
from wmss.models import load_causal_lm
from wmss.stages import Stage

WEAK_DIR = ("joint", "final", "weak")


def relative_weight_change(model: Path, start: Path) -> float:
    """‖θ_model − θ_start‖ / ‖θ_start‖ over every parameter (float64 sums; tied weights counted once)."""
    a, b = (load_causal_lm(str(path)) for path in (model, start))
    change = total = 0.0
    for (name, p), (_, q) in zip(a.named_parameters(), b.named_parameters(), strict=True):
        if p.shape != q.shape:
            raise ValueError(f"parameter {name} differs in shape: {tuple(p.shape)} vs {tuple(q.shape)}")
        change += float((p.detach().double() - q.detach().double()).square().sum())
        total += float(q.detach().double().square().sum())
    return float(np.sqrt(change / total)) if total > 0 else float("inf")


def branches_stage(
    name: str,
    arm_dir: Path,
    starts: tuple[Path, Path],
    upstream: str,
    config: RunConfig,
    records: Callable[[], dict[str, list[BenchmarkRecord]]],
    output: Path,
    settings: dict[str, Any],
) -> Stage:
    """A stage writing the weak branch's and the mixed branches' outcomes and the weight changes to `output`."""
    strong, weak = arm_dir / "model", arm_dir.joinpath(*WEAK_DIR)
    strong_start, weak_start = starts

    def run(_: Any) -> None:
        with torch.no_grad():
            change = {
                "strong": relative_weight_change(strong, strong_start),
                "weak": relative_weight_change(weak, weak_start),
            }
        evaluate_model(weak, config, records(), output.parent / f"{output.stem}.weak.json")
        evaluate_model(strong, config, records(), output.parent / f"{output.stem}.mixed.json", mix_with=weak)
        atomic_write_json(output, {"lam": config.wmss.lam, "weight_change": change})

    stage_settings = {**settings, "arm": str(arm_dir), "lam": config.wmss.lam}
    return Stage(name, output, stage_settings, [upstream], output, run, all_processes=False)


def branches_report(
    files: dict[str, list[Path]],
    strong_outcomes: dict[str, np.ndarray],
    records: dict[str, list[BenchmarkRecord]],
) -> dict[str, Any]:
    """Per arm: accuracy of the strong branch, the weak branch and the two mixed (mean over seeds, and per seed)."""
    report: dict[str, Any] = {}
    for arm, paths in files.items():
        per_seed = []
        for seed_index, path in enumerate(paths):
            outcomes = {
                branch: np.concatenate(
                    list(read_outcomes(path.parent / f"{path.stem}.{branch}.json", records).values())
                )
                for branch in ("weak", "mixed")
            }
            per_seed.append(
                {
                    "strong": float(strong_outcomes[arm][seed_index].mean()),
                    "weak": float(outcomes["weak"].mean()),
                    "mixed": float(outcomes["mixed"].mean()),
                    "weight_change": read_json(path)["weight_change"],
                }
            )
        report[arm] = {
            branch: float(np.mean([s[branch] for s in per_seed])) for branch in ("strong", "weak", "mixed")
        }
        report[arm]["weight_change"] = {
            branch: float(np.mean([s["weight_change"][branch] for s in per_seed]))
            for branch in ("strong", "weak")
        }
        report[arm]["per_seed"] = per_seed
    return report


def branches_markdown(branches: dict[str, Any]) -> list[str]:
    """The branches table: what each branch solves alone and mixed, and how far each moved."""
    if not branches:
        return []
    lines = [
        "",
        "## Where the knowledge went: the branches of joint training (greedy, same problems)",
        "",
        "| arm | strong branch (kept) % | weak branch % | both mixed % | ‖Δθ‖/‖θ‖ strong | ‖Δθ‖/‖θ‖ weak |",
        "|---|---|---|---|---|---|",
    ]
    for arm, b in branches.items():
        change = b["weight_change"]
        lines.append(
            f"| {arm} | {100 * b['strong']:.1f} | {100 * b['weak']:.1f} | {100 * b['mixed']:.1f} | "
            f"{change['strong']:.4f} | {change['weak']:.4f} |"
        )
    return lines
