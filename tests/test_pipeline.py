"""Algorithm 1 as one resumable run: skipping, resuming after a crash, and re-running what changed."""

from __future__ import annotations

import inspect
import json
import shutil

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback

from tests.helpers import tiny_training_overrides
from wmss.cli import main
from wmss.config import load_config
from wmss.pipeline import DATA_CACHE, MANIFEST, build_stages, run_pipeline

STAGES = [
    "sft",
    "round1.entropy_weak",
    "round1.entropy_strong",
    "round1.curriculum",
    "round1.joint",
    "round1.extract",
    "round1.sft_continued",
]


class CrashAtStep(TrainerCallback):
    """Simulates a machine failure in the middle of a training stage."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt("simulated crash")


def tiny_config(model_dir, data, **extra):
    overrides = [f"model.base={model_dir}", f"data.train={data}", *tiny_training_overrides(4, 1)]
    overrides += [f"{key}={value}" for key, value in extra.items()]
    return load_config(None, overrides)


def _manifest(run_dir):
    return json.loads((run_dir / MANIFEST).read_text())


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_dir, train_jsonl):
    run_dir = tmp_path_factory.mktemp("run")
    result = run_pipeline(tiny_config(tiny_model_dir, train_jsonl), run_dir)
    return run_dir, result


def test_pipeline_runs_every_stage_and_records_it(finished_run):
    run_dir, result = finished_run
    assert result.executed == STAGES
    stages = _manifest(run_dir)["stages"]
    for name in STAGES:
        assert stages[name]["status"] == "done"
        assert stages[name]["finished"] >= stages[name]["started"]
    assert (result.final_model / "model.safetensors").is_file()
    # Five stages read the data; it was tokenised once (one tokenizer, one data config).
    assert len(list((run_dir / DATA_CACHE).iterdir())) == 1
    joint = json.loads((run_dir / "round-1" / "joint" / "summary.json").read_text())
    baseline = json.loads((run_dir / "round-1" / "sft_continued" / "summary.json").read_text())
    # The baseline gets exactly the joint stage's budget: same optimizer steps, same tokens.
    assert joint["optimizer_steps"] == baseline["optimizer_steps"] == 4
    assert joint["completion_tokens_per_epoch"] == baseline["completion_tokens_per_epoch"]


def test_rerun_skips_finished_stages(finished_run, tiny_model_dir, train_jsonl):
    run_dir, _ = finished_run
    result = run_pipeline(tiny_config(tiny_model_dir, train_jsonl), run_dir)
    assert result.executed == []
    assert result.skipped == STAGES


def test_changing_lambda_reruns_joint_and_extraction_only(
    tmp_path, finished_run, tiny_model_dir, train_jsonl
):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run[0], run_dir)  # a moved run directory stays valid
    result = run_pipeline(tiny_config(tiny_model_dir, train_jsonl, **{"wmss.lam": 0.3}), run_dir)
    assert result.executed == ["round1.joint", "round1.extract"]
    assert _manifest(run_dir)["stages"]["round1.joint"]["inputs"]["lam"] == 0.3


def test_interrupted_joint_stage_resumes_and_matches_uninterrupted_run(
    tmp_path, finished_run, tiny_model_dir, train_jsonl
):
    run_dir = tmp_path / "run"
    config = tiny_config(tiny_model_dir, train_jsonl)
    with pytest.raises(KeyboardInterrupt):
        run_pipeline(config, run_dir, callbacks={"round1.joint": [CrashAtStep(2)]})
    record = _manifest(run_dir)["stages"]["round1.joint"]
    assert record["status"] == "failed"
    assert (run_dir / "round-1" / "joint" / "checkpoints" / "checkpoint-2").is_dir()

    result = run_pipeline(config, run_dir)
    assert result.skipped == STAGES[:4]
    assert result.executed == STAGES[4:]
    metrics = [
        json.loads(line)
        for line in (run_dir / "round-1" / "joint" / "metrics.jsonl").read_text().splitlines()
    ]
    assert sorted({row["step"] for row in metrics if "loss" in row}) == [1, 2, 3, 4]  # resumed at step 3

    resumed = load_file(str(result.final_model / "model.safetensors"))
    reference = load_file(str(finished_run[1].final_model / "model.safetensors"))
    for name, tensor in reference.items():
        torch.testing.assert_close(resumed[name], tensor, rtol=1e-4, atol=1e-5)


def test_cli_run_with_a_config_file_resumes_the_same_run(finished_run, tiny_model_dir, train_jsonl, capsys):
    run_dir, result = finished_run
    config_file = run_dir / "config.yaml"  # the resolved config the run saved
    assert main(["run", "--config", str(config_file), "--output", str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert f"final WMSS model: {result.final_model}" in out
    assert f"continued-SFT baseline: {result.sft_continued_model}" in out


def test_two_rounds_chain_weak_and_strong_as_algorithm_1(tmp_path, tiny_model_dir, train_jsonl):
    config = tiny_config(tiny_model_dir, train_jsonl, **{"wmss.rounds": 2, "pipeline.extract_weak": True})
    stages = {stage.name: stage for stage in build_stages(config, tmp_path)[0]}
    # Round t: weak = M_{t-1}, strong = M_t; each stage's action is bound to its own round's paths.
    assert stages["round1.joint"].settings["weak"] == str(tiny_model_dir)
    assert stages["round1.joint"].settings["strong"] == "sft/model"
    assert stages["round2.joint"].settings["weak"] == "sft/model"
    assert stages["round2.joint"].settings["strong"] == "round-1/model"
    assert stages["round2.sft_continued"].settings["init"] == "round-1/sft_continued/model"
    for t in (1, 2):
        for name, output in ((f"round{t}.extract", "model"), (f"round{t}.extract_weak", "weak_model")):
            assert (
                inspect.getclosurevars(stages[name].action).nonlocals["joint"].path
                == tmp_path / f"round-{t}" / "joint"
            )
            assert stages[name].upstream == [f"round{t}.joint"]
            assert stages[name].output == tmp_path / f"round-{t}" / output
