"""Reading back a shard's intermediate results (JSON lines written with `wmss.io.atomic_text`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from wmss.io import iter_json_rows


def read_lines(path: Path) -> Iterator[dict[str, Any]]:
    """The JSON objects of a JSON-lines file written by `wmss.io.atomic_text`; DataError naming a bad line."""
    for row in iter_json_rows(path):
        yield row.as_object()
