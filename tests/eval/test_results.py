"""Results: accuracy, mean@n/pass@n, truncation rate, the Table-1 style table, and the files written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from wmss.eval.code import pass_at_k
from wmss.eval.records import BenchmarkRecord
from wmss.eval.results import EvalResult, merge_results, results_markdown, summarize, write_results
from wmss.eval.results import SampleResult as Sample

RECORDS = {
    "gsm8k": [BenchmarkRecord("g/0", "q", "1", "numeric", metadata={"source": "g.json", "source_rows": 9})],
    "aime2025": [BenchmarkRecord("a/0", "q", "1", "latex")],
    "humaneval": [BenchmarkRecord("h/0", "q", "t", "code")],
}


def sample(
    benchmark: str, model: str, prompt_id: str, correct: bool, index: int = 0, truncated: bool = False
):
    return Sample(prompt_id, benchmark, model, index, "out", None, "1", correct, truncated, 3)


def greedy_samples(model: str, gsm8k: list[bool], aime: list[bool], code: list[bool]) -> list[Sample]:
    rows = [sample("gsm8k", model, f"g/{i}", ok, truncated=i == 0) for i, ok in enumerate(gsm8k)]
    rows += [sample("aime2025", model, f"a/{i}", ok) for i, ok in enumerate(aime)]
    return rows + [sample("humaneval", model, f"h/{i}", ok) for i, ok in enumerate(code)]


def test_greedy_accuracy_truncation_and_sources() -> None:
    rows = greedy_samples("m", [True, True, False, True], [False, True], [True])
    gsm8k, aime, code = summarize(rows, RECORDS, "chat_template")
    assert (gsm8k.accuracy, gsm8k.n_records, gsm8k.n_samples, gsm8k.pass_at_n) == (0.75, 4, 1, None)
    assert gsm8k.truncation_rate == 0.25
    assert (gsm8k.kind, gsm8k.source, gsm8k.source_rows, gsm8k.prompt_format) == (
        "numeric",
        "g.json",
        9,
        "chat_template",
    )
    assert (aime.accuracy, aime.source) == (0.5, None)
    assert (code.kind, code.accuracy) == ("code", 1.0)


def test_mean_and_pass_at_n() -> None:
    outcomes = {"g/0": [True, False, False, False], "g/1": [False] * 4, "g/2": [True, True, False, True]}
    rows = [sample("gsm8k", "m", pid, ok, i) for pid, oks in outcomes.items() for i, ok in enumerate(oks)]
    (summary,) = summarize(rows, RECORDS, "plain")
    assert summary.n_samples == 4
    assert summary.accuracy == pytest.approx((1 / 4 + 0 + 3 / 4) / 3)
    assert summary.pass_at_n == pytest.approx(
        (pass_at_k(4, 1, 4) + pass_at_k(4, 0, 4) + pass_at_k(4, 3, 4)) / 3
    )
    assert summary.pass_at_n == pytest.approx(2 / 3)


def two_model_result() -> EvalResult:
    runs = []
    for model, gsm8k, aime, code in (
        ("base", [True, False], [False, False], [False]),
        ("wmss", [True] * 2, [True, False], [True]),
    ):
        rows = greedy_samples(model, gsm8k, aime, code)
        runs.append(EvalResult(rows, summarize(rows, RECORDS, "plain"), {"temperature": 0.0}))
    return merge_results(runs)


def test_table_one_style_markdown_with_math_and_code_averages() -> None:
    table = results_markdown(two_model_result(), details=False)
    assert table == (
        "| Model | gsm8k | aime2025 | humaneval | Math Avg | Code Avg |\n"
        "|---|---:|---:|---:|---:|---:|\n"
        "| base | 50.0 | 0.0 | 0.0 | 25.0 | 0.0 |\n"
        "| wmss | 100.0 | 50.0 | 100.0 | 75.0 | 100.0 |\n"
    )
    details = results_markdown(two_model_result())
    assert "| gsm8k | base | 2/9 | 1 | 50.0 | - | 50.0% | plain |" in details


def test_pass_at_n_table_only_when_sampling() -> None:
    rows = [sample("gsm8k", "m", "g/0", ok, i) for i, ok in enumerate([True, False])]
    text = results_markdown(EvalResult(rows, summarize(rows, RECORDS, "plain")), details=False)
    assert "| Model (mean@n) | gsm8k | Math Avg |" in text
    assert "| Model (pass@n) | gsm8k | Math Avg |\n|---|---:|---:|\n| m | 100.0 | 100.0 |" in text


def test_write_results_files_agree(tmp_path: Path) -> None:
    result = two_model_result()
    paths = write_results(result, tmp_path / "out")
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == [
        "results.md",
        "samples.jsonl",
        "summary.json",
    ]
    lines = paths["samples"].read_text().splitlines()
    assert len(lines) == len(result.samples)
    first = json.loads(lines[0])
    assert set(first) == {
        "prompt_id", "benchmark", "model", "sample", "output", "extracted", "gold", "correct", "truncated", "n_tokens",
    }  # fmt: skip
    summary = json.loads(paths["summary"].read_text())
    assert summary["settings"] == {"temperature": 0.0}
    assert summary["columns"] == ["gsm8k", "aime2025", "humaneval", "Math Avg", "Code Avg"]
    assert summary["table_percent"]["wmss"] == {
        "gsm8k": 100.0, "aime2025": 50.0, "humaneval": 100.0, "Math Avg": 75.0, "Code Avg": 100.0,
    }  # fmt: skip
    assert len(summary["summaries"]) == 6
    assert "pass_at_n_table_percent" not in summary
    assert paths["table"].read_text() == results_markdown(result)
