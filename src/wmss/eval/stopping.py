"""Stopping at a string: the closing answer tag ends a generation as the end-of-turn token does.

transformers' own `StopStringCriteria` matches on the whole sequence, so a stop string that begins in the prompt
can end a generation, and it does not say where each row stopped. This criterion looks at generated tokens only
and records, per row, how many tokens it generated up to the one that completed the string.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from transformers import StoppingCriteria


class StopOnStrings(StoppingCriteria):
    """Stops a row once its generated text (never the prompt) holds a stop string; `stopped_at`: row -> tokens."""

    def __init__(self, tokenizer: Any, stop_strings: Sequence[str], prompt_width: int) -> None:
        self.tokenizer = tokenizer
        self.stop_strings = tuple(stop_strings)
        self.prompt_width = prompt_width
        # Every token decodes to at least one character, so a string that the last token completed lies within
        # this many last tokens.
        self.window = max(len(text) for text in self.stop_strings)
        self.stopped_at: dict[int, int] = {}

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.BoolTensor:
        """Per row: True once it has stopped (checked after every generated token)."""
        generated = input_ids.shape[1] - self.prompt_width
        tails = input_ids[:, max(self.prompt_width, input_ids.shape[1] - self.window) :].tolist()
        for row, tail in enumerate(tails):
            if row not in self.stopped_at:
                text = self.tokenizer.decode(tail, skip_special_tokens=True)
                if any(stop_string in text for stop_string in self.stop_strings):
                    self.stopped_at[row] = generated
        done = [row in self.stopped_at for row in range(input_ids.shape[0])]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)
