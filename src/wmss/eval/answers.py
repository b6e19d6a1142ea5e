"""Reading answers from model outputs: thinking removal, `<answer>` tags, `\\boxed{}`, phrases, choice letters, numbers."""

from __future__ import annotations

import math
import re

_THINK_OPEN = "<think>"
_THINK_CLOSE = "</think>"
_ANSWER_OPEN_RE = re.compile(r"<answer\s*>", re.IGNORECASE)
_ANSWER_CLOSE_RE = re.compile(r"</answer\s*>", re.IGNORECASE)
_BOX_RE = re.compile(r"\\(?:boxed|fbox)\s*\{")
# "The answer is X", "Final answer: X", "**Answer:** X"; the capture runs to the end of the line.
_PHRASE_RE = re.compile(
    r"\b(?:final\s+)?answer\b\s*(?:\*\*)?\s*(?:is\b\s*:?|:|=)\s*(?:\*\*)?[ \t]*(?P<rest>[^\n]*)",
    re.IGNORECASE,
)
# A period ends the sentence only when it is not a decimal point ("3.5 cm. So ..." -> "3.5 cm").
_SENTENCE_END_RE = re.compile(r"\.(?=\s|$)")
# A minus right after a word or digit is a hyphen or subtraction ("2023-2024"), not a sign.
_NUMBER_RE = re.compile(r"(?:(?<![\w)}])-)?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+)?")
_CHOICE_PHRASE_RE = re.compile(
    r"\b(?:answer|option|choice)\b\s*(?:\*\*)?\s*(?:is\b\s*:?|:|=)\s*(?:\*\*)?\s*(?:(?:option|choice)\s+)?"
    r"(?P<rest>[^\n]*)",
    re.IGNORECASE,
)
_LATEX_WRAPPER_RE = re.compile(r"\\(?:text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_DEFAULT_LETTERS = ("A", "B", "C", "D", "E")
# Decoration around a number in an answer, removed before it is parsed.
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


def strip_thinking(output: str) -> str:
    """Return the part of an output after its reasoning; "" when the reasoning never closed (truncated)."""
    close = output.rfind(_THINK_CLOSE)
    text = output[close + len(_THINK_CLOSE) :] if close >= 0 else output
    # An opening tag left after the last close starts thinking that never ended: nothing after it is an answer.
    reopen = text.find(_THINK_OPEN)
    return text[:reopen] if reopen >= 0 else text


def _balanced_from(text: str, start: int) -> int | None:
    """Index of the brace closing the one opened just before `start`, or None when it never closes."""
    depth = 1
    for index in range(start, len(text)):
        char = text[index]
        if char == "{":
            depth += 1
        elif char == "}":
            depth -= 1
            if depth == 0:
                return index
    return None


def last_boxed(text: str) -> str | None:
    """Return the content of the last brace-balanced `\\boxed{...}` / `\\fbox{...}`, or None."""
    found: str | None = None
    position = 0
    while (match := _BOX_RE.search(text, position)) is not None:
        end = _balanced_from(text, match.end())
        if end is None:
            # A truncated box: keep looking, a later complete one may follow.
            position = match.end()
            continue
        found = text[match.end() : end]
        # Skip past the box so that a nested `\boxed` counts as part of its outer box.
        position = end + 1
    return found


def _answer_tag_content(text: str) -> str | None:
    """Content of the last `<answer>` tag (closed or, at the end of the text, unclosed), or None."""
    opens = list(_ANSWER_OPEN_RE.finditer(text))
    if not opens:
        return None
    last = opens[-1]
    close = _ANSWER_CLOSE_RE.search(text, last.end())
    return text[last.end() : close.start() if close else len(text)]


def unwrap_math(text: str) -> str:
    """Drop a `$...$`, `$$...$$`, `\\(...\\)` or `\\[...\\]` that wraps the whole answer."""
    text = text.strip()
    for left, right in (("$$", "$$"), ("\\(", "\\)"), ("\\[", "\\]"), ("$", "$")):
        if len(text) > len(left) + len(right) and text.startswith(left) and text.endswith(right):
            inner = text[len(left) : -len(right)].strip()
            if "$" not in inner.replace("\\$", ""):
                return inner
    return text


def _phrase_answer(text: str) -> str | None:
    """The rest of the sentence after the last "answer is" / "final answer:" / "Answer:", or None."""
    for match in reversed(list(_PHRASE_RE.finditer(text))):
        rest = match.group("rest")
        end = _SENTENCE_END_RE.search(rest)
        rest = (rest[: end.start()] if end else rest).strip().strip("*").strip()
        rest = unwrap_math(rest.rstrip(".").strip()).rstrip("$").strip()
        if rest:
            return rest
    return None


def _locate_answer(output: str) -> tuple[str | None, bool]:
    """The extracted answer and whether it was stated explicitly (tag, box or phrase) rather than guessed."""
    text = strip_thinking(output)
    tagged = _answer_tag_content(text)
    if tagged is not None:
        boxed = last_boxed(tagged)
        content = unwrap_math(boxed) if boxed is not None else _phrase_answer(tagged) or unwrap_math(tagged)
        if content:
            return content, True
    boxed = last_boxed(text)
    if boxed is not None and boxed.strip():
        return unwrap_math(boxed), True
    phrase = _phrase_answer(text)
    if phrase is not None:
        return phrase, True
    numbers = _NUMBER_RE.findall(text)
    return (numbers[-1], False) if numbers else (None, False)


def extract_answer(output: str) -> str | None:
    """Return the final answer of an output: `<answer>`, then `\\boxed{}`, then "answer is X", then last number."""
    return _locate_answer(output)[0]


def is_truncated(output: str, finished: bool | None = None) -> bool:
    """True when generation hit the token limit, or (when unknown) left `<think>` or `<answer>` unclosed."""
    if finished is not None:
        return not finished
    close = output.rfind(_THINK_CLOSE)
    if _THINK_OPEN in (output[close + len(_THINK_CLOSE) :] if close >= 0 else output):
        return True
    opens = list(_ANSWER_OPEN_RE.finditer(output))
    return bool(opens) and _ANSWER_CLOSE_RE.search(output, opens[-1].end()) is None


def _clean_for_letter(text: str) -> str:
    """Strip the markup around a choice answer: math delimiters, boxes, `\\text{}`, bold, quotes."""
    boxed = last_boxed(text)
    text = unwrap_math(boxed if boxed is not None else text)
    text = _LATEX_WRAPPER_RE.sub(r"\1", text)
    return text.replace("**", "").strip().strip("'\"`").strip()


def _letter_at_start(text: str, letters: tuple[str, ...], choices: dict[str, str] | None) -> str | None:
    """The letter a choice answer starts with, when it stands alone ("D", "(D)", "D.", "D) 2.65"), else None."""
    alternatives = "|".join(re.escape(letter) for letter in letters)
    # The letter must be followed by a closing mark or the end: "A bit tricky" is prose, not option A.
    match = re.match(rf"\(?(?P<letter>{alternatives})(?:\)|\.(?![A-Za-z0-9])|,|:|\s*$)", text)
    if match:
        return match.group("letter")
    match = re.match(rf"\(?(?P<letter>{alternatives})\)?\s+(?P<rest>.+)$", text, re.DOTALL)
    if match and choices and _same_text(match.group("rest"), choices[match.group("letter")]):
        return match.group("letter")
    return None


def _normalise_text(text: str) -> str:
    text = _LATEX_WRAPPER_RE.sub(r"\1", unwrap_math(text)).replace("\\$", "$")
    return " ".join(text.lower().rstrip(".").split())


def _same_text(answer: str, option: str) -> bool:
    return _normalise_text(answer) == _normalise_text(option)


def _letter_from_value(answer: str, choices: dict[str, str]) -> str | None:
    """The one option whose text equals the answer (textually first, then numerically), else None."""
    textual = [letter for letter, option in choices.items() if _same_text(answer, option)]
    if textual:
        # Options can share a number ("3% Profit" / "3% Loss"): the exact text decides first.
        return textual[0] if len(textual) == 1 else None
    value = parse_number(answer)
    if value is None:
        return None
    numeric = [
        letter
        for letter, option in choices.items()
        if (option_value := parse_number(option)) is not None and values_equal(value, option_value)
    ]
    return numeric[0] if len(numeric) == 1 else None


def _whole_letter(text: str, letters: tuple[str, ...]) -> str | None:
    """The letter when the text is nothing but that letter, in either case ("d", "(D)", "D.")."""
    alternatives = "|".join(re.escape(letter) for letter in letters)
    match = re.fullmatch(rf"\(?(?P<letter>{alternatives})\)?[.:]?", text.strip(), re.IGNORECASE)
    return match.group("letter").upper() if match else None


def _letter_in_phrase(text: str, letters: tuple[str, ...], choices: dict[str, str] | None) -> str | None:
    """The letter after the last "answer is" / "option:" phrase, when it stands alone."""
    for match in reversed(list(_CHOICE_PHRASE_RE.finditer(text))):
        rest = _clean_for_letter(match.group("rest"))
        letter = _letter_at_start(rest, letters, choices)
        if letter is not None:
            return letter
    return None


def _bare_letter_line(text: str, letters: tuple[str, ...]) -> str | None:
    """The letter when the last non-empty line is nothing but that letter ("D", "(D)", "**D.**")."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return None
    return _whole_letter(_clean_for_letter(lines[-1]), letters)


def extract_choice(output: str, choices: dict[str, str] | None) -> str | None:
    """Return the chosen option letter of an output, mapping a stated value back to its option; else None."""
    choices = {key.strip().upper(): text for key, text in choices.items()} if choices else None
    letters = tuple(sorted(choices)) if choices else _DEFAULT_LETTERS
    text = strip_thinking(output)
    tagged = _answer_tag_content(text)
    if tagged is not None and tagged.strip():
        content = _clean_for_letter(tagged)
        letter = (
            _whole_letter(content, letters)
            or _letter_at_start(content, letters, choices)
            or _letter_in_phrase(content, letters, choices)
        )
        if letter is not None:
            return letter
    else:
        boxed = last_boxed(text)
        if boxed is not None:
            content = _clean_for_letter(boxed)
            letter = _whole_letter(content, letters) or _letter_at_start(content, letters, choices)
            if letter is not None:
                return letter
        letter = _letter_in_phrase(text, letters, choices) or _bare_letter_line(text, letters)
        if letter is not None:
            return letter
    answer, explicit = _locate_answer(output)
    # A last number picked from the prose could as well be one of the listed options: only stated answers map.
    if choices and answer is not None and explicit:
        return _letter_from_value(_clean_for_letter(answer), choices)
    return None


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
