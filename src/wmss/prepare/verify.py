"""Verifying responses with wmss's evaluation code: math answers by math-verify, code by running its tests.

Gold is checked first and on its own: a reference answer that math-verify cannot turn into an expression
(prose such as "See the proof above.") is reported as unparseable, never compared as a raw string.
"""

from __future__ import annotations

from typing import Any

from wmss.eval.answers import parse_number
from wmss.eval.code import extract_code
from wmss.eval.grading import as_latex, grade, grade_answer_authors
from wmss.eval.sandbox import check_program
from wmss.prepare.code_tests import build_test_program

GRADERS = ("wmss", "authors")


def _has_expression(parsed: list[Any]) -> bool:
    # math-verify returns [expression, source text] on success and only the text when nothing parsed.
    return any(not isinstance(item, str) for item in parsed)


def gold_parses(gold: str, grader: str) -> bool:
    """Whether math-verify (or, for "wmss", the number reader first) parses the reference answer."""
    from math_verify import parse
    from math_verify.errors import TimeoutException

    try:
        if grader == "authors":
            # As `grade_answer_authors` reads gold: the raw text first, then wrapped in $...$.
            return _has_expression(parse(gold, extraction_mode="first_match")) or _has_expression(
                parse(f"${gold}$", extraction_mode="first_match")
            )
        return parse_number(gold) is not None or _has_expression(parse(as_latex(gold)))
    # TimeoutException derives from BaseException, so `except Exception` alone would let it escape.
    except (Exception, TimeoutException):
        return False


def answer_correct(response: str, gold: str, grader: str) -> bool:
    """Whether the response's final answer equals the reference, by wmss's or the authors' grader."""
    if grader == "authors":
        return grade_answer_authors(response, gold)
    return grade(response, gold, "latex").correct


def code_passes(response: str, test_case: Any, timeout_s: float) -> bool | None:
    """Whether the response's program passes its test cases in the sandbox; None when they cannot be run."""
    program = build_test_program(extract_code(response), test_case)
    if program is None:
        return None
    return check_program(program, timeout_s)
