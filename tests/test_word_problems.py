"""The real-model preset's word problems: seeded, solvable, disjoint splits, worked solutions that check out."""

from __future__ import annotations

import dataclasses
import re
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wmss.demo.word_problems import MAX_VALUE, benchmark_records, make_word_problems
from wmss.eval import grade_answer

STEP = re.compile(r"(\d+) ([+\-×÷]) (\d+) = (\d+)\.")
WORDS = (("times", "×"), ("equal", "÷"), ("of them", "-"), ("more", "+"), ("another", "+"))
NAIVE = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b}


def _check_steps(think: str) -> list[tuple[int, str, int, int]]:
    """Every stated step recomputed independently; each starts from the previous result."""
    steps = [(int(a), op, int(b), int(c)) for a, op, b, c in STEP.findall(think)]
    start = int(re.search(r"starts with (\d+)", think).group(1))
    value = start
    for a, op, b, c in steps:
        assert a == value
        if op == "÷":
            assert b > 1 and a % b == 0
            assert c * b == a
        else:
            assert NAIVE[op](a, b) == c
        assert 0 < c <= MAX_VALUE
        value = c
    return steps


def test_same_seed_same_problems_and_other_seed_differs():
    assert make_word_problems(3, 50, 20) == make_word_problems(3, 50, 20)
    assert make_word_problems(3, 50, 20).test != make_word_problems(4, 50, 20).test


def test_sizes_and_a_held_out_split_of_500():
    task = make_word_problems(0, 1000, 500)
    assert len(task.train) == 1000 and len(task.test) == 500
    assert [r["idx"] for r in task.train] == list(range(1000))
    assert len({r["id"] for r in task.test}) == 500


def test_worked_solutions_are_correct_and_in_the_paper_format():
    task = make_word_problems(1, 300, 0)
    for record in task.train:
        match = re.fullmatch(r"<think>(.+)</think><answer>(\d+)</answer>", record["completion"])
        assert match, record["completion"]
        steps = _check_steps(match.group(1))
        assert len(steps) == record["n_steps"]
        assert steps[-1][3] == int(match.group(2))
        assert grade_answer(record["completion"], match.group(2), "numeric")


def _train_key(record: dict) -> tuple:
    start = re.search(r"starts with (\d+)", record["completion"]).group(1)
    return (start, *((op, b) for _, op, b, _ in STEP.findall(record["completion"])))


def _question_key(record: dict) -> tuple:
    # Rebuilt from the question's own words: the start, then each step's operation and operand.
    first, *steps, _ = re.split(r"(?<=[.?]) ", record["question"])
    ops = [next(op for word, op in WORDS if word in sentence) for sentence in steps]
    operands = [re.search(r"\d+", sentence).group(0) for sentence in steps]
    return (re.search(r"\d+", first).group(0), *zip(ops, operands, strict=True))


def test_held_out_arithmetic_never_appears_in_train():
    task = make_word_problems(2, 2000, 500)
    train = {_train_key(r) for r in task.train}
    assert len(train) > 1900, "the key must tell problems apart for this test to mean anything"
    assert not [r for r in task.test if _question_key(r) in train]


def test_validation_split_is_disjoint_and_leaves_the_other_splits_unchanged():
    task = make_word_problems(2, 1000, 500, n_validation=500)
    assert make_word_problems(2, 1000, 500) == dataclasses.replace(task, validation=[])
    assert len(task.validation) == 500 and len({r["id"] for r in task.validation}) == 500
    assert {r["id"] for r in task.validation}.isdisjoint(r["id"] for r in task.test)
    seen = {_train_key(r) for r in task.train} | {_question_key(r) for r in task.test}
    validation = [_question_key(r) for r in task.validation]
    assert len(set(validation)) == 500 and not seen.intersection(validation)
    assert make_word_problems(2, 1000, 500, n_validation=500) == task


def test_difficulty_varies_over_one_to_four_steps_and_all_operations():
    task = make_word_problems(0, 2000, 0)
    counts = Counter(r["n_steps"] for r in task.train)
    assert set(counts) == {1, 2, 3, 4}
    assert min(counts.values()) > 400
    ops = Counter(op for r in task.train for _, op, _, _ in STEP.findall(r["completion"]))
    assert set(ops) == {"+", "-", "×", "÷"} and min(ops.values()) > 300


def test_questions_are_natural_language_with_no_answer_leak():
    task = make_word_problems(5, 0, 200, min_steps=3, max_steps=3)
    for record in task.test:
        question = record["question"]
        assert question.endswith("have now?") and "<" not in question
        assert not re.search(r"[+×÷=]", question)
        assert record["n_steps"] == 3


def test_benchmark_records_grade_the_gold_answer():
    records = benchmark_records(make_word_problems(0, 0, 20).test)
    assert all(r.kind == "numeric" for r in records)
    assert all(grade_answer(f"<think>x</think><answer>{r.gold}</answer>", r.gold, "numeric") for r in records)
    assert not grade_answer(f"<answer>{int(records[0].gold) + 1}</answer>", records[0].gold, "numeric")


@pytest.mark.parametrize("kwargs", [{"min_steps": 0}, {"min_steps": 3, "max_steps": 2}, {"max_number": 1}])
def test_bad_difficulty_is_refused(kwargs):
    with pytest.raises(ValueError):
        make_word_problems(0, 1, 1, **kwargs)


def test_too_many_problems_for_the_number_range_is_refused():
    with pytest.raises(ValueError, match="too few distinct problems"):
        make_word_problems(0, 500, 500, min_steps=1, max_steps=1, max_number=3)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 10_000), steps=st.integers(1, 4), max_number=st.integers(10, 200))
def test_any_seed_and_difficulty_gives_valid_problems(seed, steps, max_number):
    task = make_word_problems(seed, 20, 5, min_steps=steps, max_steps=steps, max_number=max_number)
    for record in task.train:
        think = record["completion"].split("</think>")[0]
        assert len(_check_steps(think)) == steps
