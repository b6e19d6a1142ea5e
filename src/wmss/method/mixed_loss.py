"""Cross-entropy on mixed logits, the Phase-3 objective of WMSS (Eq. 11-12).

z_mix = λ·z_strong + (1-λ)·z_weak  and  L = -(1/N) Σ_t log softmax(z_mix,t)[y_t]  over the N trained
positions. Because the loss sees softmax(z_mix), the gradient w.r.t. z_strong is λ·(P_mix - e_y)/N: where the
weak model already puts mass on wrong tokens, the strong model keeps receiving gradient.

`mixed_logit_cross_entropy` is the readable reference on full [B, T, V] logits. Training uses
`gather_trained_positions` + `fused_mixed_cross_entropy`: logits for `chunk_size` rows at a time, whose gradients
for both heads and both hidden states are computed right there in forward, so backward recomputes nothing.
Since z_mix = [λ·h_s | (1-λ)·h_w] · [W_s | W_w]ᵀ, this is one linear cross-entropy over the concatenated hidden
state and heads. `chunked_mixed_cross_entropy` (logits recomputed in backward, heads called as modules) serves
what the fused form cannot see: sharded head weights, heads with a bias, the shuffled control. Labels follow the
transformers causal-LM convention (shifted inside, as in `ForCausalLMLoss` and `wmss.method.entropy.sample_entropy`).
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from wmss import defaults
from wmss.errors import ModelError
from wmss.method.entropy import compute_dtype, scored_mask


def _check_mixing_weight(lam: float) -> None:
    # The functions' own domain: a convex mix. Training settings are narrower, (0, 1], checked at load.
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")


def mixed_logits(strong_logits: Tensor, weak_logits: Tensor, lam: float = defaults.LAMBDA) -> Tensor:
    """Return λ·z_strong + (1-λ)·z_weak (Eq. 11) in at least float32."""
    _check_mixing_weight(lam)
    if strong_logits.shape[-1] != weak_logits.shape[-1]:
        raise ModelError(
            f"strong and weak models have different vocabulary sizes "
            f"({strong_logits.shape[-1]} vs {weak_logits.shape[-1]}); logit mixing needs a shared vocabulary"
        )
    if strong_logits.shape != weak_logits.shape:
        raise ValueError(
            f"strong and weak logits differ in shape: {tuple(strong_logits.shape)} vs {tuple(weak_logits.shape)}"
        )
    dtype = compute_dtype(torch.promote_types(strong_logits.dtype, weak_logits.dtype))
    return lam * strong_logits.to(dtype) + (1.0 - lam) * weak_logits.to(dtype)


def mixed_logit_cross_entropy(
    strong_logits: Tensor,
    weak_logits: Tensor,
    labels: Tensor,
    lam: float = defaults.LAMBDA,
    ignore_index: int = defaults.IGNORE_INDEX,
) -> Tensor:
    """Mean next-token cross-entropy of softmax(z_mix) over trained positions (Eq. 12); 0 if there are none."""
    if strong_logits.dim() != 3 or strong_logits.shape[:2] != labels.shape:
        raise ValueError(
            f"expected logits [B, T, V] and labels [B, T], got {tuple(strong_logits.shape)} and {tuple(labels.shape)}"
        )
    z_mix = mixed_logits(strong_logits, weak_logits, lam)[:, :-1]
    targets = labels[:, 1:]
    loss_sum = F.cross_entropy(
        z_mix.reshape(-1, z_mix.shape[-1]), targets.reshape(-1), ignore_index=ignore_index, reduction="sum"
    )
    # A sum over zero positions is 0 but still attached to the graph, so a batch without trained tokens
    # yields zero gradients instead of NaN (and distributed backward hooks still fire).
    return loss_sum / (targets != ignore_index).sum().clamp(min=1)


def gather_trained_positions(
    hidden: Tensor, labels: Tensor, ignore_index: int = defaults.IGNORE_INDEX
) -> tuple[Tensor, Tensor]:
    """Causal shift + mask: hidden states [N, H] of positions that predict a trained label, and those labels [N]."""
    if hidden.dim() != 3 or hidden.shape[:2] != labels.shape:
        raise ValueError(
            f"expected hidden [B, T, H] and labels [B, T], got {tuple(hidden.shape)} and {tuple(labels.shape)}"
        )
    mask = scored_mask(labels, ignore_index)
    return hidden[:, :-1][mask], labels[:, 1:][mask]


def shuffle_logits(logits: Tensor, seed: int) -> Tensor:
    """Permute each row of [N, V] logits over the vocabulary with its own random permutation (seeded)."""
    generator = torch.Generator(device=logits.device).manual_seed(seed)
    order = torch.rand(logits.shape, generator=generator, device=logits.device).argsort(dim=-1)
    return logits.gather(-1, order)


def _matmul_dtype(tensors: list[Tensor]) -> torch.dtype:
    # Matmuls run in the autocast dtype when autocast is on (as nn.Linear would), softmax and accumulation in at
    # least float32. Off CUDA, bf16/fp16 matmuls are emulated (slower than float32), so they run in float32.
    device = tensors[0].device.type
    dtype = tensors[0].dtype
    for tensor in tensors[1:]:
        dtype = torch.promote_types(dtype, tensor.dtype)
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
    return dtype if device == "cuda" else compute_dtype(dtype)


def _mm(a: Tensor, b: Tensor, acc: torch.dtype) -> Tensor:
    # cuBLAS writes a low-precision product straight into a float32 result (no rounded copy in between).
    return torch.mm(a, b) if a.dtype == acc else torch.mm(a, b, out_dtype=acc)


def _addmm_(total: Tensor, a: Tensor, b: Tensor, alpha: float) -> Tensor:
    if a.dtype == total.dtype:
        return total.addmm_(a, b, alpha=alpha)
    return torch.addmm(total, a, b, alpha=alpha, out_dtype=total.dtype)


class _FusedMixedCE(torch.autograd.Function):
    """Sum of mixed-logit CEs; gradients of every input computed chunk by chunk in forward, scaled in backward."""

    @staticmethod
    def forward(
        ctx: Any,
        targets: Tensor,
        lam: float,
        chunk_size: int,
        mm_dtype: torch.dtype,
        strong_hidden: Tensor,
        strong_weight: Tensor,
        weak_hidden: Tensor | None = None,
        weak_weight: Tensor | None = None,
    ) -> Tensor:
        hidden = [h for h in (strong_hidden, weak_hidden) if h is not None]
        weights = [strong_weight, weak_weight][: len(hidden)]
        scales = [lam, 1.0 - lam][: len(hidden)]
        needs = ctx.needs_input_grad[4:]
        acc = compute_dtype(mm_dtype)
        w_mm = [w.to(mm_dtype) for w in weights]
        grad_h = [torch.empty_like(h) if needs[2 * i] else None for i, h in enumerate(hidden)]
        grad_w = [
            torch.zeros(w.shape, dtype=acc, device=w.device) if needs[2 * i + 1] else None
            for i, w in enumerate(weights)
        ]
        loss = torch.zeros((), dtype=acc, device=targets.device)
        for start in range(0, targets.shape[0], chunk_size):
            c = slice(start, start + chunk_size)
            t = targets[c]
            rows = torch.arange(t.shape[0], device=t.device)
            h_mm = [h[c].to(mm_dtype) for h in hidden]
            # z = Σ_i scale_i · h_i W_iᵀ (Eq. 11) in one [chunk, V] buffer that softmax then overwrites in place.
            z = _mm(scales[0] * h_mm[0], w_mm[0].t(), acc)
            for h, w, scale in zip(h_mm[1:], w_mm[1:], scales[1:], strict=True):
                z = _addmm_(z, h, w.t(), scale)
            target_logit = z[rows, t]
            top = z.amax(dim=1, keepdim=True)
            total = z.sub_(top).exp_().sum(dim=1, keepdim=True)
            loss += (total.log() + top).sum() - target_logit.sum()
            # dL/dz = softmax(z) - onehot(y), so dL/dh_i = scale_i·G·W_i and dL/dW_i = scale_i·Gᵀ·h_i.
            z.div_(total)
            z[rows, t] -= 1
            g = z.to(mm_dtype)
            for i, scale in enumerate(scales):
                if grad_h[i] is not None:
                    grad_h[i][c] = _mm(g, w_mm[i], acc).mul_(scale)
                if grad_w[i] is not None:
                    grad_w[i] = _addmm_(grad_w[i], g.t(), h_mm[i], scale)
            del z, g  # freed before the next chunk allocates its own: one chunk of logits alive at a time
        grad_w = [None if g is None else g.to(w.dtype) for g, w in zip(grad_w, weights, strict=True)]
        ctx.grads = [grad for pair in zip(grad_h, grad_w, strict=True) for grad in pair]
        return loss

    @staticmethod
    def backward(ctx: Any, grad_loss: Tensor) -> tuple[Tensor | None, ...]:
        if ctx.grads is None:
            raise RuntimeError(
                "the fused mixed-logit loss was already backpropagated (no retain_graph support)"
            )
        # Scaled in place: the buffers belong to this graph alone, whose backward runs once.
        grads = [None if g is None else g.mul_(grad_loss.to(g.dtype)) for g in ctx.grads]
        ctx.grads = None
        return None, None, None, None, *grads, *[None] * (4 - len(grads))


def fused_mixed_cross_entropy(
    strong_hidden: Tensor,
    weak_hidden: Tensor | None,
    strong_weight: Tensor,
    weak_weight: Tensor | None,
    targets: Tensor,
    lam: float = defaults.LAMBDA,
    chunk_size: int = defaults.CHUNK_SIZE,
) -> Tensor:
    """SUM of mixed-logit CEs over N gathered positions, from head weights; weak_hidden None = uniform control."""
    n = targets.shape[0]
    weak = weak_hidden is not None
    if strong_hidden.shape[0] != n or targets.dim() != 1 or (weak and weak_hidden.shape[0] != n):
        raise ValueError(
            f"expected hidden [N, H] x2 and targets [N], got {tuple(strong_hidden.shape)}, "
            f"{None if weak_hidden is None else tuple(weak_hidden.shape)} and {tuple(targets.shape)}"
        )
    if weak and weak_weight.shape[0] != strong_weight.shape[0]:
        raise ModelError(
            f"strong and weak models have different vocabulary sizes ({strong_weight.shape[0]} vs "
            f"{weak_weight.shape[0]}); logit mixing needs a shared vocabulary"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    _check_mixing_weight(lam)
    tensors = [strong_hidden, strong_weight] + ([weak_hidden, weak_weight] if weak else [])
    if not torch.is_grad_enabled():
        # Forward sees which inputs need gradients only through requires_grad; no_grad must not pay for them.
        tensors = [t.detach() for t in tensors]
    mm_dtype = _matmul_dtype(tensors)
    # The matmul dtype is chosen above; autocast inside would re-cast the in-place accumulations.
    with torch.autocast(strong_hidden.device.type, enabled=False):
        return _FusedMixedCE.apply(targets, lam, chunk_size, mm_dtype, *tensors)


def chunked_mixed_cross_entropy(
    strong_hidden: Tensor,
    weak_hidden: Tensor | None,
    strong_head: nn.Module,
    weak_head: nn.Module | None,
    targets: Tensor,
    lam: float = defaults.LAMBDA,
    chunk_size: int = defaults.CHUNK_SIZE,
    min_chunks: int = 1,
    weak_control: str = "none",
    control_seed: int = 0,
) -> Tensor:
    """SUM of mixed-logit cross-entropies over N gathered positions, with logits for one chunk at a time.

    `weak_control`: "uniform" takes constant weak logits (weak hidden states and head are not used), "shuffled"
    permutes each position's weak logits over the vocabulary (chunk c uses seed `control_seed + c`).
    """
    n = targets.shape[0]
    uniform = weak_control == "uniform"
    if weak_control not in ("none", "uniform", "shuffled"):
        raise ValueError(f"weak_control must be none, uniform or shuffled, got {weak_control!r}")
    if strong_hidden.shape[0] != n or targets.dim() != 1 or (not uniform and weak_hidden.shape[0] != n):
        raise ValueError(
            f"expected hidden [N, H] x2 and targets [N], got {tuple(strong_hidden.shape)}, "
            f"{None if weak_hidden is None else tuple(weak_hidden.shape)} and {tuple(targets.shape)}"
        )
    if chunk_size < 1 or min_chunks < 1:
        raise ValueError(f"chunk_size and min_chunks must be >= 1, got {chunk_size} and {min_chunks}")

    def chunk_loss(h_s: Tensor, h_w: Tensor | None, t: Tensor, seed: int) -> Tensor:
        # The head modules (not their weights) are called so ZeRO-3/FSDP gather hooks fire, also on recompute.
        z_s = strong_head(h_s)
        if uniform:
            # Constant weak logits shift every entry of z_mix equally: softmax(z_mix) = softmax(lam * z_s).
            return F.cross_entropy(lam * z_s.to(compute_dtype(z_s.dtype)), t, reduction="sum")
        z_w = weak_head(h_w)
        if weak_control == "shuffled":
            # Drawn from the seed inside the checkpointed function, so the recompute in backward matches.
            z_w = shuffle_logits(z_w, seed)
        return F.cross_entropy(mixed_logits(z_s, z_w, lam), t, reduction="sum")

    # Every rank of a ZeRO-3/FSDP group must call the heads equally often, so callers pass the global chunk
    # count as `min_chunks`; the surplus chunks are empty, and N == 0 still yields a graph-connected 0.
    n_chunks = max(math.ceil(n / chunk_size), min_chunks)
    # Checkpointing drops each chunk's [chunk, V] logits after forward and recomputes them in backward.
    chunks = [slice(i * chunk_size, (i + 1) * chunk_size) for i in range(n_chunks)]
    losses = [
        checkpoint(
            chunk_loss,
            strong_hidden[c],
            None if uniform else weak_hidden[c],
            targets[c],
            control_seed + i,
            use_reentrant=False,
        )
        for i, c in enumerate(chunks)
    ]
    return torch.stack(losses).sum()
