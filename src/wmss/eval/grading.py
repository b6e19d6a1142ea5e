"""Grading by kind: numeric (tolerant number comparison), latex (math-verify) and choice (option letter).

The authors' evaluator only reads LaTeX, so it scores a plain `<answer> 18 </answer>` as wrong;
`grade` reads what a careful human would, and `grade_answer_authors` reproduces the original for comparison.
"""

from __future__ import annotations

import math
import re
import threading
from dataclasses import dataclass

from wmss.eval.answers import extract_answer, extract_choice, is_truncated, last_boxed, unwrap_math

GRADING_KINDS = ("numeric", "latex", "choice")

_REMOVALS = (
    "\\!",
    "\\,",
    "\\;",
    "\\:",
    "\\left",
    "\\right",
    "\\$",
    "$",
    "\\%",
    "%",
    "^{\\circ}",
    "^\\circ",
    "\\circ",
    "\\degree",
    "°",
)
_WRAPPER_RE = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_NUM = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d*)?|\.\d+"
_FRAC_RE = re.compile(
    rf"\\[dt]?frac\s*(?:\{{\s*([-+]?(?:{_NUM}))\s*\}}|(\d))\s*(?:\{{\s*([-+]?(?:{_NUM}))\s*\}}|(\d))"
)
_ASSIGNMENT_RE = re.compile(r"^[A-Za-z]\w*\s*=\s*(?P<value>[^=]+)$")
_PLAIN_RE = re.compile(
    rf"""
    (?P<sign>[-+])?\s*
    (?P<num>{_NUM})
    (?:[eE](?P<exp>[-+]?\d+))?
    (?:\s*(?:\\times|\\cdot|×|\*)\s*10\s*\^\s*\{{?(?P<exp10>[-+]?\d+)\}}?)?
    (?:\s*/\s*(?P<den_sign>[-+])?(?P<den>{_NUM}))?
    (?P<unit>\s*[A-Za-z(][A-Za-z\s./'’()]*?(?:\^\{{?[23]\}}?|[²³])?)?
    \s*
    """,
    re.VERBOSE,
)
# Words that turn a number into another number ("2 pi", "3 sqrt 2"): never read them as units.
_MATH_WORDS = frozenset({"pi", "sqrt", "root", "i", "e", "squared", "cubed", "times", "x"})
_TOKEN_RE = re.compile(rf"(?:(?<![\w)}}])-)?(?:{_NUM})")
_NOT_PROSE_RE = re.compile(r"[\d\\^_{}=+*/<>|]")


@dataclass(frozen=True)
class Verdict:
    """One graded sample: correctness, the answer read from the output, and whether generation was cut off."""

    correct: bool
    extracted: str | None
    truncated: bool


def _clean_number_text(text: str) -> str:
    """Remove the LaTeX and currency/percent/degree decoration around a number."""
    boxed = last_boxed(text)
    text = unwrap_math(boxed if boxed is not None else text).replace("−", "-").replace("{,}", ",")
    for token in _REMOVALS:
        text = text.replace(token, "")
    previous = None
    while previous != text:
        previous, text = text, _WRAPPER_RE.sub(r"\1", text)
    text = _FRAC_RE.sub(lambda m: f"{m.group(1) or m.group(2)}/{m.group(3) or m.group(4)}", text)
    text = text.replace("~", " ").replace("\\ ", " ").strip().rstrip(".").strip()
    assignment = _ASSIGNMENT_RE.match(text)
    return assignment.group("value").strip() if assignment else text


def _to_float(number: str) -> float:
    return float(number.replace(",", ""))


def _parse_plain(text: str) -> float | None:
    """A number with optional sign, exponent, denominator and trailing unit words; None otherwise."""
    match = _PLAIN_RE.fullmatch(text)
    if match is None:
        return None
    unit = (match.group("unit") or "").strip().lower()
    if unit and unit.split()[0].strip("().") in _MATH_WORDS:
        return None
    exponent = int(match.group("exp") or 0) + int(match.group("exp10") or 0)
    # One float() of the whole literal: scaling by 10.0**exponent would round (and underflow) separately.
    value = _to_float(f"{match.group('num')}e{exponent}")
    if match.group("den") is not None:
        denominator = _to_float(match.group("den"))
        if denominator == 0:
            return None
        value /= -denominator if match.group("den_sign") == "-" else denominator
    if match.group("sign") == "-":
        value = -value
    return value if math.isfinite(value) else None


def _sole_number_in_prose(text: str) -> float | None:
    """The number in a sentence that holds exactly one ("He has 18 apples"), else None."""
    tokens = list(_TOKEN_RE.finditer(text))
    if len(tokens) != 1:
        return None
    token = tokens[0]
    rest = text[: token.start()] + " " + text[token.end() :]
    words = {word.strip(".,:;!?()'’").lower() for word in rest.split()}
    if _NOT_PROSE_RE.search(rest) or words & _MATH_WORDS:
        return None
    return _parse_plain(token.group())


def parse_number(text: str) -> float | None:
    """Parse a numeric answer ("1,234", "$18", "5 cm", "\\frac{11}{6}", "-2.5e3", "x = 5"); None if not a number."""
    cleaned = _clean_number_text(text)
    if not cleaned:
        return None
    value = _parse_plain(cleaned)
    return value if value is not None else _sole_number_in_prose(cleaned)


def numbers_match(a: float, b: float, rel_tol: float = 1e-4, abs_tol: float = 1e-6) -> bool:
    """True when two numbers are equal within a relative or absolute tolerance."""
    return math.isclose(a, b, rel_tol=rel_tol, abs_tol=abs_tol)


def values_equal(answer: float, gold: float) -> bool:
    """True when an answer equals the gold value: exactly for an integer gold, else within `numbers_match`."""
    # An integer gold (counts, money) must match exactly: a relative tolerance would accept 28464 for 28462.
    if gold.is_integer():
        return answer == gold
    return numbers_match(answer, gold)


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
