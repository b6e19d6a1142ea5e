"""Phase 1: supervised fine-tuning M0 -> M1 with completion-only cross-entropy, on TRL's SFTTrainer."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import TrainerCallback
from trl import SFTConfig, SFTTrainer

from wmss.config import RunConfig
from wmss.data import make_collator
from wmss.data.encode import with_loss_tokens
from wmss.io import ensure_directory
from wmss.models import check_model_path, load_causal_lm, load_tokenizer
from wmss.phases.common import (
    StageLayout,
    completion_tokens,
    data_inputs,
    load_training_data,
    save_trained_model,
    write_summary,
)
from wmss.training import JsonlMetricsCallback, NonFiniteGuard, make_training_arguments, train_resumable

logger = logging.getLogger(__name__)


def run_sft(
    config: RunConfig,
    model_path: str,
    output_dir: str | Path,
    train_section: str = "sft",
    dataset: Dataset | None = None,
    callbacks: Sequence[TrainerCallback] = (),
    data_cache: Path | None = None,
    trainer_class: type[SFTTrainer] = SFTTrainer,
    trainer_kwargs: Mapping[str, Any] | None = None,
) -> Path:
    """Fine-tune `model_path` on the data (or `dataset`) with the `train_section` settings; resumes if interrupted."""
    started = time.time()
    # The stage directory is rewritten (model/, checkpoints/): it must neither be nor hold an input.
    inputs = {"the model": model_path, **data_inputs(config)}
    layout = StageLayout(ensure_directory(output_dir, inputs, replaces=True))
    check_model_path(model_path)
    # Built first: a bad setting (an unknown `extra` key) stops the stage before the data is tokenised.
    args = make_training_arguments(
        config,
        train_section,
        layout.checkpoints,
        args_class=SFTConfig,
        dataset_kwargs={"skip_prepare_dataset": True},  # data is tokenised by wmss.data, labels included
        max_length=None,
    )
    tokenizer = load_tokenizer(model_path, config.model)
    data_stats = None
    if dataset is None:
        data = load_training_data(config, tokenizer, data_cache)
        dataset, data_stats = data.dataset, data.stats.to_dict()
    model = load_causal_lm(model_path, config.model, for_training=True)
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=with_loss_tokens(dataset, getattr(config, train_section).loss_tokens),
        processing_class=tokenizer,
        data_collator=make_collator(tokenizer),
        callbacks=[
            JsonlMetricsCallback(layout.metrics),
            NonFiniteGuard(train_section, getattr(config, train_section).max_nonfinite_steps),
            *callbacks,
        ],
        **(trainer_kwargs or {}),
    )
    result = train_resumable(trainer, layout.checkpoints)
    save_trained_model(trainer, layout.model)
    write_summary(
        layout,
        started,
        stage="sft",
        trainer=trainer_class.__name__,
        init=model_path,
        optimizer_steps=trainer.state.global_step,
        completion_tokens_per_epoch=completion_tokens(dataset),
        num_train_epochs=getattr(config, train_section).num_train_epochs,
        train_loss=result.training_loss,
        data=data_stats,
    )
    return layout.model
