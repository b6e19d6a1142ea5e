"""Answer extraction from realistic model outputs: thinking, tags, boxes, phrases, choice letters."""

from __future__ import annotations

import pytest

from wmss.eval.answers import extract_answer, extract_choice, is_truncated, last_boxed, strip_thinking

AQUA_CHOICES = {"A": "23.65", "B": "1000", "C": "35.62", "D": "2.65", "E": "1023.65"}


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("<think> maybe 42 </think><answer>17</answer>", "<answer>17</answer>"),
        ("<think>a</think> mid <think>b</think> final", " final"),
        # R1-style templates open the thinking in the prompt: only the closing tag is generated.
        ("reasoning 42 </think>\n\nThe answer is 17.", "\n\nThe answer is 17."),
        ("<think> 42 and still going", ""),
        ("<think>a</think> 17 <think> 42 and more", " 17 "),
        ("no tags at all: 5", "no tags at all: 5"),
    ],
)
def test_strip_thinking(output: str, expected: str) -> None:
    assert strip_thinking(output) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (r"so \boxed{5} and then \boxed{7}", "7"),
        (r"\boxed{\frac{\sqrt{3}}{2}}", r"\frac{\sqrt{3}}{2}"),
        (r"\boxed {x^{2}} done", "x^{2}"),
        (r"\fbox{12}", "12"),
        (r"\boxed{\boxed{9}}", r"\boxed{9}"),
        # A final box cut off by the token limit is not an answer; the last complete one is.
        (r"\boxed{3} ... \boxed{\frac{1}{", "3"),
        ("no box here", None),
        (r"\boxed{}", ""),
    ],
)
def test_last_boxed(text: str, expected: str | None) -> None:
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        ("<think>\nJanet sells 16 - 3 - 4 = 9 eggs.\n</think>\n<answer> 18 </answer>", "18"),
        (r"<think>...</think> <answer> The total is $\boxed{1,234}$ dollars. </answer>", "1,234"),
        ("<answer> $576$ </answer>", "576"),
        ("<answer> first </answer> then <answer> 12 </answer>", "12"),
        ("<answer> The answer is 18. It took 3 steps. </answer>", "18"),
        ("<think>x</think><answer> 42", "42"),
        (r"We get $x = 3$, so the answer is $\boxed{11/6}$.", "11/6"),
        ("Natalia sold 48/2 = 24 clips in May.\nThe answer is 576.", "576"),
        ("**Final Answer:** 3.5 cm. That is all.", "3.5 cm"),
        ("Answer: $18$", "18"),
        ("Each costs 5, so she pays 3 * 5 = 15", "15"),
        ("In 2023-2024 the count was 7", "7"),
        ("<think> maybe 42 </think><answer>17</answer>", "17"),
        ("<think> 42 ... never closed", None),
        ("I cannot tell.", None),
        ("", None),
    ],
)
def test_extract_answer(output: str, expected: str | None) -> None:
    assert extract_answer(output) == expected


def test_empty_answer_tag_falls_back_to_the_stated_result() -> None:
    assert extract_answer("So she makes $18 a day.\n<answer></answer>") == "18"


@pytest.mark.parametrize(
    ("output", "finished", "expected"),
    [
        ("<think> long reasoning that hit the limit", None, True),
        ("<think>done</think><answer> 18", None, True),
        ("<think>done</think><answer> 18 </answer>", None, False),
        ("plain answer 18", None, False),
        ("<think>done</think><answer> 18 </answer>", False, True),
        ("<think> unclosed", True, False),
    ],
)
def test_is_truncated(output: str, finished: bool | None, expected: bool) -> None:
    assert is_truncated(output, finished) is expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (
            "<think>Property is 1023.65, recorded 1000, difference 23.65? no...</think>\n<answer> D </answer>",
            "D",
        ),
        ("<answer> (D) </answer>", "D"),
        ("<answer> d </answer>", "D"),
        ("<answer> D) 2.65 </answer>", "D"),
        ("<answer> D 2.65 </answer>", "D"),
        (r"<answer> $\boxed{\text{E}}$ </answer>", "E"),
        ("<answer> The answer is (B) because 1000 is recorded. </answer>", "B"),
        ("The answer is a bit tricky, let us compute.\n<answer> C </answer>", "C"),
        ("The difference is 2.65.\nThe answer is (D).", "D"),
        ("Therefore, the answer is option B.", "B"),
        ("Answer: E", "E"),
        (r"Thus $\boxed{(C)}$", "C"),
        ("After checking every option:\n\n**D**", "D"),
        # A stated value maps back to its option.
        ("<answer> 2.65 </answer>", "D"),
        ("<answer> $23.65 </answer>", "A"),
        ("The answer is $1,000$.", "B"),
        # Prose that merely starts with a capital letter is not a choice.
        ("The answer is A bit more than 2.", None),
        ("The answer is a bit tricky", None),
        ("<answer> F </answer>", None),
        ("Let me list the options: (A) 23.65 (B) 1000 (C) 35.62", None),
        ("<think> the answer is D </think>", None),
    ],
)
def test_extract_choice(output: str, expected: str | None) -> None:
    assert extract_choice(output, AQUA_CHOICES) == expected


def test_extract_choice_without_options_reads_letters_only() -> None:
    assert extract_choice("<answer> (B) </answer>", None) == "B"
    assert extract_choice("<answer> 2.65 </answer>", None) is None
    assert extract_choice("The answer is a bit tricky", None) is None


def test_extract_choice_matches_option_text_before_its_number() -> None:
    choices = {"A": "2% Profit", "B": "3% Profit", "C": "2% Loss", "D": "3% Loss", "E": "4% Loss"}
    assert extract_choice("<answer> 3% profit </answer>", choices) == "B"


def test_extract_choice_refuses_an_ambiguous_value() -> None:
    choices = {"A": "8.75", "B": "8.79", "C": "8.75", "D": "8.71", "E": "8.72"}
    assert extract_choice("<answer> 8.75 </answer>", choices) is None


def test_extract_choice_keeps_integer_options_apart() -> None:
    choices = {"A": "1095961", "B": "1065961", "C": "1085961", "D": "1097961", "E": "1096061"}
    assert extract_choice("<answer> 1096061 </answer>", choices) == "E"


def test_extract_choice_does_not_map_a_guessed_last_number() -> None:
    # No stated answer: the last number of the prose is as likely one of the listed options.
    assert extract_choice("Options are 23.65 and then 2.65", AQUA_CHOICES) is None
