"""Glue to the ecosystem's trainers: TrainingArguments from our config, metric logs, checkpoint discovery."""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import math
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from accelerate import PartialState
from transformers import Trainer, TrainerCallback, TrainingArguments
from transformers.trainer_utils import TrainOutput

from wmss.config import RunConfig, TrainConfig
from wmss.errors import ConfigError, WMSSError
from wmss.validation import check_master_weights

logger = logging.getLogger(__name__)

_OWN_FIELDS = ("extra", "max_nonfinite_steps", "loss_tokens")
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
    config: RunConfig, section: str, output_dir: Path, args_class: type = TrainingArguments, **overrides: Any
) -> TrainingArguments:
    """Build `TrainingArguments` (or a subclass such as TRL's `SFTConfig`) from one config section."""
    train: TrainConfig = getattr(config, section)
    check_master_weights(
        [config.model.dtype],
        train.learning_rate,
        allowed=config.model.low_precision_training,
        where=f"'model.dtype' is {config.model.dtype}, so the '{section}' stage",
        fix=f"Set 'model.dtype: auto' (or float32) and '{section}.bf16: true' to train float32 master weights "
        "under bf16 autocast, or set 'model.low_precision_training: true' if your engine keeps float32 master "
        "weights itself (DeepSpeed ZeRO with bf16)",
    )
    try:
        return args_class(**{**training_kwargs(train, output_dir), **overrides})
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"invalid '{section}' training settings (including '{section}.extra'): {exc}"
        ) from None


def last_complete_checkpoint(output_dir: Path) -> Path | None:
    """The last `checkpoint-N` directory under `output_dir` whose save finished, if any."""
    if not output_dir.is_dir():
        return None
    # trainer_state.json is written last: a checkpoint without it was cut off mid-save and is skipped.
    complete = [p for p in output_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    complete = [p for p in complete if p.name.removeprefix("checkpoint-").isdigit()]
    return max(complete, key=lambda p: int(p.name.removeprefix("checkpoint-")), default=None)


def resume_checkpoint(output_dir: Path) -> str | None:
    """The last complete `checkpoint-N` directory under `output_dir`, if any (so a re-run resumes)."""
    last = last_complete_checkpoint(output_dir)
    if last is None:
        return None
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
        line = json.dumps(record, default=float) + "\n"
        with self.path.open("ab+") as handle:
            # A run killed mid-line left a cut-off record: end it, so this record stays a line of its own.
            if handle.tell() and (handle.seek(-1, 2), handle.read(1))[1] != b"\n":
                line = "\n" + line
            handle.write(line.encode("utf-8"))


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """Read a `metrics.jsonl` file (empty list when absent), skipping lines a killed run cut off."""
    if not path.is_file():
        return []
    records = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), start=1):
        try:
            record = json.loads(line) if line.strip() else None
        except json.JSONDecodeError:
            # The log is appended to step by step: a kill mid-write cuts one line, the rest stays valid.
            logger.warning("%s line %d: cut-off metrics record skipped", path, lineno)
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


class NonFiniteError(WMSSError):
    """Training produced a NaN/inf loss or gradient norm (more often than the config allows)."""


class CheckpointWriteError(WMSSError):
    """A checkpoint or artifact could not be written (disk full, file too large, read-only)."""


_BRANCHES = ("strong", "weak")
_WRAPPERS = ("module", "_orig_mod", "_fsdp_wrapped_module")
# Logged values checked as a fallback where gradients are not visible to callbacks (DeepSpeed).
_LOGGED = ("loss", "grad_norm", "grad_norm_strong", "grad_norm_weak")


def _branch_of(name: str) -> str | None:
    parts = [part for part in name.split(".") if part not in _WRAPPERS]
    return parts[0] if parts and parts[0] in _BRANCHES else None


class NonFiniteGuard(TrainerCallback):
    """Stop training before an optimizer step with a NaN/inf gradient, or skip up to `max_skipped` such steps.

    Raising before `optimizer.step()` leaves the weights and every saved checkpoint untouched, so the last good
    checkpoint stays the resume point. A skipped step drops all gradients (the optimizer leaves parameters with
    no gradient alone, moments included); the learning-rate schedule still advances.
    """

    def __init__(self, stage: str, max_skipped: int = 0) -> None:
        self.stage = stage
        self.max_skipped = max_skipped
        self.skipped = 0
        self._skipped_since_log = False
        self._finite: dict[
            str, torch.Tensor
        ] = {}  # per branch: were all its gradients finite before clipping
        self._hooks: list[Any] = []

    def on_train_begin(
        self, args: TrainingArguments, state: Any, control: Any, model: Any = None, **_: Any
    ) -> None:
        """Watch each branch's gradients as they accumulate: clipping a NaN norm spreads NaN to every branch."""
        for name, parameter in model.named_parameters() if model is not None else ():
            branch = _branch_of(name)
            if branch and parameter.requires_grad:
                self._hooks.append(parameter.register_post_accumulate_grad_hook(self._watch(branch)))

    def _watch(self, branch: str) -> Any:
        def hook(parameter: torch.Tensor) -> None:
            finite = torch.isfinite(
                parameter.grad
            ).all()  # stays on the device: no synchronisation per tensor
            self._finite[branch] = finite if branch not in self._finite else self._finite[branch] & finite

        return hook

    def on_train_end(self, args: TrainingArguments, state: Any, control: Any, **_: Any) -> None:
        """Remove the gradient hooks."""
        while self._hooks:
            self._hooks.pop().remove()

    def _stop(self, what: str, step: int, branches: list[str], output_dir: str) -> None:
        branch = f" (branch {'/'.join(branches)})" if branches else ""
        last = last_complete_checkpoint(Path(output_dir))
        kept = (
            f"the last good checkpoint {last} is kept and a re-run resumes from it"
            if last is not None
            else f"no checkpoint was saved before it (none in {output_dir}): a re-run starts the stage over"
        )
        raise NonFiniteError(
            f"{self.stage}: non-finite {what} at step {step}{branch}; training stopped and {kept}. Lower "
            "the learning rate, train in bf16 rather than fp16, or set "
            f"'{self.stage}.max_nonfinite_steps' to skip a few such steps"
            + (f" (skipped {self.skipped} already)" if self.skipped else "")
        )

    def on_pre_optimizer_step(
        self, args: TrainingArguments, state: Any, control: Any, model: Any = None, **_: Any
    ) -> None:
        """Check the (clipped) gradients of this optimizer step; skip the step or stop when they are not finite."""
        finite, self._finite = self._finite, {}
        if args.fp16:
            return  # the fp16 loss scaler skips overflowing steps itself and lowers its scale
        grads = [p.grad for p in model.parameters() if p.grad is not None] if model is not None else []
        if not grads or torch.isfinite(torch.nn.utils.get_total_norm(grads)):
            return
        step = state.global_step + 1
        branches = sorted(branch for branch, ok in finite.items() if not bool(ok))
        if self.skipped >= self.max_skipped:
            self._stop("gradient norm", step, branches, args.output_dir)
        self.skipped += 1
        self._skipped_since_log = True
        logger.warning(
            "%s: non-finite gradient at step %d%s: update skipped (%d of at most %d)",
            self.stage,
            step,
            f" (branch {'/'.join(branches)})" if branches else "",
            self.skipped,
            self.max_skipped,
        )
        for _, parameter in model.named_parameters():
            parameter.grad = None

    def on_log(
        self, args: TrainingArguments, state: Any, control: Any, logs: dict | None = None, **_: Any
    ) -> None:
        """Stop on a non-finite logged loss or gradient norm that no skipped step explains."""
        skipped, self._skipped_since_log = self._skipped_since_log, False
        checked = ("loss",) if args.fp16 else _LOGGED  # fp16 gradient overflows belong to the loss scaler
        logged = logs or {}
        bad = [
            key for key in checked if isinstance(logged.get(key), float) and not math.isfinite(logged[key])
        ]
        if bad and not skipped:
            branches = [key.removeprefix("grad_norm_") for key in bad if key.startswith("grad_norm_")]
            self._stop(bad[0].replace("_", " "), state.global_step, branches, args.output_dir)


_WRITE_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS, errno.EIO}
# Serialisers (safetensors, torch.save) wrap the OS error in their own exception with the errno in the text.
_WRITE_TEXTS = (
    "os error 28",
    "os error 27",
    "os error 122",
    "no space left",
    "file too large",
    "unexpected pos",
)


def write_failure(exc: BaseException) -> str | None:
    """Why `exc` (or an exception it wraps) is a failed write (disk full, file too large), or None if it is not."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _WRITE_ERRNOS:
            return seen.strerror or str(seen)
        text = str(seen).lower()
        if any(marker in text for marker in _WRITE_TEXTS):
            return str(seen)
        seen = seen.__cause__ or seen.__context__
    return None


def _incomplete_checkpoints(output_dir: Path) -> list[Path]:
    if not output_dir.is_dir():
        return []
    return [p for p in output_dir.glob("checkpoint-*") if not (p / "trainer_state.json").is_file()]


class _ScheduleDone(Exception):
    """Raised before training starts when the resumed checkpoint is already the schedule's last step."""


class FinalStepGuard(TrainerCallback):
    """No optimizer step past the end of the schedule, and the last steps' loss in the logged history.

    Trainer checks `max_steps` only after a step, so a stage resumed from its final checkpoint (killed right
    after it, or re-run after its manifest record was lost) would train one step more than an uninterrupted
    run did.
    """

    def on_train_begin(self, args: TrainingArguments, state: Any, control: Any, **_: Any) -> None:
        """Stop before any batch is drawn when the resumed state already reached the last step."""
        if state.max_steps > 0 and state.global_step >= state.max_steps:
            raise _ScheduleDone

    def on_step_end(self, args: TrainingArguments, state: Any, control: Any, **_: Any) -> None:
        """Log the final step, so the logged history covers every step (summary.json averages it)."""
        if state.global_step >= state.max_steps:
            control.should_log = True


def logged_train_loss(log_history: list[dict[str, Any]]) -> float | None:
    """Mean training loss over every logged optimizer step: each logged loss weighs the steps it averages."""
    total, covered, last = 0.0, 0, 0
    for entry in log_history:
        step, loss = entry.get("step"), entry.get("loss")
        if isinstance(step, int) and isinstance(loss, (int, float)) and step > last:
            total += loss * (step - last)
            covered += step - last
            last = step
    return total / covered if covered else None


def train_resumable(trainer: Trainer, checkpoints: Path) -> TrainOutput:
    """`trainer.train`, resumed from the last complete checkpoint; a failed checkpoint write names its path.

    The loss it reports is the mean over all of the stage's steps from the logged history (the checkpoint's
    and this run's), not over the steps this call trained: a resumed stage reports what an uninterrupted
    one does.
    """
    # First: it must stop a finished schedule before any other callback starts work (progress bars, hooks).
    trainer.callback_handler.callbacks.insert(0, FinalStepGuard())
    try:
        result = trainer.train(resume_from_checkpoint=resume_checkpoint(checkpoints))
    except _ScheduleDone:
        logger.info(
            "the last checkpoint is the end of the schedule (step %d): nothing left to train",
            trainer.state.global_step,
        )
        trainer.is_in_train = False
        result = TrainOutput(trainer.state.global_step, 0.0, {})
    except Exception as exc:
        reason = write_failure(exc)
        if reason is None:
            raise
        partial = _incomplete_checkpoints(checkpoints)
        where = ", ".join(str(p) for p in partial) or str(checkpoints)
        raise CheckpointWriteError(
            f"writing {where} failed ({reason}); the last complete checkpoint is kept and the cut-off one is "
            "ignored on resume: free disk space, then re-run the same command to resume"
        ) from exc
    loss = logged_train_loss(trainer.state.log_history)
    return result if loss is None else TrainOutput(result.global_step, loss, result.metrics)
