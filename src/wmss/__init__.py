"""wmss: Weak-Driven Learning (WMSS) for any Hugging Face causal LM.

The method lives in `wmss.method`, one module per equation: `entropy` (Eq. 3/8), `curriculum` (Eq. 9-10) and
`mixed_loss` (Eq. 11-12), beside the joint model, the trainer and LoRA; Algorithm 1 is `wmss.pipeline`.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "sample_entropy": "wmss.method.entropy",
    "curriculum_weights": "wmss.method.curriculum",
    "mixed_logit_cross_entropy": "wmss.method.mixed_loss",
    "RunConfig": "wmss.config",
    "WMSSConfig": "wmss.method.trainer",
    "WMSSTrainer": "wmss.method.trainer",
    "load_config": "wmss.config",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    # Lazy so that `import wmss` (and `wmss --help`) does not import torch.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wmss' has no attribute {name!r}")
