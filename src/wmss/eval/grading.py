"""Grading by kind: numeric (tolerant number comparison), latex (math-verify) and choice (option letter).

The authors' evaluator only reads LaTeX, so it scores a plain `<answer> 18 </answer>` as wrong;
`grade` reads what a careful human would, and `grade_answer_authors` reproduces the original for comparison.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass

from wmss.eval.answers import (
    extract_answer,
    extract_choice,
    is_truncated,
    parse_number,
    unwrap_math,
    values_equal,
)

GRADING_KINDS = ("numeric", "latex", "choice")


@dataclass(frozen=True)
class Verdict:
    """One graded sample: correctness, the answer read from the output, and whether generation was cut off."""

    correct: bool
    extracted: str | None
    truncated: bool


def _require_main_thread() -> None:
    # math-verify times out through SIGALRM, which only the main thread can receive.
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("math-verify grading must run in the main thread (it uses signal-based timeouts)")


def as_latex(text: str) -> str:
    """Wrap an extracted answer the way math-verify expects to find LaTeX: inside `$...$`."""
    if "\\boxed" in text:
        return text
    inner = unwrap_math(text)
    return inner if "$" in inner.replace("\\$", "") else f"${inner}$"


def _math_verify_equal(gold: str, answer: str) -> bool:
    """Symbolic equivalence by math-verify (gold first); a parse failure or timeout counts as wrong."""
    _require_main_thread()
    from math_verify import parse, verify
    from math_verify.errors import TimeoutException

    try:
        gold_parsed = parse(as_latex(gold))
        answer_parsed = parse(as_latex(answer))
        return bool(gold_parsed) and bool(answer_parsed) and bool(verify(gold_parsed, answer_parsed))
    # TimeoutException derives from BaseException, so `except Exception` alone would let it escape.
    except (Exception, TimeoutException):
        return False


def _answers_equal(answer: str, gold: str, kind: str) -> bool:
    gold_value = parse_number(gold)
    answer_value = parse_number(answer)
    if gold_value is not None and answer_value is not None:
        if values_equal(answer_value, gold_value):
            return True
        # Two plain numbers that differ are decisive for a numeric benchmark; LaTeX golds may still be equivalent.
        if kind == "numeric":
            return False
    return _math_verify_equal(gold, answer)


def _gold_letter(gold: str) -> str:
    match = re.match(r"\s*\(?\s*([A-Za-z])\b", gold)
    return match.group(1).upper() if match else gold.strip().upper()


def grade(
    output: str, gold: str, kind: str, choices: dict[str, str] | None = None, finished: bool | None = None
) -> Verdict:
    """Grade one model output against its gold answer for kind "numeric", "latex" or "choice"."""
    if kind not in GRADING_KINDS:
        raise ValueError(
            f"unknown grading kind {kind!r}; expected one of {', '.join(GRADING_KINDS)} "
            "(code answers are checked by running them)"
        )
    truncated = is_truncated(output, finished)
    if kind == "choice":
        letter = extract_choice(output, choices)
        return Verdict(letter is not None and letter == _gold_letter(gold), letter, truncated)
    extracted = extract_answer(output)
    correct = extracted is not None and _answers_equal(extracted, gold, kind)
    return Verdict(correct, extracted, truncated)


def grade_answer(output: str, gold: str, kind: str, choices: dict[str, str] | None = None) -> bool:
    """True when the output's answer matches the gold answer for kind "numeric", "latex" or "choice"."""
    return grade(output, gold, kind, choices).correct


def grade_answer_authors(output: str, gold: str) -> bool:
    """The authors' LaTeX-only scorer, for comparison: it marks a plain-text `<answer> 18 </answer>` wrong."""
    _require_main_thread()
    from latex2sympy2_extended import NormalizationConfig
    from math_verify import LatexExtractionConfig, parse, verify
    from math_verify.errors import TimeoutException

    # The raw output, LaTeX extraction only and no unanchored fallback: a number outside `$...$`/`\boxed{}`
    # is never found, which is the behaviour this flag exists to reproduce.
    latex_only = [
        LatexExtractionConfig(
            normalization_config=NormalizationConfig(
                basic_latex=True, units=True, malformed_operators=False, nits=False, boxed="all"
            ),
            boxed_match_priority=0,
            try_extract_without_anchor=False,
        )
    ]
    try:
        answer_parsed = parse(output, extraction_config=latex_only, extraction_mode="first_match")
        gold_parsed = parse(gold, extraction_mode="first_match") or parse(
            f"${gold}$", extraction_mode="first_match"
        )
        return bool(answer_parsed) and bool(gold_parsed) and bool(verify(gold_parsed, answer_parsed))
    except (Exception, TimeoutException):
        return False
