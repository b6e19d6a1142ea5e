"""Decontamination: a training prompt that shares a word n-gram with an evaluation question is dropped.

Benchmark files are read with `wmss eval`'s loader (every layout it knows). Words are runs of letters and
digits after NFKC and casefolding, so "$17_{b}$" and "17 b" agree. A question shorter than n words counts
as one n-gram of its own length: the prompt must then contain the whole question.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wmss.errors import DataError
from wmss.eval.datasets import load_records_file

DEFAULT_NGRAM = 13
_WORD_RE = re.compile(r"\w+")
_PATTERNS = ("*/test.json", "*/test.jsonl", "*.json", "*.jsonl")


def words(text: str) -> list[str]:
    """The normalised words of a text."""
    return _WORD_RE.findall(unicodedata.normalize("NFKC", text).casefold())


@dataclass
class BenchmarkIndex:
    """The n-grams of every benchmark question, each mapped to the first benchmark (given order) having it."""

    ngram: int
    benchmarks: list[str] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)  # benchmark -> path, size, mtime_ns
    grams: dict[int, dict[str, str]] = field(default_factory=dict)  # length -> {"w1 w2 ...": benchmark}

    def add(self, benchmark: str, question: str) -> None:
        """Index one question of `benchmark`."""
        tokens = words(question)
        if not tokens:
            return
        size = min(self.ngram, len(tokens))
        table = self.grams.setdefault(size, {})
        for start in range(len(tokens) - size + 1):
            table.setdefault(" ".join(tokens[start : start + size]), benchmark)

    def match(self, text: str) -> str | None:
        """The first benchmark (in given order) sharing an n-gram with `text`, or None."""
        tokens = words(text)
        found: set[str] = set()
        for size, table in self.grams.items():
            for start in range(len(tokens) - size + 1):
                benchmark = table.get(" ".join(tokens[start : start + size]))
                if benchmark is not None:
                    found.add(benchmark)
        return min(found, key=self.benchmarks.index) if found else None


def _benchmark_name(path: Path) -> str:
    # As in `wmss eval`: `<dir>/gsm8k/test.json` is named by its folder, `<dir>/gsm8k.jsonl` by its stem.
    stem = path.name.split(".")[0]
    return path.parent.name if stem == "test" else stem


def _benchmark_files(spec: str) -> list[Path]:
    path = Path(spec).expanduser()
    if path.is_file():
        return [path]
    if path.is_dir():
        files = sorted({file for pattern in _PATTERNS for file in path.glob(pattern) if file.is_file()})
        if not files:
            raise DataError(
                f"{spec}: no benchmark files (<name>/test.json, <name>.jsonl, ...) in this directory"
            )
        return files
    raise DataError(f"benchmark file not found: {spec}")


def load_benchmark_index(specs: Sequence[str], ngram: int = DEFAULT_NGRAM) -> BenchmarkIndex:
    """Index the questions of the benchmark files (or directories of `<name>/test.json`) given."""
    index = BenchmarkIndex(ngram)
    for spec in specs:
        for path in _benchmark_files(spec):
            name = _benchmark_name(path)
            if name in index.files:
                raise DataError(
                    f"{path}: benchmark {name!r} is given twice (also {index.files[name]['path']})"
                )
            stat = path.stat()
            index.files[name] = {"path": str(path), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
            index.benchmarks.append(name)
            for record in load_records_file(path, name=name):
                index.add(name, record.question)
    return index
