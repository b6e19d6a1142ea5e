"""Cross-entropy on mixed logits, the Phase-3 objective of WMSS (Eq. 11-12).

z_mix = λ·z_strong + (1-λ)·z_weak  and  L = -(1/N) Σ_t log softmax(z_mix,t)[y_t]  over the N trained
positions. Because the loss sees softmax(z_mix), the gradient w.r.t. z_strong is λ·(P_mix - e_y)/N: where the
weak model already puts mass on wrong tokens, the strong model keeps receiving gradient.

`mixed_logit_cross_entropy` is the readable reference on full [B, T, V] logits. Training uses
`gather_trained_positions` + `chunked_mixed_cross_entropy`, which never holds more than `chunk_size` rows of
vocabulary-sized logits, in forward or backward. Labels follow the transformers causal-LM convention (shifted
inside, as in `ForCausalLMLoss` and `wmss.entropy.sample_entropy`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from wmss.entropy import compute_dtype, scored_mask
from wmss.errors import ModelError


def mixed_logits(strong_logits: Tensor, weak_logits: Tensor, lam: float = 0.5) -> Tensor:
    """Return λ·z_strong + (1-λ)·z_weak (Eq. 11) in at least float32."""
    if not (0.0 <= lam <= 1.0):
        raise ValueError(f"lam must be in [0, 1], got {lam}")
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
    lam: float = 0.5,
    ignore_index: int = -100,
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
    hidden: Tensor, labels: Tensor, ignore_index: int = -100
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


def chunked_mixed_cross_entropy(
    strong_hidden: Tensor,
    weak_hidden: Tensor | None,
    strong_head: nn.Module,
    weak_head: nn.Module | None,
    targets: Tensor,
    lam: float = 0.5,
    chunk_size: int = 1024,
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
