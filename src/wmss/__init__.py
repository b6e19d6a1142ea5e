"""wmss: Weak-Driven Learning (WMSS) for any Hugging Face causal LM.

The three equations of the method live in three short modules:
`wmss.entropy` (Eq. 3/8), `wmss.curriculum` (Eq. 9-10) and `wmss.mixed_loss` (Eq. 11-12);
Algorithm 1 is `wmss.pipeline`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "sample_entropy": "wmss.entropy",
    "curriculum_weights": "wmss.curriculum",
    "mixed_logit_cross_entropy": "wmss.mixed_loss",
    "RunConfig": "wmss.config",
    "WMSSConfig": "wmss.trainer",
    "WMSSTrainer": "wmss.trainer",
    "load_config": "wmss.config",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    # Lazy so that `import wmss` (and `wmss --help`) does not import torch.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wmss' has no attribute {name!r}")
