"""The benchmark record: one question with its reference answer, whatever file it came from."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Grading kinds; "code" records are checked by running tests, the others by `wmss.eval.grading`.
KINDS = ("numeric", "latex", "choice", "code")


@dataclass
class BenchmarkRecord:
    """One benchmark question; code records keep prompt/test/entry_point or test_list/test_setup_code in metadata."""

    id: str
    question: str
    gold: str
    kind: str
    choices: dict[str, str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
