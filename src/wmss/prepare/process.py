"""One shard, start to end: every row read, judged by the per-sample filters, the survivors written down.

A shard's result is two files in the work directory: `<shard>.jsonl` (the samples that passed, with their
prompt keys and length, for the merge to de-duplicate and number) and `<shard>.json` (the counts, the shard's
identity and the settings). The `.json` is written last, atomically: its presence means the shard is done.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jinja2 import TemplateError

from wmss.io import atomic_text, atomic_write_json
from wmss.prepare.decontam import BenchmarkIndex
from wmss.prepare.dedup import prompt_keys
from wmss.prepare.filters import format_ok, token_length
from wmss.prepare.options import PrepareOptions
from wmss.prepare.report import Tally
from wmss.prepare.schema import Sample, read_sample
from wmss.prepare.shards import Shard, iter_rows
from wmss.prepare.verify import answer_correct, code_passes, gold_parses

Progress = Callable[[int, int], None]
_REPORT_EVERY = 64


def result_paths(work: Path, shard: Shard) -> tuple[Path, Path]:
    """(samples file, done marker) of a shard in the work directory."""
    return work / f"{shard.name}.jsonl", work / f"{shard.name}.json"


class ShardProcessor:
    """Applies the per-sample filters; holds what is costly to set up (tokenizer, benchmark index)."""

    def __init__(self, options: PrepareOptions, index: BenchmarkIndex | None, progress: Progress) -> None:
        self.options = options
        self.index = index
        self.progress = progress
        self.tokenizer: Any = None
        if options.tokenizer is not None:
            # Imported here: loading models pulls in torch, which a run without a tokenizer does not need.
            from wmss.models import load_tokenizer

            self.tokenizer = load_tokenizer(options.tokenizer)

    def judge(self, sample: Sample) -> tuple[str | None, str | None, int]:
        """(filter that drops the sample or None, overlapping benchmark or None, length)."""
        options = self.options
        if sample.structure_problem is not None:
            return "structure", None, 0
        policy = options.policy(sample.category)
        if policy == "drop":
            return "category", None, 0
        if not format_ok(sample.response, sample.category, options.response_format):
            return "format", None, 0
        if self.index is not None and (benchmark := self.index.match(sample.prompt_text)) is not None:
            return "benchmark_overlap", benchmark, 0
        if self.tokenizer is None:
            length = len(sample.prompt_text) + len(sample.response)
        else:
            try:
                length = token_length(
                    sample.prompt_messages, sample.response, self.tokenizer, options.system_prompt
                )
            except TemplateError:
                # Training would reject the record the same way (`wmss.data.encode`): not a usable sample.
                return "structure", None, 0
            if length > (options.length_limit or 0):
                return "too_long", None, length
        if policy == "verify":
            return self._verify(sample), None, length
        return None, None, length

    def _verify(self, sample: Sample) -> str | None:
        if sample.category == "math":
            gold = sample.reference_answer or ""
            if not gold_parses(gold, self.options.grader):
                return "gold_unparseable"
            return None if answer_correct(sample.response, gold, self.options.grader) else "wrong_answer"
        passed = code_passes(sample.response, sample.test_case, self.options.code_timeout_s)
        if passed is None:
            return "code_tests_unusable"
        return None if passed else "code_failed"

    def process(self, shard: Shard, work: Path, settings: dict[str, Any]) -> dict[str, Any]:
        """Filter every row of a shard into the work directory; returns the shard's done record."""
        samples_path, done_path = result_paths(work, shard)
        identity = shard.identity()
        tally = Tally()
        passed = dropped = 0
        with atomic_text(samples_path) as out:
            for row in iter_rows(shard):
                sample = read_sample(row)
                tally.count_read(sample.source, sample.category)
                reason, benchmark, length = self.judge(sample)
                if reason is None:
                    out.write(json.dumps(_candidate(sample, length), ensure_ascii=False) + "\n")
                    passed += 1
                else:
                    tally.count_dropped(sample.source, sample.category, reason, benchmark)
                    dropped += 1
                if (passed + dropped) % _REPORT_EVERY == 0:
                    self.progress(passed, dropped)
                    passed = dropped = 0
        self.progress(passed, dropped)
        done = {"shard": shard.label, "identity": identity, "settings": settings, "tally": tally.to_dict()}
        atomic_write_json(done_path, done)
        return done


def _candidate(sample: Sample, length: int) -> dict[str, Any]:
    return {
        "keys": prompt_keys(sample.prompt_text),
        "length": length,
        "record": {
            "messages": list(sample.messages),
            "source": sample.source,
            "category": sample.category,
            "origin": sample.origin,
        },
    }
