"""A seeded, verifiable reasoning task for the demo: multi-step add/subtract word problems."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wmss.io import atomic_write_text

NAMES = (("Tom", "He"), ("Ann", "She"), ("Sam", "He"), ("Mia", "She"), ("Ben", "He"), ("Zoe", "She"))
# Sentences with numbers that do not matter: a solver must tell relevant quantities from noise (GSM8K style).
DISTRACTORS = (
    "{other} has {n} {item}.",
    "It costs {n} dollars.",
    "The shop is {n} miles away.",
    "{other} is {n} years old.",
)
ITEMS = ("apples", "pens", "coins", "books", "cards", "shells", "eggs", "stamps")
ADD_VERBS = ("buys {n} more", "finds {n} more", "gets {n} more")
SUB_VERBS = ("gives away {n}", "loses {n}", "sells {n}")

Step = tuple[str, int]


@dataclass(frozen=True)
class DemoTask:
    """Train records (`idx`, `prompt`, `completion`, `steps`) and disjoint test records (`id`, `question`, `answer`)."""

    seed: int
    train: list[dict[str, Any]]
    test: list[dict[str, Any]]
    # The held-out problems' arithmetic (start, steps), which M0's corpus must never contain.
    test_keys: frozenset[tuple[int, tuple[Step, ...]]] = frozenset()
    train_keys: frozenset[tuple[int, tuple[Step, ...]]] = frozenset()


def _draw_steps(rng: random.Random, start: int, n_steps: int, max_operand: int) -> tuple[Step, ...]:
    steps: list[Step] = []
    value = start
    for _ in range(n_steps):
        # Subtract only what is there, so every intermediate value stays a non-negative count.
        if value > 0 and rng.random() < 0.5:
            operand = rng.randint(1, min(value, max_operand))
            steps.append(("-", operand))
            value -= operand
        else:
            operand = rng.randint(1, max_operand)
            steps.append(("+", operand))
            value += operand
    return tuple(steps)


def _solve(start: int, steps: tuple[Step, ...]) -> tuple[str, int]:
    lines = []
    value = start
    for op, operand in steps:
        result = value + operand if op == "+" else value - operand
        lines.append(f"{value}{op}{operand}={result}.")
        value = result
    return " ".join(lines), value


def _question(rng: random.Random, start: int, steps: tuple[Step, ...], distractor_prob: float = 0.0) -> str:
    name, pronoun = rng.choice(NAMES)
    item = rng.choice(ITEMS)
    clauses = [rng.choice(ADD_VERBS if op == "+" else SUB_VERBS).format(n=n) for op, n in steps]
    actions = ", ".join(clauses[:-1]) + " and " + clauses[-1] if len(clauses) > 1 else clauses[0]
    sentences = [f"{name} has {start} {item}.", f"{pronoun} {actions}."]
    # Up to two irrelevant sentences, each at a random place before the question.
    for _ in range(2):
        if rng.random() < distractor_prob:
            other = rng.choice([n for n, _ in NAMES if n != name])
            text = rng.choice(DISTRACTORS).format(other=other, n=rng.randint(2, 90), item=rng.choice(ITEMS))
            sentences.insert(rng.randint(0, len(sentences)), text)
    return " ".join(sentences) + f" How many {item} does {name} have?"


def make_task(
    seed: int,
    n_train: int,
    n_test: int,
    *,
    min_steps: int = 2,
    max_steps: int = 2,
    max_start: int = 60,
    max_operand: int = 30,
    distractor_prob: float = 0.0,
) -> DemoTask:
    """Draw `n_train` + `n_test` distinct problems; no test problem's arithmetic appears in train."""
    if not 1 <= min_steps <= max_steps:
        raise ValueError(f"need 1 <= min_steps <= max_steps, got {min_steps}, {max_steps}")
    rng = random.Random(seed)
    seen: set[tuple[int, tuple[Step, ...]]] = set()
    problems: list[tuple[str, str, int]] = []
    attempts = 0
    while len(problems) < n_train + n_test:
        attempts += 1
        if attempts > 100 * (n_train + n_test) + 1000:
            raise ValueError("too few distinct problems for the requested sizes; raise max_start/max_operand")
        start = rng.randint(1, max_start)
        steps = _draw_steps(rng, start, rng.randint(min_steps, max_steps), max_operand)
        # Disjointness is on the arithmetic, not the wording: a test problem must not be a renamed
        # training problem, or held-out accuracy would partly measure memorisation.
        if (start, steps) in seen:
            continue
        seen.add((start, steps))
        think, answer = _solve(start, steps)
        problems.append((_question(rng, start, steps, distractor_prob), think, answer, (start, steps)))
    test = [
        {"id": f"demo-{seed}-{i}", "question": question, "answer": str(answer)}
        for i, (question, _, answer, _) in enumerate(problems[:n_test])
    ]
    # `steps` is the difficulty group that `wmss regime --group-field steps` breaks the curriculum down by.
    train = [
        {"idx": i, "prompt": question, "completion": completion(think, answer), "steps": len(key[1])}
        for i, (question, think, answer, key) in enumerate(problems[n_test:])
    ]
    return DemoTask(
        seed=seed,
        train=train,
        test=test,
        test_keys=frozenset(key for *_, key in problems[:n_test]),
        train_keys=frozenset(key for *_, key in problems[n_test:]),
    )


def validation_problems(
    seed: int,
    n: int,
    *,
    min_steps: int = 1,
    max_steps: int = 4,
    max_start: int = 60,
    max_operand: int = 30,
    distractor_prob: float = 0.0,
    exclude: frozenset[tuple[int, tuple[Step, ...]]] = frozenset(),
) -> list[dict[str, Any]]:
    """`n` held-out-style records (`id`, `question`, `answer`) for model selection, none with the arithmetic of an
    `exclude`d problem (the training and test splits)."""
    # Its own stream: adding a validation split changes neither the task's splits nor M0's corpus.
    rng = random.Random(f"wmss-demo-validation:{seed}")
    seen = set(exclude)
    records: list[dict[str, Any]] = []
    while len(records) < n:
        start = rng.randint(1, max_start)
        steps = _draw_steps(rng, start, rng.randint(min_steps, max_steps), max_operand)
        if (start, steps) in seen:
            continue
        seen.add((start, steps))
        _, answer = _solve(start, steps)
        question = _question(rng, start, steps, distractor_prob)
        records.append({"id": f"demo-{seed}-val-{len(records)}", "question": question, "answer": str(answer)})
    return records


def completion(think: str, answer: int) -> str:
    """The worked solution in the paper's format."""
    return f"<think>{think}</think><answer>{answer}</answer>"


def easier_problems(
    seed: int,
    n: int,
    *,
    max_start: int = 60,
    max_operand: int = 30,
    max_steps: int = 2,
    exclude: frozenset[tuple[int, tuple[Step, ...]]] = frozenset(),
) -> list[tuple[str, str]]:
    """`n` (question, worked solution) pairs of easier problems (at most `max_steps` steps, no distractors), none
    with a held-out problem's arithmetic: the instruction data M0 is mid-trained on."""
    rng = random.Random(f"wmss-demo-easier:{seed}")  # its own stream: the task never changes with it
    problems: list[tuple[str, str]] = []
    while len(problems) < n:
        problem = _easier_problem(rng, max_start, max_operand, max_steps, exclude)
        if problem is not None:
            problems.append(problem)
    return problems


def _easier_problem(
    rng: random.Random,
    max_start: int,
    max_operand: int,
    max_steps: int,
    exclude: frozenset[tuple[int, tuple[Step, ...]]],
) -> tuple[str, str] | None:
    """One (question, worked solution) of at most `max_steps` steps, or None when it is a held-out problem's."""
    start = rng.randint(1, max_start)
    steps = _draw_steps(rng, start, rng.randint(1, max_steps), max_operand)
    if (start, steps) in exclude:
        return None
    think, answer = _solve(start, steps)
    return _question(rng, start, steps), completion(think, answer)


def pretraining_corpus(
    seed: int,
    n: int,
    *,
    max_start: int = 60,
    max_operand: int = 30,
    max_steps: int = 2,
    worked_fraction: float = 0.0,
    worked_max_steps: int = 2,
    render: Callable[[str, str], str] | None = None,
    exclude: frozenset[tuple[int, tuple[Step, ...]]] = frozenset(),
) -> list[str]:
    """`n` documents: arithmetic facts and one-step stories, and (a `worked_fraction` of them) worked solutions
    of easier problems (at most `worked_max_steps` steps, no distractors) rendered as chats by `render`."""
    # A stream separate from make_task's, so changing the corpus size never changes the task.
    rng = random.Random(f"wmss-demo-corpus:{seed}")
    documents = []
    while len(documents) < n:
        if render is not None and rng.random() < worked_fraction:
            # A base model in the paper's sense has seen the format and solved easier problems like these.
            problem = _easier_problem(rng, max_start, max_operand, worked_max_steps, exclude)
            if problem is not None:
                documents.append(render(*problem))
            continue
        pieces = []
        for _ in range(8):
            # The left operand spans every value a task problem can reach before its last step.
            start = rng.randint(1, max_start + (max_steps - 1) * max_operand)
            ((op, operand),) = _draw_steps(rng, start, 1, max_operand)
            fact, result = _solve(start, ((op, operand),))
            # Mostly bare facts: they are short, so they teach the most arithmetic per token of compute.
            if rng.random() < 0.8:
                pieces.append(fact)
                continue
            name, pronoun = rng.choice(NAMES)
            item = rng.choice(ITEMS)
            verb = rng.choice(ADD_VERBS if op == "+" else SUB_VERBS).format(n=operand)
            pieces.append(f"{name} has {start} {item}. {pronoun} {verb}. Now {name} has {result} {item}.")
        documents.append(" ".join(pieces))
    return documents


def write_jsonl(records: Iterable[dict[str, Any]], path: Path) -> None:
    """Write one JSON object per line atomically; an identical file is left untouched (keeps its mtime)."""
    path = Path(path)
    text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    # Pipeline stages fingerprint their data file's mtime: rewriting the same data must not re-run them.
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    atomic_write_text(path, text)
