"""Writing large JSON-lines files atomically, and reading back a shard's intermediate results."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from wmss.io import ensure_directory, iter_json_rows


@contextlib.contextmanager
def atomic_lines(path: Path) -> Iterator[IO[str]]:
    """A text handle whose content replaces `path` only if the block finishes without error."""
    # `wmss.io.atomic_write_text` needs the whole text in memory; the prepared data can be gigabytes.
    ensure_directory(path.parent)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file written by `atomic_lines`; DataError naming a bad line."""
    for row in iter_json_rows(path):
        yield row.as_object()
