"""What `wmss prepare am-r1` does: input, output and one switch per filter, checked before any work starts."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from wmss.errors import ConfigError
from wmss.prepare.decontam import DEFAULT_NGRAM, BenchmarkIndex
from wmss.prepare.dedup import DEDUP_MODES
from wmss.prepare.filters import FORMATS, POLICIES
from wmss.prepare.shards import HUB_CONFIGS
from wmss.prepare.verify import GRADERS

DEFAULT_MAX_LENGTH = 8192
# Bumped whenever a change to the filters changes per-shard results, so that old results are not reused.
_SHARD_FORMAT = 1


@dataclass(frozen=True)
class PrepareOptions:
    """Settings of one preparation; every filter but `structure` can be switched off."""

    input: str  # a shard file, a directory of shards, or hub:<dataset id>
    output: str  # the training JSONL
    math: str = "verify"  # verify (math-verify against the reference) | keep | drop
    code: str = "drop"  # drop | verify (run the test cases; needs allow_code_execution) | keep
    other: str = "drop"  # samples with neither reference answer nor tests: drop | keep
    response_format: str = "strict"  # strict (the authors' pattern) | loose | off
    grader: str = "wmss"  # wmss (`wmss eval`'s grader) | authors (their LaTeX-only math-verify call)
    tokenizer: str | None = None  # the target model's tokenizer; enables the length filter
    max_length: int | None = None  # tokens per example (prompt + completion); default 8192 with a tokenizer
    system_prompt: str | None = (
        "reasoning"  # as `data.system_prompt` of the training run, counted in the length
    )
    dedup: str = "normalized"  # normalized (exact and normalised prompts) | exact | off
    benchmarks: tuple[str, ...] = ()  # benchmark files or directories to decontaminate against
    ngram: int = DEFAULT_NGRAM
    code_timeout_s: float = 10.0
    allow_code_execution: bool = False
    workers: int | None = None  # default: min(CPU cores, shards left to do)
    hub_configs: tuple[str, ...] = HUB_CONFIGS
    examples_per_category: int = 2

    @property
    def length_limit(self) -> int | None:
        """The token limit, or None when the length filter is off (no tokenizer)."""
        if self.tokenizer is None:
            return None
        return self.max_length or DEFAULT_MAX_LENGTH

    def policy(self, category: str) -> str:
        """What happens to samples of a category: verify, keep or drop."""
        return {"math": self.math, "code": self.code, "other": self.other}[category]

    def validate(self) -> None:
        """ConfigError naming the first invalid setting."""
        for category, allowed in POLICIES.items():
            if self.policy(category) not in allowed:
                raise ConfigError(f"{category}: {self.policy(category)!r} is not one of {', '.join(allowed)}")
        choices = {"response_format": FORMATS, "grader": GRADERS, "dedup": DEDUP_MODES}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ConfigError(f"{name}: {getattr(self, name)!r} is not one of {', '.join(allowed)}")
        if self.max_length is not None and self.tokenizer is None:
            raise ConfigError("max_length needs the target model's tokenizer (--tokenizer) to count tokens")
        positive = {"max_length": self.max_length, "ngram": self.ngram, "workers": self.workers}
        for name, value in positive.items():
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if self.code_timeout_s <= 0:
            raise ConfigError(f"code_timeout_s must be positive, got {self.code_timeout_s}")
        if self.examples_per_category < 0:
            raise ConfigError(f"examples_per_category must be 0 or more, got {self.examples_per_category}")

    def active_filters(self) -> dict[str, bool]:
        """Which filters can drop anything under these settings."""
        return {
            "structure": True,
            "category": "drop" in (self.math, self.code, self.other),
            "format": self.response_format != "off",
            "benchmark_overlap": bool(self.benchmarks),
            "too_long": self.tokenizer is not None,
            "gold_unparseable": self.math == "verify",
            "wrong_answer": self.math == "verify",
            "code_tests_unusable": self.code == "verify",
            "code_failed": self.code == "verify",
            "duplicate_exact": self.dedup != "off",
            "duplicate_normalized": self.dedup == "normalized",
        }

    def shard_settings(self, index: BenchmarkIndex | None) -> dict[str, Any]:
        """Everything a shard's result depends on: a finished shard is reused only under equal settings."""
        return {
            "shard_format": _SHARD_FORMAT,
            "math": self.math,
            "code": self.code,
            "other": self.other,
            "response_format": self.response_format,
            "grader": self.grader,
            "tokenizer": self.tokenizer,
            "max_length": self.length_limit,
            "system_prompt": self.system_prompt,
            "code_timeout_s": self.code_timeout_s,
            "ngram": self.ngram if index else None,
            "benchmarks": index.files if index else {},
        }

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (JSON serialisable), as recorded in the report."""
        return dataclasses.asdict(self)
