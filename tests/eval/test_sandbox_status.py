"""What the code sandbox reports about itself: per-area status, the one warning, --require-isolation, results."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from wmss.cli import main
from wmss.errors import WMSSError
from wmss.eval import sandbox
from wmss.eval.sandbox import SandboxStatus, require_isolation, sandbox_status

FULL_REPORT = {
    "namespaces": "ok",
    "pid_max": "301",
    "privileges": "ok",
    "landlock": "7",
    "seccomp": "ok",
    "status": "0",
}
NOTHING_REPORT = {
    "namespaces.error": "unshare: Operation not permitted",
    "pid_max.error": "not attempted",
    "privileges.error": "capset: Function not implemented",
    "landlock.error": "landlock_create_ruleset: Function not implemented",
    "seccomp.error": "no seccomp filter for arm64e",
    "status": "0",
}


@pytest.fixture
def fresh_status() -> Iterator[None]:
    """Forget the probed status before and after, so that no fake leaks into other tests."""
    sandbox_status.cache_clear()
    yield
    sandbox_status.cache_clear()


def _fake_probe(monkeypatch: pytest.MonkeyPatch, report: dict[str, str]) -> None:
    monkeypatch.setattr(sandbox, "_launch", lambda *args, **kwargs: (None, dict(report)))


def test_a_full_report_is_complete() -> None:
    status = sandbox._describe(FULL_REPORT)
    assert status.complete and status.missing == ()
    assert status.filesystem == "landlock ABI 7 + seccomp"
    assert status.network == "network namespace + landlock TCP + seccomp (no Unix sockets)"
    assert status.processes == "PID namespace (pid_max 301) + rlimits"
    assert status.steps == ("namespaces", "pid_max", "privileges", "landlock", "seccomp")


def test_without_any_kernel_mechanism_every_area_says_what_is_missing_and_why() -> None:
    status = sandbox._describe(NOTHING_REPORT)
    assert not status.complete and status.steps == ()
    assert (status.filesystem, status.network, status.processes) == (
        "unconfined",
        "unconfined",
        "process group + rlimits",
    )
    missing = "\n".join(status.missing)
    for area in ("filesystem:", "network:", "processes:"):
        assert area in missing
    assert "Landlock: landlock_create_ruleset: Function not implemented" in missing
    assert "setsid()" in missing and "unshare: Operation not permitted" in missing
    assert "Unix sockets" in missing


def test_an_old_landlock_without_namespaces_leaves_the_network_partly_open() -> None:
    report = {"privileges": "ok", "landlock": "3", "seccomp": "ok", "namespaces.error": "unshare: EPERM"}
    status = sandbox._describe(report)
    assert status.filesystem == "landlock ABI 3 + seccomp"
    assert status.network == "seccomp (no Unix sockets)"
    assert any(line.startswith("network: UDP (and TCP below Landlock ABI 4)") for line in status.missing)


def test_an_incomplete_sandbox_warns_once_and_require_isolation_refuses(
    fresh_status: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    _fake_probe(monkeypatch, NOTHING_REPORT)
    with caplog.at_level(logging.WARNING, logger="wmss.eval.sandbox"):
        sandbox_status()
        sandbox_status()
        with pytest.raises(WMSSError, match=r"--require-isolation: .*filesystem: every file"):
            require_isolation()
    assert [record.levelno for record in caplog.records] == [logging.WARNING]
    assert "Landlock" in caplog.records[0].getMessage()


def test_a_complete_sandbox_neither_warns_nor_refuses(
    fresh_status: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0)
    _fake_probe(monkeypatch, FULL_REPORT)
    with caplog.at_level(logging.WARNING, logger="wmss.eval.sandbox"):
        require_isolation()
    assert caplog.records == []


def test_this_machine_confines_code_fully() -> None:
    status = sandbox_status()
    if not status.complete:
        pytest.skip("this kernel lacks: " + "; ".join(status.missing))
    assert isinstance(status, SandboxStatus)
    assert {"namespaces", "privileges", "landlock", "seccomp"} <= set(status.steps)


def test_cli_require_isolation_refuses_before_loading_anything(
    fresh_status: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _fake_probe(monkeypatch, NOTHING_REPORT)
    argv = ["eval", "--model", "does/not/exist", "--benchmarks", "mbpp", "--require-isolation"]
    assert main([*argv, "--allow-code-execution", "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "--require-isolation" in err and "filesystem:" in err
    assert "does/not/exist" not in err


def test_results_of_code_benchmarks_record_the_sandbox(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    task = {"task_id": 1, "text": "Write add(a, b).", "test_list": ["assert add(1, 2) == 3"]}
    (data / "mbpp.jsonl").write_text(json.dumps(task) + "\n")
    responses = tmp_path / "responses.jsonl"
    answer = "```python\ndef add(a, b):\n    return a + b\n```"
    responses.write_text(json.dumps({"benchmark": "mbpp", "index": 0, "output": answer}) + "\n")
    out = tmp_path / "out"
    argv = ["eval", "--responses", str(responses), "--data-dir", str(data), "--output", str(out)]
    assert main([*argv, "--allow-code-execution"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["settings"]["sandbox"] == sandbox_status().as_dict()
    assert summary["summaries"][0]["accuracy"] == 1.0


def test_without_kernel_mechanisms_programs_still_run_limited_and_timed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bare = sandbox._describe(NOTHING_REPORT)
    monkeypatch.setattr(sandbox, "sandbox_status", lambda: bare)
    assert sandbox.check_program("assert sum([1, 2]) == 3\n", timeout_s=5)
    assert not sandbox.check_program("assert sum([1, 2]) == 4\n", timeout_s=5)
    looping = sandbox.run_program("while True:\n    pass\n", timeout_s=1)
    assert looping.timed_out and looping.duration_s < 5
    assert "MemoryError" in sandbox.run_program("bytearray(2**33)\n", timeout_s=5, memory_mb=256).stderr
