"""The non-clear cases of the bad-input and fault sweep (issue 22): nothing lost, nothing silent.

One test per case: the data file is unchanged, the weak model survives, the final weights equal an uninterrupted
run's, or the command stops before any work with one line naming what is wrong (never a traceback).
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from pathlib import Path

import pytest
import torch
from huggingface_hub import constants as hub_constants
from safetensors.torch import load_file

from tests.helpers import tiny_training_overrides
from tests.test_faults import PoisonGradient
from tests.test_pipeline import STAGES, CrashAtStep, tiny_config
from wmss.cli import main
from wmss.errors import ConfigError, DataError, ModelError
from wmss.eval.runner import grade_responses
from wmss.models import check_model_path
from wmss.phases.curriculum_file import read_curriculum, run_curriculum
from wmss.phases.sft import run_sft
from wmss.pipeline import MANIFEST, run_pipeline
from wmss.stages import Manifest, Stage, run_stages
from wmss.training import NonFiniteError, read_metrics


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, tiny_model_dir, train_jsonl) -> Path:
    """An uninterrupted `wmss run` (4 constant-rate steps per training stage): the reference of every case."""
    run_dir = tmp_path_factory.mktemp("finished")
    run_pipeline(tiny_config(tiny_model_dir, train_jsonl), run_dir)
    return run_dir


def _copy_run(finished_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def _cli(capsys, *argv: str) -> tuple[int, str]:
    """Exit code and stderr of one `wmss` command, which must be one line and no traceback when it fails."""
    capsys.readouterr()  # what earlier calls printed (progress bars) is not this command's
    code = main([str(arg) for arg in argv])
    err = capsys.readouterr().err.strip()
    if code:
        assert "Traceback" not in err and "\n" not in err, err
    return code, err


def _tree_digest(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _assert_equal_weights(a: Path, b: Path) -> None:
    ours, theirs = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert ours.keys() == theirs.keys()
    for name, tensor in ours.items():
        assert torch.equal(tensor, theirs[name]), name


def _checkpoints(stage_dir: Path) -> list[str]:
    return sorted(p.name for p in (stage_dir / "checkpoints").glob("checkpoint-*"))


def _summary(stage_dir: Path) -> dict:
    return json.loads((stage_dir / "summary.json").read_text())


# --- data lost, exit 0 ---


def test_case01_entropy_output_over_its_own_training_data_is_refused(
    tiny_model_dir, train_jsonl, tmp_path, capsys
):
    data = Path(shutil.copy(train_jsonl, tmp_path / "train.jsonl"))
    before = data.read_bytes()
    other_spelling = tmp_path / "sub" / ".." / "train.jsonl"
    code, err = _cli(capsys, "entropy", "--model", tiny_model_dir, "--data", data, "--output", other_spelling)
    assert code == 2 and "it is the command's input (the training data)" in err
    assert data.read_bytes() == before
    # The same check guards every command's outputs: re-grading a samples.jsonl into its own folder too.
    samples = tmp_path / "eval" / "samples.jsonl"
    samples.parent.mkdir()
    samples.write_text(json.dumps({"benchmark": "gsm8k", "gold": "5", "output": "<answer>5</answer>"}) + "\n")
    graded = samples.read_bytes()
    code, err = _cli(capsys, "eval", "--responses", samples, "--output", samples.parent)
    assert code == 2 and "(--responses)" in err and samples.read_bytes() == graded


def test_case02_extract_into_the_joint_run_it_reads_is_refused_and_the_weak_model_survives(
    finished_run, tmp_path, capsys
):
    joint = Path(shutil.copytree(finished_run / "round-1" / "joint", tmp_path / "joint"))
    before = _tree_digest(joint)
    assert (joint / "final" / "weak" / "config.json").is_file()
    code, err = _cli(capsys, "extract", "--joint", joint, "--output", joint / "final")
    assert code == 2 and "lies inside the input directory" in err and "(--joint)" in err
    assert _tree_digest(joint) == before  # final/weak/ and training_args.bin included
    code, err = _cli(capsys, "extract", "--joint", tmp_path, "--output", tmp_path / "parent")
    assert code == 2  # an output that would hold (and replace) the joint run is refused as well
    code, _ = _cli(capsys, "extract", "--joint", joint, "--branch", "weak", "--output", tmp_path / "weak")
    assert code == 0 and (tmp_path / "weak" / "config.json").is_file()


# --- silent wrong results ---


def test_case03_a_stage_resumed_after_its_final_checkpoint_trains_no_further_step(
    finished_run, tiny_model_dir, train_jsonl, tmp_path
):
    config = tiny_config(tiny_model_dir, train_jsonl)
    killed, whole = tmp_path / "killed", tmp_path / "uninterrupted"
    with pytest.raises(KeyboardInterrupt):  # right after the stage's final checkpoint was written
        run_sft(config, str(tiny_model_dir), killed, callbacks=[CrashAtStep(4)])
    run_sft(config, str(tiny_model_dir), killed)
    run_sft(config, str(tiny_model_dir), whole)
    assert _checkpoints(killed) == _checkpoints(whole) == ["checkpoint-3", "checkpoint-4"]
    _assert_equal_weights(killed / "model", whole / "model")
    assert _summary(killed)["optimizer_steps"] == _summary(whole)["optimizer_steps"] == 4
    assert _summary(killed)["train_loss"] == pytest.approx(_summary(whole)["train_loss"], rel=1e-6)

    # A damaged manifest deleted as its error message advises: every stage resumes from its final checkpoint.
    run_dir = _copy_run(finished_run, tmp_path)
    (run_dir / MANIFEST).unlink()
    result = run_pipeline(config, run_dir)
    assert result.executed == STAGES
    for stage in ("sft", "round-1/joint", "round-1/sft_continued"):
        assert _checkpoints(run_dir / stage) == ["checkpoint-3", "checkpoint-4"], stage
        assert _summary(run_dir / stage)["optimizer_steps"] == 4
        assert _summary(run_dir / stage)["train_loss"] == _summary(finished_run / stage)["train_loss"]
    for model in ("sft/model", "round-1/model", "round-1/sft_continued/model"):
        _assert_equal_weights(run_dir / model, finished_run / model)


def test_case04_train_loss_after_a_resume_covers_every_step_of_the_stage(
    tiny_model_dir, train_jsonl, tmp_path
):
    config = tiny_config(tiny_model_dir, train_jsonl)
    resumed, whole = tmp_path / "resumed", tmp_path / "uninterrupted"
    with pytest.raises(KeyboardInterrupt):
        run_sft(config, str(tiny_model_dir), resumed, callbacks=[CrashAtStep(2)])
    run_sft(config, str(tiny_model_dir), resumed)
    run_sft(config, str(tiny_model_dir), whole)
    logged = [r["loss"] for r in read_metrics(whole / "metrics.jsonl") if "loss" in r]
    assert len(logged) == 4 and _summary(whole)["train_loss"] == pytest.approx(sum(logged) / 4)
    assert _summary(resumed)["train_loss"] == pytest.approx(_summary(whole)["train_loss"], rel=1e-4)

    # An epoch-based stage resumed after it had finished (killed before writing its model): same summary.
    epochs = tiny_config(tiny_model_dir, train_jsonl, **{"sft.max_steps": -1, "sft.num_train_epochs": 1})
    stage = tmp_path / "epochs"
    run_sft(epochs, str(tiny_model_dir), stage)
    first = _summary(stage)
    shutil.rmtree(stage / "model")
    (stage / "summary.json").unlink()
    run_sft(epochs, str(tiny_model_dir), stage)
    again = _summary(stage)
    assert again["optimizer_steps"] == first["optimizer_steps"] == 6  # 24 records, batch 4
    assert again["train_loss"] == pytest.approx(first["train_loss"]) and again["train_loss"] > 0


def test_case05_a_compare_reference_that_is_not_an_arm_is_refused_before_any_work(
    tiny_model_dir, train_jsonl, tmp_path, capsys
):
    for reference in ("sft_continued", "bogus"):
        output = tmp_path / reference
        argv = ["compare", "--model", tiny_model_dir, "--data", train_jsonl, "--output", output]
        code, err = _cli(capsys, *argv, "--arms", "wmss,sft_total", "--reference", reference)
        assert code == 2 and f"'compare.reference' is '{reference}'" in err and "wmss, sft_total" in err
        assert not output.exists()


def test_case06a_curriculum_weights_that_are_not_a_distribution_are_refused(finished_run, tmp_path):
    source = json.loads((finished_run / "round-1" / "curriculum" / "curriculum.json").read_text())
    n = len(source["weights"])
    for weights, total in (([0.0] * n, "0"), ([2.0 / n] * n, "2")):
        path = tmp_path / f"sum-{total}.json"
        path.write_text(json.dumps({**source, "weights": weights}))
        with pytest.raises(DataError, match=rf"{path}: 'weights' sum to {total}, not 1"):
            read_curriculum(path)


def test_case06b_extracting_a_plain_model_as_a_joint_run_is_refused(tiny_model_dir, tmp_path, capsys):
    code, err = _cli(capsys, "extract", "--joint", tiny_model_dir, "--output", tmp_path / "out")
    assert code == 2 and f"{tiny_model_dir} is a plain model, not the output of `wmss joint`" in err
    assert not (tmp_path / "out").exists()


def test_case06c_an_invalid_manifest_status_is_refused_not_rerun(
    finished_run, tiny_model_dir, train_jsonl, tmp_path
):
    run_dir = _copy_run(finished_run, tmp_path)
    manifest = json.loads((run_dir / MANIFEST).read_text())
    manifest["stages"]["sft"]["status"] = "finished"
    (run_dir / MANIFEST).write_text(json.dumps(manifest))
    before = _tree_digest(run_dir / "sft")
    with pytest.raises(DataError, match=r"stage 'sft' has status 'finished', not one of running, done"):
        run_pipeline(tiny_config(tiny_model_dir, train_jsonl), run_dir)
    assert _tree_digest(run_dir / "sft") == before


def test_case06d_regrading_takes_truncation_from_the_responses(tmp_path):
    # Outputs that look complete, from generations that hit the token limit (as samples.jsonl records them).
    rows = [
        {"benchmark": "gsm8k", "gold": str(i), "output": f"<answer>{i}</answer>", "truncated": True}
        for i in range(4)
    ]
    rows[0] = {**rows[0], "truncated": False}
    responses = tmp_path / "samples.jsonl"
    responses.write_text("".join(json.dumps(row) + "\n" for row in rows))
    (summary,) = grade_responses(responses).summaries
    assert summary.truncation_rate == pytest.approx(0.75)
    responses.write_text(json.dumps({**rows[1], "truncated": "yes"}) + "\n")
    with pytest.raises(DataError, match=r"samples\.jsonl line 1: field 'truncated' must be true or false"):
        grade_responses(responses)


def test_case06e_dropped_overlong_records_are_named_in_the_summary_and_logged(
    tiny_model_dir, tmp_path, caplog
):
    rows = [{"prompt": f"{i}+1?", "completion": f"<answer>{i + 1}</answer>"} for i in range(6)]
    rows[3]["completion"] = "x" * 200  # longer than data.max_length
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = tiny_config(
        tiny_model_dir, data, **{"data.max_length": 64, "data.overlong": "drop", "sft.max_steps": 1}
    )
    with caplog.at_level(logging.WARNING, logger="wmss.data.encode"):
        run_sft(config, str(tiny_model_dir), tmp_path / "sft")
    stats = _summary(tmp_path / "sft")["data"]
    assert stats["n_dropped"] == 1 and stats["dropped"] == [{"idx": 3, "source": f"{data}:4"}]
    assert any("idx 3" in r.message and f"{data}:4" in r.message for r in caplog.records), caplog.text


# --- tracebacks ---


def test_case07_a_truncated_safetensors_file_is_one_line_naming_it(
    tiny_model_dir, train_jsonl, tmp_path, capsys
):
    model = Path(shutil.copytree(tiny_model_dir, tmp_path / "m0"))
    weights = model / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    out = tmp_path / "entropy.json"
    code, err = _cli(capsys, "entropy", "--model", model, "--data", train_jsonl, "--output", out)
    assert code == 2 and f"{weights} is damaged (truncated" in err and not out.exists()
    overrides = [f"--set={o}" for o in tiny_training_overrides(2, 1)]
    run = tmp_path / "run"
    code, err = _cli(capsys, "run", "--model", model, "--data", train_jsonl, "--output", run, *overrides)
    assert code == 2 and f"{weights} is damaged" in err and not run.exists()


def test_case08_a_curriculum_with_empty_draws_is_refused_before_training(
    finished_run, tiny_model_dir, train_jsonl, tmp_path, capsys
):
    source = json.loads((finished_run / "round-1" / "curriculum" / "curriculum.json").read_text())
    empty = tmp_path / "curriculum.json"
    empty.write_text(json.dumps({**source, "draws": []}))
    models = ["--weak", tiny_model_dir, "--strong", tiny_model_dir]
    out = tmp_path / "joint"
    code, err = _cli(capsys, "joint", *models, "--curriculum", empty, "--data", train_jsonl, "--output", out)
    assert code == 2 and f"{empty}: 'draws' is empty" in err
    assert not (out / "checkpoints").exists()


# --- unclear or slow ---


def test_case09_idx_mismatches_are_named_and_an_edited_artifact_is_caught_with_a_way_out(
    finished_run, tiny_model_dir, train_jsonl, tmp_path, capsys
):
    rd = finished_run / "round-1"
    weak = json.loads((rd / "entropy_weak.json").read_text())
    strong = json.loads((rd / "entropy_strong.json").read_text())
    cut = tmp_path / "strong_cut.json"
    cut.write_text(json.dumps({**strong, "idx": strong["idx"][:-2], "entropy": strong["entropy"][:-2]}))
    config = tiny_config(tiny_model_dir, train_jsonl)
    with pytest.raises(
        DataError, match=r"score different samples: 2 idx of .*entropy_weak\.json are not in"
    ) as info:
        run_curriculum(config.wmss.curriculum, rd / "entropy_weak.json", cut, tmp_path / "cur")
    assert "fingerprint" not in str(info.value)
    reordered = tmp_path / "strong_reversed.json"
    reordered.write_text(
        json.dumps({**strong, "idx": strong["idx"][::-1], "entropy": strong["entropy"][::-1]})
    )
    run_curriculum(
        config.wmss.curriculum, rd / "entropy_weak.json", reordered, tmp_path / "cur"
    )  # aligned by idx
    assert (
        json.loads((tmp_path / "cur" / "curriculum.json").read_text())["draws"]
        == json.loads((rd / "curriculum" / "curriculum.json").read_text())["draws"]
    )

    # Inside a run: an edited entropy file of a finished stage is caught, and --rerun is the way out.
    run_dir = _copy_run(finished_run, tmp_path)
    edited = run_dir / "round-1" / "entropy_weak.json"
    original = edited.read_bytes()
    edited.write_text(json.dumps({**weak, "entropy": [h + 0.5 for h in weak["entropy"]]}))
    with pytest.raises(DataError, match=r"stage round1\.entropy_weak: .* --rerun round1\.entropy_weak"):
        run_pipeline(config, run_dir)
    result = run_pipeline(config, run_dir, rerun=["round1.entropy_weak"])
    assert result.executed == ["round1.entropy_weak"]  # recomputed as before: nothing downstream changes
    assert edited.read_bytes() == original
    edited.unlink()  # the other way out the message names
    assert run_pipeline(config, run_dir).executed == ["round1.entropy_weak"]
    assert edited.read_bytes() == original
    overrides = [f"--set={o}" for o in tiny_training_overrides(4, 1)]
    argv = ["run", "--model", tiny_model_dir, "--data", train_jsonl, "--output", run_dir, *overrides]
    code, err = _cli(capsys, *argv, "--rerun", "round1.entropy")
    assert code == 2 and "--rerun round1.entropy: this run has no such stage" in err
    assert "round1.entropy_weak" in err


def test_case09b_a_rerun_redoes_downstream_stages_only_when_its_result_changed(tmp_path):
    content = {"a": "1"}
    a, b = tmp_path / "a.json", tmp_path / "b.json"

    def write_a(callbacks) -> None:
        a.write_text(content["a"])

    def write_b(callbacks) -> None:
        b.write_text(a.read_text() + "+b")

    def stages() -> list[Stage]:
        return [Stage("a", a, {}, [], a, write_a), Stage("b", b, {}, ["a"], b, write_b)]

    manifest = tmp_path / MANIFEST
    assert run_stages(stages(), Manifest(manifest)).executed == ["a", "b"]
    assert run_stages(stages(), Manifest(manifest), rerun=["a"]).executed == ["a"]  # same result
    content["a"] = "2"
    assert run_stages(stages(), Manifest(manifest), rerun=["a"]).executed == ["a", "b"]
    assert b.read_text() == "2+b"
    with pytest.raises(ConfigError, match="--rerun c: this run has no such stage; its stages: a, b"):
        run_stages(stages(), Manifest(manifest), rerun=["c"])


def test_case10_model_paths_that_cannot_load_get_one_line_at_once(
    tiny_model_dir, train_jsonl, tmp_path, capsys, monkeypatch
):
    out = tmp_path / "entropy.json"
    argv = ["entropy", "--data", train_jsonl, "--output", out]
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    started = time.monotonic()
    code, err = _cli(capsys, *argv, "--model", "models/nonexistent")
    assert code == 2 and time.monotonic() - started < 5
    assert "models/nonexistent is neither a local directory nor a model in the local hub cache" in err
    assert "HF_HUB_OFFLINE" in err
    # Online, one quick probe (here: nothing listens at the endpoint) instead of a minute of retries.
    monkeypatch.delenv("HF_HUB_OFFLINE")
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(hub_constants, "ENDPOINT", "http://127.0.0.1:9")
    started = time.monotonic()
    with pytest.raises(ModelError, match="neither a local directory nor reachable on the hub"):
        check_model_path("models/also-nonexistent")
    assert time.monotonic() - started < 10
    (tmp_path / "no-config").mkdir()
    for path, message in (
        (tiny_model_dir / "config.json", "is a file, not a model directory"),
        (tmp_path / "no-config", "has no config.json: not a Hugging Face model directory"),
    ):
        code, err = _cli(capsys, *argv, "--model", path)
        assert code == 2 and f"{path} {message}" in err and not out.exists()


def test_case11_the_nan_stop_names_the_checkpoint_it_keeps_or_says_there_is_none(
    tiny_model_dir, train_jsonl, tmp_path
):
    config = tiny_config(tiny_model_dir, train_jsonl)
    with pytest.raises(NonFiniteError, match="no checkpoint was saved before it") as info:
        run_sft(config, str(tiny_model_dir), tmp_path / "first", callbacks=[PoisonGradient({1})])
    assert "last good checkpoint" not in str(info.value)
    kept = tmp_path / "later" / "checkpoints" / "checkpoint-1"
    with pytest.raises(NonFiniteError, match=f"the last good checkpoint {kept} is kept"):
        run_sft(config, str(tiny_model_dir), tmp_path / "later", callbacks=[PoisonGradient({2})])


def test_case12_bad_demo_seeds_and_joint_extra_keys_are_refused_before_any_work(
    tiny_model_dir, train_jsonl, tmp_path, capsys
):
    code, err = _cli(capsys, "demo", "--seeds", "0", "--output", tmp_path / "demo")
    assert code == 2 and "--seeds must be >= 1" in err and not (tmp_path / "demo").exists()
    run = tmp_path / "run"
    argv = ["run", "--model", tiny_model_dir, "--data", train_jsonl, "--output", run]
    code, err = _cli(capsys, *argv, "--set", "joint.extra={bogus_key: 1}")
    assert code == 2 and "'joint'" in err and "bogus_key" in err and not run.exists()
