"""Hand-written AM-DeepSeek-R1-Distilled rows, one per filter outcome, in three shards (two zstd-compressed).

Every row has the dataset card's layout: `messages[0]` is the user turn whose `info` holds the problem's
`source`, `reference_answer` and `test_case`; `messages[1]` the assistant turn whose `info` holds the response
source, `think_content` and `answer_content`. Each row is named by the outcome it is written to produce
under `FULL_OPTIONS` of the tests (code verified, length checked with the tiny tokenizer at 1024 tokens,
decontaminated against `MINI_BENCHMARK`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import zstandard

PYTEST_ADD = (
    "from solution import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n    assert add(-1, 1) == 0\n"
)
PYTEST_EVEN = (
    "from solution import is_even\n\n\n"
    "def test_is_even():\n    assert is_even(4)\n    assert not is_even(7)\n"
)
# The first AIME 2025 question, as in `../shared/benchmarks/aime2025/test.json`.
AIME_QUESTION = "Find the sum of all integer bases $b>9$ for which $17_{b}$ is a divisor of $97_{b}$."
MINI_QUESTION = (
    "A farmer has 17 cows and buys 5 more each week. How many cows does the farmer have after 6 weeks?"
)
MINI_BENCHMARK = [
    {"instruction": MINI_QUESTION, "input": "", "output": "", "answer": "47"},
    {"instruction": "What is the capital of France?", "input": "", "output": "", "answer": "Paris"},
]


def _row(
    question: str,
    content: str,
    source: str,
    reference: str | None = None,
    test_case: Any = None,
    think: str = "",
    answer: str = "",
) -> dict[str, Any]:
    return {
        "messages": [
            {
                "role": "user",
                "content": question,
                "info": {"source": source, "reference_answer": reference, "test_case": test_case},
            },
            {
                "role": "assistant",
                "content": content,
                "info": {"source": "am-0309", "think_content": think, "answer_content": answer},
            },
        ]
    }


def math(question: str, reference: str | None, think: str, answer: str, source: str = "NuminaMath") -> dict:
    """A row whose response is `<think>think</think>\\n<answer>answer</answer>`."""
    return _row(
        question, f"<think>{think}</think>\n<answer>{answer}</answer>", source, reference, None, think, answer
    )


def code(question: str, test_case: Any, program: str, source: str = "KodCode") -> dict:
    """A code row answering with one fenced Python program."""
    answer = f"```python\n{program}```"
    think = "Write the function and check it on the examples."
    return _row(
        question,
        f"<think>{think}</think>\n<answer>\n{answer}\n</answer>",
        source,
        None,
        test_case,
        think,
        answer,
    )


_LONG_THINK = "Counting: " + ", ".join(str(n) for n in range(1, 401)) + "."

SHARDS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "am_0.5M.jsonl.zst": [
        ("add", math("What is 2 + 3?", "5", "2 + 3 = 5.", "The sum is \\boxed{5}.")),
        (
            "fraction",
            math("Simplify the fraction 6/8.", "\\frac{3}{4}", "Divide by 2.", "\\boxed{\\dfrac{3}{4}}"),
        ),
        ("wrong_mult", math("What is 7 times 8?", "56", "7 * 8 = 54.", "\\boxed{54}")),
        (
            "gold_prose",
            math(
                "Prove that the square root of 2 is irrational.",
                "See the proof above.",
                "Assume p/q in lowest terms.",
                "Hence \\boxed{\\sqrt{2} \\notin \\mathbb{Q}}.",
            ),
        ),
        ("no_think", _row("What is 10 - 4?", "<answer>\\boxed{6}</answer>", "NuminaMath", "6")),
        ("no_box", math("What is 9 + 1?", "10", "9 + 1 = 10.", "10")),
        ("empty_response", _row("What is 1 + 1?", "", "NuminaMath", "2")),
        (
            "code_add",
            code(
                "Write a function add(a, b) that returns the sum of a and b.",
                json.dumps({"test_code": PYTEST_ADD}),
                "def add(a, b):\n    return a + b\n",
            ),
        ),
        (
            "code_wrong",
            code(
                "Write a function is_even(n) that tells whether n is even.",
                json.dumps({"test_code": PYTEST_EVEN}),
                "def is_even(n):\n    return n % 2 == 1\n",
            ),
        ),
        (
            "other_chat",
            _row(
                "Write a haiku about autumn.",
                "<think>Five, seven, five.</think>\n<answer>Leaves fall.</answer>",
                "InfinityInstruct",
            ),
        ),
        ("benchmark_copy", math(f"Solve this: {MINI_QUESTION}", "47", "17 + 5 * 6 = 47.", "\\boxed{47}")),
        (
            "integral",
            math(
                "Find the integral of \\(e^{-x} + e^{-2x}\\) dx.",
                "-e^{-x} - \\frac{1}{2}e^{-2x} + C",
                "Integrate term by term.",
                "\\boxed{-e^{-x} - \\frac{1}{2}e^{-2x} + C}",
                source="natural_reasoning",
            ),
        ),
    ],
    "am_0.9M.jsonl": [
        ("add_again", math("What is 2 + 3?", "5", "Add them.", "\\boxed{5}")),
        (
            "fraction_respaced",
            math("simplify the  fraction 6/8 .", "\\frac{3}{4}", "Halve both.", "\\boxed{\\frac{3}{4}}"),
        ),
        ("mult_retry", math("What is 7 times 8?", "56", "7 * 8 = 56.", "\\boxed{56}")),
        ("too_long", math("Count from 1 to 400.", "400", _LONG_THINK, "\\boxed{400}")),
        (
            "code_stdin",
            code(
                "Read two integers from one line and print their sum.",
                json.dumps({"inputs": ["3 4\n", "10 -2\n"], "outputs": ["7\n", "8\n"]}),
                "a, b = map(int, input().split())\nprint(a + b)\n",
                source="codeio",
            ),
        ),
        (
            "code_no_tests",
            code("Write hello world in Python.", None, "print('hello world')\n", source="OpenCoder"),
        ),
        (
            "no_user",
            {"messages": [{"role": "assistant", "content": "<think>?</think>\n<answer>\\boxed{1}</answer>"}]},
        ),
        ("aime", math(AIME_QUESTION, "70", "The bases are 21 and 49.", "The sum is \\boxed{70}.")),
        ("solve_x", math("Solve 2x + 3 = 11 for x.", "4", "2x = 8.", "\\boxed{x = 4}")),
    ],
    "am_0.9M_sample_1k.jsonl.zst": [
        ("percent", math("What is 25% of 80?", "20", "80 / 4 = 20.", "\\boxed{20}")),
        (
            "wrong_fraction",
            math("What is 1/4 + 1/4?", "\\frac{1}{2}", "Add the fractions.", "\\boxed{\\frac{1}{3}}"),
        ),
        ("gold_chinese", math("证明这个等式成立。", "答案见解析", "证明如下。", "\\boxed{1}")),
        ("blank_question", _row("   ", "<think>?</think>\n<answer>\\boxed{3}</answer>", "NuminaMath", "3")),
        (
            "code_odd_tests",
            code(
                "Write a function double(n).",
                json.dumps({"checker": "special judge"}),
                "def double(n):\n    return 2 * n\n",
            ),
        ),
        ("negative", math("What is 3 - 10?", "-7", "3 - 10 = -7.", "\\boxed{-7}")),
    ],
}

ORIGINS: dict[str, str] = {
    f"{shard}:{line}": name for shard, rows in SHARDS.items() for line, (name, _) in enumerate(rows, start=1)
}


def write_shards(directory: Path) -> Path:
    """Write the three shards (`.jsonl.zst` compressed, `.jsonl` plain) into `directory`; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    for shard, rows in SHARDS.items():
        data = "".join(json.dumps(row, ensure_ascii=False) + "\n" for _, row in rows).encode("utf-8")
        if shard.endswith(".zst"):
            data = zstandard.ZstdCompressor().compress(data)
        (directory / shard).write_bytes(data)
    return directory


def write_mini_benchmark(directory: Path) -> Path:
    """A benchmark file in the authors' layout: `<directory>/minibench/test.json`."""
    path = directory / "minibench" / "test.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(MINI_BENCHMARK), encoding="utf-8")
    return path
