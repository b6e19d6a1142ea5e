"""File helpers: atomic output (a crash never leaves a half-written result behind) and one JSON/JSONL reader."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from wmss.errors import DataError

_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 16
# gzip reports a truncated stream as EOFError and corrupt deflate data as zlib.error, not as OSError.
_READ_ERRORS = (OSError, EOFError, zlib.error)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text to `path` via a temporary file in the same directory and an atomic rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically (indented, keys in insertion order)."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: str | Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a scratch directory that replaces `path` only if the block finishes without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass(frozen=True)
class JsonRow:
    """One located row of a JSON(-lines) file or dataset; `problem` replaces `value` when it did not parse."""

    position: int  # 0-based: the item index in an array, the line number minus 1 in JSON lines
    where: str  # "train.jsonl line 7" or "train.json item 3", for messages
    source: str  # "train.jsonl:7" or "train.json[3]", short enough to keep on every record
    value: Any = None
    problem: str | None = None

    def as_object(self) -> dict[str, Any]:
        """The row's JSON object; DataError naming the row when it did not parse or is not an object."""
        if self.problem is not None:
            raise DataError(f"{self.where}: {self.problem}")
        if not isinstance(self.value, dict):
            kind = "null" if self.value is None else type(self.value).__name__
            raise DataError(f"{self.where}: expected a JSON object, got {kind}")
        return self.value


def _open_binary(path: Path) -> IO[bytes]:
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else path.open("rb")


def _is_array(path: Path) -> bool:
    with _open_binary(path) as handle:
        chunk = handle.read(_CHUNK).removeprefix(_BOM)
        # Leading whitespace may be longer than one chunk; the first real byte decides.
        while chunk and not chunk.lstrip():
            chunk = handle.read(_CHUNK)
    return chunk.lstrip()[:1] == b"["


def _line_rows(handle: IO[bytes], label: str) -> Iterator[JsonRow]:
    for lineno, raw in enumerate(handle, start=1):
        where, source = f"{label} line {lineno}", f"{label}:{lineno}"
        try:
            # Without its terminator, a cut-off line's error points at its own column, not at a phantom next line.
            line = raw.decode("utf-8-sig").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield JsonRow(
                lineno - 1, where, source, problem=f"not valid UTF-8 ({exc.reason} at byte {exc.start})"
            )
            continue
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield JsonRow(
                lineno - 1, where, source, problem=f"invalid JSON ({exc.msg} at column {exc.colno})"
            )
            continue
        yield JsonRow(lineno - 1, where, source, value)


def _array_rows(data: bytes, label: str) -> Iterator[JsonRow]:
    # One bad byte or bracket spoils the whole array, so these are file errors rather than row problems.
    try:
        items = json.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DataError(f"{label}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise DataError(
            f"{label} line {exc.lineno}: invalid JSON ({exc.msg} at column {exc.colno})"
        ) from None
    for index, item in enumerate(items):
        yield JsonRow(index, f"{label} item {index}", f"{label}[{index}]", item)


def iter_json_rows(path: Path, label: str | None = None) -> Iterator[JsonRow]:
    """Yield the rows of a JSON array or JSON-lines file (gzipped if named .gz), labelled `label` (default: path)."""
    label = str(path) if label is None else label
    try:
        if not _is_array(path):
            # Streamed: training files can be large, and blank lines still count so line numbers stay true.
            with _open_binary(path) as handle:
                yield from _line_rows(handle, label)
            return
        with _open_binary(path) as handle:
            data = handle.read()
    except _READ_ERRORS as exc:
        raise DataError(f"cannot read {label}: {exc}") from None
    yield from _array_rows(data, label)
