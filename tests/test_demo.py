"""`wmss demo --preset smoke` end to end: the real pipeline, evaluation by generation, and the report."""

from __future__ import annotations

import json

import pytest

from wmss.cli import main

MODELS = ("base", "sft", "sft_continued", "wmss")


@pytest.fixture(scope="module")
def smoke_demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    assert main(["demo", "--preset", "smoke", "--output", str(out)]) == 0
    return out


def test_report_schema(smoke_demo):
    report = json.loads((smoke_demo / "report.json").read_text())
    assert report["preset"] == "smoke" and report["seeds"] == [0]
    assert set(report["models"]) == set(MODELS)
    for name in MODELS:
        entry = report["models"][name]
        assert 0.0 <= entry["accuracy"] <= 1.0
        assert isinstance(entry["n"], int) and entry["n"] > 0
        assert entry["accuracy_per_seed"] == [entry["accuracy"]]
    for stage in ("sft", "round1.entropy_weak", "round1.curriculum", "round1.joint", "round1.sft_continued"):
        assert report["timings_s"][stage] >= 0
    assert report["curriculum"]["n_draws"] > 0
    markdown = (smoke_demo / "report.md").read_text()
    assert "continued SFT" in markdown and "WMSS" in markdown


def test_accuracies_are_computed_from_generations(smoke_demo):
    report = json.loads((smoke_demo / "report.json").read_text())
    test_split = [
        json.loads(line) for line in (smoke_demo / "seed-0" / "data" / "test.jsonl").read_text().splitlines()
    ]
    for name in MODELS:
        evaluation = json.loads((smoke_demo / "seed-0" / "eval" / f"{name}.json").read_text())
        samples = evaluation["samples"]
        assert [s["id"] for s in samples] == [str(r["id"]) for r in test_split]
        assert all(isinstance(s["output"], str) for s in samples)
        assert report["models"][name]["accuracy"] == pytest.approx(
            sum(s["correct"] for s in samples) / len(samples)
        )
        assert report["models"][name]["n"] == len(test_split)


def test_rerun_resumes_from_cache_with_identical_numbers(smoke_demo, capsys):
    before = json.loads((smoke_demo / "report.json").read_text())["models"]
    assert main(["demo", "--preset", "smoke", "--output", str(smoke_demo)]) == 0
    after = json.loads((smoke_demo / "report.json").read_text())["models"]
    assert after == before
    assert "WMSS" in capsys.readouterr().out


@pytest.mark.slow
def test_same_seed_gives_same_numbers(smoke_demo, tmp_path):
    assert main(["demo", "--preset", "smoke", "--output", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "report.json").read_text())["models"]
    assert again == json.loads((smoke_demo / "report.json").read_text())["models"]
