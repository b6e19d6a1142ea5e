"""Logits processors for `generate`: WMSS's two branches mixed at inference, and per-token entropies.

Where they run, checked in transformers 5.25's `generation/utils.py`: `_get_logits_processor` (line 1420)
builds the generation config's own processors first, merges the custom `logits_processor` list after them
(line 1604) and only then appends the sampling warpers, temperature first (line 1623), then top-k/top-p/min-p.
`_sample` copies the model's last-position logits to float32 (line 3251), passes them through that list
(line 3254) and stores the unprocessed copy as `output_logits` (line 3261). So a custom processor sees the raw
logits whenever the config adds no processor of its own (HFBackend fixes repetition_penalty=1 and sets none of
the others), and what it returns is what temperature and top-p then act on: greedy decoding takes the argmax
of the mixed logits, sampling draws from softmax(z_mix / T) cut to top-p. `num_return_sequences` copies every
prompt row next to itself (`_expand_inputs_for_generation`, `repeat_interleave`, line 1231) before step one.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING

import torch
from transformers import LogitsProcessor

from wmss.errors import ConfigError, ModelError
from wmss.method.entropy import token_entropy

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def _cache_argument(model: PreTrainedModel) -> str:
    # transformers 5.x renamed forward's `past_key_values` to `cache` (the old name is deprecated); 4.x has
    # only the old one.
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


class MixedLogitsProcessor(LogitsProcessor):
    """λ·scores + (1-λ)·z_weak: the weak model follows the generated tokens with its own KV cache."""

    def __init__(self, weak_model: PreTrainedModel, lam: float, prompt_attention_mask: torch.Tensor) -> None:
        if not 0.0 <= lam <= 1.0:
            raise ConfigError(f"the mixing weight lambda must be in [0, 1], got {lam}")
        if prompt_attention_mask.dim() != 2:
            raise ValueError(
                f"prompt_attention_mask must be [batch, length], got {tuple(prompt_attention_mask.shape)}"
            )
        self.weak_model = weak_model
        self.lam = lam
        self.prompt_attention_mask = prompt_attention_mask
        self._cache_argument = _cache_argument(weak_model)
        self._cache: object | None = None
        self._mask: torch.Tensor | None = None
        self._seen = 0

    def _start(self, input_ids: torch.Tensor) -> torch.Tensor:
        """The prompt mask for generate's rows: one copy per returned sequence, as generate made them."""
        mask = self.prompt_attention_mask.to(input_ids.device)
        rows, prompts = input_ids.shape[0], mask.shape[0]
        if rows % prompts or input_ids.shape[1] != mask.shape[1]:
            raise ValueError(
                f"the prompt attention mask {tuple(mask.shape)} does not match generate's first input "
                f"{tuple(input_ids.shape)}; build one MixedLogitsProcessor per generate call"
            )
        return mask.repeat_interleave(rows // prompts, dim=0) if rows != prompts else mask

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Mix the strong model's next-token scores with the weak model's logits on the same tokens."""
        if self._mask is None:
            self._mask = self._start(input_ids)
        new_tokens = input_ids[:, self._seen :]
        if new_tokens.shape[1] == 0:
            raise ValueError(
                "MixedLogitsProcessor was called twice on the same tokens; use one per generate call"
            )
        # Every generated token is attended to, padding after a finished row included, as in generate's mask.
        grown = input_ids.shape[1] - self._mask.shape[1]
        if grown > 0:
            self._mask = torch.cat([self._mask, self._mask.new_ones(self._mask.shape[0], grown)], dim=1)
        # Position ids as generate's `_prepare_position_ids_for_generation` makes them: count real tokens.
        positions = (self._mask.long().cumsum(-1) - 1).masked_fill(self._mask == 0, 0)
        outputs = self.weak_model(
            input_ids=new_tokens,
            attention_mask=self._mask,
            position_ids=positions[:, self._seen :],
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_argument: self._cache},
        )
        self._cache = getattr(outputs, self._cache_argument)
        self._seen = input_ids.shape[1]
        weak = outputs.logits[:, -1].to(device=scores.device, dtype=scores.dtype)
        if weak.shape != scores.shape:
            raise ModelError(
                f"the weak model's logits {tuple(weak.shape)} do not match the strong model's "
                f"{tuple(scores.shape)}; mixing needs two checkpoints with one vocabulary"
            )
        return scores * self.lam + weak * (1.0 - self.lam)


class EntropyRecorder(LogitsProcessor):
    """Records the entropy of softmax(scores) of every row at every step and returns the scores unchanged."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        """Store the per-row entropy of this step's distribution (before any temperature or top-p)."""
        self.steps.append(token_entropy(scores))
        return scores

    def mean_entropies(self, n_tokens: list[int]) -> list[float]:
        """Mean entropy over each row's first n_tokens steps (its tokens up to and including the stop)."""
        if not self.steps:
            raise ValueError("no step was recorded")
        table = torch.stack(self.steps, dim=1).double()
        if len(n_tokens) != table.shape[0] or not all(1 <= n <= table.shape[1] for n in n_tokens):
            raise ValueError(f"token counts {n_tokens} do not fit the recorded steps {tuple(table.shape)}")
        return [table[row, :n].mean().item() for row, n in enumerate(n_tokens)]
