"""The joint phase as 2 CPU processes (gloo DDP under torchrun) matches one process with the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from wmss.config import load_config
from wmss.phases.entropy_file import run_entropy
from wmss.phases.joint import run_joint

STEPS = 3


def _settings(batch_size: int) -> list[str]:
    values = {
        "max_steps": STEPS,
        "per_device_train_batch_size": batch_size,
        "logging_steps": 1,
        "save_steps": 100,
        "learning_rate": 1e-3,
        "lr_scheduler_type": "constant",
    }
    return [f"joint.{key}={value}" for key, value in values.items()]


def _losses(folder) -> list[float]:
    rows = [json.loads(line) for line in (folder / "metrics.jsonl").read_text().splitlines()]
    return [row["loss"] for row in rows if "loss" in row]


def _torchrun(*args: str, cwd) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "-m",
        "wmss.cli",
        *args,
    ]
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_process_joint_matches_one_process(tmp_path, tiny_model_dir, tiny_model_dir_2, train_jsonl):
    config = load_config(None, [f"data.train={train_jsonl}", *_settings(4)])
    run_joint(config, config.wmss.joint, str(tiny_model_dir), str(tiny_model_dir_2), tmp_path / "one")
    models = ["--weak", str(tiny_model_dir), "--strong", str(tiny_model_dir_2), "--data", str(train_jsonl)]
    overrides = [arg for setting in _settings(2) for arg in ("--set", setting)]
    _torchrun("joint", *models, "--output", str(tmp_path / "two"), *overrides, cwd=tmp_path)
    one, two = _losses(tmp_path / "one"), _losses(tmp_path / "two")
    assert len(one) == len(two) == STEPS  # one log line per step: the two processes form one run
    assert two == pytest.approx(one, rel=1e-4)


@pytest.mark.slow
def test_two_process_entropy_matches_one_process(tmp_path, tiny_model_dir, train_jsonl):
    config = load_config(None, [f"data.train={train_jsonl}", "wmss.entropy_batch_size=5"])
    run_entropy(config, str(tiny_model_dir), tmp_path / "one.json")
    args = ["--model", str(tiny_model_dir), "--data", str(train_jsonl), "--batch-size", "5"]
    _torchrun("entropy", *args, "--output", str(tmp_path / "two.json"), cwd=tmp_path)
    one, two = (json.loads((tmp_path / name).read_text()) for name in ("one.json", "two.json"))
    assert one["idx"] == two["idx"]
    assert two["entropy"] == pytest.approx(one["entropy"], rel=1e-5)
