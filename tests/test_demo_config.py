"""configs/demo.yaml is exactly what `wmss demo` (default preset, seed 0) hands to `wmss compare`."""

from __future__ import annotations

from pathlib import Path

from wmss.config import read_yaml
from wmss.demo.presets import PRESETS
from wmss.demo.setup import demo_settings

PATH_KEYS = {"model.base", "data.train", "pipeline.output_dir", "compare.eval_file"}


def test_shipped_demo_config_matches_the_demo():
    shipped = read_yaml(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml")
    flat = {f"{section}.{key}": value for section, values in shipped.items() for key, value in values.items()}
    assert {k: v for k, v in flat.items() if k not in PATH_KEYS} == demo_settings(PRESETS["default"], [0])
    assert flat["model.base"] == "runs/demo/m0"
    assert flat["compare.eval_file"] == "runs/demo/data/test.jsonl"
