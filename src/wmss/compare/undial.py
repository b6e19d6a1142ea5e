"""UNDIAL (Dong et al., 2024): self-distillation towards a frozen teacher whose target logit is pushed down.

The teacher is a frozen copy of the starting model. Its logits with β subtracted at the target token,
softmax(z_teacher - β·onehot(y)), are the soft targets; the student minimises their cross-entropy on completion
tokens. β = 10 as in the reference implementation. The WMSS paper describes the adjustment as "one-hot scaled by
random Gaussian noise": with `noise=True` the subtracted amount is β·ε, ε ~ N(0, 1) drawn per position.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from transformers import PreTrainedModel
from trl import SFTTrainer

from wmss.method.entropy import scored_mask


def undial_targets(
    teacher_logits: Tensor, targets: Tensor, beta: float, noise: Tensor | None = None
) -> Tensor:
    """Soft targets softmax(z_teacher - β·s·onehot(y)) for logits [N, V] and targets [N] (s = noise or 1)."""
    shift = torch.full_like(targets, 1.0, dtype=teacher_logits.dtype) if noise is None else noise
    adjusted = teacher_logits.clone()
    adjusted[torch.arange(targets.shape[0], device=targets.device), targets] -= beta * shift
    return adjusted.softmax(dim=-1)


def undial_loss_sum(
    student_logits: Tensor, teacher_logits: Tensor, targets: Tensor, beta: float, noise: Tensor | None = None
) -> Tensor:
    """SUM over N gathered positions of CE(undial_targets, softmax(student)); logits [N, V] in float32 or better."""
    dtype = torch.promote_types(student_logits.dtype, torch.float32)
    soft = undial_targets(teacher_logits.to(dtype), targets, beta, noise)
    return -(soft * F.log_softmax(student_logits.to(dtype), dim=-1)).sum()


class UndialTrainer(SFTTrainer):
    """TRL SFTTrainer whose loss is UNDIAL's self-distillation against a frozen teacher."""

    def __init__(
        self, *args: Any, teacher: PreTrainedModel, beta: float = 10.0, noise: bool = False, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.teacher = teacher.eval().requires_grad_(False).to(self.args.device)
        self.beta = beta
        self.noise = noise
        self._noise_generator = torch.Generator().manual_seed(self.args.seed)

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Tensor],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """UNDIAL loss summed over completion tokens, divided by the batch's trained-token count."""
        labels = inputs["labels"]
        model_inputs = {"input_ids": inputs["input_ids"], "attention_mask": inputs.get("attention_mask")}
        outputs = model(**model_inputs, use_cache=False)
        with torch.no_grad():
            teacher_logits = self.teacher(**model_inputs, use_cache=False).logits
        mask = scored_mask(labels)
        targets = labels[:, 1:][mask]
        noise = None
        if self.noise:
            # Drawn on the CPU from a seeded generator: the same noise on every machine and every resume.
            noise = torch.randn(targets.shape[0], generator=self._noise_generator).to(targets.device)
        loss = undial_loss_sum(
            outputs.logits[:, :-1][mask], teacher_logits[:, :-1][mask], targets, self.beta, noise
        )
        denominator = num_items_in_batch if num_items_in_batch is not None else max(int(targets.shape[0]), 1)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes
        loss = loss / denominator
        return (loss, outputs) if return_outputs else loss
