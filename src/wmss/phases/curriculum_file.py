"""The curriculum file: Phase 2's weights from the weak/strong entropy files (Eq. 9-10) and the drawn active set.

`run_curriculum` builds it with `wmss.method.curriculum.build_curriculum`; `read_curriculum` reads one back,
checking that its weights are a distribution and its draws are sample ids.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import numpy as np

from wmss.errors import DataError
from wmss.io import atomic_write_json, ensure_output_file, read_json_object
from wmss.method.curriculum import EQ10_WEIGHTINGS, build_curriculum, entropy_gap, resolve_weighting
from wmss.method.settings import CurriculumSettings
from wmss.phases.entropy_file import read_entropy_file

logger = logging.getLogger(__name__)

CURRICULUM_FILE = "curriculum.json"


def _aligned(
    strong: dict[str, Any], weak: dict[str, Any], files: tuple[str | Path, str | Path]
) -> dict[str, Any]:
    """The strong entropies in the weak file's idx order; DataError counting the ids only one file has."""
    if strong["idx"] == weak["idx"]:
        return strong
    ids = {name: set(data["idx"]) for name, data in zip(files, (weak, strong), strict=True)}
    missing = [
        f"{len(ids[a] - ids[b])} idx of {a} are not in {b} (first: {sorted(ids[a] - ids[b])[:3]})"
        for a, b in (files, files[::-1])
        if ids[a] - ids[b]
    ]
    if missing:
        raise DataError(
            f"{files[0]} ({len(weak['idx'])} samples) and {files[1]} ({len(strong['idx'])} samples) score "
            f"different samples: {'; '.join(missing)}; recompute both entropies on the same data settings"
        )
    entropy = dict(zip(strong["idx"], strong["entropy"], strict=True))
    return {**strong, "idx": list(weak["idx"]), "entropy": [entropy[i] for i in weak["idx"]]}


def run_curriculum(
    settings: CurriculumSettings, weak_file: str | Path, strong_file: str | Path, output_dir: str | Path
) -> Path:
    """Weight every sample by Eq. 10, draw the active set, and write `<output_dir>/curriculum.json`."""
    path = ensure_output_file(
        Path(output_dir) / CURRICULUM_FILE,
        {"the weak entropy file": weak_file, "the strong entropy file": strong_file},
    )
    weak, strong = read_entropy_file(weak_file), read_entropy_file(strong_file)
    if weak["data_fingerprint"] != strong["data_fingerprint"]:
        raise DataError(
            f"{weak_file} and {strong_file} were computed on different data "
            f"(fingerprints {weak['data_fingerprint']} vs {strong['data_fingerprint']}); "
            "recompute both entropies with the same data settings"
        )
    strong = _aligned(strong, weak, (weak_file, strong_file))
    ids = [int(i) for i in weak["idx"]]
    h_weak, h_strong = np.asarray(weak["entropy"]), np.asarray(strong["entropy"])
    curriculum = build_curriculum(h_weak, h_strong, settings, ids=ids)
    s, stats, weighting = settings, curriculum.stats, resolve_weighting(settings.weighting)
    params = {"alpha": s.alpha, "beta": s.beta, "gamma": s.gamma} if weighting in EQ10_WEIGHTINGS else {}
    atomic_write_json(
        path,
        {
            "weak": weak["model"],
            "strong": strong["model"],
            "data_fingerprint": weak["data_fingerprint"],
            "weighting": weighting,
            "params": {**params, "sample_multiplier": s.sample_multiplier, "seed": s.seed},
            "stats": stats,
            "draws": [ids[p] for p in curriculum.draws],
            "idx": ids,
            "weights": curriculum.weights.tolist(),
            "entropy_gap": entropy_gap(h_weak, h_strong).tolist(),
        },
    )
    logger.info(
        "curriculum: %d draws over %d samples (%d unique) -> %s",
        stats["n_draws"],
        stats["n"],
        stats["unique"],
        path,
    )
    return path


CURRICULUM_REMEDY = (
    "delete it and re-run the command that wrote it (`wmss curriculum`, or the same `wmss run`/`wmss compare`, "
    "which recomputes that curriculum stage)"
)


def read_curriculum(path: str | Path) -> dict[str, Any]:
    """Read a curriculum file (or the directory holding one), checking its fields; DataError naming what is wrong."""
    path = Path(path)
    if path.is_dir():
        path = path / CURRICULUM_FILE
    if not path.is_file():
        raise DataError(f"curriculum file not found: {path}")
    fields = {"draws": list, "data_fingerprint": str, "idx": list, "weights": list}
    data = read_json_object(path, fields, CURRICULUM_REMEDY)
    ids, weights, draws = data["idx"], data["weights"], data["draws"]
    if not all(isinstance(i, int) and not isinstance(i, bool) for i in [*ids, *draws]):
        raise DataError(f"{path}: 'idx' and 'draws' must hold sample ids (integers); {CURRICULUM_REMEDY}")
    if len(weights) != len(ids):
        raise DataError(
            f"{path}: 'idx' has {len(ids)} entries but 'weights' has {len(weights)}; {CURRICULUM_REMEDY}"
        )
    finite = all(isinstance(w, (int, float)) and math.isfinite(w) and w >= 0 for w in weights)
    if not finite:
        raise DataError(f"{path}: 'weights' must be finite and non-negative; {CURRICULUM_REMEDY}")
    total = math.fsum(weights)
    if not math.isclose(total, 1.0, rel_tol=1e-6):
        raise DataError(
            f"{path}: 'weights' sum to {total:g}, not 1: they are not a sampling distribution; "
            f"{CURRICULUM_REMEDY}"
        )
    if not draws:
        raise DataError(
            f"{path}: 'draws' is empty: the curriculum drew no samples to train on; {CURRICULUM_REMEDY}"
        )
    unknown = set(draws) - set(ids)
    if unknown:
        raise DataError(
            f"{path}: 'draws' names ids that are not in 'idx' ({sorted(unknown)[:5]}); {CURRICULUM_REMEDY}"
        )
    return data
