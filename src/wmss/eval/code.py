"""Code benchmarks: code extraction from chat answers, HumanEval/MBPP test programs, and pass@k."""

from __future__ import annotations

import math
import re

from wmss.eval.answers import strip_thinking

_FENCE = "```"
_PYTHON_TAGS = frozenset({"python", "python3", "py"})
_ANSWER_RE = re.compile(r"<answer\s*>(.*?)(?:</answer\s*>|$)", re.IGNORECASE | re.DOTALL)


def _fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, body) of each fenced block in order; an unclosed final fence runs to the end."""
    blocks: list[tuple[str, str]] = []
    position = 0
    while (start := text.find(_FENCE, position)) >= 0:
        line_end = text.find("\n", start)
        if line_end < 0:
            break
        tag = text[start + len(_FENCE) : line_end].strip().lower()
        close = text.find(_FENCE, line_end + 1)
        body = text[line_end + 1 : close if close >= 0 else len(text)]
        blocks.append((tag, body))
        if close < 0:
            break
        position = close + len(_FENCE)
    return blocks


def extract_code(output: str) -> str:
    """Return the program in a chat answer: the last ```python block (else the last fenced block), else the text."""
    text = strip_thinking(output)
    blocks = _fenced_blocks(text)
    python_blocks = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    if python_blocks:
        return python_blocks[-1]
    if blocks:
        return blocks[-1][1]
    tagged = _ANSWER_RE.findall(text)
    return tagged[-1].strip("\n") if tagged else text


def build_humaneval_program(prompt: str, completion: str, test: str, entry_point: str) -> str:
    """Return the HumanEval program: the function (prompt + completion, or a rewritten one), test, check call."""
    if re.search(rf"^\s*def\s+{re.escape(entry_point)}\s*\(", completion, re.MULTILINE):
        # A chat model rewrote the whole function. The prompt still goes first: its imports and helper
        # functions are often not repeated, and its docstring-only stub is valid Python that the rewrite replaces.
        solution = f"{prompt.rstrip()}\n\n\n{completion}"
    else:
        solution = prompt + completion
    return f"{solution}\n\n\n{test}\n\n\ncheck({entry_point})\n"


def build_mbpp_program(code: str, tests: list[str], setup: str = "") -> str:
    """Return the MBPP program: setup code, the solution, then its assert statements."""
    parts = [setup, code, "\n".join(tests)] if setup.strip() else [code, "\n".join(tests)]
    return "\n\n".join(part.rstrip() for part in parts) + "\n"


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of Chen et al. (2021) from n samples of which c passed: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n, got n={n}, c={c}")
    if not 1 <= k <= n:
        raise ValueError(f"pass@k needs 1 <= k <= n, got n={n}, k={k}")
    if n - c < k:
        return 1.0
    # Product form: binomials of a few hundred samples overflow floats, the ratio as a product does not.
    return 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))
