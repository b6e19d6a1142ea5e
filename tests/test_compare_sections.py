"""The report sections on sharpening vs correction and on the branches of joint training, by hand."""

from __future__ import annotations

import json
import math

import pytest
from safetensors.torch import load_file

from tests.conftest import save_tiny_model, tiny_qwen3_config
from wmss.compare.branches import relative_weight_change
from wmss.compare.sampled import sampling_report, sharpening_sentence


def _diff(low: float, high: float) -> dict[str, float]:
    return {"diff": (low + high) / 2, "ci_low": low, "ci_high": high}


@pytest.mark.parametrize(
    ("p1", "p8", "distinct", "word"),
    [
        ((0.01, 0.05), (-0.05, -0.01), (-0.3, 0.1), "sharpened"),
        ((0.01, 0.05), (-0.01, 0.02), (-0.3, -0.1), "sharpened"),
        ((0.01, 0.05), (0.01, 0.03), (-0.1, 0.1), "corrected"),
        ((-0.01, 0.05), (0.01, 0.03), (-0.1, 0.1), "broader"),
        ((-0.01, 0.05), (-0.02, 0.03), (-0.1, 0.1), "neither"),
        ((-0.05, -0.01), (-0.05, -0.01), (-0.3, -0.1), "less accurate"),
    ],
)
def test_sharpening_follows_the_intervals(p1, p8, distinct, word):
    diffs = {"pass@1": _diff(*p1), "pass@8": _diff(*p8), "distinct_answers": _diff(*distinct)}
    assert f": {word}" in sharpening_sentence("wmss", "sft_continued", diffs, 8)


def _sampled(path, correct, answers):
    rows = [
        {"id": str(i), "correct": c, "answers": a}
        for i, (c, a) in enumerate(zip(correct, answers, strict=True))
    ]
    data = {"n": 2, "n_problems": len(rows), "per_problem": rows, "pass@1": 0.0, "pass@2": 0.0}
    data |= {
        "mean_accuracy": 0.0,
        "distinct_answers": 0.0,
        "truncation_rate": 0.0,
        "mean_token_entropy": None,
    }
    path.write_text(json.dumps(data))
    return path


def test_sampling_differences_are_paired_per_problem(tmp_path):
    # The reference solves problem 0 once in two samples; the arm always, with one distinct answer everywhere.
    reference = _sampled(tmp_path / "ref.json", [[1, 0], [0, 0]], [["3", "4"], ["1", "2"]])
    arm = _sampled(tmp_path / "arm.json", [[1, 1], [0, 0]], [["3", "3"], ["1", "1"]])
    report = sampling_report({"ref": [reference], "arm": [arm]}, "ref", n_resamples=200)
    diffs = report["arm"]["vs_reference"]
    assert diffs["pass@1"]["diff"] == pytest.approx(0.25)  # (1 - 0.5 + 0 - 0) / 2
    assert diffs["pass@2"]["diff"] == pytest.approx(0.0)  # both solve problem 0 with two samples
    assert diffs["distinct_answers"]["diff"] == pytest.approx(-1.0)
    assert "vs_reference" not in report["ref"]


def test_relative_weight_change_by_hand(tmp_path):
    config = tiny_qwen3_config(32)
    start = save_tiny_model(tmp_path / "a", config, seed=0)
    moved = save_tiny_model(tmp_path / "b", config, seed=1)
    # Float64 twin over the saved tensors; tied embeddings are stored once, as the parameters count them.
    a, b = (load_file(str(path / "model.safetensors")) for path in (start, moved))
    num = sum(((b[k].double() - a[k].double()) ** 2).sum().item() for k in a)
    den = sum((a[k].double() ** 2).sum().item() for k in a)
    assert relative_weight_change(moved, start) == pytest.approx(math.sqrt(num / den), rel=1e-9)
    assert relative_weight_change(start, start) == 0.0
