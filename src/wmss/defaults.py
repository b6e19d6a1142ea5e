"""The paper's defaults, defined once: every config, trainer and function signature reads them from here."""

from __future__ import annotations

ALPHA = 0.1  # Eq. 10: weight of the weak model's entropy (base difficulty)
BETA = 0.8  # Eq. 10: weight of samples whose entropy the strong model reduced (consolidation)
GAMMA = 0.1  # Eq. 10: weight of samples whose entropy rose (regression)
LAMBDA = 0.5  # Eq. 11: z_mix = λ·z_strong + (1-λ)·z_weak
CHUNK_SIZE = 1024  # positions per chunk of full-vocabulary logits (memory, not results)
SAMPLING_TEMPERATURE = 0.5  # the paper's sampling settings for mean@n / pass@n (greedy for plain accuracy)
SAMPLING_TOP_P = 0.95
IGNORE_INDEX = -100  # label of untrained (prompt, padding) positions: PyTorch's and transformers' convention
