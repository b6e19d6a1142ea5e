"""Evaluation results: per-sample rows, per-benchmark summaries, the Table-1 style table, atomic files.

Files written to the output directory:

* ``samples.jsonl``: one row per generated sample (prompt_id, benchmark, model, sample, output, extracted,
  gold, correct, truncated, n_tokens).
* ``summary.json``: settings, per-benchmark summaries (fractions) and the table numbers (percent).
* ``results.md``: the table(s) and the per-benchmark details.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wmss.eval.code import pass_at_k
from wmss.eval.records import BenchmarkRecord
from wmss.io import atomic_write_text

MATH_AVG = "Math Avg"
CODE_AVG = "Code Avg"


@dataclass
class SampleResult:
    """The grade of one generated sample of one benchmark record."""

    prompt_id: str
    benchmark: str
    model: str
    sample: int
    output: str
    extracted: str | None
    gold: str
    correct: bool
    truncated: bool
    n_tokens: int | None


@dataclass
class BenchmarkSummary:
    """Scores of one model on one benchmark; accuracy is mean@n when there are n > 1 samples per record."""

    benchmark: str
    model: str
    kind: str
    n_records: int
    n_samples: int
    accuracy: float
    pass_at_n: float | None
    truncation_rate: float
    prompt_format: str
    source: str | None = None
    source_rows: int | None = None


@dataclass
class EvalResult:
    """Everything one evaluation produced: per-sample rows, per-benchmark summaries and the settings used."""

    samples: list[SampleResult]
    summaries: list[BenchmarkSummary]
    settings: dict[str, Any] = field(default_factory=dict)


def summarize(
    samples: list[SampleResult], records: dict[str, list[BenchmarkRecord]], prompt_format: str
) -> list[BenchmarkSummary]:
    """Per (model, benchmark) scores; pass@n uses the smallest sample count any record got."""
    grouped: dict[tuple[str, str], dict[str, list[SampleResult]]] = defaultdict(lambda: defaultdict(list))
    for sample in samples:
        grouped[sample.model, sample.benchmark][sample.prompt_id].append(sample)
    summaries = []
    for (model, benchmark), by_record in grouped.items():
        counts = [(len(rows), sum(row.correct for row in rows)) for rows in by_record.values()]
        n = min(total for total, _ in counts)
        rows = [row for record_rows in by_record.values() for row in record_rows]
        first = records[benchmark][0]
        summaries.append(
            BenchmarkSummary(
                benchmark=benchmark,
                model=model,
                kind=first.kind,
                n_records=len(by_record),
                n_samples=n,
                # Mean of per-record means: every record weighs the same even if sample counts differ.
                accuracy=sum(correct / total for total, correct in counts) / len(counts),
                pass_at_n=sum(pass_at_k(total, correct, n) for total, correct in counts) / len(counts)
                if n > 1
                else None,
                truncation_rate=sum(row.truncated for row in rows) / len(rows),
                prompt_format=prompt_format,
                source=first.metadata.get("source"),
                source_rows=first.metadata.get("source_rows"),
            )
        )
    return summaries


def merge_results(results: list[EvalResult]) -> EvalResult:
    """Concatenate the results of several models (settings of the first one win)."""
    return EvalResult(
        samples=[sample for result in results for sample in result.samples],
        summaries=[summary for result in results for summary in result.summaries],
        settings=results[0].settings if results else {},
    )


def _score(summary: BenchmarkSummary, pass_at_n: bool) -> float:
    # With one sample per record pass@1 is the accuracy, so mixed runs still fill every pass@n cell.
    if pass_at_n and summary.pass_at_n is not None:
        return summary.pass_at_n
    return summary.accuracy


def _table_numbers(summaries: list[BenchmarkSummary], pass_at_n: bool = False) -> dict[str, dict[str, float]]:
    """{model: {benchmark or average column: percent}} with macro averages over math and code benchmarks."""
    table: dict[str, dict[str, float]] = {}
    for model in dict.fromkeys(summary.model for summary in summaries):
        own = [summary for summary in summaries if summary.model == model]
        row = {summary.benchmark: 100 * _score(summary, pass_at_n) for summary in own}
        for column, is_code in ((MATH_AVG, False), (CODE_AVG, True)):
            values = [row[summary.benchmark] for summary in own if (summary.kind == "code") is is_code]
            if values:
                row[column] = sum(values) / len(values)
        table[model] = row
    return table


def _columns(summaries: list[BenchmarkSummary]) -> list[str]:
    columns = list(dict.fromkeys(summary.benchmark for summary in summaries))
    kinds = {summary.kind for summary in summaries}
    columns += [MATH_AVG] if kinds - {"code"} else []
    columns += [CODE_AVG] if "code" in kinds else []
    return columns


def _markdown(title: str, columns: list[str], table: dict[str, dict[str, float]]) -> str:
    lines = [
        f"| {title} | " + " | ".join(columns) + " |",
        "|---|" + "---:|" * len(columns),
    ]
    for model, row in table.items():
        cells = [f"{row[column]:.1f}" if column in row else "-" for column in columns]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _details(summaries: list[BenchmarkSummary]) -> str:
    lines = [
        "| Benchmark | Model | Records used | n | Accuracy | pass@n | Truncated | Prompt |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for s in summaries:
        pass_n = "-" if s.pass_at_n is None else f"{100 * s.pass_at_n:.1f}"
        rows = f"{s.n_records}" if s.source_rows is None else f"{s.n_records}/{s.source_rows}"
        lines.append(
            f"| {s.benchmark} | {s.model} | {rows} | {s.n_samples} | {100 * s.accuracy:.1f} | {pass_n} "
            f"| {100 * s.truncation_rate:.1f}% | {s.prompt_format} |"
        )
    return "\n".join(lines)


def results_markdown(result: EvalResult, details: bool = True) -> str:
    """Markdown: accuracy table (mean@n when sampling), pass@n table when any n > 1, optional details."""
    columns = _columns(result.summaries)
    sampled = any(summary.pass_at_n is not None for summary in result.summaries)
    parts = [_markdown("Model (mean@n)" if sampled else "Model", columns, _table_numbers(result.summaries))]
    if sampled:
        parts.append(_markdown("Model (pass@n)", columns, _table_numbers(result.summaries, pass_at_n=True)))
    if details:
        parts.append(_details(result.summaries))
    return "\n\n".join(parts) + "\n"


def summary_dict(result: EvalResult) -> dict[str, Any]:
    """The JSON-ready summary: settings, per-benchmark summaries and the table numbers in percent."""
    data: dict[str, Any] = {
        "settings": result.settings,
        "columns": _columns(result.summaries),
        "table_percent": _table_numbers(result.summaries),
        "summaries": [asdict(summary) for summary in result.summaries],
    }
    if any(summary.pass_at_n is not None for summary in result.summaries):
        data["pass_at_n_table_percent"] = _table_numbers(result.summaries, pass_at_n=True)
    return data


def result_paths(output_dir: str | Path) -> dict[str, Path]:
    """The files `write_results` writes, by role."""
    output_dir = Path(output_dir)
    return {
        "samples": output_dir / "samples.jsonl",
        "summary": output_dir / "summary.json",
        "table": output_dir / "results.md",
    }


def write_results(result: EvalResult, output_dir: str | Path) -> dict[str, Path]:
    """Write samples.jsonl, summary.json and results.md atomically; return their paths by role."""
    paths = result_paths(output_dir)
    samples = "".join(json.dumps(asdict(sample), ensure_ascii=False) + "\n" for sample in result.samples)
    atomic_write_text(paths["samples"], samples)
    atomic_write_text(paths["summary"], json.dumps(summary_dict(result), indent=2, ensure_ascii=False) + "\n")
    atomic_write_text(paths["table"], results_markdown(result))
    return paths
