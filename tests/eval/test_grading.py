"""Grading by kind on realistic outputs, the authors'-scorer flag, and the benchmarks' own gold answers."""

from __future__ import annotations

import json
import re
import threading
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from wmss.eval.answers import numbers_match, parse_number, values_equal
from wmss.eval.grading import Verdict, grade, grade_answer, grade_answer_authors

BENCHMARKS = Path(__file__).resolve().parents[2] / ".." / "shared" / "benchmarks"
AQUA_CHOICES = {"A": "23.65", "B": "1000", "C": "35.62", "D": "2.65", "E": "1023.65"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("18", 18.0),
        ("576.0", 576.0),
        ("1,234", 1234.0),
        ("1,234,567.5", 1234567.5),
        ("$18", 18.0),
        (r"\$18.00", 18.0),
        ("25%", 25.0),
        (r"25\%", 25.0),
        ("18 dollars", 18.0),
        ("5 cm", 5.0),
        ("10 km/h", 10.0),
        (r"5\text{ cm}^2", 5.0),
        (r"\text{18}", 18.0),
        (r"\frac{11}{6}", 11 / 6),
        (r"\dfrac{11}{6}", 11 / 6),
        (r"\frac12", 0.5),
        (r"-\frac{1}{2}", -0.5),
        ("11/6", 11 / 6),
        ("-15", -15.0),
        ("−15", -15.0),
        ("1.5e3", 1500.0),
        ("2.5E-2", 0.025),
        (r"1.5 \times 10^{3}", 1500.0),
        (r"1\!234", 1234.0),
        (r"1\,234", 1234.0),
        ("1{,}234", 1234.0),
        (r"336^\circ", 336.0),
        ("336°", 336.0),
        ("x = 5", 5.0),
        (r"\boxed{42}", 42.0),
        ("$18$.", 18.0),
        ("He has 18 apples", 18.0),
        (".5", 0.5),
        ("", None),
        ("abc", None),
        ("1/0", None),
        ("1,23", None),
        (r"\sqrt{2}", None),
        (r"2\sqrt{2}", None),
        ("2 pi", None),
        ("x^2", None),
        ("(1, 2)", None),
        ("10:30", None),
        ("12 - 3", None),
        ("5 apples and 3 oranges", None),
    ],
)
def test_parse_number(text: str, expected: float | None) -> None:
    value = parse_number(text)
    if expected is None:
        assert value is None
    else:
        assert value == pytest.approx(expected)


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_parse_number_reads_thousands_separators(number: int) -> None:
    assert parse_number(f"{number:,}") == number


@given(st.floats(min_value=-1e9, max_value=1e9, allow_nan=False))
def test_parse_number_reads_python_floats(number: float) -> None:
    assert parse_number(repr(number)) == number


def test_numbers_match_and_integer_gold_exactness() -> None:
    assert numbers_match(1.8333, 11 / 6)
    assert not numbers_match(1.83, 11 / 6)
    assert numbers_match(0.0, 1e-7)
    # A relative tolerance alone would accept an off-by-two count.
    assert numbers_match(28464.0, 28462.0)
    assert not values_equal(28464.0, 28462.0)
    assert values_equal(576.0, 576.0)
    assert values_equal(1.8333, 11 / 6)


@pytest.mark.parametrize(
    ("output", "gold", "expected"),
    [
        ("<think>\n16 - 3 - 4 = 9 eggs, 9 * 2 = 18\n</think>\n<answer> 18 </answer>", "18.0", True),
        (r"<answer> The total is $\boxed{1,234}$. </answer>", "1234.0", True),
        (r"<think>ratio</think><answer> \boxed{11/6} </answer>", "1.8333333333333335", True),
        (r"<answer> \frac{11}{6} </answer>", "1.8333333333333335", True),
        ("Natalia sold 48 + 24 = 72 clips.\nThe answer is 576.", "576.0", True),
        ("<answer> 576 </answer>", "576.0", True),
        ("<answer> $18 </answer>", "18.0", True),
        ("<answer> 18 dollars </answer>", "18.0", True),
        ("<answer> Janet makes $18 every day. </answer>", "18.0", True),
        ("<answer> -15 </answer>", "-15.0", True),
        ("<answer> 0.75 </answer>", "0.75", True),
        ("<answer> 28464 </answer>", "28462.0", False),
        ("<answer> 575.99 </answer>", "576.0", False),
        ("<think> maybe 42 </think><answer>17</answer>", "42", False),
        ("<think> maybe 42 </think><answer>17</answer>", "17", True),
        ("<think> 42 is what I get so far, then", "42", False),
        ("I am not sure.", "18.0", False),
        (r"<answer> 2^{10} </answer>", "1024", True),
    ],
)
def test_grade_numeric(output: str, gold: str, expected: bool) -> None:
    assert grade_answer(output, gold, "numeric") is expected


@pytest.mark.parametrize(
    ("output", "gold", "expected"),
    [
        (r"<think>...</think><answer> $\frac{\sqrt{3}}{2}$ </answer>", r"\dfrac{\sqrt3}{2}", True),
        (r"Hence $\boxed{\frac{\sqrt{3}}{2}}$.", r"\dfrac{\sqrt3}{2}", True),
        (r"<answer> \frac{1}{2} </answer>", r"\dfrac{\sqrt3}{2}", False),
        ("<answer> 336 </answer>", r"336^\circ", True),
        (r"<answer> $336^\circ$ </answer>", r"336^\circ", True),
        ("<answer> 70 </answer>", "70", True),
        ("<answer> 71 </answer>", "70", False),
        (r"<answer> 2\sqrt{2} </answer>", r"\sqrt{8}", True),
        (r"<answer> x = 5 </answer>", "5", True),
        (r"<answer> \pi/2 </answer>", r"\frac{\pi}{2}", True),
        ("<answer> banana </answer>", r"\frac{\pi}{2}", False),
    ],
)
def test_grade_latex(output: str, gold: str, expected: bool) -> None:
    assert grade_answer(output, gold, "latex") is expected


@pytest.mark.parametrize(
    ("output", "gold", "expected"),
    [
        ("<think>1023.65 - 1000 = 23.65 ... wait, even integer</think>\n<answer> D </answer>", "D", True),
        ("<answer> D </answer>", "(D)", True),
        ("<answer> 2.65 </answer>", "D", True),
        ("The answer is a bit tricky. 1023.65 - 1021 ...\n<answer> C </answer>", "C", True),
        ("The answer is a bit tricky. 1023.65 - 1021 ...\n<answer> C </answer>", "A", False),
        ("The answer is a bit tricky", "A", False),
        ("<answer> B </answer>", "D", False),
    ],
)
def test_grade_choice(output: str, gold: str, expected: bool) -> None:
    assert grade_answer(output, gold, "choice", AQUA_CHOICES) is expected


def test_grade_rejects_unknown_kind_naming_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="numeric, latex, choice"):
        grade_answer("<answer> 1 </answer>", "1", "code")


def test_grade_returns_a_verdict_per_sample() -> None:
    assert grade("<think>9 eggs</think><answer> 18 </answer>", "18.0", "numeric") == Verdict(
        True, "18", False
    )
    assert grade("<think> 42 and on", "42", "numeric") == Verdict(False, None, True)
    assert grade("<answer> 18 </answer>", "18.0", "numeric", finished=False) == Verdict(True, "18", True)
    assert grade("<answer> D </answer>", "D", "choice", AQUA_CHOICES) == Verdict(True, "D", False)


def test_authors_scorer_misses_plain_answers_that_we_grade_correct() -> None:
    output = "<think>\n16 - 3 - 4 = 9; 9 * 2 = 18\n</think>\n<answer> 18 </answer>"
    assert grade_answer(output, "18.0", "numeric")
    # The reason the flag exists: the original LaTeX-only scorer never finds a plain-text number.
    assert not grade_answer_authors(output, "18.0")
    assert grade_answer_authors(r"<answer> $\boxed{18}$ </answer>", "18.0")
    assert grade_answer_authors(r"so $\boxed{\frac{\sqrt{3}}{2}}$", r"\dfrac{\sqrt3}{2}")


def test_math_verify_timeout_counts_as_wrong(monkeypatch: pytest.MonkeyPatch) -> None:
    import math_verify
    from math_verify.errors import TimeoutException

    def timing_out(*_: object, **__: object) -> bool:
        raise TimeoutException("Operation timed out!")

    monkeypatch.setattr(math_verify, "verify", timing_out)
    assert grade_answer(r"<answer> \frac{\sqrt{3}}{2} </answer>", r"\dfrac{\sqrt3}{2}", "latex") is False
    assert grade_answer_authors(r"$\boxed{18}$", "18") is False


def test_latex_grading_refuses_to_run_outside_the_main_thread() -> None:
    errors: list[BaseException] = []
    numeric: list[bool] = []

    def worker() -> None:
        # Plain numbers never reach math-verify, so numeric grading is fine in a worker thread.
        numeric.append(grade_answer("<answer> 18 </answer>", "18.0", "numeric"))
        try:
            grade_answer(r"<answer> \frac{\sqrt{3}}{2} </answer>", r"\dfrac{\sqrt3}{2}", "latex")
        except RuntimeError as error:
            errors.append(error)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert numeric == [True]
    assert len(errors) == 1 and "main thread" in str(errors[0])


def _aqua_choices(instruction: str) -> dict[str, str]:
    listed = instruction.split("Answer Choices:")[-1]
    parts = re.split(r"\(([A-E])\)\s*", listed)
    return {letter: text.strip() for letter, text in zip(parts[1::2], parts[2::2], strict=True)}


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("gsm8k", "numeric"),
        ("svamp", "numeric"),
        ("mawps", "numeric"),
        ("aime2025", "latex"),
        ("amc23", "latex"),
        ("aqua", "choice"),
    ],
)
def test_benchmark_gold_answers_grade_against_themselves(name: str, kind: str) -> None:
    path = BENCHMARKS / name / "test.json"
    if not path.is_file():
        pytest.skip(f"shared benchmark file {path} not present")
    rows = json.loads(path.read_text(encoding="utf-8"))[:30]
    for row in rows:
        gold = str(row["answer"])
        choices = _aqua_choices(row["instruction"]) if kind == "choice" else None
        assert grade_answer(f"<answer> {gold} </answer>", gold, kind, choices), (name, gold)
        if choices:
            # The option's value instead of its letter is the same answer.
            assert grade_answer(f"<answer> {choices[gold]} </answer>", gold, kind, choices), (name, gold)
