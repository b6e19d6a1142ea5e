"""`transformers.Trainer` for the joint module: saves each branch as a plain HF checkpoint, logs per-branch norms.

TRL's SFTTrainer assumes one `PreTrainedModel`, and accelerate refuses two models in one `prepare()` under
DeepSpeed/FSDP2, so the joint phase subclasses `Trainer` around a single `JointModel`.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel, Trainer

from wmss.errors import ConfigError
from wmss.joint_model import JointModel

logger = logging.getLogger(__name__)

BRANCHES = ("strong", "weak")


def _branch_state(state_dict: dict[str, torch.Tensor], branch: str) -> dict[str, torch.Tensor]:
    prefix = f"{branch}."
    return {key[len(prefix) :]: value for key, value in state_dict.items() if key.startswith(prefix)}


def _held(joint: JointModel) -> list[str]:
    # The uniform control holds no weak model: only the strong branch is saved and restored.
    return [branch for branch in BRANCHES if getattr(joint, branch) is not None]


def load_branch_weights(model: PreTrainedModel, folder: Path) -> None:
    """Load a `save_pretrained` folder into an existing model, strictly (tied weights included)."""
    # from_pretrained undoes the key conversions transformers applies on save (MoE, multimodal models).
    parameter = next(model.parameters())
    loaded = type(model).from_pretrained(str(folder), dtype=parameter.dtype)
    model.load_state_dict(loaded.state_dict())


class JointTrainer(Trainer):
    """Trainer for `JointModel`: checkpoints hold `strong/` and `weak/` as loadable HF models."""

    def __init__(self, model: JointModel, *args: Any, **kwargs: Any) -> None:
        super().__init__(model, *args, **kwargs)
        self._branch_norms: dict[str, float] = {}

    def _clip_grad_norm(self, model: torch.nn.Module) -> Any:
        # Per-branch norms are measured before clipping, on the steps that will be logged.
        step = self.state.global_step + 1
        sharded = self.is_deepspeed_enabled or self.is_fsdp_enabled  # gradients are not whole tensors there
        if not sharded and (step == 1 or step % max(int(self.args.logging_steps), 1) == 0):
            joint = self.accelerator.unwrap_model(model, keep_torch_compile=False)
            self._branch_norms.update({f"grad_norm_{k}": v for k, v in joint.branch_grad_norms().items()})
        return super()._clip_grad_norm(model)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the latest per-branch gradient norms to training logs."""
        if "loss" in logs and self._branch_norms:
            logs = {**logs, **self._branch_norms}
            self._branch_norms.clear()
        super().log(logs, start_time)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        output_dir = output_dir if output_dir is not None else self.args.output_dir
        if not self.args.should_save:
            return
        if state_dict is not None and not state_dict:
            # ZeRO-3 hands over an empty dict when it cannot gather the weights.
            raise ConfigError(
                "DeepSpeed ZeRO-3 did not gather the weights for saving: set `zero3_save_16bit_model: true` "
                "(stage3_gather_16bit_weights_on_model_save) in the DeepSpeed/accelerate config"
            )
        joint: JointModel = self.accelerator.unwrap_model(self.model, keep_torch_compile=False)
        for branch in _held(joint):
            folder = os.path.join(output_dir, branch)
            sub_state = _branch_state(state_dict, branch) if state_dict is not None else None
            getattr(joint, branch).save_pretrained(folder, state_dict=sub_state, safe_serialization=True)
            if self.processing_class is not None:
                self.processing_class.save_pretrained(folder)
        torch.save(self.args, os.path.join(output_dir, "training_args.bin"))

    def _load_from_checkpoint(
        self, resume_from_checkpoint: str, model: torch.nn.Module | None = None
    ) -> None:
        joint = model if model is not None else self.model
        folder = Path(resume_from_checkpoint)
        held = _held(self.accelerator.unwrap_model(joint, keep_torch_compile=False))
        if self.is_fsdp_enabled or not all((folder / branch).is_dir() for branch in held):
            super()._load_from_checkpoint(resume_from_checkpoint, model)
            return
        logger.info("loading joint checkpoint from %s", folder)
        for branch in held:
            load_branch_weights(getattr(joint, branch), folder / branch)
