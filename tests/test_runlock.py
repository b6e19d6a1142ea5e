"""One run per directory: a second process is refused at once, a killed holder leaves no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from wmss.cli import main
from wmss.io import OutputPathError
from wmss.runlock import LOCK_FILE, RunDirectoryInUse, lock_run_directory

HOLDER = (
    "import sys, time\n"
    "from wmss.runlock import lock_run_directory\n"
    "with lock_run_directory(sys.argv[1]):\n"
    "    print('locked', flush=True)\n"
    "    time.sleep(120)\n"
)


@pytest.fixture
def holder(tmp_path):
    """A separate process holding the lock on tmp_path/run until it is killed."""
    run_dir = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout.readline().strip() == "locked"
    yield run_dir, process
    if process.poll() is None:
        process.kill()
        process.wait()


def test_second_process_is_refused_naming_the_holder(holder):
    run_dir, process = holder
    in_use = rf"run directory {run_dir} is in use by process {process.pid} .*started"
    with pytest.raises(RunDirectoryInUse, match=in_use), lock_run_directory(run_dir):
        pass


def test_killed_holder_leaves_no_stale_lock(holder):
    run_dir, process = holder
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (run_dir / LOCK_FILE).is_file()  # the file stays; the kernel dropped the lock itself
    with lock_run_directory(run_dir):
        pass


def test_lock_is_released_on_exit_and_reentrant_in_one_process(tmp_path):
    # Compare's helpers may lock the directory this process already holds.
    with lock_run_directory(tmp_path / "run"), lock_run_directory(tmp_path / "run"):
        pass
    with lock_run_directory(tmp_path / "run"):
        pass


def test_cli_run_on_a_directory_in_use_is_one_line_error(holder, tiny_model_dir, train_jsonl, capsys):
    run_dir, process = holder
    code = main(["run", "--model", str(tiny_model_dir), "--data", str(train_jsonl), "--output", str(run_dir)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.count("\n") == 0 and f"is in use by process {process.pid}" in err
    assert not (run_dir / "manifest.json").exists()  # refused before any stage ran


def test_unwritable_run_directory_is_named(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with (
        pytest.raises(OutputPathError, match=f"{blocker} is a file, not a directory"),
        lock_run_directory(blocker / "run"),
    ):
        pass
