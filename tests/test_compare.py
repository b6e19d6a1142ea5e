"""`wmss compare`: arms and their budgets, sweeps, the stage plan, and a two-seed run end to end on tiny models."""

from __future__ import annotations

import json

import pytest

from tests.helpers import tiny_training_overrides
from wmss.cli import main
from wmss.compare.arms import ARMS, make_arm
from wmss.compare.comparison import build_plan, parse_sweep, run_compare, sweep_points
from wmss.compare.report import build_report
from wmss.config import load_config
from wmss.errors import ConfigError, DataError


def compare_config(model_dir, data, tmp_path, **extra):
    overrides = [
        f"model.base={model_dir}",
        f"data.train={data}",
        f"pipeline.output_dir={tmp_path / 'cmp'}",
        *tiny_training_overrides(2, 10),
    ]
    overrides += [f"{key}={value}" for key, value in extra.items()]
    return load_config(None, overrides)


@pytest.fixture(scope="module")
def eval_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("heldout") / "heldout.jsonl"
    rows = [{"id": f"q{i}", "question": f"{i}+{i}?", "answer": str(2 * i)} for i in range(6)]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def test_sweeps_parse_single_and_zipped_keys_and_multiply():
    assert parse_sweep("wmss.lam=0.3,0.5") == [{"wmss.lam": 0.3}, {"wmss.lam": 0.5}]
    assert parse_sweep("wmss.alpha:wmss.beta=0.1:0.8,0.2:0.6") == [
        {"wmss.alpha": 0.1, "wmss.beta": 0.8},
        {"wmss.alpha": 0.2, "wmss.beta": 0.6},
    ]
    assert len(sweep_points(["wmss.lam=0.3,0.5", "wmss.gamma=0.1,0.2,0.3"])) == 6
    with pytest.raises(ConfigError, match=r"compare\.sweeps"):
        parse_sweep("wmss.alpha:wmss.beta=0.1")


def test_arms_derive_their_settings_from_the_joint_stage(tiny_model_dir, train_jsonl, tmp_path):
    config = compare_config(
        tiny_model_dir,
        train_jsonl,
        tmp_path,
        **{"joint.max_steps": -1, "joint.num_train_epochs": 3, "sft.max_steps": -1},
    )
    assert make_arm("neftune", config).config.joint.neftune_noise_alpha == 5.0
    assert make_arm("sft_total", config).config.sft.num_train_epochs == config.sft.num_train_epochs + 3
    assert make_arm("sft_matched_compute", config).config.joint.num_train_epochs == 6
    assert make_arm("sft_high_lr", config).config.joint.learning_rate == pytest.approx(2e-3)
    assert make_arm("label_smoothing", config).config.joint.extra["label_smoothing_factor"] == 0.1
    assert make_arm("wmss_frozen", config).config.wmss.weak_trainable is False
    assert make_arm("control_uniform", config).config.wmss.weak_control == "uniform"
    swept = make_arm("wmss", config, {"wmss.lam": 0.3})
    assert swept.name == "wmss[wmss.lam=0.3]" and swept.config.wmss.lam == 0.3
    with pytest.raises(ConfigError, match=r"'compare.arms': unknown arm 'wmms'"):
        make_arm("wmms", config)
    # Every arm's recipe is documented with a summary and a source.
    assert all(spec.summary and spec.source for spec in ARMS.values())


def test_sft_total_refuses_mixed_budget_units(tiny_model_dir, train_jsonl, tmp_path):
    config = compare_config(tiny_model_dir, train_jsonl, tmp_path, **{"sft.max_steps": -1})
    with pytest.raises(ConfigError, match="same unit"):
        make_arm("sft_total", config)


def test_plan_has_one_stage_per_arm_seed_and_evaluation(tiny_model_dir, train_jsonl, tmp_path, eval_file):
    config = compare_config(
        tiny_model_dir,
        train_jsonl,
        tmp_path,
        **{
            "compare.arms": "[sft_continued, wmss]",
            "compare.seeds": "[0, 1]",
            "compare.sweeps": "['wmss.lam=0.3,0.5']",
            "compare.eval_file": eval_file,
        },
    )
    plan = build_plan(config, tmp_path / "cmp")
    names = [stage.name for stage in plan.stages]
    assert len(names) == len(set(names))
    for seed in (0, 1):
        assert f"seed{seed}.sft" in names
        assert f"seed{seed}.wmss" in names and f"seed{seed}.wmss.extract" in names
        # lam=0.5 is the wmss arm itself: only lam=0.3 adds a training run.
        assert f"seed{seed}.wmss_wmss.lam=0.3" in names
        assert f"seed{seed}.wmss_wmss.lam=0.5" not in names
    assert names.count("eval.m0") == 1
    shared_config = compare_config(
        tiny_model_dir,
        train_jsonl,
        tmp_path,
        **{"compare.seeds": "[0, 1]", "compare.shared_phase1": "true", "compare.eval_file": eval_file},
    )
    shared = build_plan(shared_config, tmp_path / "cmp2")
    assert [s.name for s in shared.stages if s.name.endswith(".sft")] == ["phase1.sft"]
    # One M1 for every seed: evaluated once, and every seed reads that evaluation.
    assert [s.name for s in shared.stages if s.name.endswith("eval.m1")] == ["phase1.eval.m1"]
    assert (
        shared.evals[(0, "m1")]
        == shared.evals[(1, "m1")]
        == tmp_path / "cmp2" / "phase1" / "eval" / "m1.json"
    )


def test_compare_end_to_end_two_seeds(tiny_model_dir, train_jsonl, tmp_path, eval_file):
    config = compare_config(
        tiny_model_dir,
        train_jsonl,
        tmp_path,
        **{
            "compare.arms": "[sft_total, sft_continued, wmss, control_uniform, undial]",
            "compare.seeds": "[0, 1]",
            "compare.eval_file": eval_file,
            "compare.max_new_tokens": 6,
            "compare.n_resamples": 200,
            "compare.diagnostics_samples": 4,
            "compare.sampling_problems": 3,
            "compare.sampling_n": 2,
        },
    )
    report = run_compare(config)
    run_dir = tmp_path / "cmp"
    saved = json.loads((run_dir / "report.json").read_text())
    assert saved["models"].keys() == {
        "m0",
        "m1",
        "sft_total",
        "sft_continued",
        "wmss",
        "control_uniform",
        "undial",
    }
    for row, entry in saved["models"].items():
        assert len(entry["accuracy_per_seed"]) == 2 and entry["n"] == 6
        for key in ("diff", "ci_low", "ci_high"):
            if row != "sft_continued":
                assert key in saved["comparisons"][row]
    # Matched budgets: the continued arms take the reference's optimizer steps, sft_total takes Phase 1 + 3.
    assert saved["budget_matches_reference"]["wmss"] and saved["budget_matches_reference"]["undial"]
    assert [b["optimizer_steps"] for b in saved["budgets"]["sft_total"]] == [4, 4]
    assert saved["budgets"]["wmss"][0]["forward_passes"] == 2 * saved["budgets"]["wmss"][0]["optimizer_steps"]
    assert "effective_sample_size" in saved["curriculum"]
    assert "target_logit" in saved["diagnostics"]["m1"]
    # The premises come first, each with its value, threshold and verdict; unmeasured ones say so.
    premises = {p["name"]: p for p in saved["premises"]}
    assert set(premises) == {
        "weak_softer_samples",
        "mix_lowers_target_tokens",
        "weak_margin_le_strong_tokens",
        "m1_saturated",
    }
    assert premises["m1_saturated"]["holds"] is None  # no sft_continued_plain arm: not measured
    assert 0.0 <= premises["weak_softer_samples"]["value"] <= 1.0
    assert len(saved["regime"]["per_seed"]["token_level"]) == 2
    markdown = (run_dir / "report.md").read_text()
    assert markdown.index("Premises: is this the paper's regime?") < markdown.index("## Verdicts")
    # Sampling: every evaluated model but M0, pass@k up to n, paired against the reference.
    assert set(saved["sampling"]) == set(saved["models"]) - {"m0"}
    for row, entry in saved["sampling"].items():
        assert entry["n"] == 2 and entry["n_problems"] == 3 and len(entry["per_seed"]) == 2
        assert 0.0 <= entry["pass@1"] <= entry["pass@2"] <= 1.0
        assert 1.0 <= entry["distinct_answers"] <= 2.0
        assert ("sentence" in entry) is (row != "sft_continued")
    # Branches: only the co-trained joint arm has a weak branch of its own.
    assert set(saved["branches"]) == {"wmss"}
    branch = saved["branches"]["wmss"]
    assert branch["strong"] == pytest.approx(saved["models"]["wmss"]["accuracy"])
    assert 0.0 <= branch["weak"] <= 1.0 and 0.0 <= branch["mixed"] <= 1.0
    assert branch["weight_change"]["strong"] > 0 and branch["weight_change"]["weak"] > 0
    assert (run_dir / "report.md").read_text().startswith("# WMSS comparison")
    assert all((run_dir / p).is_file() for p in saved["plots"])
    # The numbers come from the generations: flipping one graded outcome moves that arm's accuracy.
    eval_path = run_dir / "seed-0" / "eval" / "wmss.json"
    data = json.loads(eval_path.read_text())
    assert all(isinstance(e["output"], str) for e in data["benchmarks"]["heldout"]["examples"])
    before = report["models"]["wmss"]["accuracy_per_seed"][0]
    data["benchmarks"]["heldout"]["correct"][0] = 1 - data["benchmarks"]["heldout"]["correct"][0]
    eval_path.write_text(json.dumps(data))
    # A re-run notices the edit (the file's recorded hash) instead of reporting it as measured.
    with pytest.raises(DataError, match=r"stage seed0\.eval\.wmss: .*--rerun seed0\.eval\.wmss"):
        run_compare(config)
    again = build_report(config, build_plan(config, run_dir))
    assert abs(again["models"]["wmss"]["accuracy_per_seed"][0] - before) == pytest.approx(1 / 6)


def test_cli_compare_help_and_bad_arm(tiny_model_dir, train_jsonl, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["compare", "--help"])
    assert "--sweep" in capsys.readouterr().out
    code = main(
        [
            "compare",
            "--model",
            str(tiny_model_dir),
            "--data",
            str(train_jsonl),
            "--arms",
            "wmss,nope",
            "--output",
            str(tmp_path),
        ]
    )
    assert code == 2
    assert "unknown arm 'nope'" in capsys.readouterr().err


def test_weak_arm_trains_against_the_given_model(
    tiny_model_dir, tiny_model_dir_2, train_jsonl, tmp_path, eval_file
):
    arm = f"weak={tiny_model_dir_2}"
    config = compare_config(
        tiny_model_dir,
        train_jsonl,
        tmp_path,
        **{"compare.arms": f"['{arm}']", "compare.reference": "m1", "compare.eval_file": eval_file},
    )
    plan = build_plan(config, tmp_path / "cmp")
    (joint,) = [
        stage for stage in plan.stages if stage.name.startswith("seed0.weak=") and "extract" not in stage.name
    ]
    assert joint.settings["weak"] == str(tiny_model_dir_2)
    assert joint.settings["strong"] == "seed-0/sft/model"
    with pytest.raises(ConfigError, match="does not exist"):
        make_arm("weak=/no/such/model", config)


def test_a_given_m1_replaces_phase1_for_every_seed(
    tiny_model_dir, tiny_model_dir_2, train_jsonl, tmp_path, eval_file
):
    config = compare_config(
        tiny_model_dir,
        train_jsonl,
        tmp_path,
        **{"model.sft": tiny_model_dir_2, "compare.seeds": "[0, 1]", "compare.eval_file": eval_file},
    )
    plan = build_plan(config, tmp_path / "cmp")
    names = [stage.name for stage in plan.stages]
    assert not {"phase1.sft", "seed0.sft", "seed1.sft"} & set(names)
    assert names.count("phase1.entropy_strong") == 1
    scored = next(stage for stage in plan.stages if stage.name == "phase1.entropy_strong").settings["scored"]
    assert scored == str(tiny_model_dir_2)
    assert all(seed_plan.models["m1"][0] == tiny_model_dir_2 for seed_plan in plan.seeds)
