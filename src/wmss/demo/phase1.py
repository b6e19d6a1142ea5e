"""How long the demo's Phase 1 runs: to saturation, with the epoch count chosen on the validation split by a rule.

The rule, written down before any arm was compared: for each epoch count E of the preset's grid, in increasing
order, M1_E = Phase 1 (SFT of M0) for E epochs, and the probe = M1_E + the Phase 3 budget of plain SFT (the
`sft_continued_plain` arm). Both are evaluated greedily on the validation split (disjoint from training and
held-out problems). The first E at which the probe's gain holds `wmss.premises.is_saturated` (under 2 points and
not significant, with M1 above 0%) is the pick; when none does, the largest E is kept and recorded as not saturated. Every grid
point is a resumable `wmss compare` run, so an interrupted search resumes where it stopped.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Protocol

from wmss.compare.arms import M1
from wmss.compare.comparison import run_compare
from wmss.compare.premises import is_saturated
from wmss.config import load_config
from wmss.io import atomic_write_json

logger = logging.getLogger(__name__)

PROBE = "sft_continued_plain"


class EpochGrid(Protocol):
    """A preset with a Phase-1 epoch grid: the tiny demo's (`DemoPreset`) or the real-model study's."""

    @property
    def phase1_epoch_grid(self) -> tuple[float, ...]:
        """The epoch counts the rule tries, in any order."""
        ...


def _grid_point(
    settings: dict[str, Any], paths: dict[str, str], epochs: float, run_dir: Path
) -> dict[str, Any]:
    values = {
        **settings,
        **paths,
        "sft.num_train_epochs": float(epochs),
        "compare.arms": [PROBE],
        "compare.reference": PROBE,
        "compare.seeds": [int(settings.get("sft.seed", 0))],
        "compare.shared_phase1": True,
        "compare.diagnostics_samples": 0,
        "compare.sampling_problems": 0,
        "pipeline.output_dir": str(run_dir),
    }
    report = run_compare(load_config(None, values=values), run_dir)
    # The report compares every row with the probe: M1's difference is minus the probe's gain.
    versus = report["comparisons"][M1]
    gain, low, high = -versus["diff"], -versus["ci_high"], -versus["ci_low"]
    return {
        "epochs": float(epochs),
        "m1_accuracy": report["models"][M1]["accuracy"],
        "probe_accuracy": report["models"][PROBE]["accuracy"],
        "gain": gain,
        "gain_ci": [low, high],
        "saturated": is_saturated(gain, low, report["models"][M1]["accuracy"]),
        "model": str(run_dir / "phase1" / "sft" / "model"),
        "seconds": sum(report["timings_s"].values()),
    }


def saturation_search(
    preset: EpochGrid, settings: dict[str, Any], paths: dict[str, str], output: Path
) -> dict[str, Any]:
    """Run the rule over the preset's epoch grid under `output` and return every grid point and the pick."""
    points = []
    for epochs in sorted(preset.phase1_epoch_grid):
        point = _grid_point(settings, paths, epochs, output / f"epochs-{epochs:g}")
        logger.info("Phase 1 for %g epochs: %s", epochs, point)
        points.append(point)
        if point["saturated"]:
            break
    chosen = next((p for p in points if p["saturated"]), points[-1])
    selection = {
        "rule": __doc__.split("\n\n")[1].replace("\n", " "),
        "validation_file": paths["compare.eval_file"],
        "grid": points,
        "chosen_epochs": chosen["epochs"],
        "saturated": chosen["saturated"],
    }
    atomic_write_json(output / "selection.json", selection)
    return selection
