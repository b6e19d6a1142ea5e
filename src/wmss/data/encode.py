"""Tokenising rendered records into (idx, input_ids, labels) examples, fingerprinting them, collating batches.

Prompt and completion are tokenised separately and concatenated, so the boundary between them is exact;
template text is tokenised without special tokens (templates write their own BOS), the plain format gets the
tokenizer's BOS when it has one and adds it. Labels are aligned with `input_ids` (the model shifts them) and
are -100 on every prompt token: only completion tokens are trained and scored. Examples longer than
`data.max_length` lose the end of their completion (`overlong: truncate`, the prompt stays whole; dropped
when not even one completion token fits) or are dropped (`overlong: drop`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import datasets
import numpy as np
from jinja2 import TemplateError

from wmss.config import DataConfig
from wmss.data.records import MAX_NAMED, DataStats, load_records, reject_record
from wmss.data.render import has_chat_template, render_example
from wmss.defaults import IGNORE_INDEX
from wmss.errors import DataError, ModelError

if TYPE_CHECKING:
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

logger = logging.getLogger(__name__)

FEATURES = datasets.Features(
    {
        "idx": datasets.Value("int64"),
        "input_ids": datasets.Sequence(datasets.Value("int64")),
        "labels": datasets.Sequence(datasets.Value("int64")),
    }
)
_BATCH = 1024
_MAX_REPORTED = 5


@dataclass
class TrainingData:
    """The tokenised training set, what happened on the way, and a hash identifying its exact content."""

    dataset: datasets.Dataset
    stats: DataStats
    fingerprint: str


def _plain_bos(tokenizer: Any) -> list[int]:
    bos = tokenizer.bos_token_id
    if bos is None:
        return []
    return [bos] if tokenizer("a", add_special_tokens=True)["input_ids"][:1] == [bos] else []


def _encode(tokenizer: Any, pairs: Sequence[tuple[str, str]]) -> tuple[list[list[int]], list[list[int]]]:
    prefix = [] if has_chat_template(tokenizer) else _plain_bos(tokenizer)
    prompts = tokenizer([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
    completions = tokenizer([c for _, c in pairs], add_special_tokens=False)["input_ids"]
    return [prefix + list(ids) for ids in prompts], [list(ids) for ids in completions]


def encode_example(
    record: dict[str, Any], tokenizer: Any, system_prompt: str | None
) -> tuple[list[int], list[int]]:
    """Return (prompt_ids, completion_ids) of a record exactly as training sees them (before max_length)."""
    prompts, completions = _encode(tokenizer, [render_example(record, tokenizer, system_prompt)])
    return prompts[0], completions[0]


def _tokenize_chunk(
    records: Sequence[dict[str, Any]], tokenizer: Any, cfg: DataConfig, stats: DataStats, problems: list[str]
) -> dict[str, list[Any]]:
    kept: list[dict[str, Any]] = []
    pairs: list[tuple[str, str]] = []
    for record in records:
        try:
            pairs.append(render_example(record, tokenizer, cfg.system_prompt))
        except TemplateError as exc:
            reject_record(
                f"{record['source']}: the chat template rejected the record ({exc})", cfg, stats, problems
            )
            continue
        kept.append(record)
    columns: dict[str, list[Any]] = {"idx": [], "input_ids": [], "labels": []}
    if not pairs:
        return columns
    prompts, completions = _encode(tokenizer, pairs)
    for record, prompt_ids, completion_ids in zip(kept, prompts, completions, strict=True):
        room = cfg.max_length - len(prompt_ids)
        if len(completion_ids) > room:
            if cfg.overlong == "drop" or room < 1:
                stats.n_dropped += 1
                if len(stats.dropped) < MAX_NAMED:
                    stats.dropped.append({"idx": record["idx"], "source": record["source"]})
                continue
            completion_ids = completion_ids[:room]
            stats.n_truncated += 1
        columns["idx"].append(record["idx"])
        columns["input_ids"].append(prompt_ids + completion_ids)
        columns["labels"].append([IGNORE_INDEX] * len(prompt_ids) + completion_ids)
        stats.n_completion_tokens += len(completion_ids)
    return columns


def tokenize_records(
    records: Sequence[dict[str, Any]], tokenizer: Any, cfg: DataConfig, stats: DataStats
) -> datasets.Dataset:
    """Tokenise records into a Dataset of idx/input_ids/labels (prompt labels -100); updates `stats`."""
    problems: list[str] = []
    # Chunks go to Arrow as they are done: python lists of ints cost several times the Arrow size.
    parts = [
        datasets.Dataset.from_dict(
            _tokenize_chunk(records[start : start + _BATCH], tokenizer, cfg, stats, problems),
            features=FEATURES,
        )
        for start in range(0, len(records), _BATCH)
    ]
    if problems:
        logger.warning(
            "skipped %d record(s) the chat template rejected; first: %s",
            len(problems),
            "; ".join(problems[:_MAX_REPORTED]),
        )
    if stats.n_dropped:
        logger.warning(
            "dropped %d record(s) longer than data.max_length=%d (%s); first: %s",
            stats.n_dropped,
            cfg.max_length,
            "data.overlong: drop" if cfg.overlong == "drop" else "the prompt alone fills it",
            "; ".join(f"idx {d['idx']} ({d['source']})" for d in stats.dropped[:_MAX_REPORTED]),
        )
    stats.n_examples = sum(len(part) for part in parts)
    if stats.n_examples == 0:
        raise DataError(
            f"{cfg.train or 'data'}: no examples left "
            f"({stats.n_dropped} dropped as longer than data.max_length={cfg.max_length}, {stats.n_bad} bad)"
        )
    return datasets.concatenate_datasets(parts)


def dataset_fingerprint(dataset: datasets.Dataset) -> str:
    """Short sha256 over every example's idx, input_ids and labels, in order."""
    digest = hashlib.sha256()
    for batch in dataset.iter(batch_size=_BATCH):
        for idx, input_ids, labels in zip(batch["idx"], batch["input_ids"], batch["labels"], strict=True):
            # Lengths are hashed too, so that no two different examples serialise to the same bytes.
            digest.update(np.asarray([idx, len(input_ids)], dtype="<i8").tobytes())
            digest.update(np.asarray(input_ids, dtype="<i8").tobytes())
            digest.update(np.asarray(labels, dtype="<i8").tobytes())
    return digest.hexdigest()[:16]


def build_dataset(cfg: DataConfig, tokenizer: Any) -> TrainingData:
    """Load, tokenise and fingerprint the configured training data; logs a one-line summary."""
    records, stats = load_records(cfg)
    dataset = tokenize_records(records, tokenizer, cfg, stats)
    fingerprint = dataset_fingerprint(dataset)
    logger.info(
        "data %s: %d examples (%d bad, %d truncated, %d dropped), %d completion tokens, fingerprint %s",
        cfg.train,
        stats.n_examples,
        stats.n_bad,
        stats.n_truncated,
        stats.n_dropped,
        stats.n_completion_tokens,
        fingerprint,
    )
    return TrainingData(dataset, stats, fingerprint)


def with_loss_tokens(dataset: datasets.Dataset, loss_tokens: str) -> datasets.Dataset:
    """The dataset as a stage trains it: labels as encoded ("completion") or every token labelled ("all")."""
    if loss_tokens == "completion":
        return dataset
    if loss_tokens != "all":
        raise ValueError(f"loss_tokens must be completion or all, got {loss_tokens!r}")
    return dataset.map(
        lambda example: {"labels": example["input_ids"]}, features=FEATURES, desc="labels: all"
    )


def make_collator(tokenizer: Any) -> DataCollatorForLanguageModeling:
    """TRL's collator: right padding with pad (else eos) token, labels padded with -100, attention_mask."""
    # Imported here: trl pulls in the whole training stack, which loading data does not need.
    from trl.trainer.sft_trainer import DataCollatorForLanguageModeling

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    if pad is None:
        raise ModelError("the tokenizer defines neither a pad token nor an eos token; set one to pad batches")
    return DataCollatorForLanguageModeling(pad_token_id=pad)
