"""The shared JSON reader: arrays, JSON lines, gzip, BOM, and where each problem is reported."""

from __future__ import annotations

import gzip
import os
import re
import stat
from pathlib import Path

import pytest

import wmss.io as io_module
from wmss.errors import DataError
from wmss.io import JsonRow, atomic_directory, atomic_write_text, iter_json_rows


def test_array_rows_are_located_by_item(tmp_path: Path) -> None:
    path = tmp_path / "train.json"
    path.write_text('  \n[{"a": 1}, [2], "three"]')
    rows = list(iter_json_rows(path, "train.json"))
    assert rows == [
        JsonRow(0, "train.json item 0", "train.json[0]", {"a": 1}),
        JsonRow(1, "train.json item 1", "train.json[1]", [2]),
        JsonRow(2, "train.json item 2", "train.json[2]", "three"),
    ]


def test_lines_keep_their_numbers_across_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"a": 1}\n\n   \n{"a": 2}\r\n')
    rows = list(iter_json_rows(path))
    assert [(row.position, row.where, row.source, row.value) for row in rows] == [
        (0, f"{path} line 1", f"{path}:1", {"a": 1}),
        (3, f"{path} line 4", f"{path}:4", {"a": 2}),
    ]


@pytest.mark.parametrize("text", ['[{"a": 1}, {"a": 2}]', '{"a": 1}\n{"a": 2}\n'])
def test_gzip_and_bom_are_read_transparently(tmp_path: Path, text: str) -> None:
    plain = tmp_path / "bom.json"
    plain.write_bytes(b"\xef\xbb\xbf" + text.encode())
    packed = tmp_path / "rows.json.gz"
    packed.write_bytes(gzip.compress(b"\xef\xbb\xbf" + text.encode()))
    for path in (plain, packed):
        assert [row.value for row in iter_json_rows(path)] == [{"a": 1}, {"a": 2}]


def test_bad_lines_are_yielded_with_their_problem(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": \n\xff\xfe{}\n{"a": 4}\n')
    rows = list(iter_json_rows(path, "train.jsonl"))
    assert [row.value for row in rows] == [{"a": 1}, None, None, {"a": 4}]
    assert rows[1].where == "train.jsonl line 2"
    assert rows[1].problem == "invalid JSON (Expecting value at column 7)"
    assert rows[2].where == "train.jsonl line 3"
    assert rows[2].problem is not None and rows[2].problem.startswith("not valid UTF-8")
    with pytest.raises(DataError, match=re.escape("train.jsonl line 2: invalid JSON (Expecting value")):
        rows[1].as_object()


def test_as_object_rejects_non_objects_with_their_position(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\nnull\n[1]\n')
    first, second, third = iter_json_rows(path, "rows.jsonl")
    assert first.as_object() == {"a": 1}
    with pytest.raises(DataError, match=re.escape("rows.jsonl line 2: expected a JSON object, got null")):
        second.as_object()
    with pytest.raises(DataError, match=re.escape("rows.jsonl line 3: expected a JSON object, got list")):
        third.as_object()


def test_whole_file_problems_raise_naming_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "test.json"
    broken.write_text('[\n{"a": 1},\n{oops}\n]')
    with pytest.raises(DataError, match=re.escape(f"{broken} line 3: invalid JSON (Expecting property name")):
        list(iter_json_rows(broken))
    binary = tmp_path / "binary.json"
    binary.write_bytes(b'["\xff"]')
    with pytest.raises(
        DataError, match=re.escape("binary.json: not valid UTF-8 (invalid start byte at byte 2)")
    ):
        list(iter_json_rows(binary, "binary.json"))
    with pytest.raises(DataError, match=re.escape("cannot read missing.jsonl: ")):
        list(iter_json_rows(tmp_path / "missing.jsonl", "missing.jsonl"))
    truncated = tmp_path / "cut.jsonl.gz"
    truncated.write_bytes(gzip.compress(b'{"a": 1}\n' * 100)[:-12])
    with pytest.raises(DataError, match=re.escape("cannot read cut.jsonl.gz: ")):
        list(iter_json_rows(truncated, "cut.jsonl.gz"))


def test_atomic_outputs_get_the_umask_permissions_not_the_private_temp_ones(tmp_path):
    old = os.umask(0o022)
    try:
        io_module._umask.cache_clear()
        atomic_write_text(tmp_path / "a.txt", "x")
        with atomic_directory(tmp_path / "d") as scratch:
            (scratch / "f").write_text("y")
        assert stat.S_IMODE((tmp_path / "a.txt").stat().st_mode) == 0o644
        assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o755
    finally:
        os.umask(old)
        io_module._umask.cache_clear()
