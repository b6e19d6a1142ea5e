"""What the demo's base model M0 is made from, recorded beside it: a changed preset or corpus rebuilds it."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from wmss.demo.presets import DemoPreset

RECIPE_FILE = "recipe.json"
# Preset fields that change the run after M0 exists, not M0 itself.
_NOT_M0 = frozenset(
    {
        "epochs",
        "phase1_epochs",
        "phase1_epoch_grid",
        "n_validation",
        "sampling_problems",
        "sampling_n",
        "learning_rate",
        "batch_size",
        "entropy_batch_size",
        "eval_batch_size",
        "max_new_tokens",
        "diagnostics_samples",
    }
)


def m0_recipe(
    preset: DemoPreset, data_seed: int, corpus: list[str], easier: Sequence[tuple[str, str]] = ()
) -> dict[str, Any]:
    """Everything M0's weights depend on: its preset fields, the data seed, the corpus' and mid-training data's hash."""
    fields = {k: v for k, v in dataclasses.asdict(preset).items() if k not in _NOT_M0}
    return {
        "preset": fields,
        "data_seed": data_seed,
        "corpus_sha256": _digest(corpus),
        "midtrain_sha256": _digest([f"{prompt}\x01{chat}" for prompt, chat in easier]),
    }


def _digest(texts: list[str]) -> str:
    return hashlib.sha256("\x00".join(texts).encode("utf-8")).hexdigest()


def read_recipe(model_dir: Path) -> dict[str, Any] | None:
    """The recipe recorded beside a demo M0 (None when there is none)."""
    path = Path(model_dir) / RECIPE_FILE
    return json.loads(path.read_text(encoding="utf-8"))["recipe"] if path.is_file() else None
