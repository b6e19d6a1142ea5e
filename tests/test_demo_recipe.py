"""The demo's M0 records its recipe; an M0 made from another recipe is rebuilt, never silently reused."""

from __future__ import annotations

import dataclasses

import pytest
from transformers import AutoTokenizer

from wmss.cli import main
from wmss.demo import setup as demo_setup
from wmss.demo.presets import PRESETS
from wmss.demo.recipe import RECIPE_FILE, m0_recipe, read_recipe
from wmss.demo.setup import SHIPPED_M0, prepare_task_and_base_model, task_and_corpus
from wmss.demo.tokenizer import build_demo_tokenizer
from wmss.io import read_json


def test_recipe_changes_with_anything_m0_depends_on_and_not_with_the_rest():
    preset = PRESETS["smoke"]
    base = m0_recipe(preset, 0, ["a", "b"])
    assert m0_recipe(dataclasses.replace(preset, epochs=9.0), 0, ["a", "b"]) == base
    assert m0_recipe(dataclasses.replace(preset, hidden_size=32), 0, ["a", "b"]) != base
    assert m0_recipe(preset, 1, ["a", "b"]) != base
    assert m0_recipe(preset, 0, ["a", "c"]) != base
    assert m0_recipe(preset, 0, ["a", "b"], [("q", "q a")]) != base


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


def test_shipped_m0_is_the_default_presets_for_data_seed_0():
    # Guards against a change to the task, corpus or preset that leaves the shipped M0 stale (make demo-m0).
    tokenizer = build_demo_tokenizer()
    preset = PRESETS["default"]
    _, corpus, easier = task_and_corpus(preset, 0, tokenizer)
    assert read_recipe(SHIPPED_M0) == m0_recipe(preset, 0, corpus, easier)
    config = read_json(SHIPPED_M0 / "config.json")
    assert (config["hidden_size"], config["num_hidden_layers"]) == (
        preset.hidden_size,
        preset.num_hidden_layers,
    )
    assert AutoTokenizer.from_pretrained(SHIPPED_M0).get_vocab() == tokenizer.get_vocab()


def test_a_shipped_m0_with_the_recipe_is_copied_not_pretrained(tmp_path, monkeypatch):
    preset = PRESETS["smoke"]
    assert (
        main(
            [
                "demo",
                "--preset",
                "smoke",
                "--build-m0",
                str(tmp_path / "shipped"),
                "--output",
                str(tmp_path / "b"),
            ]
        )
        == 0
    )
    monkeypatch.setattr(demo_setup, "SHIPPED_M0", tmp_path / "shipped")

    def never(*args, **kwargs):
        raise AssertionError("M0 was pretrained although the shipped one has its recipe")

    monkeypatch.setattr(demo_setup, "pretrain_base_model", never)
    info = prepare_task_and_base_model(preset, tmp_path / "run", 0)
    assert info["source"].startswith("shipped")
    copied = tmp_path / "run" / "m0" / "model.safetensors"
    assert copied.read_bytes() == (tmp_path / "shipped" / "model.safetensors").read_bytes()
    # Another data seed has another recipe: the shipped M0 does not fit and M0 is pretrained.
    with pytest.raises(AssertionError, match="pretrained"):
        prepare_task_and_base_model(preset, tmp_path / "other", 1)
