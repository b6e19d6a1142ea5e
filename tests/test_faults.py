"""Fault injection on tiny models: truncated artifacts, unwritable outputs, NaN steps, a full disk, kill -9."""

from __future__ import annotations

import errno
import json
import math
import random
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file
from transformers import TrainerCallback, TrainerState

from tests.test_pipeline import STAGES, tiny_config
from wmss.cli import main
from wmss.errors import DataError, WMSSError
from wmss.eval.datasets import load_records_file
from wmss.eval.runner import grade_responses
from wmss.io import read_json
from wmss.phases.curriculum_file import read_curriculum
from wmss.phases.entropy_file import read_entropy_file
from wmss.phases.sft import run_sft
from wmss.pipeline import MANIFEST, run_pipeline
from wmss.stages import Manifest, Stage, run_stages
from wmss.training import (
    CheckpointWriteError,
    JsonlMetricsCallback,
    NonFiniteError,
    NonFiniteGuard,
    read_metrics,
)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory, tiny_model_dir, train_jsonl):
    """An uninterrupted run: the artifacts every fault case is checked against."""
    run_dir = tmp_path_factory.mktemp("reference")
    return run_dir, run_pipeline(tiny_config(tiny_model_dir, train_jsonl), run_dir)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _assert_same_model(a: Path, b: Path) -> None:
    reference = _weights(b)
    for name, tensor in _weights(a).items():
        torch.testing.assert_close(tensor, reference[name], rtol=1e-4, atol=1e-5)


# --- every artifact, cut at random bytes or hand-edited: a DataError naming the file, never a traceback ---


def _artifacts(run_dir: Path) -> dict[str, object]:
    rd = run_dir / "round-1"
    return {
        "entropy": (rd / "entropy_weak.json", read_entropy_file),
        "curriculum": (rd / "curriculum" / "curriculum.json", read_curriculum),
        "manifest": (run_dir / MANIFEST, Manifest),
        "summary": (rd / "joint" / "summary.json", read_json),
    }


@pytest.mark.parametrize("kind", ["entropy", "curriculum", "manifest", "summary"])
def test_every_artifact_truncated_at_a_random_byte_names_the_file(kind, reference_run, tmp_path):
    source, read = _artifacts(reference_run[0])[kind]
    data = source.read_bytes()
    end = data.rstrip().rfind(b"}")  # a cut before the closing brace can never be valid JSON
    rng = random.Random(kind)
    for cut in [0, 1, end, *rng.sample(range(2, end), 12)]:
        path = tmp_path / source.name
        path.write_bytes(data[:cut])
        with pytest.raises(DataError, match=str(path).replace(".", r"\.")) as info:
            read(path)
        assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("kind", "edit", "message"),
    [
        ("entropy", {"entropy": "nan-first"}, "non-finite"),
        ("entropy", {"idx": "0,1"}, "field 'idx' has the wrong type"),
        ("entropy", {"model": None}, "field 'model'"),
        ("curriculum", {"draws": [10**6]}, "not in 'idx'"),
        ("curriculum", {"weights": [1.0]}, "'weights' has 1"),
        ("manifest", {"stages": []}, "not a wmss manifest"),
        ("manifest", {"stages": {"sft": "done"}}, "stage 'sft' is malformed"),
    ],
)
def test_hand_edited_artifacts_say_what_is_wrong_and_what_to_rerun(
    kind, edit, message, reference_run, tmp_path
):
    source, read = _artifacts(reference_run[0])[kind]
    payload = {**json.loads(source.read_text()), **edit}
    if payload.get("entropy") == "nan-first":  # same length as 'idx', one value NaN
        payload["entropy"] = [float("nan"), *json.loads(source.read_text())["entropy"][1:]]
    path = tmp_path / source.name
    path.write_text(json.dumps(payload))
    with pytest.raises(DataError, match=message) as info:
        read(path)
    assert str(path) in str(info.value)
    assert "re-run" in str(info.value) or "delete it" in str(info.value)


def test_truncated_responses_and_benchmark_files_name_the_line(tmp_path):
    bench = tmp_path / "gsm8k.jsonl"
    rows = [{"id": str(i), "question": f"{i}+1?", "answer": str(i + 1)} for i in range(5)]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    bench.write_text(text[: len(text) - 7])
    with pytest.raises(DataError, match=r"gsm8k\.jsonl line 5: invalid JSON"):
        load_records_file(bench)
    responses = tmp_path / "responses.jsonl"
    responses.write_text('{"benchmark": "gsm8k", "id": "0", "output": "1"}\n{"benchmark": "gs')
    with pytest.raises(WMSSError, match=r"responses\.jsonl line 2"):
        grade_responses(responses, data_dir=tmp_path)


def test_cli_truncated_curriculum_is_one_line_error(
    reference_run, tiny_model_dir, train_jsonl, tmp_path, capsys
):
    bad = tmp_path / "bad.json"
    bad.write_bytes((reference_run[0] / "round-1" / "curriculum" / "curriculum.json").read_bytes()[:200])
    argv = ["joint", "--weak", str(tiny_model_dir), "--strong", str(tiny_model_dir)]
    code = main(
        [*argv, "--curriculum", str(bad), "--data", str(train_jsonl), "--output", str(tmp_path / "j")]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert f"{bad} line" in err and "truncated JSON" in err and "wmss curriculum" in err


def test_cli_output_under_a_file_is_one_line_error_before_any_work(
    tiny_model_dir, train_jsonl, tmp_path, capsys
):
    afile = tmp_path / "afile"
    afile.write_text("")
    code = main(
        ["entropy", "--model", str(tiny_model_dir), "--data", str(train_jsonl), "--output", f"{afile}/x.json"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and "\n" not in err
    assert f"{afile} is a file, not a directory" in err


# --- non-finite losses and gradients ---


class PoisonGradient(TrainerCallback):
    """Turns one branch's gradient into NaN on the given optimizer steps (a bf16/fp16 overflow stand-in)."""

    def __init__(self, steps: set[int], branch: str = "") -> None:
        self.steps, self.branch, self.handles = steps, branch, []

    def on_step_begin(self, args, state, control, model=None, **kwargs):
        if state.global_step + 1 in self.steps:
            parameter = next(
                p for n, p in model.named_parameters() if p.requires_grad and n.startswith(self.branch)
            )
            self.handles.append(parameter.register_hook(lambda grad: grad * float("nan")))

    def on_step_end(self, args, state, control, **kwargs):
        while self.handles:
            self.handles.pop().remove()


def test_nan_in_the_joint_stage_stops_it_names_step_and_branch_and_keeps_the_last_checkpoint(
    reference_run, tiny_model_dir, train_jsonl, tmp_path
):
    run_dir = tmp_path / "run"
    shutil.copytree(reference_run[0], run_dir)
    config = tiny_config(tiny_model_dir, train_jsonl, **{"wmss.lam": 0.3})  # re-runs joint + extract only
    with pytest.raises(
        NonFiniteError, match=r"stage round1\.joint: joint: non-finite .* at step 3 \(branch weak\)"
    ):
        run_pipeline(config, run_dir, callbacks={"round1.joint": [PoisonGradient({3}, "weak")]})
    record = json.loads((run_dir / MANIFEST).read_text())["stages"]["round1.joint"]
    assert record["status"] == "failed" and "step 3" in record["error"]
    checkpoints = run_dir / "round-1" / "joint" / "checkpoints"
    assert sorted(p.name for p in checkpoints.glob("checkpoint-*")) == ["checkpoint-1", "checkpoint-2"]
    assert all(torch.isfinite(t).all() for t in _weights(checkpoints / "checkpoint-2" / "weak").values())
    assert all(torch.isfinite(t).all() for t in _weights(checkpoints / "checkpoint-2").values())

    result = run_pipeline(config, run_dir)  # the fault was transient: a re-run resumes from checkpoint-2
    assert result.executed == ["round1.joint", "round1.extract"]


def test_bounded_nonfinite_steps_are_skipped_without_touching_the_weights(
    tiny_model_dir, train_jsonl, tmp_path
):
    config = tiny_config(
        tiny_model_dir, train_jsonl, **{"sft.max_nonfinite_steps": 1, "sft.save_total_limit": "null"}
    )
    run_sft(config, str(tiny_model_dir), tmp_path / "sft", callbacks=[PoisonGradient({2})])
    checkpoints = tmp_path / "sft" / "checkpoints"
    before, after = _weights(checkpoints / "checkpoint-1"), _weights(checkpoints / "checkpoint-2")
    for name, tensor in before.items():
        assert torch.equal(tensor, after[name])  # step 2 was skipped: no update, moments included
    final = _weights(tmp_path / "sft" / "model")
    assert all(torch.isfinite(t).all() for t in final.values())
    assert any(not torch.equal(final[n], t) for n, t in before.items())  # steps 3-4 trained

    with pytest.raises(NonFiniteError, match=r"sft: non-finite gradient norm at step 3.*skipped 1 already"):
        run_sft(config, str(tiny_model_dir), tmp_path / "sft2", callbacks=[PoisonGradient({2, 3})])


def test_nonfinite_option_is_validated(tiny_model_dir, train_jsonl):
    with pytest.raises(WMSSError, match=r"'joint\.max_nonfinite_steps' must be >= 0"):
        tiny_config(tiny_model_dir, train_jsonl, **{"joint.max_nonfinite_steps": -1})


# --- a full disk during a checkpoint save ---

FULL_DISK = """
import json, resource, signal, sys
from transformers import TrainerCallback, TrainerState
from tests.test_pipeline import tiny_config
from wmss.errors import WMSSError
from wmss.phases.sft import run_sft

class DiskFillsAfterSave(TrainerCallback):
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == 2:  # files may grow to 8 KiB from now on: checkpoint-3's weights cannot
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (8192, resource.RLIM_INFINITY))

model, data, out = sys.argv[1:]
try:
    run_sft(tiny_config(model, data), model, out, callbacks=[DiskFillsAfterSave()])
except WMSSError as exc:
    print(json.dumps({"type": type(exc).__name__, "message": str(exc)}))
    sys.exit(2)
"""


def test_full_disk_during_a_checkpoint_keeps_the_last_complete_one_and_a_rerun_resumes(
    tiny_model_dir, train_jsonl, tmp_path
):
    out = tmp_path / "sft"
    done = subprocess.run(
        [sys.executable, "-c", FULL_DISK, str(tiny_model_dir), str(train_jsonl), str(out)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=300,
    )
    assert done.returncode == 2, done.stderr[-2000:]
    error = json.loads(done.stdout.strip().splitlines()[-1])
    assert error["type"] == "CheckpointWriteError"
    assert str(out / "checkpoints" / "checkpoint-3") in error["message"]
    assert "re-run the same command to resume" in error["message"]
    assert (out / "checkpoints" / "checkpoint-2" / "trainer_state.json").is_file()
    assert not (out / "checkpoints" / "checkpoint-3" / "trainer_state.json").exists()

    config = tiny_config(tiny_model_dir, train_jsonl)
    run_sft(config, str(tiny_model_dir), out)  # resumes from checkpoint-2
    run_sft(config, str(tiny_model_dir), tmp_path / "uninterrupted")
    _assert_same_model(out / "model", tmp_path / "uninterrupted" / "model")


# --- kill -9 at stage boundaries and inside a training stage, then the same command again ---

KILLER = """
import os, signal, sys
from transformers import TrainerCallback, TrainerState
from tests.test_pipeline import tiny_config
from wmss.pipeline import run_pipeline

class Kill(TrainerCallback):
    def __init__(self, step):
        self.step = step
    def on_train_begin(self, args, state, control, **kwargs):
        if self.step == 0:
            os.kill(os.getpid(), signal.SIGKILL)
    def on_save(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)

model, data, run_dir, stage, step = sys.argv[1:]
run_pipeline(tiny_config(model, data), run_dir, callbacks={stage: [Kill(int(step))]})
"""


def _kill_and_rerun(reference_run, tiny_model_dir, train_jsonl, run_dir, stage, step):
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(tiny_model_dir), str(train_jsonl), str(run_dir), stage, str(step)],
        capture_output=True,
        text=True,
        cwd=Path(__file__).parents[1],
        timeout=300,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    record = json.loads((run_dir / MANIFEST).read_text())["stages"][stage]
    assert record["status"] == "running"  # the killed process could not record anything more
    result = run_pipeline(tiny_config(tiny_model_dir, train_jsonl), run_dir)
    position = STAGES.index(stage)
    assert result.skipped == STAGES[:position] and result.executed == STAGES[position:]
    reference = reference_run[1]
    _assert_same_model(result.final_model, reference.final_model)
    _assert_same_model(result.sft_continued_model, reference.sft_continued_model)
    for name in ("entropy_weak.json", "entropy_strong.json", "curriculum/curriculum.json"):
        ours, theirs = (json.loads((d / "round-1" / name).read_text()) for d in (run_dir, reference.run_dir))
        keys = ("entropy", "draws", "weights")
        for key in keys:
            if key in theirs:
                assert all(
                    math.isclose(a, b, rel_tol=1e-5, abs_tol=1e-6)
                    for a, b in zip(ours[key], theirs[key], strict=True)
                )


def test_kill_9_inside_the_joint_stage_then_rerun_equals_an_uninterrupted_run(
    reference_run, tiny_model_dir, train_jsonl, tmp_path
):
    _kill_and_rerun(reference_run, tiny_model_dir, train_jsonl, tmp_path / "run", "round1.joint", 2)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("stage", "step"),
    [
        ("sft", 0),  # before the first stage trains
        ("sft", 2),  # inside Phase 1
        ("round1.joint", 0),  # after entropies and curriculum
        ("round1.sft_continued", 0),  # after joint training and extraction
        ("round1.sft_continued", 3),  # inside the last stage
    ],
)
def test_kill_9_at_each_stage_boundary_then_rerun_equals_an_uninterrupted_run(
    stage, step, reference_run, tiny_model_dir, train_jsonl, tmp_path
):
    _kill_and_rerun(reference_run, tiny_model_dir, train_jsonl, tmp_path / "run", stage, step)


def test_metrics_log_cut_by_a_kill_keeps_its_other_records(tmp_path):
    log = tmp_path / "metrics.jsonl"
    log.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "lo')  # killed while writing step 2
    state = TrainerState()
    state.global_step = 3
    JsonlMetricsCallback(log).on_log(None, state, None, logs={"loss": 1.5})  # the resumed run logs on
    assert [row["step"] for row in read_metrics(log)] == [1, 3]


def test_fp16_overflows_are_left_to_the_loss_scaler_and_bf16_ones_stop(tmp_path):
    model = torch.nn.Linear(2, 1)
    model.weight.grad = torch.full_like(model.weight, float("inf"))
    state = TrainerState()
    NonFiniteGuard("sft").on_pre_optimizer_step(SimpleNamespace(fp16=True), state, None, model=model)
    assert torch.isinf(model.weight.grad).all()  # GradScaler skips this step and lowers its scale
    with pytest.raises(NonFiniteError, match="sft: non-finite gradient norm at step 1"):
        bf16 = SimpleNamespace(fp16=False, output_dir=str(tmp_path))
        NonFiniteGuard("sft").on_pre_optimizer_step(bf16, state, None, model=model)


def test_a_failed_artifact_write_names_the_stage_and_path_and_marks_it_failed(tmp_path):
    def full_disk(callbacks):
        raise OSError(errno.ENOSPC, "No space left on device")

    stage = Stage("round1.entropy_weak", tmp_path / "e.json", {}, [], tmp_path / "e.json", full_disk)
    manifest = Manifest(tmp_path / MANIFEST)
    with pytest.raises(CheckpointWriteError, match=rf"stage round1\.entropy_weak: writing under {tmp_path}"):
        run_stages([stage], manifest)
    assert Manifest(tmp_path / MANIFEST).stage("round1.entropy_weak")["status"] == "failed"
