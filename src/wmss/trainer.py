"""WMSSTrainer/WMSSConfig: WMSS joint training (Eq. 11-12) shaped like TRL's GKDTrainer/GKDConfig."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from peft import LoraConfig
from transformers import AutoModelForCausalLM, PreTrainedModel
from trl import SFTConfig, SFTTrainer

from wmss.errors import ConfigError
from wmss.joint_model import JointModel
from wmss.lora import STRONG, WEAK, adapter_grad_norms, adapter_logits, add_wmss_adapters
from wmss.mixed_loss import mixed_logit_cross_entropy


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
        weak_model: PreTrainedModel | str | None = None,
        args: WMSSConfig | None = None,
        peft_config: LoraConfig | None = None,
        **kwargs: Any,
    ) -> None:
        if not isinstance(args, WMSSConfig):
            raise ConfigError("WMSSTrainer needs args=WMSSConfig(...)")
        self.lora_mode = peft_config is not None
        self._branch_norms: dict[str, float] = {}
        if self.lora_mode:
            # LoRA mode: the frozen base is M0 (the weak branch); `weak_model` must not be given.
            if weak_model is not None:
                raise ConfigError("with peft_config the weak branch is the base model: pass weak_model=None")
            if isinstance(model, str):
                model = AutoModelForCausalLM.from_pretrained(model, **(args.model_init_kwargs or {}))
            super().__init__(model=add_wmss_adapters(model, peft_config), args=args, **kwargs)
            return
        if weak_model is None:
            raise ConfigError("WMSSTrainer needs weak_model (a model or a path) unless peft_config is given")
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

    def create_optimizer(self, model: torch.nn.Module | None = None) -> torch.optim.Optimizer:
        """The strong model's optimizer with the weak model's parameters as one more group."""
        optimizer = super().create_optimizer(model) if model is not None else super().create_optimizer()
        if self.args.train_weak_model and not self.lora_mode:
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
        if self.lora_mode:
            unwrapped = self.accelerator.unwrap_model(model)
            strong_logits = adapter_logits(
                unwrapped, STRONG, inputs["input_ids"], inputs.get("attention_mask")
            )
            weak_logits = adapter_logits(unwrapped, WEAK, inputs["input_ids"], inputs.get("attention_mask"))
            n_trained = max(int(labels[:, 1:].ne(-100).sum()), 1)
            denominator = num_items_in_batch if num_items_in_batch is not None else n_trained
            loss = mixed_logit_cross_entropy(strong_logits, weak_logits, labels, lam=self.args.mix_lambda)
            loss = loss * n_trained / denominator
            return (loss, {"loss": loss}) if return_outputs else loss
        outputs = self.joint(
            input_ids=inputs["input_ids"],
            attention_mask=inputs.get("attention_mask"),
            labels=labels,
            num_items_in_batch=num_items_in_batch,
        )
        return (outputs["loss"], outputs) if return_outputs else outputs["loss"]

    def _clip_grad_norm(self, model: torch.nn.Module) -> Any:
        unwrapped = self.accelerator.unwrap_model(model)
        norms = adapter_grad_norms(unwrapped) if self.lora_mode else self.joint.branch_grad_norms()
        self._branch_norms = {f"grad_norm_{k}": v for k, v in norms.items()}
        return super()._clip_grad_norm(model)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Add the latest per-branch gradient norms to training logs."""
        if "loss" in logs and self._branch_norms:
            logs = {**logs, **self._branch_norms}
        super().log(logs, start_time)

    def save_weak_model(self, output_dir: str) -> None:
        """Save the (co-trained) weak model; the strong one is the trained model saved by save_model."""
        if self.lora_mode:
            self.accelerator.unwrap_model(self.model).save_pretrained(output_dir, selected_adapters=[WEAK])
            return
        self.weak_model.save_pretrained(output_dir)
