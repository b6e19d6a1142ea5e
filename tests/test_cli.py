"""The command line: help for every command, and user mistakes reported as one line, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from wmss.cli import COMMANDS, main


def test_root_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for name in COMMANDS:
        assert name in out


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as info:
        main([command, "--help"])
    assert info.value.code == 0
    assert f"wmss {command}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sft", "--output", "x", "--set", "wmss.lam=3"], "'wmss.lam' must be in (0, 1]"),
        (["sft", "--output", "x"], "'model.base' is required"),
        (
            ["sft", "--model", "m", "--data", "missing.jsonl", "--output", "x"],
            "path does not exist: missing.jsonl",
        ),
        (["sft", "--output", "x", "--config", "nope.yaml"], "config file not found: nope.yaml"),
        (
            ["curriculum", "--weak", "a.json", "--strong", "b.json", "--output", "c"],
            "entropy file not found: a.json",
        ),
    ],
)
def test_user_mistakes_print_one_clear_line(argv, message, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err
    assert "Traceback" not in err


def test_bad_data_record_names_file_line_and_field(tmp_path, tiny_model_dir, capsys):
    data = tmp_path / "train.jsonl"
    data.write_text('{"prompt": "1+1?", "completion": "2"}\n{"prompt": "2+2?", "completion": ""}\n')
    code = main(
        ["entropy", "--model", str(tiny_model_dir), "--data", str(data), "--output", str(tmp_path / "e.json")]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "train.jsonl line 2" in err and "completion" in err


def test_console_script_entry_point_runs():
    done = subprocess.run([sys.executable, "-m", "wmss.cli"], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "usage: wmss" in (done.stdout + done.stderr)


def test_invalid_training_setting_names_the_section(tmp_path, tiny_model_dir, train_jsonl, capsys):
    data = ["--data", str(train_jsonl), "--output", str(tmp_path / "s")]
    argv = ["sft", "--model", str(tiny_model_dir), *data]
    assert main([*argv, "--set", "sft.optim=no_such_optimizer"]) == 2
    assert "invalid 'sft' training settings" in capsys.readouterr().err
    assert main([*argv, "--set", "sft.extra={no_such_argument: 1}"]) == 2
    assert "no_such_argument" in capsys.readouterr().err
