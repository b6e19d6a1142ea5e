"""Reading training records from a JSONL/JSON file or a Hugging Face dataset, validated and normalised.

Accepted records (`data.format: auto` decides per record from its keys):

* chat: ``{"messages": [{"role": "system"|"user"|"assistant", "content": str}, ...]}``; an optional system
  message comes first, the last message must be an assistant turn: it is the completion, everything
  before it is the prompt (which needs at least one user turn).
* prompt/completion: ``{"prompt": str, "completion": str, "system": str (optional)}``.

`data.field_map` renames columns, e.g. ``{"prompt": "question", "completion": "solution"}`` or
``{"messages": "conversation"}`` (keys: messages, prompt, completion, system, idx).

Every record keeps a stable integer ``idx``: its own integer ``idx`` field when it has one, otherwise its
position: the 0-based line number (line number minus 1) in a JSONL file, the 0-based item index in a JSON
array file, the row index in a dataset. Blank lines are skipped but still count as lines, so ids stay stable.
`data.limit` keeps the first N usable records. An empty or whitespace-only system text counts as no system.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets

from wmss.config import DataConfig
from wmss.errors import ConfigError, DataError
from wmss.io import JsonRow, iter_json_rows

logger = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")
FIELDS = ("messages", "prompt", "completion", "system", "idx")
# Tabular files go through the `datasets` builder of the same name; everything else is read as JSON.
_BUILDERS = {".parquet": "parquet", ".csv": "csv"}
_SAVED_DATASET_MARKERS = ("dataset_info.json", "state.json", "dataset_dict.json")
_MAX_REPORTED = 5
MAX_NAMED = 100  # dropped records named in a stage's summary (all of them are counted)


@dataclass
class DataStats:
    """Counts of what happened to the data between the file and the training set."""

    n_read: int = 0
    n_bad: int = 0
    n_truncated: int = 0
    n_dropped: int = 0
    n_examples: int = 0
    n_completion_tokens: int = 0
    # The first MAX_NAMED records dropped as longer than data.max_length: {"idx": 5, "source": "train.jsonl:6"}.
    dropped: list[dict[str, Any]] = dataclasses.field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON serialisable)."""
        return dataclasses.asdict(self)


def reject_record(message: str, cfg: DataConfig, stats: DataStats, problems: list[str]) -> None:
    """Raise DataError, or (with `skip_bad_records`) count the record as bad and keep its message."""
    if not cfg.skip_bad_records:
        raise DataError(message)
    stats.n_bad += 1
    problems.append(message)


class _BadRecord(Exception):
    pass


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _iter_rows(dataset: Iterable[dict[str, Any]], label: str) -> Iterator[JsonRow]:
    for i, row in enumerate(dataset):
        yield JsonRow(i, f"{label} row {i}", f"{label}[{i}]", row)


def _pick_split(loaded: Any, label: str, split: str) -> datasets.Dataset:
    if isinstance(loaded, datasets.DatasetDict):
        if split not in loaded:
            raise DataError(f"{label}: no split '{split}' (available: {', '.join(loaded)}); set data.split")
        return loaded[split]
    return loaded


def _open_source(cfg: DataConfig) -> Iterator[JsonRow]:
    if not cfg.train:
        raise DataError(
            "no training data: set 'data.train' to a JSONL/JSON file or a Hugging Face dataset name"
        )
    label = cfg.train
    path = Path(cfg.train).expanduser()
    if path.is_file():
        builder = _BUILDERS.get(path.suffix.lower())
        if builder is None:
            return iter_json_rows(path, label)
        try:
            return _iter_rows(datasets.load_dataset(builder, data_files=str(path), split="train"), label)
        except Exception as exc:
            raise DataError(f"{label}: could not read the {builder} file: {exc}") from None
    if path.is_dir():
        try:
            if any((path / marker).is_file() for marker in _SAVED_DATASET_MARKERS):
                loaded = datasets.load_from_disk(str(path))
            else:
                loaded = datasets.load_dataset(str(path), split=cfg.split)
        except Exception as exc:
            raise DataError(f"{label}: could not load the directory as a dataset: {exc}") from None
        return _iter_rows(_pick_split(loaded, label, cfg.split), label)
    if cfg.train.startswith((".", "/", "~")) or path.suffix.lower() in (".json", ".jsonl", *_BUILDERS):
        raise DataError(f"data file not found: {label}")
    try:
        loaded = datasets.load_dataset(cfg.train, split=cfg.split)
    except Exception as exc:
        raise DataError(
            f"data.train '{label}' does not exist as a local file or directory, and loading it as a Hugging "
            f"Face dataset (split '{cfg.split}') failed: {type(exc).__name__}: {exc}"
        ) from None
    return _iter_rows(_pick_split(loaded, label, cfg.split), label)


def _string(value: dict[str, Any], key: str, *, required: bool = True) -> str | None:
    text = value.get(key)
    if text is None:
        if required:
            raise _BadRecord(f"field '{key}' is missing")
        return None
    if not isinstance(text, str):
        raise _BadRecord(f"field '{key}' must be a string, got {_kind(text)}")
    if required and not text.strip():
        raise _BadRecord(f"field '{key}' is empty")
    return text


def _parse_chat(value: dict[str, Any], key: str) -> tuple[str | None, list[dict[str, str]], str]:
    messages = value.get(key)
    if messages is None:
        raise _BadRecord(f"field '{key}' is missing")
    if not isinstance(messages, list):
        raise _BadRecord(f"field '{key}' must be a list of {{role, content}} messages, got {_kind(messages)}")
    if not messages:
        raise _BadRecord(f"field '{key}' is empty")
    for j, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _BadRecord(
                f"field '{key}'[{j}] must be an object with 'role' and 'content', got {_kind(message)}"
            )
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise _BadRecord(f"field '{key}'[{j}] has role {role!r}; roles must be system, user or assistant")
        if not isinstance(content, str):
            raise _BadRecord(f"field '{key}'[{j}] ({role}) 'content' must be a string, got {_kind(content)}")
        # Chat templates reject (or silently misplace) a system message anywhere but first.
        if role == "system" and j > 0:
            raise _BadRecord(f"field '{key}'[{j}] is a system message; only the first message may be one")
    last = messages[-1]
    if last["role"] != "assistant":
        raise _BadRecord(f"field '{key}' must end with an assistant turn (the last role is '{last['role']}')")
    if not last["content"].strip():
        raise _BadRecord(f"field '{key}'[{len(messages) - 1}] (the final assistant turn) is empty")
    has_system = messages[0]["role"] == "system"
    prompt = [{"role": m["role"], "content": m["content"]} for m in messages[int(has_system) : -1]]
    if not any(m["role"] == "user" for m in prompt):
        raise _BadRecord(f"field '{key}' has no user turn before the final assistant turn")
    return (messages[0]["content"] if has_system else None), prompt, last["content"]


def _normalise(raw: JsonRow, cfg: DataConfig) -> dict[str, Any]:
    value = raw.value
    if not isinstance(value, dict):
        raise _BadRecord(f"expected a JSON object, got {_kind(value)}")
    col = {name: cfg.field_map.get(name, name) for name in FIELDS}
    fmt = cfg.format
    if fmt == "auto":
        if value.get(col["messages"]) is not None:
            fmt = "chat"
        elif value.get(col["prompt"]) is not None or value.get(col["completion"]) is not None:
            fmt = "prompt_completion"
        else:
            raise _BadRecord(
                f"has neither a '{col['messages']}' field nor '{col['prompt']}'/'{col['completion']}' fields "
                f"(keys: {', '.join(map(str, value)) or 'none'}); set data.field_map to name your columns"
            )
    if fmt == "chat":
        system, prompt_messages, completion = _parse_chat(value, col["messages"])
    else:
        prompt = _string(value, col["prompt"])
        completion = _string(value, col["completion"])
        system = _string(value, col["system"], required=False)
        prompt_messages = [{"role": "user", "content": prompt}]
    idx = value.get(col["idx"])
    if idx is None:
        idx = raw.position
    elif not isinstance(idx, int) or isinstance(idx, bool):
        raise _BadRecord(f"field '{col['idx']}' must be an integer, got {idx!r}")
    return {
        "idx": idx,
        "system": system if system and system.strip() else None,
        "prompt_messages": prompt_messages,
        "completion": completion,
        "source": raw.source,
    }


def load_records(cfg: DataConfig) -> tuple[list[dict[str, Any]], DataStats]:
    """Read, validate and normalise the configured records; bad ones raise DataError or are skipped."""
    unknown = sorted(set(cfg.field_map) - set(FIELDS))
    if unknown:
        raise ConfigError(
            f"'data.field_map' has unknown key(s) {', '.join(unknown)}; valid: {', '.join(FIELDS)}"
        )
    stats = DataStats()
    records: list[dict[str, Any]] = []
    problems: list[str] = []
    first_seen: dict[int, str] = {}
    for raw in _open_source(cfg):
        stats.n_read += 1
        try:
            if raw.problem is not None:
                raise _BadRecord(raw.problem)
            record = _normalise(raw, cfg)
            if record["idx"] in first_seen:
                raise _BadRecord(
                    f"duplicate idx {record['idx']} (already used by {first_seen[record['idx']]})"
                )
        except _BadRecord as exc:
            reject_record(f"{raw.where}: {exc}", cfg, stats, problems)
            continue
        first_seen[record["idx"]] = raw.where
        records.append(record)
        if cfg.limit is not None and len(records) >= cfg.limit:
            break
    first = "; ".join(problems[:_MAX_REPORTED])
    if not records:
        detail = f"; first problems: {first}" if problems else ""
        raise DataError(f"{cfg.train}: no usable records ({stats.n_read} read, {stats.n_bad} bad){detail}")
    if problems:
        logger.warning("skipped %d bad record(s) of %s; first: %s", stats.n_bad, cfg.train, first)
    return records, stats
