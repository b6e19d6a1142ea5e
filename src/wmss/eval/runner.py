"""Evaluation loop: prompts -> backend generations -> grades -> summaries; or grading of saved responses.

Grading runs in the calling (main) thread because math-verify times out through SIGALRM. Code benchmarks
execute model-written programs, so they require an explicit opt-in before anything is generated.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from wmss.errors import DataError, WMSSError
from wmss.eval.answers import is_truncated
from wmss.eval.backends import Generation, GenerationBackend
from wmss.eval.code import build_humaneval_program, build_mbpp_program, extract_code
from wmss.eval.datasets import BENCHMARKS, load_benchmark
from wmss.eval.grading import grade, grade_answer_authors
from wmss.eval.prompting import build_prompt, format_question
from wmss.eval.records import KINDS, BenchmarkRecord
from wmss.eval.results import EvalResult, SampleResult, summarize
from wmss.eval.sandbox import check_program, require_code_execution_opt_in, sandbox_status
from wmss.io import JsonRow, iter_json_rows
from wmss.prompts import REASONING_SYSTEM_PROMPT

logger = logging.getLogger(__name__)

RESPONSES_FORMAT = "responses"


def grade_output(
    record: BenchmarkRecord,
    output: str,
    finished: bool | None = None,
    authors_compat: bool = False,
    code_timeout_s: float = 10.0,
) -> tuple[bool, str | None, bool]:
    """(correct, extracted answer or code, truncated) for one output; code records run their tests."""
    if record.kind == "code":
        code = extract_code(output)
        meta = record.metadata
        if "entry_point" in meta:
            program = build_humaneval_program(meta["prompt"], code, meta["test"], meta["entry_point"])
        else:
            program = build_mbpp_program(code, meta["test_list"], meta.get("test_setup_code") or "")
        return check_program(program, timeout_s=code_timeout_s), code, is_truncated(output, finished)
    verdict = grade(output, record.gold, record.kind, record.choices, finished)
    correct = grade_answer_authors(output, record.gold) if authors_compat else verdict.correct
    return correct, verdict.extracted, verdict.truncated


def _load(
    benchmarks: list[str] | dict[str, list[BenchmarkRecord]], data_dir: str | Path | None, limit: int | None
) -> dict[str, list[BenchmarkRecord]]:
    if isinstance(benchmarks, dict):
        loaded = {name: records[:limit] if limit else records for name, records in benchmarks.items()}
    else:
        loaded = {name: load_benchmark(name, data_dir, limit) for name in dict.fromkeys(benchmarks)}
    if not loaded or not all(loaded.values()):
        raise WMSSError("nothing to evaluate: give at least one benchmark with records")
    return loaded


def _code_sandbox(records: list[BenchmarkRecord], allow_code_execution: bool) -> dict[str, Any] | None:
    """Where records run code: require the opt-in, then say what confines that code (for the results)."""
    if not any(record.kind == "code" for record in records):
        return None
    require_code_execution_opt_in(allow_code_execution)
    return sandbox_status().as_dict()


def _grade_generations(
    name: str,
    model_name: str,
    records: list[BenchmarkRecord],
    generations: list[list[Generation]],
    authors_compat: bool,
    code_timeout_s: float,
) -> list[SampleResult]:
    samples = []
    for record, record_generations in tqdm(
        list(zip(records, generations, strict=True)), desc=f"grade {name}", unit="record"
    ):
        for index, generation in enumerate(record_generations):
            correct, extracted, truncated = grade_output(
                record, generation.text, generation.finished, authors_compat, code_timeout_s
            )
            samples.append(
                SampleResult(
                    prompt_id=record.id,
                    benchmark=name,
                    model=model_name,
                    sample=index,
                    output=generation.text,
                    extracted=extracted,
                    gold=record.gold,
                    correct=correct,
                    truncated=truncated,
                    n_tokens=generation.n_tokens,
                )
            )
    return samples


def _log_summaries(result: EvalResult) -> None:
    for s in result.summaries:
        logger.info(
            "%s on %s: accuracy %.1f%% over %d records x %d samples (truncated %.1f%%)",
            s.model,
            s.benchmark,
            100 * s.accuracy,
            s.n_records,
            s.n_samples,
            100 * s.truncation_rate,
        )


def evaluate(
    backend: GenerationBackend,
    benchmarks: list[str] | dict[str, list[BenchmarkRecord]],
    *,
    model_name: str,
    tokenizer: Any,
    data_dir: str | Path | None = None,
    limit: int | None = None,
    system_prompt: str | None = REASONING_SYSTEM_PROMPT,
    n_samples: int = 1,
    allow_code_execution: bool = False,
    authors_compat: bool = False,
    code_timeout_s: float = 10.0,
) -> EvalResult:
    """Generate and grade one model on benchmarks (names or loaded records); tokenizer=None means plain prompts."""
    loaded = _load(benchmarks, data_dir, limit)
    sandbox = _code_sandbox(
        [record for records in loaded.values() for record in records], allow_code_execution
    )
    samples: list[SampleResult] = []
    formats: set[str] = set()
    for name, records in loaded.items():
        built = [build_prompt(tokenizer, format_question(record), system_prompt) for record in records]
        formats.update(fmt for _, fmt in built)
        logger.info("%s: generating %d x %d samples with %s", name, len(records), n_samples, model_name)
        generations = backend.generate([prompt for prompt, _ in built], n=n_samples)
        samples += _grade_generations(name, model_name, records, generations, authors_compat, code_timeout_s)
    prompt_format = "+".join(sorted(formats))
    settings = {
        "benchmarks": list(loaded),
        "data_dir": None if data_dir is None else str(data_dir),
        "limit": limit,
        "system_prompt": system_prompt,
        "n_samples": n_samples,
        "authors_compat": authors_compat,
        "prompt_format": prompt_format,
    }
    if sandbox:
        settings["sandbox"] = sandbox
    result = EvalResult(samples, summarize(samples, loaded, prompt_format), settings)
    _log_summaries(result)
    return result


def _response(row: JsonRow) -> dict[str, Any]:
    """The response object on one row, with its required string fields checked."""
    response = row.as_object()
    for key in ("benchmark", "output"):
        if not isinstance(response.get(key), str):
            raise DataError(f"{row.where}: missing string field {key!r} (fields: {sorted(response)})")
    for key in ("finished", "truncated"):
        if response.get(key) is not None and not isinstance(response[key], bool):
            raise DataError(f"{row.where}: field {key!r} must be true or false, got {response[key]!r}")
    return response


def _finished(response: dict[str, Any]) -> bool | None:
    """Whether the generation ended by itself, as the responses record it: `finished`, or a graded sample's
    `truncated` (samples.jsonl); None when neither is given, and the output's own markup decides."""
    if response.get("finished") is not None:
        return response["finished"]
    return None if response.get("truncated") is None else not response["truncated"]


class _RecordLookup:
    """Finds the record a response refers to: its own gold/kind, or a benchmark record by id or row index."""

    def __init__(self, data_dir: str | Path | None) -> None:
        self.data_dir = data_dir
        self._benchmarks: dict[str, tuple[list[BenchmarkRecord], dict[str, BenchmarkRecord]]] = {}

    def _benchmark(self, name: str) -> tuple[list[BenchmarkRecord], dict[str, BenchmarkRecord]]:
        if name not in self._benchmarks:
            records = load_benchmark(name, self.data_dir)
            self._benchmarks[name] = (records, {record.id: record for record in records})
        return self._benchmarks[name]

    def find(self, located: JsonRow, row: dict[str, Any]) -> BenchmarkRecord:
        where = located.where
        name = row["benchmark"]
        if "gold" in row:
            spec = BENCHMARKS.get(name)
            kind = row.get("kind") or (spec.kind if spec else None)
            if kind not in KINDS or kind == "code":
                raise DataError(
                    f"{where}: a response carrying its own gold needs kind numeric, latex or choice "
                    f"(got {kind!r}); code responses must refer to a benchmark record by id or index"
                )
            # 1-based, like the line numbers in messages, so a user can find the response by its id.
            record_id = str(row.get("id", f"{name}/{located.position + 1}"))
            return BenchmarkRecord(record_id, "", str(row["gold"]), kind, row.get("choices"))
        records, by_id = self._benchmark(name)
        if "id" in row:
            record = by_id.get(str(row["id"]))
            if record is None:
                raise DataError(f"{where}: benchmark {name} has no record with id {row['id']!r}")
            return record
        index = row.get("index")
        if not isinstance(index, int) or not 0 <= index < len(records):
            raise DataError(
                f"{where}: needs an 'id', an 'index' in [0, {len(records)}) or a 'gold' (got {index!r})"
            )
        return records[index]


def grade_responses(
    responses_path: str | Path,
    data_dir: str | Path | None = None,
    *,
    model_name: str | None = None,
    allow_code_execution: bool = False,
    authors_compat: bool = False,
    code_timeout_s: float = 10.0,
) -> EvalResult:
    """Grade a JSONL of saved outputs (benchmark, id|index|gold+kind, output, optional model) without a model."""
    path = Path(responses_path)
    # Every row is checked before any benchmark is loaded, so a malformed file fails fast.
    rows = [(located, _response(located)) for located in iter_json_rows(path)]
    if not rows:
        raise DataError(f"{path}: no responses")
    lookup = _RecordLookup(data_dir)
    matched = [(row, lookup.find(located, row)) for located, row in rows]
    sandbox = _code_sandbox([record for _, record in matched], allow_code_execution)
    default_model = model_name or path.stem
    seen: dict[tuple[str, str, str], int] = defaultdict(int)
    samples: list[SampleResult] = []
    by_benchmark: dict[str, list[BenchmarkRecord]] = {}
    for row, record in tqdm(matched, desc="grade responses", unit="response"):
        model = str(row.get("model") or default_model)
        key = (model, row["benchmark"], record.id)
        sample_index = row.get("sample", seen[key])
        seen[key] += 1
        correct, extracted, truncated = grade_output(
            record, row["output"], _finished(row), authors_compat, code_timeout_s
        )
        samples.append(
            SampleResult(
                prompt_id=record.id,
                benchmark=row["benchmark"],
                model=model,
                sample=sample_index,
                output=row["output"],
                extracted=extracted,
                gold=record.gold,
                correct=correct,
                truncated=truncated,
                n_tokens=row.get("n_tokens"),
            )
        )
        by_benchmark.setdefault(row["benchmark"], []).append(record)
    settings = {
        "responses": str(path),
        "data_dir": None if data_dir is None else str(data_dir),
        "authors_compat": authors_compat,
    }
    if sandbox:
        settings["sandbox"] = sandbox
    result = EvalResult(samples, summarize(samples, by_benchmark, RESPONSES_FORMAT), settings)
    _log_summaries(result)
    return result
