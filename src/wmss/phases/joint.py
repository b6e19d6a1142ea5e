"""Phase 3: joint training of weak and strong on mixed logits over the curriculum's active set (Eq. 11-12)."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from datasets import Dataset
from transformers import TrainerCallback

from wmss.config import RunConfig
from wmss.data import TrainingData, make_collator
from wmss.data.encode import with_loss_tokens
from wmss.errors import ConfigError, DataError
from wmss.io import ensure_directory
from wmss.method.settings import JointSettings
from wmss.method.trainer import WMSSConfig, WMSSTrainer
from wmss.models import check_model_path, check_same_vocabulary, load_causal_lm, load_tokenizer
from wmss.phases.common import (
    StageLayout,
    completion_tokens,
    data_inputs,
    load_training_data,
    save_trained_model,
    write_summary,
)
from wmss.phases.curriculum_file import read_curriculum
from wmss.training import JsonlMetricsCallback, NonFiniteGuard, make_training_arguments, train_resumable

logger = logging.getLogger(__name__)


def final_dir(output_dir: str | Path) -> Path:
    """Directory holding the trained strong model of a joint stage (the co-trained weak one in `weak/`)."""
    return Path(output_dir) / "final"


def active_dataset(data: TrainingData, curriculum: dict[str, Any] | None) -> Dataset:
    """The rows the curriculum drew (with repeats), or the whole data set without a curriculum."""
    if curriculum is None:
        return data.dataset
    if curriculum["data_fingerprint"] != data.fingerprint:
        raise DataError(
            "the curriculum was computed on different data than the joint stage loads "
            f"(fingerprint {curriculum['data_fingerprint']} vs {data.fingerprint}); "
            "re-run entropy and curriculum with the same data settings"
        )
    row_of = {int(idx): row for row, idx in enumerate(data.dataset["idx"])}
    missing = [i for i in curriculum["draws"] if i not in row_of]
    if missing:
        raise DataError(f"the curriculum draws samples that are not in the data (idx {missing[:5]})")
    return data.dataset.select([row_of[i] for i in curriculum["draws"]])


def run_joint(
    config: RunConfig,
    settings: JointSettings,
    weak_path: str,
    strong_path: str,
    output_dir: str | Path,
    curriculum: str | Path | None = None,
    callbacks: Sequence[TrainerCallback] = (),
    data_cache: Path | None = None,
) -> Path:
    """Train weak+strong jointly and write `<output_dir>/final` (strong) and `final/weak`; resumes if interrupted.

    `settings` is what the stage computes (Eq. 11-12); `config` says how it trains (`config.joint`), on which
    data and with which models.
    """
    started = time.time()
    if config.joint.neftune_noise_alpha is not None:
        raise ConfigError(
            "'joint.neftune_noise_alpha' is not supported: NEFTune is an SFT baseline (sft section)"
        )
    inputs = {"the weak model": weak_path, "the strong model": strong_path, "the curriculum": curriculum}
    layout = StageLayout(ensure_directory(output_dir, {**inputs, **data_inputs(config)}, replaces=True))
    # Inputs and settings are checked before the data is tokenised: a bad model, curriculum or setting (an
    # unknown `extra` key) costs no work.
    for path in (strong_path, weak_path) if settings.weak_control != "uniform" else (strong_path,):
        check_model_path(path)
    drawn = read_curriculum(curriculum) if curriculum else None
    args = make_training_arguments(
        config,
        "joint",
        layout.checkpoints,
        args_class=WMSSConfig,
        dataset_kwargs={"skip_prepare_dataset": True},  # data is tokenised by wmss.data, labels included
        max_length=None,
        loss_chunk_size=config.wmss.loss_chunk_size,
        **WMSSConfig.arguments_for(settings),
    )
    tokenizer = load_tokenizer(strong_path, config.model)
    data = load_training_data(config, tokenizer, data_cache)
    dataset = active_dataset(data, drawn)
    dataset = with_loss_tokens(dataset, config.joint.loss_tokens)  # the authors train every token here
    strong = load_causal_lm(strong_path, config.model, for_training=True)
    weak = None
    if (
        settings.weak_control != "uniform"
    ):  # the uniform control mixes in constant logits: no weak model at all
        weak = load_causal_lm(weak_path, config.model, for_training=settings.weak_trainable)
        check_same_vocabulary(weak, strong, load_tokenizer(weak_path, config.model), tokenizer)
    trainer = WMSSTrainer(
        model=strong,
        weak_model=weak,
        args=args,
        train_dataset=dataset,
        processing_class=tokenizer,
        data_collator=make_collator(tokenizer),
        callbacks=[
            JsonlMetricsCallback(layout.metrics),
            NonFiniteGuard("joint", config.joint.max_nonfinite_steps),
            *callbacks,
        ],
    )
    result = train_resumable(trainer, layout.checkpoints)
    save_trained_model(trainer, final_dir(output_dir))
    write_summary(
        layout,
        started,
        stage="joint",
        weak=weak_path,
        strong=strong_path,
        **asdict(settings),
        optimizer_steps=trainer.state.global_step,
        completion_tokens_per_epoch=completion_tokens(dataset),
        num_train_epochs=config.joint.num_train_epochs,
        train_loss=result.training_loss,
        n_active=len(dataset),
        data=data.stats.to_dict(),
    )
    return final_dir(output_dir)
