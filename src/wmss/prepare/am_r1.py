"""`prepare_am_r1`: shards filtered in parallel and resumably, then merged into the training JSONL and report.

Each shard is filtered on its own (in a process pool when there are several) into `<output>.prepare/`. A
shard finished under the same settings from the same input file is reused, so an interrupted run continues
where it stopped. The merge then reads the shards' survivors in shard order, drops repeated prompts, numbers
the rest `idx` 0, 1, 2, ... (as the authors' script does) and writes the output and the report, both
atomically. Because the merge is deterministic and always redone, a resumed run writes exactly the bytes an
uninterrupted run writes. The work directory can be deleted once the output is final.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from wmss.errors import DataError
from wmss.eval.answers import strip_thinking
from wmss.eval.sandbox import require_code_execution_opt_in
from wmss.io import atomic_text, ensure_directory, ensure_output_file, read_json
from wmss.prepare.decontam import BenchmarkIndex, load_benchmark_index
from wmss.prepare.dedup import Deduplicator
from wmss.prepare.options import PrepareOptions
from wmss.prepare.output import read_lines
from wmss.prepare.process import ShardProcessor, result_paths
from wmss.prepare.report import Tally, build_report, excerpt, length_histogram, write_report
from wmss.prepare.schema import CATEGORIES
from wmss.prepare.shards import Shard, discover_shards

logger = logging.getLogger(__name__)

WORK_SUFFIX = ".prepare"
_ANSWER_TAGS_RE = re.compile(r"</?answer>")
_POLL_S = 0.2


@dataclass(frozen=True)
class PrepareResult:
    """Where the data and the report went, how much was kept, and how many shards were (re)used."""

    output: Path
    report: Path
    read: int
    kept: int
    shards_processed: int
    shards_reused: int


class _Bar:
    """The progress bar: rows read, kept and dropped (kept counts duplicates until the merge drops them)."""

    def __init__(self) -> None:
        self.kept = self.dropped = 0
        self.bar = tqdm(desc="prepare am-r1", unit=" rows", dynamic_ncols=True)

    def advance(self, kept: int, dropped: int) -> None:
        self.kept += kept
        self.dropped += dropped
        self.bar.update(max(kept + dropped, 0))
        self.bar.set_postfix(kept=self.kept, dropped=self.dropped, refresh=False)


def work_directory(output: Path) -> Path:
    """The directory holding per-shard results of `output`."""
    return output.with_name(output.name + WORK_SUFFIX)


def _passed(done: dict[str, Any]) -> tuple[int, int]:
    tally = done["tally"]
    dropped = sum(tally["dropped"].values())
    return tally["read"] - dropped, dropped


def _reusable(shard: Shard, work: Path, settings: dict[str, Any]) -> dict[str, Any] | None:
    samples, done_path = result_paths(work, shard)
    if not (done_path.is_file() and samples.is_file()):
        return None
    try:
        done = read_json(done_path)
    except DataError as exc:
        logger.warning("%s; filtering %s again", exc, shard.label)
        return None
    if (
        not isinstance(done, dict)
        or done.get("settings") != settings
        or done.get("identity") != shard.identity()
    ):
        return None
    return done


def _input_shards(options: PrepareOptions, output: Path, work: Path) -> list[Shard]:
    # An output written into the input directory must not be read back as input on the next run.
    own = (output.resolve(), work.resolve())
    shards = [
        shard
        for shard in discover_shards(options.input, options.hub_configs)
        if shard.path is None
        or not any(path in own for path in (shard.path.resolve(), *shard.path.resolve().parents))
    ]
    if not shards:
        raise DataError(f"{options.input}: no input shards besides the output of this command")
    return shards


# Set in each pool process by `_init_worker`; the processor is built by the first task, so that a failure
# (say, a tokenizer that does not load) comes back as that task's error instead of killing workers in a loop.
_WORKER: dict[str, Any] = {}


def _init_worker(options: PrepareOptions, index: BenchmarkIndex | None, queue: Any) -> None:
    # Ctrl-C reaches the whole process group; the parent alone handles it, by terminating the pool.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER.update(options=options, index=index, queue=queue)


def _process_in_worker(shard: Shard, work: Path, settings: dict[str, Any]) -> dict[str, Any]:
    if "processor" not in _WORKER:
        queue = _WORKER["queue"]
        _WORKER["processor"] = ShardProcessor(
            _WORKER["options"], _WORKER["index"], lambda kept, dropped: queue.put((kept, dropped))
        )
    return _WORKER["processor"].process(shard, work, settings)


def _available_cores() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _drain(queue: Any, bar: _Bar) -> None:
    while not queue.empty():
        bar.advance(*queue.get())


def _run_shards(
    todo: list[Shard],
    options: PrepareOptions,
    index: BenchmarkIndex | None,
    work: Path,
    settings: dict[str, Any],
    bar: _Bar,
) -> Iterator[tuple[Shard, dict[str, Any]]]:
    workers = min(options.workers or _available_cores(), len(todo))
    if workers <= 1:
        processor = ShardProcessor(options, index, bar.advance)
        for shard in todo:
            yield shard, processor.process(shard, work, settings)
        return
    # spawn, not fork: the parent may hold threads (tqdm's monitor, tokenizers) a fork would copy mid-lock.
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    with context.Pool(workers, _init_worker, (options, index, queue)) as pool:
        pending = [(shard, pool.apply_async(_process_in_worker, (shard, work, settings))) for shard in todo]
        while pending:
            pending[0][1].wait(_POLL_S)
            _drain(queue, bar)
            for shard, task in [item for item in pending if item[1].ready()]:
                pending.remove((shard, task))
                yield shard, task.get()


def _example(idx: int, record: dict[str, Any]) -> dict[str, Any]:
    messages = record["messages"]
    return {
        "idx": idx,
        "source": record["source"],
        "origin": record["origin"],
        "prompt": excerpt("\n".join(m["content"] for m in messages[:-1])),
        "answer": excerpt(_ANSWER_TAGS_RE.sub("", strip_thinking(messages[-1]["content"]))),
    }


def _merge(
    shards: list[Shard],
    done: dict[str, dict[str, Any]],
    work: Path,
    output: Path,
    options: PrepareOptions,
    bar: _Bar,
) -> tuple[Tally, list[int], dict[str, list[dict[str, Any]]]]:
    tally = Tally()
    for shard in shards:
        tally.add(Tally.from_dict(done[shard.name]["tally"]))
    dedup = Deduplicator(options.dedup)
    lengths: list[int] = []
    examples: dict[str, list[dict[str, Any]]] = {category: [] for category in CATEGORIES}
    with atomic_text(output) as out:
        for shard in shards:
            for candidate in read_lines(result_paths(work, shard)[0]):
                record = candidate["record"]
                reason = dedup.check(*candidate["keys"])
                if reason is not None:
                    tally.count_dropped(record["source"], record["category"], reason)
                    bar.advance(-1, 1)
                    continue
                idx = tally.kept
                tally.count_kept(record["source"], record["category"])
                out.write(json.dumps({"idx": idx, **record}, ensure_ascii=False) + "\n")
                lengths.append(candidate["length"])
                if len(examples[record["category"]]) < options.examples_per_category:
                    examples[record["category"]].append(_example(idx, record))
    return tally, lengths, {category: picked for category, picked in examples.items() if picked}


def prepare_am_r1(options: PrepareOptions) -> PrepareResult:
    """Filter AM-DeepSeek-R1-Distilled into wmss chat training JSONL plus `prepare_report.json`/`.md`."""
    options.validate()
    if options.code == "verify":
        require_code_execution_opt_in(options.allow_code_execution)
    # An output inside a directory of shards is allowed (it is never read back as a shard); a shard file is not.
    shard_file = options.input if Path(options.input).expanduser().is_file() else None
    inputs = {"--input": shard_file, "--tokenizer": options.tokenizer}
    inputs |= {f"--decontaminate {path}": path for path in options.benchmarks}
    output = ensure_output_file(options.output, inputs)
    work = work_directory(output)
    shards = _input_shards(options, output, work)
    index = load_benchmark_index(options.benchmarks, options.ngram) if options.benchmarks else None
    settings = options.shard_settings(index)
    ensure_directory(work)
    for stale in work.glob(".*.tmp"):
        stale.unlink()  # left by a worker killed mid-shard; its shard has no done marker and is redone
    done = {
        shard.name: result for shard in shards if (result := _reusable(shard, work, settings)) is not None
    }
    todo = [shard for shard in shards if shard.name not in done]
    bar = _Bar()
    try:
        for shard in shards:
            if shard.name in done:
                logger.info("%s: finished by an earlier run, reused", shard.label)
                bar.advance(*_passed(done[shard.name]))
        for shard, result in _run_shards(todo, options, index, work, settings, bar):
            done[shard.name] = result
            logger.info(
                "%s: %d rows read, %d passed the filters",
                shard.label,
                result["tally"]["read"],
                _passed(result)[0],
            )
        tally, lengths, examples = _merge(shards, done, work, output, options, bar)
    finally:
        bar.bar.close()
    report = build_report(
        tally,
        {**options.to_dict(), "max_length": options.length_limit},
        options.active_filters(),
        index.benchmarks if index else [],
        [
            {
                "shard": shard.label,
                "read": done[shard.name]["tally"]["read"],
                "passed": _passed(done[shard.name])[0],
            }
            for shard in shards
        ],
        length_histogram(lengths, "tokens" if options.tokenizer else "characters"),
        examples,
    )
    report_path = write_report(output.parent, report)
    return PrepareResult(output, report_path, tally.read, tally.kept, len(todo), len(shards) - len(todo))
