"""Weak and strong causal LMs held as one `nn.Module`, trained on their mixed logits (Phase 3, Eq. 11-12).

One module (not two) is what lets DeepSpeed ZeRO-3 / FSDP shard and optimise a co-trained weak model, since
accelerate prepares a single model. The loss is computed inside `forward` from the two final hidden states and
the two output embeddings on trained positions only, chunk by chunk with every gradient computed in forward
(`fused_mixed_cross_entropy`), so full-vocabulary logits of both models never exist for every position at once.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.tensor import DTensor
from transformers import PreTrainedModel

from wmss import defaults
from wmss.method.entropy import uses_plain_output_head
from wmss.method.mixed_loss import (
    chunked_mixed_cross_entropy,
    fused_mixed_cross_entropy,
    gather_trained_positions,
    mixed_logit_cross_entropy,
)

# Written into every folder WMSSTrainer saves (checkpoints, final): how `wmss extract` tells a joint run
# from a plain model.
JOINT_MARKER = "wmss_joint.json"


def local_head_weight(head: nn.Module | None) -> torch.Tensor | None:
    """The weight of a bias-free linear head when it is whole on this rank (fused loss), else None."""
    weight = getattr(head, "weight", None)
    if not isinstance(head, nn.Linear) or head.bias is not None:
        return None
    # FSDP2 keeps parameters as sharded DTensors outside their module's forward; ZeRO-3 marks partitioned
    # ones with `ds_id` and gathers them only when the module is called, so those heads must be called.
    if isinstance(weight, DTensor) or hasattr(weight, "ds_id"):
        return None
    return weight


class JointModel(nn.Module):
    """The WMSS joint module: forward returns the mixed-logit CE on completion tokens."""

    accepts_loss_kwargs = True  # Trainer passes num_items_in_batch: exact loss under gradient accumulation
    # Tells Trainer that labels are shifted inside, so it counts trained tokens as forward does.
    loss_type = "ForCausalLM"
    supports_gradient_checkpointing = True

    def __init__(
        self,
        strong: PreTrainedModel,
        weak: PreTrainedModel | None,
        lam: float = defaults.LAMBDA,
        weak_trainable: bool = True,
        chunk_size: int = defaults.CHUNK_SIZE,
        weak_control: str = "none",
        control_seed: int = 0,
    ) -> None:
        super().__init__()
        if weak is None and weak_control != "uniform":
            raise ValueError("a weak model is required unless weak_control='uniform' (constant weak logits)")
        self.strong = strong
        self.weak = weak
        self.lam = lam
        self.weak_control = weak_control
        self.weak_trainable = weak_trainable and weak is not None
        self.chunk_size = chunk_size
        self.config = strong.config  # Trainer and accelerate read model.config
        self.main_input_name = "input_ids"
        branches = self.branches()
        # FSDP's transformer auto-wrap policy reads this to shard decoder layers of both branches.
        self._no_split_modules = sorted(
            {name for branch in branches for name in branch._no_split_modules or []}
        )
        self._chunked = all(uses_plain_output_head(branch) for branch in branches)
        if weak_control != "none" and not self._chunked:
            raise ValueError("weak-logit controls need models whose logits are a plain linear head")
        # The shuffled control draws permutations from (seed, forward call, chunk): reproducible for a seed.
        self._control_seed = control_seed * 1_000_003
        self._forward_calls = 0
        if weak is not None and not weak_trainable:
            weak.requires_grad_(False)
            weak.eval()

    def branches(self) -> list[PreTrainedModel]:
        """The models held: strong, and weak unless the uniform control replaced it by constant logits."""
        return [self.strong] if self.weak is None else [self.strong, self.weak]

    def train(self, mode: bool = True) -> JointModel:
        """Set training mode; a frozen weak model always stays in eval mode (no dropout)."""
        super().train(mode)
        if self.weak is not None and not self.weak_trainable:
            self.weak.eval()
        return self

    def activation_checkpointing_enable(self, **kwargs: Any) -> None:
        """Enable activation checkpointing in the trained branches (arguments as `Trainer` passes them)."""
        self._enable_checkpointing("activation_checkpointing_enable", kwargs)

    def gradient_checkpointing_enable(self, **kwargs: Any) -> None:
        """Older name of `activation_checkpointing_enable`, called by transformers < 5.x."""
        self._enable_checkpointing("gradient_checkpointing_enable", kwargs)

    def _enable_checkpointing(self, method: str, kwargs: dict[str, Any]) -> None:
        branches = self.branches() if self.weak_trainable else [self.strong]
        for branch in branches:
            getattr(branch, method)(**kwargs)

    def _hidden(
        self, model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
    ) -> Any:
        return model.get_decoder()(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)[0]

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        num_items_in_batch: torch.Tensor | int | None = None,
        **_: Any,
    ) -> dict[str, torch.Tensor]:
        """Mixed-logit cross-entropy summed over trained positions, divided by `num_items_in_batch` if given."""
        if labels is None:
            raise ValueError("JointModel.forward needs labels (-100 on prompt tokens)")
        n_trained = int(labels[:, 1:].ne(defaults.IGNORE_INDEX).sum())
        denominator = num_items_in_batch if num_items_in_batch is not None else max(n_trained, 1)
        if not self._chunked:
            # Models with logit soft-capping/scaling: fall back to the reference form on full logits.
            strong_logits = self.strong(input_ids=input_ids, attention_mask=attention_mask).logits
            with torch.set_grad_enabled(self.weak_trainable and torch.is_grad_enabled()):
                weak_logits = self.weak(input_ids=input_ids, attention_mask=attention_mask).logits
            loss = mixed_logit_cross_entropy(strong_logits, weak_logits, labels, lam=self.lam)
            return {"loss": loss * max(n_trained, 1) / denominator}
        strong_hidden = self._hidden(self.strong, input_ids, attention_mask)
        strong_h, targets = gather_trained_positions(strong_hidden, labels)
        weak_h = None
        if self.weak is not None:
            with torch.set_grad_enabled(self.weak_trainable and torch.is_grad_enabled()):
                weak_hidden = self._hidden(self.weak, input_ids, attention_mask)
            weak_h, _ = gather_trained_positions(weak_hidden, labels)
        heads = [branch.get_output_embeddings() for branch in (self.strong, self.weak) if branch is not None]
        weights = [local_head_weight(head) for head in heads]
        if self.weak_control != "shuffled" and all(w is not None for w in weights):
            loss_sum = fused_mixed_cross_entropy(
                strong_h,
                weak_h,
                weights[0],
                weights[1] if weak_h is not None else None,
                targets,
                self.lam,
                self.chunk_size,
            )
            return {"loss": loss_sum / denominator}
        self._forward_calls += 1
        loss_sum = chunked_mixed_cross_entropy(
            strong_h,
            weak_h,
            heads[0],
            heads[1] if len(heads) > 1 else None,
            targets,
            lam=self.lam,
            chunk_size=self.chunk_size,
            min_chunks=self._global_chunk_count(targets.shape[0], input_ids.device),
            weak_control=self.weak_control,
            control_seed=self._control_seed + 1_000 * self._forward_calls,
        )
        return {"loss": loss_sum / denominator}

    def _global_chunk_count(self, n_local: int, device: torch.device) -> int:
        # Sharded heads (ZeRO-3/FSDP) gather parameters collectively on every call: all ranks must make as many.
        chunks = max(math.ceil(n_local / self.chunk_size), 1)
        if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
            count = torch.tensor([chunks], device=device)
            dist.all_reduce(count, op=dist.ReduceOp.MAX)
            chunks = int(count.item())
        return chunks

    def branch_grad_norms(self) -> dict[str, float]:
        """L2 norm of the current gradients of each branch (0 for a branch without gradients)."""
        norms = {}
        for name, branch in (("strong", self.strong), ("weak", self.weak)):
            if branch is None:
                norms[name] = 0.0
                continue
            grads = [p.grad.detach().float().norm() for p in branch.parameters() if p.grad is not None]
            norms[name] = float(torch.stack(grads).norm()) if grads else 0.0
        return norms
