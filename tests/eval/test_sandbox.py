"""The code sandbox: verdicts, timeouts, fork bombs, file/memory limits, working directory, environment."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from wmss.errors import WMSSError
from wmss.eval.sandbox import ENABLE_ENV, check_program, require_code_execution_opt_in, run_program

# Programs print their process group first, so the test can check that nothing of it survives.
PRINT_GROUP = "import os\nprint(os.getpgid(0), flush=True)\n"


def _assert_group_gone(stdout: str) -> None:
    pgid = int(stdout.split()[0])
    with pytest.raises(ProcessLookupError):
        os.killpg(pgid, 0)


def test_correct_solution_passes() -> None:
    program = "def add(a, b):\n    return a + b\n\nassert add(2, 3) == 5\nprint('ok')\n"
    result = run_program(program, timeout_s=5)
    assert result.passed and result.returncode == 0 and not result.timed_out
    assert result.stdout == "ok\n"
    assert check_program(program, timeout_s=5)


def test_failing_assertion_fails_with_its_traceback() -> None:
    program = "def add(a, b):\n    return a - b\n\nassert add(2, 3) == 5\n"
    result = run_program(program, timeout_s=5)
    assert result.returncode == 1 and not result.passed
    assert "AssertionError" in result.stderr
    assert not check_program(program, timeout_s=5)


def test_syntax_error_fails() -> None:
    assert not check_program("def broken(:\n    pass\n", timeout_s=5)


def test_infinite_loop_times_out_and_is_killed() -> None:
    result = run_program(PRINT_GROUP + "while True:\n    pass\n", timeout_s=1)
    assert result.timed_out and not result.passed
    assert result.duration_s < 5
    _assert_group_gone(result.stdout)


def test_fork_bomb_is_stopped_and_no_child_survives() -> None:
    # Bounded, and the children only sleep: the test machine stays safe even where RLIMIT_NPROC does not
    # apply (root), in which case the timeout and the group kill stop it.
    bomb = PRINT_GROUP + (
        "import time\n"
        "for _ in range(2000):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "time.sleep(60)\n"
    )
    result = run_program(bomb, timeout_s=1, max_processes=32)
    assert result.timed_out and not result.passed
    _assert_group_gone(result.stdout)


def test_orphaned_children_are_killed_after_a_normal_exit() -> None:
    program = PRINT_GROUP + "import time\nif os.fork() == 0:\n    time.sleep(60)\n"
    result = run_program(program, timeout_s=5)
    assert result.returncode == 0 and not result.timed_out
    _assert_group_gone(result.stdout)


def test_large_file_is_stopped_by_the_file_size_limit() -> None:
    program = "with open('big.bin', 'wb') as f:\n    f.write(b'x' * (100 * 2**20))\n"
    result = run_program(program, timeout_s=5, max_file_mb=4)
    assert not result.passed and not result.timed_out
    assert "File too large" in result.stderr


def test_huge_allocation_fails_with_memory_error() -> None:
    result = run_program("data = bytearray(10 * 2**30)\n", timeout_s=5, memory_mb=512)
    assert result.returncode != 0 and not result.timed_out
    assert "MemoryError" in result.stderr


def test_flooding_output_is_bounded() -> None:
    result = run_program("while True:\n    print('x' * 1000)\n", timeout_s=3, max_file_mb=1)
    assert not result.passed
    assert len(result.stdout) <= 8192


def test_relative_writes_land_in_a_temporary_directory_that_is_removed() -> None:
    program = "import os\nopen('out.txt', 'w').write('data')\nprint(os.path.abspath('out.txt'))\nprint(os.getcwd())\n"
    result = run_program(program, timeout_s=5)
    written, cwd = result.stdout.split()
    assert result.passed
    assert Path(written).parent == Path(cwd)
    assert Path(cwd).name.startswith("wmss-sandbox-")
    assert not Path(cwd).exists()


def test_environment_is_minimal_and_has_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("http_proxy", "HTTPS_PROXY", "ALL_PROXY", "no_proxy", "HF_TOKEN", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "http://proxy.invalid:3128")
    program = "import json, os\nprint(json.dumps(dict(os.environ)))\nprint(os.getcwd())\n"
    result = run_program(program, timeout_s=5)
    env_line, cwd = result.stdout.splitlines()
    env = json.loads(env_line)
    assert set(env) == {"PATH", "LANG", "HOME", "TMPDIR", "PYTHONHASHSEED", "OMP_NUM_THREADS"}
    assert env["HOME"] == env["TMPDIR"] == cwd
    assert env["OMP_NUM_THREADS"] == "1"


def test_string_hashing_is_reproducible_between_runs() -> None:
    # Set order of strings decides some verdicts (`list(set(words))`): it must not change between runs.
    program = "print(hash('wmss'), list(set('abcdefgh')))\n"
    assert run_program(program, timeout_s=5).stdout == run_program(program, timeout_s=5).stdout


def test_code_execution_needs_an_explicit_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENABLE_ENV, raising=False)
    with pytest.raises(WMSSError, match="--allow-code-execution"):
        require_code_execution_opt_in(False)
    require_code_execution_opt_in(True)
    monkeypatch.setenv(ENABLE_ENV, "1")
    require_code_execution_opt_in(False)
