"""Config loading: paper defaults, YAML + overrides, and validation messages that name the key."""

from __future__ import annotations

import pytest

from wmss.config import RunConfig, load_config
from wmss.errors import ConfigError


def test_paper_defaults():
    config = RunConfig()
    w = config.wmss
    assert (w.alpha, w.beta, w.gamma, w.lam, w.sample_multiplier, w.weak_trainable) == (
        0.1,
        0.8,
        0.1,
        0.5,
        1.0,
        True,
    )
    assert config.sft.learning_rate == config.joint.learning_rate == 1e-5


def test_yaml_then_overrides_then_values(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text(
        "wmss:\n  lam: 0.7\n  alpha: 0.2\njoint:\n  learning_rate: 1e-5\n  report_to: [tensorboard]\n"
    )
    config = load_config(path, ["wmss.lam=0.4"], {"data.system_prompt": "reasoning"})
    assert config.wmss.lam == 0.4 and config.wmss.alpha == 0.2
    assert config.joint.learning_rate == 1e-5 and config.joint.report_to == ["tensorboard"]
    assert config.data.system_prompt == "reasoning"


def test_saved_config_round_trips(tmp_path):
    config = load_config(None, ["wmss.lam=0.25", "data.field_map={prompt: question}"])
    config.save(tmp_path / "c.yaml")
    again = load_config(tmp_path / "c.yaml")
    assert again == config and again.fingerprint("wmss") == config.fingerprint("wmss")
    assert again.fingerprint("wmss") != load_config(None).fingerprint("wmss")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["wmss.lam=1.5"], "'wmss.lam' must be in (0, 1]"),
        (["wmss.lam=0"], "'wmss.lam' must be in (0, 1], got 0"),
        (["wmss.beta=-0.1"], "'wmss.beta' must be >= 0"),
        (["wmss.alpha=0", "wmss.beta=0", "wmss.gamma=0"], "are all zero"),
        (["wmss.lamda=0.5"], "unknown key 'wmss.lamda'"),
        (["wmss.lamda=0.5"], "did you mean 'wmss.lam'"),
        (["trainer.lr=1"], "unknown key 'trainer'"),
        (["sft.learning_rate=fast"], "'sft.learning_rate'"),
        (["data.train=./missing.jsonl"], "'data.train': path does not exist: ./missing.jsonl"),
        (["model.base=/no/such/model"], "'model.base': path does not exist"),
        (["wmss.weighting=magic"], "'wmss.weighting' must be one of authors_code, paper_eq10, brownboost"),
        (["data.overlong=wrap"], "'data.overlong' must be one of truncate, drop"),
        (["wmss"], "must look like section.key=value"),
        (["wmss=3"], "'wmss' in the configuration (with overrides) must be a mapping"),
    ],
)
def test_invalid_settings_name_the_key(overrides, message):
    with pytest.raises(ConfigError) as info:
        load_config(None, overrides)
    assert message in str(info.value)


def test_hub_ids_are_accepted_without_network():
    config = load_config(
        None, ["model.base=Qwen/Qwen3-4B-Base", "data.train=a-m-team/AM-DeepSeek-R1-Distilled-1.4M"]
    )
    assert config.model.base == "Qwen/Qwen3-4B-Base"


def test_bad_yaml_names_file_and_line(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("wmss:\n  lam: 0.5\n  beta: [oops\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml line \d+: invalid YAML"):
        load_config(path)
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")
