"""Running untrusted (model-written) Python programs in a separate, resource-limited process group.

This is damage control, not isolation: the program runs as the calling user, can read what that user can
read, and is not confined to its directory. What it gets: a fresh temporary directory as cwd/HOME/TMPDIR,
an environment built from scratch (no proxy or credential variables), limits on CPU time, address space,
file size, process count and core dumps, a wall-clock timeout, and the whole process group killed afterwards.
RLIMIT_NPROC counts every process of the user and root is exempt from it; a fork bomb is then stopped by
the timeout and the group kill instead. A process that calls setsid() itself leaves the group and escapes
the final kill (its CPU limit still ends it). Run evaluations in a container or as an unprivileged user.
On Linux the calling process makes itself a child subreaper (once), so that it can reap the killed group's
orphans even where PID 1 never reaps zombies; it then also adopts any other orphaned descendant.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import math
import os
import resource
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from wmss.errors import WMSSError

ENABLE_ENV = "WMSS_ALLOW_CODE_EXECUTION"
_OPT_IN_MESSAGE = (
    "model-written code runs on this machine; pass --allow-code-execution or set WMSS_ALLOW_CODE_EXECUTION=1"
)
_TAIL_BYTES = 8192
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_REAP_DEADLINE_S = 5.0
_PR_SET_CHILD_SUBREAPER = 36


@dataclass(frozen=True)
class ProgramResult:
    """Outcome of one program: exit status (negative: killed by that signal), timeout flag, output tails, time."""

    returncode: int
    timed_out: bool
    stdout: str
    stderr: str
    duration_s: float

    @property
    def passed(self) -> bool:
        """True when the program exited 0 within its time limit."""
        return self.returncode == 0 and not self.timed_out


def require_code_execution_opt_in(allow: bool) -> None:
    """Raise WMSSError unless running model-written code was allowed by flag or WMSS_ALLOW_CODE_EXECUTION=1."""
    if allow or os.environ.get(ENABLE_ENV, "").strip().lower() in {"1", "true", "yes"}:
        return
    raise WMSSError(_OPT_IN_MESSAGE)


@functools.cache
def _become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux), so that a killed fork bomb's children are reaped, not left as zombies."""
    # Containers often run a PID 1 that never reaps; unreaped zombies would use up the PID space over a long run.
    if not sys.platform.startswith("linux"):
        return False
    return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


def _minimal_env(home: str) -> dict[str, str]:
    """An environment built from scratch: nothing of the caller's (proxies, tokens, credentials) leaks in."""
    return {
        "PATH": _SAFE_PATH,
        "LANG": "C.UTF-8",
        "HOME": home,
        "TMPDIR": home,
        "PYTHONHASHSEED": "0",
        "OMP_NUM_THREADS": "1",
    }


def _set_limit(kind: int, soft: int, hard: int) -> None:
    # Never ask for more than the current hard limit: raising it fails for an unprivileged user.
    _, current_hard = resource.getrlimit(kind)
    if current_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, current_hard), min(hard, current_hard)
    resource.setrlimit(kind, (soft, hard))


def _limit_resources(timeout_s: float, memory_mb: int, max_file_mb: int, max_processes: int) -> None:
    """Set the child's resource limits between fork and exec."""
    cpu_s = math.ceil(timeout_s) + 1
    # The soft limit sends SIGXCPU, the hard one a second later SIGKILL.
    _set_limit(resource.RLIMIT_CPU, cpu_s, cpu_s + 1)
    _set_limit(resource.RLIMIT_AS, memory_mb * 2**20, memory_mb * 2**20)
    _set_limit(resource.RLIMIT_FSIZE, max_file_mb * 2**20, max_file_mb * 2**20)
    _set_limit(resource.RLIMIT_NPROC, max_processes, max_processes)
    _set_limit(resource.RLIMIT_CORE, 0, 0)


def _wait_for_exit(process: subprocess.Popen[bytes], timeout_s: float) -> bool:
    """Wait until the process exits, WITHOUT reaping it (its PID must stay reserved for the group kill)."""
    if hasattr(os, "pidfd_open"):
        pidfd = os.pidfd_open(process.pid)
        try:
            return bool(select.select([pidfd], [], [], timeout_s)[0])
        finally:
            os.close(pidfd)
    deadline = time.monotonic() + timeout_s
    while os.waitid(os.P_PID, process.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        time.sleep(min(0.01, remaining))
    return True


def _kill_group(process: subprocess.Popen[bytes], reap: bool) -> None:
    """SIGKILL every process of the leader's group; as their subreaper, also reap them so no zombie remains."""
    pgid = process.pid
    deadline = time.monotonic() + _REAP_DEADLINE_S
    while True:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        except PermissionError:
            # Only remaining members that changed their user: nothing more this process can do.
            return
        if not reap or time.monotonic() > deadline:
            return
        with contextlib.suppress(ChildProcessError):
            while (reaped := os.waitpid(-pgid, os.WNOHANG))[0] > 0:
                if reaped[0] == process.pid:
                    # Reaped here, so Popen could no longer learn the status: hand it over.
                    process.returncode = os.waitstatus_to_exitcode(reaped[1])
        # Members still being re-parented to us are not waitable yet: give them a moment.
        time.sleep(0.005)


def _tail(stream: IO[bytes]) -> str:
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - _TAIL_BYTES))
    return stream.read().decode("utf-8", errors="replace")


def run_program(
    program: str,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    max_file_mb: int = 16,
    max_processes: int = 64,
) -> ProgramResult:
    """Run a Python program in a fresh temporary directory with resource limits; kill its process group after."""
    reap = _become_subreaper()
    with (
        tempfile.TemporaryDirectory(prefix="wmss-sandbox-", ignore_cleanup_errors=True) as workdir,
        tempfile.TemporaryFile() as stdout,
        tempfile.TemporaryFile() as stderr,
    ):
        path = Path(workdir) / "program.py"
        path.write_text(program, encoding="utf-8")
        start = time.monotonic()
        # Not -I: it would also ignore PYTHONHASHSEED and make set/dict-of-str order (and so some verdicts)
        # vary between runs; the environment is built from scratch anyway, and -s keeps user site-packages out.
        process = subprocess.Popen(
            [sys.executable, "-s", "-B", str(path)],
            cwd=workdir,
            env=_minimal_env(workdir),
            stdin=subprocess.DEVNULL,
            # Output goes to unnamed files, bounded by RLIMIT_FSIZE, not to pipes a chatty program could flood.
            stdout=stdout,
            stderr=stderr,
            start_new_session=True,
            close_fds=True,
            # preexec_fn is not fork-safe if other threads hold locks; it only calls setrlimit here.
            preexec_fn=functools.partial(_limit_resources, timeout_s, memory_mb, max_file_mb, max_processes),
        )
        timed_out = False
        try:
            timed_out = not _wait_for_exit(process, timeout_s)
        finally:
            # The leader is still unreaped here, so its PID (the group id) cannot have been reused.
            _kill_group(process, reap)
            returncode = process.wait()
        duration_s = time.monotonic() - start
        return ProgramResult(
            returncode=returncode,
            timed_out=timed_out,
            stdout=_tail(stdout),
            stderr=_tail(stderr),
            duration_s=duration_s,
        )


def check_program(program: str, timeout_s: float = 10.0) -> bool:
    """True iff the program exits 0 within the timeout (calling this is the opt-in to running it)."""
    return run_program(program, timeout_s=timeout_s).passed
