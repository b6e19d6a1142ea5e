"""The pieces of `wmss prepare`: record schema, format check, test programs, gold parsing, dedup, n-grams."""

from __future__ import annotations

import json

import pytest

from tests.prepare.fixture import PYTEST_ADD, code, math
from wmss.eval.sandbox import check_program
from wmss.io import JsonRow
from wmss.prepare.code_tests import build_test_program
from wmss.prepare.decontam import BenchmarkIndex
from wmss.prepare.dedup import Deduplicator, normalize_prompt, prompt_keys
from wmss.prepare.filters import format_ok
from wmss.prepare.report import Tally
from wmss.prepare.schema import read_sample
from wmss.prepare.verify import gold_parses

ADD = "def add(a, b):\n    return a + b\n"
SUB = "def add(a, b):\n    return a - b\n"
STDIN_SUM = "a, b = map(int, input().split())\nprint(a + b)\n"


def sample(row):
    return read_sample(JsonRow(0, "shard line 1", "shard:1", row))


def test_category_comes_from_tests_source_and_reference():
    assert sample(math("q", "5", "t", "\\boxed{5}")).category == "math"
    assert sample(code("q", PYTEST_ADD, ADD)).category == "code"
    assert sample(code("q", None, ADD, source="OpenCoder")).category == "code"
    assert sample(code("q", None, ADD, source="InfinityInstruct")).category == "other"
    # Parquet and hub copies carry every info key on every turn, null where the JSON has none.
    row = math("q", "5", "t", "\\boxed{5}")
    row["messages"][0]["info"].update(think_content=None, answer_content=None)
    parsed = sample(row)
    assert (parsed.category, parsed.reference_answer, parsed.test_case, parsed.source) == (
        "math",
        "5",
        None,
        "NuminaMath",
    )


def test_structure_problems_are_named():
    row = math("q", "5", "t", "a")
    row["messages"][1]["content"] = "  "
    assert sample(row).structure_problem == "messages[1] (assistant) is empty"
    row["messages"] = row["messages"][:1]
    assert sample(row).structure_problem == "no assistant turn after the last user turn"


@pytest.mark.parametrize(
    ("response", "category", "strict", "loose"),
    [
        ("<think>a</think>\n<answer>so \\boxed{5}.</answer>", "math", True, True),
        ("<think>a</think><answer>\\boxed{5}</answer>\n", "math", True, True),
        ("<think>a</think>\n<answer>5</answer>", "math", False, True),
        ("<think>a</think>\n<answer>\\boxed{5}</answer> Done.", "math", False, False),
        ("Sure! <think>a</think><answer>\\boxed{5}</answer>", "math", False, False),
        ("<answer>\\boxed{5}</answer>", "math", False, False),
        ("<think>a</think>\n<answer> </answer>", "math", False, False),
        ("<think>a</think>\n<answer>```python\nx = 1\n```</answer>", "code", True, True),
    ],
)
def test_format_strict_is_the_authors_pattern_loose_accepts_any_final_answer(
    response, category, strict, loose
):
    assert format_ok(response, category, "strict") is strict
    assert format_ok(response, category, "loose") is loose
    assert format_ok(response, category, "off") is True


@pytest.mark.parametrize(
    ("test_case", "solution", "passes"),
    [
        (json.dumps({"test_code": PYTEST_ADD}), ADD, True),
        (json.dumps({"test_code": PYTEST_ADD}), SUB, False),
        (PYTEST_ADD, ADD, True),
        ({"inputs": [[1, 2], [3, 4]], "outputs": [3, 7], "fn_name": "add"}, ADD, True),
        ({"inputs": [[1, 2]], "outputs": [[3]], "fn_name": "add"}, ADD, True),
        ({"inputs": [[1, 2]], "outputs": [3], "fn_name": "add"}, SUB, False),
        (json.dumps({"inputs": ["1 2\n", "5 5"], "outputs": ["3\n", "10"]}), STDIN_SUM, True),
        ({"inputs": ["1 2\n"], "outputs": ["4\n"]}, STDIN_SUM, False),
        (["assert add(1, 1) == 2"], ADD, True),
        ({"test_list": ["assert add(1, 1) == 2"], "test_setup_code": "import math"}, SUB, False),
        ({"test": "def check(f):\n    assert f(1, 2) == 3\n", "entry_point": "add"}, ADD, True),
    ],
)
def test_test_programs_pass_exactly_when_the_solution_is_right(test_case, solution, passes):
    program = build_test_program(solution, test_case)
    assert program is not None
    assert check_program(program, timeout_s=10) is passes


@pytest.mark.parametrize(
    ("test_case", "solution"),
    [
        ({"checker": "special judge"}, ADD),
        ("just prose", ADD),
        ({"inputs": [1, 2], "outputs": [3]}, ADD),
        (PYTEST_ADD, "  "),
    ],
)
def test_test_cases_of_unknown_form_are_unusable(test_case, solution):
    assert build_test_program(solution, test_case) is None


@pytest.mark.parametrize(
    ("gold", "parses"),
    [
        ("5", True),
        ("\\frac{3}{4}", True),
        ("-e^{-x} - \\frac{1}{2}e^{-2x} + C", True),
        ("See the proof above.", False),
        ("答案见解析", False),
    ],
)
def test_gold_is_parsed_first_never_compared_as_text(gold, parses):
    assert gold_parses(gold, "wmss") is parses
    assert gold_parses(gold, "authors") is parses


def test_dedup_exact_then_normalized():
    assert normalize_prompt("Simplify  the Fraction 6/8 .") == normalize_prompt("simplify the fraction 6/8.")
    assert normalize_prompt("3.5") != normalize_prompt("35")
    first, same, respaced = (
        prompt_keys(text) for text in ("What is 2+3?", "What is 2+3?", "what is 2 + 3 ?")
    )
    dedup = Deduplicator("normalized")
    assert [dedup.check(*keys) for keys in (first, same, respaced)] == [
        None,
        "duplicate_exact",
        "duplicate_normalized",
    ]
    exact = Deduplicator("exact")
    assert [exact.check(*keys) for keys in (first, same, respaced)] == [None, "duplicate_exact", None]
    assert Deduplicator("off").check(*first) is None and Deduplicator("off").check(*first) is None


def test_ngram_overlap_names_the_first_benchmark_given():
    index = BenchmarkIndex(ngram=4, benchmarks=["a", "b"])
    index.add("b", "The train leaves at noon and arrives at six.")
    index.add("a", "It arrives at six o'clock.")
    index.add("a", "Two words")  # shorter than n: must appear whole
    assert index.match("When? It ARRIVES at six, o'clock!") == "a"
    assert index.match("the train leaves at noon") == "b"
    assert index.match("It arrives at noon.") is None
    assert index.match("only two words here") == "a"
    assert index.match("two") is None


def test_tally_round_trips_and_adds():
    tally = Tally()
    tally.count_read("S", "math")
    tally.count_dropped("S", "math", "benchmark_overlap", "gsm8k")
    tally.count_read("T", "code")
    tally.count_kept("T", "code")
    again = Tally.from_dict(json.loads(json.dumps(tally.to_dict())))
    again.add(tally)
    assert again.to_dict() == {
        "read": 4,
        "kept": 2,
        "dropped": {"benchmark_overlap": 2},
        "overlap": {"gsm8k": 2},
        "groups": [
            {"source": "S", "category": "math", "read": 2, "kept": 0, "dropped": {"benchmark_overlap": 2}},
            {"source": "T", "category": "code", "read": 2, "kept": 2, "dropped": {}},
        ],
    }
