"""The demo's M0 records its recipe; an M0 made from another recipe is rebuilt, never silently reused."""

from __future__ import annotations

import dataclasses

from wmss.demo.cli import prepare_task_and_base_model
from wmss.demo.presets import PRESETS
from wmss.demo.recipe import RECIPE_FILE, m0_recipe
from wmss.io import read_json


def test_recipe_changes_with_anything_m0_depends_on_and_not_with_the_rest():
    preset = PRESETS["smoke"]
    base = m0_recipe(preset, 0, ["a", "b"])
    assert m0_recipe(dataclasses.replace(preset, epochs=9.0), 0, ["a", "b"]) == base
    assert m0_recipe(dataclasses.replace(preset, hidden_size=32), 0, ["a", "b"]) != base
    assert m0_recipe(preset, 1, ["a", "b"]) != base
    assert m0_recipe(preset, 0, ["a", "c"]) != base


def test_m0_is_reused_for_its_recipe_and_rebuilt_for_another(tmp_path):
    preset = PRESETS["smoke"]
    first = prepare_task_and_base_model(preset, tmp_path, 0)
    assert first["optimizer_steps"] > 0
    weights = (tmp_path / "m0" / "model.safetensors").stat().st_mtime_ns
    assert prepare_task_and_base_model(preset, tmp_path, 0) == first
    assert (tmp_path / "m0" / "model.safetensors").stat().st_mtime_ns == weights
    before = read_json(tmp_path / "m0" / RECIPE_FILE)["recipe"]
    prepare_task_and_base_model(dataclasses.replace(preset, corpus_size=2 * preset.corpus_size), tmp_path, 0)
    after = read_json(tmp_path / "m0" / RECIPE_FILE)["recipe"]
    assert after != before and after["preset"]["corpus_size"] == 2 * preset.corpus_size
