"""Premise checks: the gates of wmss.compare.premises, the regime measurements, `wmss regime` end to end on tiny models."""

from __future__ import annotations

import json

import numpy as np
import pytest

from wmss.cli import main
from wmss.compare import premises
from wmss.compare.regime import (
    checkpoint_dirs,
    continued_probe,
    group_labels,
    regime_markdown,
    regime_section,
    sample_level,
)
from wmss.compare.stats import paired_bootstrap
from wmss.errors import DataError
from wmss.method.curriculum import WEIGHTINGS


def test_sample_level_by_hand() -> None:
    weak, strong = [1.0, 1.0, 1.0, 1.0], [0.5, 0.9, 2.0, 1.0]
    got = sample_level(weak, strong, groups=["a", "a", "b", "b"])
    assert got["frac_entropy_reduced"] == 0.5
    assert got["mean_entropy_weak"] == 1.0 and got["mean_entropy_strong"] == pytest.approx(1.1)
    for name in ("authors_code", "paper_eq10"):
        w = WEIGHTINGS[name](weak, strong)
        assert got["effective_sample_size"][name] == pytest.approx(1 / np.square(w).sum())
        assert got["groups"]["a"]["mass"][name] == pytest.approx(w[:2].sum())
        assert got["groups"]["a"]["mass"][name] + got["groups"]["b"]["mass"][name] == pytest.approx(1.0)
    assert got["groups"]["a"]["frac_entropy_reduced"] == 1.0 and got["groups"]["b"]["share_of_samples"] == 0.5
    # Per term, β's 0.8 goes to the two samples whose entropy fell; as printed, to their raw drops.
    assert got["groups"]["a"]["mass"]["authors_code"] > got["groups"]["a"]["mass"]["paper_eq10"]
    with pytest.raises(ValueError, match="labels"):
        sample_level(weak, strong, groups=["a"])


@pytest.mark.parametrize(
    ("gain", "low", "m1", "holds"),
    [
        (0.018, -0.018, 0.41, True),  # the demo's pick: under 2 points, CI covers 0
        (0.03, -0.01, 0.41, False),  # 3 points, even if not significant
        (0.01, 0.001, 0.41, False),  # small but significant
        (-0.05, -0.08, 0.41, True),  # more SFT hurts: saturated
        (0.0, 0.0, 0.0, False),  # nothing learned is not saturation
    ],
)
def test_saturation_rule(gain: float, low: float, m1: float, holds: bool) -> None:
    assert premises.is_saturated(gain, low, m1) is holds
    assert premises.m1_saturated(gain, low, low + 0.05, m1).holds is holds
    assert premises.m1_saturated(None).holds is None


def test_gates_and_the_verdict_sentence() -> None:
    sample = sample_level([1.0, 1.0, 1.0, 1.0], [0.5, 1.2, 1.3, 1.4])
    assert sample["frac_entropy_reduced"] == 0.25
    token = {
        "frac_weak_more_uncertain": 0.5,
        "frac_mix_lowers_target": 0.6,
        "frac_weak_margin_le_strong": 0.7,
        "frac_weak_confidently_wrong": 0.1,
        "grad_share_strong_errors_sft": 0.4,
        "grad_share_strong_errors_mixed": 0.2,
        "n_positions": 100,
    }
    probe = {"gain": 0.0, "ci_low": -0.01, "ci_high": 0.01, "m1_accuracy": 0.4}
    section = regime_section(sample, token, probe)
    holds = {p["name"]: p["holds"] for p in section["premises"]}
    assert holds == {
        "weak_softer_samples": False,
        "mix_lowers_target_tokens": True,
        "weak_margin_le_strong_tokens": True,
        "m1_saturated": True,
    }
    assert not section["in_regime"]
    assert (
        "weak_softer_samples failed" in section["verdict"]
        and "does not test the paper's claim" in section["verdict"]
    )
    sample = sample_level([1.0, 1.0, 1.0, 1.0], [0.5, 0.2, 0.3, 0.4])
    assert regime_section(sample, token, probe)["verdict"].startswith("Every premise holds")
    unmeasured = regime_section(sample, token, None)
    assert "not measured: m1_saturated" in unmeasured["verdict"] and not unmeasured["in_regime"]
    text = "\n".join(regime_markdown(unmeasured))
    assert "| `m1_saturated` | not measured |" in text


def test_continued_probe_is_the_paired_bootstrap_of_continued_minus_m1() -> None:
    rng = np.random.default_rng(0)
    m1, continued = rng.integers(0, 2, (2, 50)), rng.integers(0, 2, (2, 50))
    got = continued_probe(m1, continued, n_resamples=500)
    want = paired_bootstrap(continued, m1, n_resamples=500)
    assert (got["gain"], got["ci_low"], got["ci_high"]) == (want["diff"], want["ci_low"], want["ci_high"])
    assert got["m1_accuracy"] == pytest.approx(m1.mean()) and got["n"] == 50


def test_group_labels_and_checkpoints_name_what_is_missing(tmp_path) -> None:
    data = tmp_path / "train.jsonl"
    data.write_text('{"idx": 5, "steps": 2}\n{"idx": 7}\n')
    with pytest.raises(DataError, match=r"train.jsonl line 2: no field 'steps'"):
        group_labels(data, "steps", [5, 7])
    data.write_text('{"idx": 5, "steps": 2}\n{"idx": 7, "steps": 3}\n')
    assert group_labels(data, "steps", [7, 5]) == ["3", "2"]
    with pytest.raises(DataError, match="no record with idx 9"):
        group_labels(data, "steps", [9])
    for step in (20, 100, 3):
        (tmp_path / "ckpt" / f"checkpoint-{step}").mkdir(parents=True)
        (tmp_path / "ckpt" / f"checkpoint-{step}" / "config.json").write_text("{}")
    (tmp_path / "ckpt" / "runs").mkdir()
    assert [step for step, _ in checkpoint_dirs(tmp_path / "ckpt")] == [3, 20, 100]
    with pytest.raises(DataError, match="no checkpoint-N"):
        checkpoint_dirs(tmp_path / "ckpt" / "runs")


def test_wmss_regime_end_to_end(tiny_model_dir, tiny_model_dir_2, train_jsonl, tmp_path, capsys) -> None:
    heldout = tmp_path / "val.jsonl"
    heldout.write_text(
        "".join(json.dumps({"id": i, "question": f"{i}+1?", "answer": str(i + 1)}) + "\n" for i in range(4))
    )
    out = tmp_path / "regime"
    args = [
        "regime",
        "--weak",
        str(tiny_model_dir),
        "--strong",
        str(tiny_model_dir),
        "--data",
        str(train_jsonl),
    ]
    args += [
        "--eval-file",
        str(heldout),
        "--continued",
        str(tiny_model_dir_2),
        "--n",
        "4",
        "--output",
        str(out),
    ]
    args += ["--set", "compare.max_new_tokens=4", "--set", "compare.eval_kind=numeric"]
    assert main(args) == 0
    section = json.loads((out / "regime.json").read_text())
    holds = {p["name"]: p["holds"] for p in section["premises"]}
    # A model against itself: no entropy fell, mixing changes nothing (equal margins pass the theorem's <=),
    # and an untrained M1 solves nothing.
    assert holds == {
        "weak_softer_samples": False,
        "mix_lowers_target_tokens": False,
        "weak_margin_le_strong_tokens": True,
        "m1_saturated": False,
    }
    assert section["sample_level"]["frac_entropy_reduced"] == 0.0
    assert section["token_level"]["frac_mix_lowers_target"] == 0.0
    assert section["continued_probe"]["n"] == 4
    printed = capsys.readouterr().out
    assert "does not test the paper's claim" in printed and (out / "regime.md").is_file()
    assert (
        main(
            [
                "regime",
                "--weak",
                str(tiny_model_dir),
                "--strong",
                str(tiny_model_dir),
                "--data",
                str(train_jsonl),
                "--continued",
                str(tiny_model_dir_2),
                "--output",
                str(out),
            ]
        )
        == 2
    )
    assert "--continued needs --eval-file" in capsys.readouterr().err
