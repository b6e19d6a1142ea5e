"""Seeded grade-school word problems (1-4 steps of + - × ÷ on integers) with worked `<think>/<answer>` solutions.

The task of the real-model preset: phrased in natural language like GSM8K, so a pretrained instruct model already
solves some of it. Every problem is a story about one person's count of one item; each step changes the count
and its worked solution states the arithmetic of that step. Difficulty is the number of steps and the size of the
numbers. The held-out split never shares a problem's arithmetic (start value and steps) with the train split, and
the validation split (model selection only) shares it with neither.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from wmss.eval.records import BenchmarkRecord

NAMES = (
    ("Liam", "he", "his"),
    ("Emma", "she", "her"),
    ("Noah", "he", "his"),
    ("Olivia", "she", "her"),
    ("Lucas", "he", "his"),
    ("Sofia", "she", "her"),
    ("Omar", "he", "his"),
    ("Priya", "she", "her"),
    ("Mateo", "he", "his"),
    ("Hana", "she", "her"),
)
ITEMS = ("marbles", "stickers", "apples", "pencils", "cookies", "stamps", "shells", "books", "cards", "coins")
# Each phrasing uses {n} for the operand; {p}/{pos} are the pronoun and possessive.
PHRASES = {
    "+": (
        "Then {p} buys {n} more.",
        "A friend gives {name} {n} more.",
        "Then {p} finds {n} more.",
        "{Pos} grandmother gives {name} another {n}.",
    ),
    "-": (
        "Then {p} gives {n} of them to a friend.",
        "Then {p} loses {n} of them.",
        "Then {p} uses {n} of them for a school project.",
        "Then {p} sells {n} of them.",
    ),
    "*": (
        "Then the number of {item} {p} has becomes {n} times as large.",
        "After a trade, {name} has {n} times as many {item} as before.",
    ),
    "/": (
        "Then {p} splits {pos} {item} into {n} equal groups and keeps just one group.",
        "Then {p} shares {pos} {item} equally among {n} people, {name} included, and keeps {pos} share.",
    ),
}
SYMBOLS = {"+": "+", "-": "-", "*": "×", "/": "÷"}
MAX_FACTOR = 5
MAX_VALUE = 1000

Step = tuple[str, int]


@dataclass(frozen=True)
class WordProblems:
    """Train records (`idx`, `prompt`, `completion`, `n_steps`); held-out and validation records (`id`, `question`,
    `answer`, `n_steps`)."""

    seed: int
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]
    validation: list[dict[str, Any]] = field(default_factory=list)


def _divisors(value: int) -> list[int]:
    return [k for k in range(2, MAX_FACTOR + 1) if value % k == 0]


def _draw_step(rng: random.Random, value: int, max_number: int) -> Step:
    """One step that keeps the count a positive integer no larger than MAX_VALUE."""
    choices = ["+"] if value < MAX_VALUE else []
    if value > 1:
        choices.append("-")
    if value * 2 <= MAX_VALUE:
        choices.append("*")
    if _divisors(value):
        choices.append("/")
    op = rng.choice(choices)
    if op == "+":
        return op, rng.randint(1, min(max_number, MAX_VALUE - value))
    if op == "-":
        return op, rng.randint(1, min(value - 1, max_number))
    if op == "*":
        return op, rng.randint(2, min(MAX_FACTOR, MAX_VALUE // value))
    return op, rng.choice(_divisors(value))


def _apply(value: int, step: Step) -> int:
    op, n = step
    return {"+": value + n, "-": value - n, "*": value * n, "/": value // n}[op]


def _story(rng: random.Random, start: int, steps: tuple[Step, ...]) -> tuple[str, str, int]:
    """(question, worked reasoning, answer) for one problem."""
    name, pronoun, possessive = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    fields = {"name": name, "p": pronoun, "pos": possessive, "Pos": possessive.capitalize(), "item": item}
    sentences = [f"{name} has {start} {item}."]
    reasoning = [f"{name} starts with {start} {item}."]
    value = start
    for op, n in steps:
        sentences.append(rng.choice(PHRASES[op]).format(n=n, **fields))
        result = _apply(value, (op, n))
        reasoning.append(f"{value} {SYMBOLS[op]} {n} = {result}.")
        value = result
    sentences.append(f"How many {item} does {name} have now?")
    reasoning.append(f"So {name} has {value} {item}.")
    return " ".join(sentences), " ".join(reasoning), value


Problem = tuple[str, str, int, int]  # question, worked reasoning, answer, number of steps


def _draw_problems(
    rng: random.Random,
    n: int,
    seen: set[tuple[int, tuple[Step, ...]]],
    min_steps: int,
    max_steps: int,
    max_number: int,
) -> list[Problem]:
    """`n` problems whose arithmetic is not in `seen` (which they are added to)."""
    problems: list[Problem] = []
    attempts = 0
    while len(problems) < n:
        attempts += 1
        if attempts > 100 * n + 1000:
            raise ValueError(
                "too few distinct problems for the requested sizes; raise max_number or max_steps"
            )
        start = rng.randint(2, max_number)
        value, steps = start, []
        for _ in range(rng.randint(min_steps, max_steps)):
            steps.append(_draw_step(rng, value, max_number))
            value = _apply(value, steps[-1])
        key = (start, tuple(steps))
        # Disjointness is on the arithmetic, not the wording: a renamed training problem is not held out.
        if key in seen:
            continue
        seen.add(key)
        question, think, answer = _story(rng, start, key[1])
        problems.append((question, think, answer, len(steps)))
    return problems


def _question_records(problems: list[Problem], prefix: str) -> list[dict[str, Any]]:
    return [
        {"id": f"{prefix}{i}", "question": question, "answer": str(answer), "n_steps": n_steps}
        for i, (question, _, answer, n_steps) in enumerate(problems)
    ]


def make_word_problems(
    seed: int,
    n_train: int,
    n_test: int,
    *,
    min_steps: int = 1,
    max_steps: int = 4,
    max_number: int = 50,
    n_validation: int = 0,
) -> WordProblems:
    """Draw `n_train` + `n_test` (+ `n_validation`) problems with distinct arithmetic; steps uniform in
    [min_steps, max_steps]. The validation problems come from their own random stream, so asking for them changes
    neither the train nor the held-out split."""
    if not 1 <= min_steps <= max_steps:
        raise ValueError(f"need 1 <= min_steps <= max_steps, got {min_steps}, {max_steps}")
    if not 2 <= max_number <= MAX_VALUE // 2:
        raise ValueError(f"max_number must be in [2, {MAX_VALUE // 2}], got {max_number}")
    seen: set[tuple[int, tuple[Step, ...]]] = set()
    rng = random.Random(f"wmss-word-problems:{seed}")
    problems = _draw_problems(rng, n_train + n_test, seen, min_steps, max_steps, max_number)
    validation_rng = random.Random(f"wmss-word-problems-validation:{seed}")
    validation = _draw_problems(validation_rng, n_validation, seen, min_steps, max_steps, max_number)
    train = [
        {
            "idx": i,
            "prompt": question,
            "completion": f"<think>{think}</think><answer>{answer}</answer>",
            "n_steps": n_steps,
        }
        for i, (question, think, answer, n_steps) in enumerate(problems[n_test:])
    ]
    return WordProblems(
        seed=seed,
        train=train,
        test=_question_records(problems[:n_test], f"wp-{seed}-"),
        validation=_question_records(validation, f"wp-{seed}-val-"),
    )


def benchmark_records(test: list[dict[str, Any]]) -> list[BenchmarkRecord]:
    """Held-out problems as numeric benchmark records, for `wmss.eval.runner.evaluate`."""
    return [
        BenchmarkRecord(r["id"], r["question"], r["answer"], "numeric", None, {"n_steps": r["n_steps"]})
        for r in test
    ]
