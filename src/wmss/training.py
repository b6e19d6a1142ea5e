"""Glue to the ecosystem's trainers: TrainingArguments from our config, metric logs, checkpoint discovery."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from transformers import TrainerCallback, TrainingArguments

from wmss.config import TrainConfig, WMSSConfig
from wmss.errors import ConfigError

logger = logging.getLogger(__name__)

_OWN_FIELDS = ("extra",)
DISTRIBUTED_TIMEOUT = timedelta(hours=3)
_TRAINING_ARGUMENT_NAMES = {f.name for f in dataclasses.fields(TrainingArguments)}


def training_kwargs(train: TrainConfig, output_dir: Path) -> dict[str, Any]:
    """Keyword arguments for `TrainingArguments` (or TRL's `SFTConfig`) from one stage's config."""
    kwargs = {k: v for k, v in vars(train).items() if k not in _OWN_FIELDS}
    kwargs.update(
        output_dir=str(output_dir),
        report_to=list(train.report_to) or "none",
        save_strategy="steps",
        logging_first_step=True,
        include_num_input_tokens_seen="non_padding",
        disable_tqdm=False,
        dataloader_pin_memory=torch.cuda.is_available(),
        # Without an accelerator, CPU mode is what makes accelerate start gloo DDP under torchrun.
        use_cpu=not has_accelerator(),
    )
    if "activation_checkpointing" in _TRAINING_ARGUMENT_NAMES:  # the name since transformers 5.x
        kwargs["activation_checkpointing"] = kwargs.pop("gradient_checkpointing")
    overlap = set(train.extra) & set(vars(train))
    if overlap:
        raise ConfigError(
            f"'extra' repeats keys that have their own config field: {', '.join(sorted(overlap))}"
        )
    kwargs.update(train.extra)
    return kwargs


def has_accelerator() -> bool:
    """True when a CUDA (or ROCm) or MPS device is available."""
    return torch.cuda.is_available() or torch.backends.mps.is_available()


def process_state() -> PartialState:
    """accelerate's process state (distributed under `torchrun`/`accelerate launch`, on CPU too)."""
    # Ranks wait at barriers while the main process tokenises, draws the curriculum or extracts: allow hours.
    return PartialState(cpu=not has_accelerator(), timeout=DISTRIBUTED_TIMEOUT)


def make_training_arguments(
    config: WMSSConfig, section: str, output_dir: Path, args_class: type = TrainingArguments, **overrides: Any
) -> TrainingArguments:
    """Build `TrainingArguments` (or a subclass such as TRL's `SFTConfig`) from one config section."""
    train: TrainConfig = getattr(config, section)
    try:
        return args_class(**{**training_kwargs(train, output_dir), **overrides})
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"invalid '{section}' training settings (including '{section}.extra'): {exc}"
        ) from None


def resume_checkpoint(output_dir: Path) -> str | None:
    """The last `checkpoint-N` directory under `output_dir`, if any (so a re-run resumes)."""
    if not output_dir.is_dir():
        return None
    # trainer_state.json is written last: a checkpoint without it was cut off mid-save and is skipped.
    complete = [p for p in output_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    complete = [p for p in complete if p.name.removeprefix("checkpoint-").isdigit()]
    if not complete:
        return None
    last = max(complete, key=lambda p: int(p.name.removeprefix("checkpoint-")))
    logger.info("resuming from %s", last)
    return str(last)


class JsonlMetricsCallback(TrainerCallback):
    """Append every logged metric dict to `metrics.jsonl`, so saturation can be seen without tensorboard."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def on_log(
        self, args: TrainingArguments, state: Any, control: Any, logs: dict | None = None, **_: Any
    ) -> None:
        """Write one JSON line per log event (main process only)."""
        if not state.is_world_process_zero or not logs:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        record = {"step": state.global_step, "epoch": state.epoch, "time": time.time(), **logs}
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, default=float) + "\n")


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Read a `metrics.jsonl` file (empty list when absent)."""
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
