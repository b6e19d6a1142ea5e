"""Pieces every phase shares: a stage's output layout, final-model writing, dataset loading."""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from transformers import GenerationConfig, PreTrainedModel, PreTrainedTokenizerBase, Trainer

from wmss.config import RunConfig
from wmss.data import IGNORE_INDEX, TrainingData, build_dataset
from wmss.data.cache import cached_dataset
from wmss.errors import ConfigError
from wmss.io import atomic_directory, atomic_write_json
from wmss.training import process_state

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class StageLayout:
    """Where one training stage writes: final model, resumable checkpoints, metric log, summary."""

    root: Path

    @property
    def model(self) -> Path:
        """Final standalone HF checkpoint."""
        return self.root / "model"

    @property
    def checkpoints(self) -> Path:
        """Trainer checkpoints (`checkpoint-N`), used to resume."""
        return self.root / "checkpoints"

    @property
    def metrics(self) -> Path:
        """One JSON line per logging step (loss, grad norms, learning rate)."""
        return self.root / "metrics.jsonl"

    @property
    def summary(self) -> Path:
        """What the stage did: steps, tokens, timings, data statistics."""
        return self.root / "summary.json"


def data_inputs(config: RunConfig) -> dict[str, str | None]:
    """The configured inputs every phase reads besides its models: the training data, a separate tokenizer."""
    return {"the training data": config.data.train, "the tokenizer": config.model.tokenizer}


def save_model_dir(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, dest: Path) -> Path:
    """Write a standalone HF checkpoint (safetensors, config, tokenizer, generation config) atomically."""
    with atomic_directory(dest) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        generation = model.generation_config or GenerationConfig.from_model_config(model.config)
        generation.save_pretrained(tmp)
    logger.info("wrote model to %s", dest)
    return dest


def save_trained_model(trainer: Trainer, dest: Path) -> Path:
    """Save a trainer's model to `dest` atomically; collective under ZeRO-3/FSDP, written by the main process."""
    partial = dest.with_name(dest.name + ".partial")
    trainer.save_model(str(partial))
    if trainer.is_world_process_zero():
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(partial, dest)
        logger.info("wrote model to %s", dest)
    trainer.accelerator.wait_for_everyone()
    return dest


def load_training_data(
    config: RunConfig, tokenizer: PreTrainedTokenizerBase, cache_dir: Path | None = None
) -> TrainingData:
    """Load and tokenise the configured training data (reusing a cached copy under `cache_dir` if given)."""
    if not config.data.train:
        raise ConfigError(
            "'data.train' is required: a JSONL file or HF dataset name (--data or --set data.train=)"
        )
    if cache_dir is None:
        return build_dataset(config.data, tokenizer)
    state = process_state()
    with state.main_process_first():  # the main process writes the cache, the others read it
        return cached_dataset(config.data, tokenizer, cache_dir, write=state.is_main_process)


def write_summary(layout: StageLayout, started: float, **fields: Any) -> dict[str, Any]:
    """Write the stage summary JSON (with wall time, main process only) and return it."""
    summary = {"duration_s": round(time.time() - started, 3), **fields}
    if process_state().is_main_process:
        atomic_write_json(layout.summary, summary)
    return summary


def completion_tokens(dataset: Any) -> int:
    """Number of trained (completion) tokens in a tokenised dataset (causal shift applied)."""
    return int(sum(sum(1 for label in labels[1:] if label != IGNORE_INDEX) for labels in dataset["labels"]))
