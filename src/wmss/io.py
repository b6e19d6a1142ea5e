"""File helpers: atomic output (a crash never leaves a half-written result behind) and one JSON/JSONL reader."""

from __future__ import annotations

import contextlib
import functools
import gzip
import json
import os
import shutil
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from wmss.errors import DataError, WMSSError

_BOM = b"\xef\xbb\xbf"
_CHUNK = 1 << 16
# gzip reports a truncated stream as EOFError and corrupt deflate data as zlib.error, not as OSError.
_READ_ERRORS = (OSError, EOFError, zlib.error)


class OutputPathError(WMSSError):
    """An output path cannot be created or written (a parent is a file, no permission, read-only disk)."""


def _blocking_file(path: Path) -> Path | None:
    # The nearest existing ancestor that is not a directory: "afile/x.json" fails because "afile" is a file.
    for parent in [path, *path.parents]:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


# A command's inputs, by the option or config key that names them: {"--data": "train.jsonl", ...}.
Inputs = Mapping[str, str | Path | None]


def check_not_input(output: str | Path, inputs: Inputs, replaces: bool = False) -> None:
    """Refuse an output that is one of the command's inputs or lies inside an input directory; with `replaces`
    (the output directory is replaced or emptied as a whole) also one that holds an input."""
    target = Path(output).expanduser().resolve()
    for role, given in inputs.items():
        if given is None or not str(given) or not Path(given).expanduser().exists():
            continue  # hub ids and dataset names are not files this command could overwrite
        source = Path(given).expanduser().resolve()
        if target == source:
            problem = f"it is the command's input ({role})"
        elif source.is_dir() and target.is_relative_to(source):
            problem = f"it lies inside the input directory {given} ({role})"
        elif replaces and source.is_relative_to(target):
            problem = f"it holds the input {given} ({role}), which writing it would delete or replace"
        else:
            continue
        raise OutputPathError(
            f"cannot write to {output}: {problem}; wmss never writes over its inputs, "
            "choose another output path"
        )


def ensure_directory(path: str | Path, inputs: Inputs | None = None, replaces: bool = False) -> Path:
    """Create directory `path` (and parents) and check a file can be written there; OutputPathError otherwise.

    `inputs` are the command's inputs, which the directory must not be, lie inside or (with `replaces`) hold.
    """
    path = Path(path)
    check_not_input(path, inputs or {}, replaces)
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".wmss-write-check.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        blocker = _blocking_file(path)
        reason = f"{blocker} is a file, not a directory" if blocker else exc.strerror or str(exc)
        raise OutputPathError(f"cannot write to {path}: {reason}; choose another output path") from None
    return path


def ensure_output_file(path: str | Path, inputs: Inputs | None = None) -> Path:
    """Check, before any work, that file `path` can be written (its directory created) and is no input."""
    path = Path(path)
    check_not_input(path, inputs or {})
    if path.is_dir():
        raise OutputPathError(f"cannot write to {path}: it is a directory; give a file name")
    ensure_directory(path.parent)
    return path


@functools.cache
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def published_mode(directory: bool = False) -> int:
    """The permissions a plainly created file (or directory) gets under the process umask."""
    # mkstemp/mkdtemp create 0600/0700 for privacy while writing; the renamed result must look like any
    # other output, or other users of a shared run directory (and the docker/NFS copy step) cannot read it.
    return (0o777 if directory else 0o666) & ~_umask()


@contextlib.contextmanager
def atomic_text(path: str | Path) -> Iterator[IO[str]]:
    """A text handle whose content replaces `path` (via a temporary file and a rename) only if the block succeeds."""
    path = Path(path)
    ensure_directory(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, published_mode())
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write text to `path` via a temporary file in the same directory and an atomic rename."""
    with atomic_text(path) as handle:
        handle.write(text)
    return Path(path)


def atomic_write_json(path: str | Path, data: Any) -> Path:
    """Write JSON atomically (indented, keys in insertion order)."""
    return atomic_write_text(path, json.dumps(data, indent=2, default=str) + "\n")


def read_json(path: str | Path, remedy: str = "") -> Any:
    """Read a JSON file; DataError naming the file and the problem (and `remedy`, what to re-run) if it is bad."""
    path = Path(path)
    hint = f"; {remedy}" if remedy else ""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found{hint}") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not valid UTF-8 ({exc.reason} at byte {exc.start}){hint}") from None
    except OSError as exc:
        raise DataError(f"cannot read {path}: {exc.strerror or exc}{hint}") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        # An error at the very end means the writer was cut off (or the file was cut), not a typo inside it.
        cut = exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string")
        kind = "truncated" if cut else "invalid"
        raise DataError(
            f"{path} line {exc.lineno}: {kind} JSON ({exc.msg} at column {exc.colno}){hint}"
        ) from None


def read_json_object(path: str | Path, fields: dict[str, type | tuple[type, ...]], remedy: str = "") -> dict:
    """Read a JSON object and check that each of `fields` is present with the given type(s)."""
    data = read_json(path, remedy)
    hint = f"; {remedy}" if remedy else ""
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a JSON object, got {type(data).__name__}{hint}")
    for key, kinds in fields.items():
        if key not in data:
            raise DataError(f"{path}: missing field '{key}'{hint}")
        if not isinstance(data[key], kinds) or (isinstance(data[key], bool) and bool not in _as_tuple(kinds)):
            raise DataError(f"{path}: field '{key}' has the wrong type ({type(data[key]).__name__}){hint}")
    return data


def _as_tuple(kinds: type | tuple[type, ...]) -> tuple[type, ...]:
    return kinds if isinstance(kinds, tuple) else (kinds,)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a scratch directory that replaces `path` only if the block finishes without error."""
    path = Path(path)
    ensure_directory(path.parent)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        yield tmp
        tmp.chmod(published_mode(directory=True))
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


def json_line_rows(handle: IO[bytes], label: str) -> Iterator[JsonRow]:
    """The rows of a JSON-lines byte stream; undecodable or invalid lines become rows with a `problem`."""
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
                yield from json_line_rows(handle, label)
            return
        with _open_binary(path) as handle:
            data = handle.read()
    except _READ_ERRORS as exc:
        raise DataError(f"cannot read {label}: {exc}") from None
    yield from _array_rows(data, label)
