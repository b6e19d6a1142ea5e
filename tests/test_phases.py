"""Each phase through its CLI on a tiny local model and JSONL file, as the README documents."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from tests.conftest import save_tiny_model, tiny_qwen3_config
from wmss.cli import main


def quick(stage: str, steps: int = 2) -> list[str]:
    """Flags for a short, fast training stage."""
    values = {
        "max_steps": steps,
        "per_device_train_batch_size": 4,
        "save_steps": 1,
        "logging_steps": 1,
        "learning_rate": 1e-3,
    }
    return [arg for key, value in values.items() for arg in ("--set", f"{stage}.{key}={value}")]


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


def _differs(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return any(not torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def phase_run(tmp_path_factory, tiny_model_dir, train_jsonl):
    """Run sft -> entropy x2 -> curriculum -> joint -> extract once for the tests of this module."""
    out = tmp_path_factory.mktemp("phases")
    data = ["--data", str(train_jsonl)]
    assert (
        main(["sft", "--model", str(tiny_model_dir), *data, "--output", str(out / "sft"), *quick("sft")]) == 0
    )
    m1 = out / "sft" / "model"
    assert main(["entropy", "--model", str(tiny_model_dir), *data, "--output", str(out / "ent_w.json")]) == 0
    assert main(["entropy", "--model", str(m1), *data, "--output", str(out / "ent_s.json")]) == 0
    curriculum = ["--weak", str(out / "ent_w.json"), "--strong", str(out / "ent_s.json")]
    assert main(["curriculum", *curriculum, "--output", str(out / "cur")]) == 0
    joint = ["--weak", str(tiny_model_dir), "--strong", str(m1), "--curriculum", str(out / "cur"), *data]
    assert main(["joint", *joint, "--output", str(out / "joint"), *quick("joint")]) == 0
    assert main(["joint", *joint, "--output", str(out / "frozen"), "--freeze-weak", *quick("joint")]) == 0
    assert main(["extract", "--joint", str(out / "joint"), "--output", str(out / "model")]) == 0
    return out


def test_sft_trains_only_completion_tokens_and_writes_a_model(phase_run, tiny_model_dir):
    summary = json.loads((phase_run / "sft" / "summary.json").read_text())
    assert summary["optimizer_steps"] == 2
    assert summary["data"]["n_examples"] == 24
    assert _differs(_weights(tiny_model_dir), _weights(phase_run / "sft" / "model"))
    logged = [json.loads(line) for line in (phase_run / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert any("loss" in row and "grad_norm" in row for row in logged)


def test_entropy_file_is_keyed_by_idx_with_model_and_fingerprint(phase_run, train_jsonl):
    weak = json.loads((phase_run / "ent_w.json").read_text())
    strong = json.loads((phase_run / "ent_s.json").read_text())
    assert weak["idx"] == list(range(24)) == strong["idx"]
    assert weak["data_fingerprint"] == strong["data_fingerprint"]
    assert weak["entropy"] != strong["entropy"]
    assert all(n > 0 for n in weak["n_tokens"])


def test_curriculum_draws_n_samples_with_stats(phase_run):
    curriculum = json.loads((phase_run / "cur" / "curriculum.json").read_text())
    assert len(curriculum["draws"]) == 24
    assert abs(sum(curriculum["weights"]) - 1) < 1e-9
    assert curriculum["stats"]["unique"] + curriculum["stats"]["duplicated"] == 24


def test_co_trained_run_changes_weak_weights_and_frozen_run_does_not(phase_run, tiny_model_dir):
    base = _weights(tiny_model_dir)
    assert _differs(base, _weights(phase_run / "joint" / "final" / "weak"))
    frozen = _weights(phase_run / "frozen" / "final" / "weak")
    assert not _differs(base, frozen)
    logged = [json.loads(line) for line in (phase_run / "joint" / "metrics.jsonl").read_text().splitlines()]
    assert any(row.get("grad_norm_weak", 0) > 0 and row.get("grad_norm_strong", 0) > 0 for row in logged)
    frozen_log = [
        json.loads(line) for line in (phase_run / "frozen" / "metrics.jsonl").read_text().splitlines()
    ]
    assert all(row.get("grad_norm_weak", 0) == 0 for row in frozen_log)


def test_extracted_model_reproduces_the_strong_branch_logits(phase_run):
    extracted = AutoModelForCausalLM.from_pretrained(phase_run / "model")
    branch = AutoModelForCausalLM.from_pretrained(phase_run / "joint" / "final")
    ids = torch.tensor([[5, 9, 20, 33, 41, 7]])
    with torch.no_grad():
        torch.testing.assert_close(extracted(ids).logits, branch(ids).logits, rtol=0, atol=0)
    for name in ("config.json", "generation_config.json", "tokenizer.json", "model.safetensors"):
        assert (phase_run / "model" / name).is_file()


def test_joint_refuses_models_with_different_vocabularies(tmp_path, tiny_model_dir, train_jsonl, capsys):
    other = save_tiny_model(tmp_path / "other", tiny_qwen3_config(500), seed=3)
    models = ["--weak", str(other), "--strong", str(tiny_model_dir)]
    code = main(
        ["joint", *models, "--data", str(train_jsonl), "--output", str(tmp_path / "j"), *quick("joint")]
    )
    assert code == 2
    assert "different vocabularies" in capsys.readouterr().err


def test_extract_names_the_missing_branch(tmp_path, capsys):
    assert main(["extract", "--joint", str(tmp_path), "--output", str(tmp_path / "m")]) == 2
    assert "no 'strong' model under" in capsys.readouterr().err


def test_joint_with_activation_checkpointing_trains_both_branches(
    tmp_path, tiny_model_dir, tiny_model_dir_2, train_jsonl
):
    models = ["--weak", str(tiny_model_dir), "--strong", str(tiny_model_dir_2), "--data", str(train_jsonl)]
    flags = [*quick("joint", steps=1), "--set", "joint.gradient_checkpointing=true"]
    assert main(["joint", *models, "--output", str(tmp_path / "j"), *flags]) == 0
    assert _differs(_weights(tiny_model_dir), _weights(tmp_path / "j" / "final" / "weak"))
    assert _differs(_weights(tiny_model_dir_2), _weights(tmp_path / "j" / "final"))


def test_joint_loss_tokens_all_trains_every_token_the_authors_way(
    tmp_path, tiny_model_dir, tiny_model_dir_2, train_jsonl
):
    models = ["--weak", str(tiny_model_dir), "--strong", str(tiny_model_dir_2), "--data", str(train_jsonl)]
    tokens = {}
    for loss_tokens in ("completion", "all"):
        out = tmp_path / loss_tokens
        flags = [*quick("joint", steps=1), "--set", f"joint.loss_tokens={loss_tokens}"]
        assert main(["joint", *models, "--output", str(out), *flags]) == 0
        tokens[loss_tokens] = json.loads((out / "summary.json").read_text())["completion_tokens_per_epoch"]
    assert tokens["all"] > tokens["completion"] > 0
