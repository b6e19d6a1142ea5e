"""WMSSTrainer/WMSSConfig: WMSS joint training (Eq. 11-12) shaped like TRL's GKDTrainer/GKDConfig."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from transformers import AutoModelForCausalLM, PreTrainedModel
from trl import SFTConfig, SFTTrainer

from wmss.errors import ConfigError
from wmss.joint_model import JointModel


@dataclass
class WMSSConfig(SFTConfig):
    """SFTConfig plus the WMSS joint-training settings."""

    mix_lambda: float = field(
        default=0.5,
        metadata={"help": "λ in z_mix = λ·z_strong + (1-λ)·z_weak (paper default 0.5); in (0, 1]."},
    )
    train_weak_model: bool = field(
        default=True,
        metadata={"help": "Co-train the weak model with the mixed loss (the paper); False keeps it frozen."},
    )
    weak_model_init_kwargs: dict[str, Any] | None = field(
        default=None,
        metadata={
            "help": "Keyword arguments for AutoModelForCausalLM.from_pretrained when weak_model is a path."
        },
    )
    loss_chunk_size: int = field(
        default=1024,
        metadata={
            "help": "Trained positions per chunk of the mixed-logit loss (logits recomputed in backward)."
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 < self.mix_lambda <= 1.0:
            raise ConfigError(f"WMSSConfig.mix_lambda must be in (0, 1], got {self.mix_lambda}")
        if self.loss_chunk_size < 1:
            raise ConfigError(f"WMSSConfig.loss_chunk_size must be >= 1, got {self.loss_chunk_size}")


class WMSSTrainer(SFTTrainer):
    """SFTTrainer whose loss is the mixed-logit CE of the strong model and a (co-trained) weak model."""

    def __init__(
        self,
        model: PreTrainedModel | str,
        weak_model: PreTrainedModel | str,
        args: WMSSConfig,
        **kwargs: Any,
    ) -> None:
        if not isinstance(args, WMSSConfig):
            raise ConfigError("WMSSTrainer needs args=WMSSConfig(...)")
        super().__init__(model=model, args=args, **kwargs)
        if isinstance(weak_model, str):
            weak_model = AutoModelForCausalLM.from_pretrained(
                weak_model, **(args.weak_model_init_kwargs or {})
            )
        self.weak_model = weak_model.to(self.args.device)
        self.weak_model.train(args.train_weak_model)
        self.joint = JointModel(
            self.model,
            self.weak_model,
            lam=args.mix_lambda,
            weak_trainable=args.train_weak_model,
            chunk_size=args.loss_chunk_size,
        )
        self._branch_norms: dict[str, float] = {}

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        """The strong model's optimizer with the weak model's parameters as one more group."""
        optimizer = super().create_optimizer(model) if model is not None else super().create_optimizer()
        if self.args.train_weak_model:
            weak_params = [p for p in self.weak_model.parameters() if p.requires_grad]
            optimizer.add_param_group({"params": weak_params, "weight_decay": self.args.weight_decay})
        return optimizer

    def compute_loss(
        self,
        model: torch.nn.Module,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """Mixed-logit cross-entropy on completion tokens (labels -100 elsewhere)."""
        labels = inputs["labels"]
        if "completion_mask" in inputs:
            labels = labels.masked_fill(inputs["completion_mask"] == 0, -100)
        outputs = self.joint(
            input_ids=inputs["input_ids"],
            attention_mask=inputs.get("attention_mask"),
            labels=labels,
            num_items_in_batch=num_items_in_batch,
        )
        return (outputs["loss"], outputs) if return_outputs else outputs["loss"]

    def _clip_grad_norm(self, model: torch.nn.Module) -> Any:
        self._branch_norms = {f"grad_norm_{k}": v for k, v in self.joint.branch_grad_norms().items()}
        return super()._clip_grad_norm(model)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the latest per-branch gradient norms to training logs."""
        if "loss" in logs and self._branch_norms:
            logs = {**logs, **self._branch_norms}
        super().log(logs, start_time)

    def save_weak_model(self, output_dir: str) -> None:
        """Save the (co-trained) weak model; the strong one is the trained model saved by save_model."""
        self.weak_model.save_pretrained(output_dir)
