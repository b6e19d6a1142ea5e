"""The stage executor shared by `wmss run` and `wmss compare`: a manifest, fingerprints, skip, resume, re-run.

A stage declares the settings its result depends on and the stages it consumes. Its fingerprint chains its own
settings with its upstream fingerprints, so changing a setting re-runs that stage and everything downstream of it,
a finished stage with an unchanged fingerprint is skipped, and an interrupted one is re-entered (training stages
resume from their last Trainer checkpoint).
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import shutil
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from transformers import TrainerCallback

from wmss.errors import ConfigError, DataError, WMSSError
from wmss.io import atomic_write_json, read_json
from wmss.training import CheckpointWriteError, process_state, write_failure

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
STATUSES = ("running", "done", "failed")


def settings_hash(payload: Any) -> str:
    """Short stable hash of JSON-able settings."""
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass
class Stage:
    """One step of a run: what it depends on, where it writes, and how to run it."""

    name: str
    directory: Path  # everything the stage writes (removed when its settings change)
    settings: dict[str, Any]  # the config values this stage's result depends on
    upstream: list[str]  # names of stages whose results it consumes
    output: Path  # the main artifact; the stage is done only if it exists
    action: Callable[[Sequence[TrainerCallback]], Any]  # receives extra Trainer callbacks
    fingerprint: str = ""
    all_processes: bool = True  # False: file-only work done by the main process alone


@dataclass
class StageRun:
    """Which stages one call of `run_stages` executed and which it found done."""

    executed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


class Manifest:
    """The run's record of stages, rewritten atomically after every change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.data: dict[str, Any] = _read_manifest(path) if path.exists() else {"stages": {}}

    def stage(self, name: str) -> dict[str, Any]:
        """The record of one stage (empty when it never ran)."""
        return self.data["stages"].get(name, {})

    def update(self, name: str, **fields: Any) -> None:
        """Merge fields into a stage record and persist it (main process only)."""
        self.data["stages"].setdefault(name, {}).update(fields)
        self.save()

    def save(self) -> None:
        """Write the manifest atomically from the main process."""
        if process_state().is_main_process:
            atomic_write_json(self.path, self.data)


_MANIFEST_REMEDY = (
    "the manifest is written by wmss only; restore it, or delete it to re-check every stage "
    "(finished training stages then resume from their last checkpoint)"
)


def _read_manifest(path: Path) -> dict[str, Any]:
    data = read_json(path, _MANIFEST_REMEDY)
    stages = data.get("stages") if isinstance(data, dict) else None
    if not isinstance(stages, dict):
        raise DataError(f"{path}: not a wmss manifest (no 'stages' object); {_MANIFEST_REMEDY}")
    for name, record in stages.items():
        if not isinstance(record, dict) or not isinstance(record.get("fingerprint", ""), str):
            raise DataError(f"{path}: the record of stage '{name}' is malformed; {_MANIFEST_REMEDY}")
        if record.get("status", "running") not in STATUSES:
            raise DataError(
                f"{path}: stage '{name}' has status {record['status']!r}, not one of {', '.join(STATUSES)}; "
                f"{_MANIFEST_REMEDY}"
            )
    return data


def output_digest(output: Path) -> str | None:
    """sha256 of a file output (entropies, curricula, evaluations), recorded so later edits are noticed."""
    if not output.is_file():
        return (
            None  # model directories: their settings fingerprint guards them, hashing gigabytes would not pay
        )
    digest = hashlib.sha256()
    with output.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def depends_on(*names: str | None) -> list[str]:
    """Upstream stage names, dropping the absent ones (an input given by the user has no stage)."""
    return [name for name in names if name]


def check_rerun(stages: Sequence[Stage], rerun: Collection[str]) -> None:
    """Refuse `--rerun` names that are no stage of this run, listing the ones there are."""
    names = [stage.name for stage in stages]
    unknown = [name for name in rerun if name not in names]
    if unknown:
        raise ConfigError(f"--rerun {unknown[0]}: this run has no such stage; its stages: {', '.join(names)}")


def _check_unchanged(stage: Stage, record: dict[str, Any], manifest: Manifest) -> None:
    recorded, current = record.get("output_sha256"), output_digest(stage.output)
    if recorded is None:
        if current is not None:  # recorded by a wmss without these checks: start checking from now on
            manifest.update(stage.name, output_sha256=current)
        return
    if current != recorded:
        raise DataError(
            f"stage {stage.name}: {stage.output} was changed after the stage finished (its sha256 differs "
            f"from the one in {manifest.path.name}); re-run the same command with --rerun {stage.name} (or "
            "delete the file and re-run it) to recompute it and whatever its new result changes"
        )


def run_stages(
    stages: Sequence[Stage],
    manifest: Manifest,
    callbacks: Mapping[str, Sequence[TrainerCallback]] | None = None,
    on_stage: Callable[[int, Stage], None] | None = None,
    rerun: Collection[str] = (),
) -> StageRun:
    """Run stages in order, skipping finished ones; `on_stage(i, stage)` is told before each one starts.

    Stages named in `rerun` run again from scratch, and so does every stage downstream of one whose result
    then differs from before: a file output whose hash changed (also one recomputed because it was deleted),
    or a re-run stage's model.
    """
    check_rerun(stages, rerun)
    fingerprints: dict[str, str] = {}
    changed: set[str] = set()  # executed stages whose new result differs from the one recorded before
    outcome = StageRun()
    for position, stage in enumerate(stages):
        stage.fingerprint = settings_hash([stage.settings, [fingerprints[u] for u in stage.upstream]])
        fingerprints[stage.name] = stage.fingerprint
        record = manifest.stage(stage.name)
        forced = stage.name in rerun or any(name in changed for name in stage.upstream)
        if (
            not forced
            and record.get("status") == "done"
            and record.get("fingerprint") == stage.fingerprint
            and stage.output.exists()
        ):
            _check_unchanged(stage, record, manifest)
            logger.info("stage %s: done, skipping", stage.name)
            outcome.skipped.append(stage.name)
            continue
        if on_stage is not None:
            on_stage(position, stage)
        if forced or (record and record.get("fingerprint") != stage.fingerprint):
            # Settings changed (or a re-run was asked for): stale outputs and checkpoints must not be resumed.
            why = "re-run asked for" if forced else "settings changed"
            logger.info("stage %s: %s, re-running from scratch", stage.name, why)
            if process_state().is_main_process:
                _remove_outputs(stage)
            process_state().wait_for_everyone()
        # Read now: the manifest updates this record in place.
        previous = record.get("output_sha256") if record.get("status") == "done" else None
        _execute(stage, manifest, list((callbacks or {}).get(stage.name, ())))
        digest = manifest.stage(stage.name).get("output_sha256")
        if (forced and digest is None) or (previous is not None and digest != previous):
            changed.add(stage.name)
        outcome.executed.append(stage.name)
    return outcome


def _remove_outputs(stage: Stage) -> None:
    if stage.directory.is_dir():
        shutil.rmtree(stage.directory)
    elif stage.directory.exists():
        stage.directory.unlink()


def _release_memory() -> None:
    # Trainers and their engines hold reference cycles; free their (GPU) memory before the next stage.
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _execute(stage: Stage, manifest: Manifest, callbacks: Sequence[TrainerCallback]) -> None:
    started = time.time()
    manifest.update(
        stage.name,
        status="running",
        fingerprint=stage.fingerprint,
        inputs=stage.settings,
        upstream=stage.upstream,
        output=str(stage.output),
        started=started,
    )
    logger.info("stage %s: running", stage.name)
    state = process_state()
    try:
        if stage.all_processes or state.is_main_process:
            stage.action(callbacks)
        state.wait_for_everyone()
    except BaseException as exc:
        try:
            manifest.update(
                stage.name, status="failed", error=f"{type(exc).__name__}: {exc}", finished=time.time()
            )
        except OSError as write_error:  # a full disk must not hide the original error
            logger.warning("could not record the failure of stage %s: %s", stage.name, write_error)
        reason = None if isinstance(exc, WMSSError) else write_failure(exc)
        if reason is not None:
            raise CheckpointWriteError(
                f"stage {stage.name}: writing under {stage.directory} failed ({reason}); finished stages and "
                "complete checkpoints are kept: free disk space, then re-run the same command to resume"
            ) from exc
        if isinstance(exc, WMSSError) and not str(exc).startswith("stage "):
            exc.args = (f"stage {stage.name}: {exc}", *exc.args[1:])  # the one-line CLI message names it
        raise
    finally:
        _release_memory()
    finished = time.time()
    manifest.update(
        stage.name,
        status="done",
        finished=finished,
        duration_s=round(finished - started, 3),
        error=None,
        output_sha256=output_digest(stage.output),
    )
