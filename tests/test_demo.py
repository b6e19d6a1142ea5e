"""`wmss demo --preset smoke` end to end: task, M0, the real `wmss compare`, evaluation by generation, report."""

from __future__ import annotations

import json

import pytest

from wmss.cli import main

ROWS = (
    "m0",
    "m1",
    "sft_total",
    "sft_continued",
    "sft_continued_plain",
    "wmss",
    "joint_plain",
    "control_uniform",
)


@pytest.fixture(scope="module")
def smoke_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo")
    # A relative output directory, as `make demo` passes (runs/demo): every stage must resolve it the same way.
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert main(["demo", "--preset", "smoke", "--output", "out"]) == 0
    return root / "out"


def test_report_schema(smoke_demo):
    report = json.loads((smoke_demo / "report.json").read_text())
    assert report["preset"] == "smoke" and report["seeds"] == [0]
    assert set(report["models"]) == set(ROWS)
    for row in ROWS:
        entry = report["models"][row]
        assert 0.0 <= entry["accuracy"] <= 1.0
        assert isinstance(entry["n"], int) and entry["n"] > 0
        assert entry["accuracy_per_seed"] == [entry["accuracy"]]
    for row in set(ROWS) - {"sft_continued"}:
        comparison = report["comparisons"][row]
        assert comparison["ci_low"] <= comparison["diff"] <= comparison["ci_high"]
    assert report["curriculum"]["effective_sample_size"] > 0
    assert set(report["diagnostics"]["m1"]) >= {"target_logit", "gap", "entropy", "max_prob"}
    assert report["demo"]["regime"]["n_train"] > 0
    premises = {p["name"]: p for p in report["premises"]}
    assert {"weak_softer_samples", "mix_lowers_target_tokens", "m1_saturated"} <= set(premises)
    assert all({"value", "threshold", "holds"} <= set(p) for p in premises.values())
    assert set(report["regime"]["sample_level"]["groups"]) <= {"1", "2", "3", "4"}  # by number of steps
    for row in set(ROWS) - {"m0"}:
        assert {"pass@1", "pass@2", "distinct_answers", "truncation_rate"} <= set(report["sampling"][row])
    assert set(report["branches"]) == {"wmss", "joint_plain"}
    assert {"strong", "weak", "mixed", "weight_change"} <= set(report["branches"]["wmss"])
    # The smoke preset's M0 is not the shipped one: pretrained, then mid-trained, in the run.
    m0 = report["demo"]["m0_pretraining"]
    assert m0["source"] == "pretrained in this run" and m0["midtrain_steps"] == 2
    for stage in ("seed0.sft", "seed0.entropy_weak", "seed0.curriculum", "seed0.wmss", "seed0.sft_continued"):
        assert report["timings_s"][stage] >= 0
    markdown = (smoke_demo / "report.md").read_text()
    assert "sft_continued" in markdown and "wmss" in markdown and "95%" in markdown
    assert all((smoke_demo / plot).is_file() for plot in report["plots"])


def test_accuracies_are_computed_from_generations(smoke_demo):
    report = json.loads((smoke_demo / "report.json").read_text())
    test_split = [json.loads(line) for line in (smoke_demo / "data" / "test.jsonl").read_text().splitlines()]
    for row in ROWS:
        path = smoke_demo / ("eval/m0.json" if row == "m0" else f"seed-0/eval/{row}.json")
        outcomes = json.loads(path.read_text())["benchmarks"]["heldout"]
        assert outcomes["ids"] == [str(r["id"]) for r in test_split]
        assert report["models"][row]["accuracy"] == pytest.approx(sum(outcomes["correct"]) / len(test_split))


def test_rerun_resumes_from_cache_with_identical_numbers(smoke_demo, capsys, monkeypatch):
    before = json.loads((smoke_demo / "report.json").read_text())["models"]
    monkeypatch.chdir(smoke_demo.parent)
    assert main(["demo", "--preset", "smoke", "--output", smoke_demo.name]) == 0
    after = json.loads((smoke_demo / "report.json").read_text())
    assert after["models"] == before
    assert after["stages"]["executed"] == []
    assert "Regime" in capsys.readouterr().out


@pytest.mark.slow
def test_same_seed_gives_same_numbers(smoke_demo, tmp_path):
    assert main(["demo", "--preset", "smoke", "--output", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "report.json").read_text())["models"]
    assert again == json.loads((smoke_demo / "report.json").read_text())["models"]
