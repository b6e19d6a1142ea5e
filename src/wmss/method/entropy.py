"""Per-sample predictive entropy of a causal LM on its completion tokens (Eq. 3/8).

For sample i with scored positions S_i, H(i) = (1/|S_i|) Σ_{t∈S_i} H_t with
H_t = -Σ_v P(v | x, y_<t) log P(v | x, y_<t).

Labels follow the transformers causal-LM convention (see `ForCausalLMLoss`): they are aligned with
`input_ids` and shifted here, so the logits at position t are scored iff `labels[:, t + 1] != ignore_index`.
A sample without any scored position gets entropy 0.0 (the curriculum then treats it as zero entropy);
`scored_token_counts` tells such samples apart. `dataset_entropies` is the one scorer of a data set: `wmss
entropy`, `wmss run`, `wmss compare`, `wmss regime` and `WMSSTrainer`'s curriculum all score through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from accelerate import PartialState
from accelerate.utils import gather_object
from torch import Tensor, nn
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from wmss import defaults

_FAR = 1e4  # exp(-_FAR) is 0 in float32 and float64


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """Return the dtype the loss/entropy math runs in: at least float32, float64 kept."""
    return torch.promote_types(dtype, torch.float32)


def token_entropy(logits: Tensor) -> Tensor:
    """Entropy in nats of softmax(logits) over the last dimension, computed in at least float32."""
    z = logits.to(compute_dtype(logits.dtype))
    # With d = max z - z >= 0 and e = exp(-d) <= 1: H = log Σe + Σ e·d / Σe, a sum of two non-negative terms,
    # so near-deterministic rows keep their relative precision (logsumexp(z) - Σ p·z would cancel) in four
    # passes over the vocabulary instead of log_softmax's and -Σ p·log p's seven.
    # Past _FAR, e underflows to 0 anyway: clamping makes a -inf logit contribute 0 instead of 0·inf = NaN.
    d = (z.amax(dim=-1, keepdim=True) - z).clamp_(max=_FAR)
    e = torch.neg(d).exp_()
    total = e.sum(dim=-1)
    return total.log() + torch.linalg.vecdot(e, d) / total


def scored_mask(labels: Tensor, ignore_index: int = defaults.IGNORE_INDEX) -> Tensor:
    """Boolean [B, T-1] mask of positions whose logits predict a non-ignored next label."""
    if labels.dim() != 2:
        raise ValueError(f"labels must be [batch, seq], got shape {tuple(labels.shape)}")
    return labels[:, 1:] != ignore_index


def scored_token_counts(labels: Tensor, ignore_index: int = defaults.IGNORE_INDEX) -> Tensor:
    """Number of scored positions per sample ([B], int64); 0 marks samples whose entropy is 0 by convention."""
    return scored_mask(labels, ignore_index).sum(dim=1)


def sample_entropy(logits: Tensor, labels: Tensor, ignore_index: int = defaults.IGNORE_INDEX) -> Tensor:
    """Mean next-token entropy over each sample's scored positions ([B]); 0.0 for samples with none."""
    if logits.dim() != 3 or logits.shape[:2] != labels.shape:
        raise ValueError(
            f"expected logits [B, T, V] and labels [B, T], got {tuple(logits.shape)} and {tuple(labels.shape)}"
        )
    mask = scored_mask(labels, ignore_index)
    ent = token_entropy(logits[:, :-1])
    sums = (ent * mask).sum(dim=1)
    return sums / mask.sum(dim=1).clamp(min=1)


@torch.no_grad()
def chunked_sample_entropy(
    hidden: Tensor,
    head: nn.Module,
    labels: Tensor,
    ignore_index: int = defaults.IGNORE_INDEX,
    chunk_size: int = defaults.CHUNK_SIZE,
    min_chunks: int = 1,
) -> Tensor:
    """Equals `sample_entropy(head(hidden), labels)`, materialising logits for `chunk_size` positions at a time."""
    if hidden.dim() != 3 or hidden.shape[:2] != labels.shape:
        raise ValueError(
            f"expected hidden [B, T, H] and labels [B, T], got {tuple(hidden.shape)} and {tuple(labels.shape)}"
        )
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    mask = scored_mask(labels, ignore_index)
    rows = hidden[:, :-1][mask]
    sample_of_row = mask.nonzero()[:, 0]
    sums = torch.zeros(labels.shape[0], dtype=compute_dtype(hidden.dtype), device=hidden.device)
    # Under ZeRO-3/FSDP every rank must call the head equally often (each call gathers its
    # parameters collectively), so callers pass the global chunk count as `min_chunks`.
    n_chunks = max(math.ceil(rows.shape[0] / chunk_size), min_chunks)
    for i in range(n_chunks):
        sl = slice(i * chunk_size, (i + 1) * chunk_size)
        ent = token_entropy(head(rows[sl]))
        sums.index_add_(0, sample_of_row[sl], ent.to(sums.dtype))
    return sums / mask.sum(dim=1).clamp(min=1)


# Config attributes of models whose logits are not a plain linear map of the last hidden state.
_LOGIT_TRANSFORMS = (
    "final_logit_softcapping",  # Gemma 2
    "logit_scale",  # Cohere
    "logits_scaling",  # Granite
    "lm_head_multiplier",  # Falcon-H1
    "output_multiplier",
)


def uses_plain_output_head(model: PreTrainedModel) -> bool:
    """True when logits == output_embeddings(decoder(x).last_hidden_state), so the chunked path is exact."""
    config = model.config.get_text_config()
    return all(getattr(config, name, None) in (None, 1, 1.0) for name in _LOGIT_TRANSFORMS)


@torch.no_grad()
def dataset_entropies(
    model: PreTrainedModel,
    dataset: Any,
    collator: Callable[[list[dict[str, Any]]], dict[str, Tensor]],
    batch_size: int = 8,
    chunk_size: int = defaults.CHUNK_SIZE,
    state: PartialState | None = None,
) -> list[tuple[float, int]]:
    """(mean completion entropy, scored tokens) of every row of a tokenised data set, in its order.

    `collator` turns rows into a batch with `input_ids`, `attention_mask` and `labels` (-100 where not scored).
    Under several processes each scores a share of the batches and every process gets all results.
    """
    state = state or PartialState()
    model.eval()
    # Length-sorted batches waste little compute on padding.
    lengths = [len(ids) for ids in dataset["input_ids"]]
    order = sorted(range(len(dataset)), key=lengths.__getitem__)
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    results: list[tuple[int, float, int]] = []
    decoder, head = model.get_decoder(), model.get_output_embeddings()
    plain_head = uses_plain_output_head(model)
    # Every n-th batch per rank, so that the long (late, length-sorted) batches are spread over all ranks.
    shard = batches[state.process_index :: state.num_processes]
    for positions in tqdm(shard, desc="entropy", disable=not state.is_local_main_process):
        batch = collator([dict(row) for row in dataset.select(positions)])
        labels = batch["labels"].to(state.device)
        inputs = {
            "input_ids": batch["input_ids"].to(state.device),
            "attention_mask": batch["attention_mask"].to(state.device),
            "use_cache": False,
        }
        if plain_head:
            entropy = chunked_sample_entropy(decoder(**inputs)[0], head, labels, chunk_size=chunk_size)
        else:  # soft-capped or scaled logits: only the model's own forward computes them right
            entropy = sample_entropy(model(**inputs).logits, labels)
        counts = scored_token_counts(labels)
        results += [(p, float(h), int(n)) for p, h, n in zip(positions, entropy, counts, strict=True)]
    gathered = gather_object(results) if state.num_processes > 1 else results
    scores = {position: (h, n) for position, h, n in gathered}
    return [scores[position] for position in range(len(dataset))]
