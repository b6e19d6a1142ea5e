"""Evaluation: answer extraction and grading, sandboxed code checks, benchmarks and the runner."""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "grade": "wmss.eval.grading",
    "grade_answer": "wmss.eval.grading",
    "grade_answer_authors": "wmss.eval.grading",
    "Verdict": "wmss.eval.grading",
    "extract_answer": "wmss.eval.answers",
    "extract_choice": "wmss.eval.answers",
    "check_program": "wmss.eval.sandbox",
    "run_program": "wmss.eval.sandbox",
    "pass_at_k": "wmss.eval.code",
    "sample_metrics": "wmss.eval.sampling",
    "MixedLogitsProcessor": "wmss.eval.mixing",
}

__all__ = list(_LAZY)


def __getattr__(name: str) -> Any:
    # Lazy so that importing one submodule (e.g. the CLI's) does not pull in the others.
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'wmss.eval' has no attribute {name!r}")
