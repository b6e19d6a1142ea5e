"""The shape of the settings: every setting reaches its stage's fingerprint, every number is checked at load.

Both tests walk the settings dataclasses themselves, so a field added later is covered without being listed.
"""

from __future__ import annotations

import dataclasses
import math
import time
import typing
from pathlib import Path
from typing import Any

import pytest

from tests.test_bad_inputs import _cli
from wmss.config import RunConfig, TrainConfig, load_config
from wmss.errors import ConfigError
from wmss.method.settings import CurriculumSettings, JointSettings
from wmss.pipeline import build_stages
from wmss.stages import Stage, settings_hash
from wmss.validation import in_range

RUN_DIR = Path("/wmss-structure/run")  # never created
BASE = ["model.base=org/m0", "data.train=org/train-data"]
# Training settings that change how a stage logs and checkpoints, not what it computes.
BOOKKEEPING = {"logging_steps", "save_steps", "save_total_limit", "report_to"}
# Other values of the settings whose type alone does not say one (strings with free values, mappings).
OTHER = {
    "weighting": "paper_eq10",
    "lr_scheduler_type": "linear",
    "optim": "sgd",
    "extra": {"adam_beta2": 0.99},
    "field_map": {"prompt": "question"},
    "system_prompt": "reasoning",
    "split": "validation",
    "report_to": ["tensorboard"],
}


def _fingerprints(overrides: list[str]) -> dict[str, str]:
    stages: list[Stage] = build_stages(load_config(None, [*BASE, *overrides]), RUN_DIR)[0]
    chained: dict[str, str] = {}
    for stage in stages:
        chained[stage.name] = settings_hash([stage.settings, [chained[u] for u in stage.upstream]])
    return chained


def _other_value(f: dataclasses.Field, value: Any) -> Any:
    """A valid value of a setting that differs from `value`."""
    if f.name in OTHER:
        return OTHER[f.name]
    if isinstance(value, bool):
        return not value
    if "choices" in f.metadata:
        return next(choice for choice in f.metadata["choices"] if choice != value)
    base = 1 if value is None else value
    for candidate in (base * 2, base + 1, base / 2, 0.5, 1):
        candidate = (
            type(base)(candidate) if isinstance(base, int) and float(candidate).is_integer() else candidate
        )
        if candidate != value and in_range(candidate, f.metadata.get("valid", "> -inf")):
            return candidate
    raise AssertionError(f"no other valid value found for {f.name}")


def _yaml(value: Any) -> str:
    return "null" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


# Each stage of a round and the settings object (or config section) its result depends on, whole.
STAGE_SETTINGS = [
    ("round1.curriculum", "wmss", CurriculumSettings),
    ("round1.joint", "wmss", JointSettings),
    ("round1.joint", "joint", TrainConfig),
    ("sft", "sft", TrainConfig),
    ("round1.sft_continued", "joint", TrainConfig),
]


@pytest.mark.parametrize(
    ("stage", "section", "field"),
    [
        (stage, section, f.name)
        for stage, section, cls in STAGE_SETTINGS
        for f in dataclasses.fields(cls)
        if f.name not in BOOKKEEPING
    ],
)
def test_every_setting_of_a_stage_changes_its_fingerprint(stage, section, field):
    f = next(f for f in dataclasses.fields(getattr(RunConfig(), section)) if f.name == field)
    value = _other_value(f, getattr(getattr(RunConfig(), section), field))
    before, after = _fingerprints([]), _fingerprints([f"{section}.{field}={_yaml(value)}"])
    assert after[stage] != before[stage], f"{section}.{field} does not reach stage {stage}"


def test_bookkeeping_and_batching_settings_leave_fingerprints_alone():
    before = _fingerprints([])
    for key in [*(f"sft.{name}" for name in BOOKKEEPING - {"report_to"}), "wmss.loss_chunk_size"]:
        section, name = key.split(".")
        f = next(f for f in dataclasses.fields(getattr(RunConfig(), section)) if f.name == name)
        value = _other_value(f, getattr(getattr(RunConfig(), section), name))
        assert _fingerprints([f"{key}={_yaml(value)}"]) == before, key


def _numeric_settings() -> list[tuple[str, dataclasses.Field]]:
    found = []
    for section in dataclasses.fields(RunConfig):
        cls = typing.get_type_hints(RunConfig)[section.name]
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]  # int, float, or one of them or None
            types = set(typing.get_args(hint)) if typing.get_origin(hint) is not list else set()
            if (types or {hint}) & {int, float}:
                found.append((f"{section.name}.{f.name}", f))
    return found


def _invalid_value(valid: str) -> float:
    """A number just outside a range such as '> 0', '>= 1', '(0, 1]' or '[0, 1)'."""
    if valid.startswith((">", "<")):
        op, bound = valid.split()
        step = -1 if op.startswith(">") else 1
        return float(bound) if op in (">", "<") else float(bound) + step
    low, high = (float(part.strip("[]() ")) for part in valid.split(","))
    return low if valid.startswith("(") else high if valid.endswith(")") else low - 1


@pytest.mark.parametrize(("key", "field"), _numeric_settings(), ids=lambda item: getattr(item, "name", item))
def test_every_numeric_setting_declares_its_range_and_is_refused_out_of_it_at_load(key, field):
    assert "valid" in field.metadata, f"{key} declares no valid range (settings: setting(default, valid=...))"
    bad = _invalid_value(field.metadata["valid"])
    with pytest.raises(ConfigError) as refused:
        load_config(None, [f"{key}={bad if not math.isinf(bad) else '.nan'}"])
    assert f"'{key}'" in str(refused.value)


def test_lam_zero_stops_wmss_run_at_load_with_one_line(capsys, tmp_path, tiny_model_dir, train_jsonl):
    output = tmp_path / "run"
    started = time.monotonic()
    code, err = _cli(
        capsys,
        "run",
        "--model",
        tiny_model_dir,
        "--data",
        train_jsonl,
        "--output",
        output,
        "--set",
        "wmss.lam=0",
    )
    assert code == 2 and "'wmss.lam' must be in (0, 1], got 0" in err and len(err.strip().splitlines()) == 1
    assert not output.exists() and time.monotonic() - started < 30
