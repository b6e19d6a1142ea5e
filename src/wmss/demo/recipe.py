"""The default demo's base model M0, shipped with the package and checked against the recipe that made it.

A base model in the paper's sense (one that already solves part of the task) takes longer to pretrain on two CPU
cores than the whole demo may take, so the default preset's M0 ships as a ~4 MB checkpoint, the way a paper ships
its base model's name. It is used only when its recorded recipe (the preset's sizes, the data seed and a hash of
the exact pretraining corpus) equals what this code would pretrain; otherwise, or with `--pretrain-m0`, M0 is
pretrained from scratch by the same code that made the shipped copy.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from wmss.demo.presets import DemoPreset

EMBEDDED_M0 = Path(__file__).parent / "m0"
RECIPE_FILE = "recipe.json"
# Preset fields that change the run after M0 exists, not M0 itself.
_NOT_M0 = frozenset(
    {
        "epochs",
        "learning_rate",
        "batch_size",
        "entropy_batch_size",
        "eval_batch_size",
        "max_new_tokens",
        "diagnostics_samples",
    }
)


def m0_recipe(preset: DemoPreset, data_seed: int, corpus: list[str]) -> dict[str, Any]:
    """Everything M0's weights depend on: its preset fields, the data seed and the corpus' hash."""
    fields = {k: v for k, v in dataclasses.asdict(preset).items() if k not in _NOT_M0}
    digest = hashlib.sha256("\x00".join(corpus).encode("utf-8")).hexdigest()
    return {"preset": fields, "data_seed": data_seed, "corpus_sha256": digest}


def read_recipe(model_dir: Path) -> dict[str, Any] | None:
    """The recipe recorded beside a demo M0 (None when there is none)."""
    path = Path(model_dir) / RECIPE_FILE
    return json.loads(path.read_text(encoding="utf-8"))["recipe"] if path.is_file() else None


def embedded_m0(recipe: dict[str, Any]) -> Path | None:
    """The shipped M0 if it was made by exactly this recipe, else None."""
    return EMBEDDED_M0 if read_recipe(EMBEDDED_M0) == recipe else None
