"""Turning a code sample's `test_case` into one Python program that exits 0 iff the solution passes.

The dataset card documents `test_case` only as "test cases for code-related data". The forms read here are
those of the sources its code comes from; any other form makes the sample's tests unusable (counted, never
guessed):

* pytest-style test code (KodCode): a string with `assert`s or `def test_...` functions, or an object with
  `test_code` / `test`. The solution is importable as module `solution` (KodCode's tests import from it),
  then every `test_*` function defined by the test code is called.
* input/output pairs (APPS, TACO, codeio): ``{"inputs": [...], "outputs": [...]}``; with ``"fn_name"`` each
  input is the argument list of that function (or of that method of class `Solution`), else it is fed to the
  program as stdin and its stdout is compared line by line (trailing whitespace ignored).
* MBPP: a list of assert strings, or an object with `test_list` (and optional `test_setup_code`).
* HumanEval: an object with `test` and `entry_point` (and optional `prompt`).

A JSON-encoded string of any of these objects or lists is decoded first.
"""

from __future__ import annotations

import json
from typing import Any

from wmss.eval.code import build_humaneval_program, build_mbpp_program

_SOLUTION_MODULE = """\
import sys as _sys
import types as _types

_solution = _types.ModuleType("solution")
exec(compile({solution!r}, "solution.py", "exec"), _solution.__dict__)
_sys.modules["solution"] = _solution
globals().update({{_k: _v for _k, _v in vars(_solution).items() if not _k.startswith("__")}})
"""

_RUN_TEST_FUNCTIONS = """
for _name, _test in list(globals().items()):
    if _name.startswith("test") and callable(_test) and getattr(_test, "__module__", None) == __name__:
        _test()
"""

_IO_PROGRAM = """\
import contextlib
import io
import json
import sys

SOLUTION = {solution!r}
CASES = {cases!r}
FN_NAME = {fn_name!r}


def lines(text):
    return [line.rstrip() for line in str(text).strip().splitlines()]


def as_text(value):
    return value if isinstance(value, str) else "\\n".join(map(str, value))


def plain(value):
    # Tuples and lists compare equal after a JSON round trip, as the expected values were stored in JSON.
    return json.loads(json.dumps(value, default=str))


for given, expected in CASES:
    if FN_NAME is None:
        sys.stdin = io.StringIO(as_text(given))
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):
            exec(compile(SOLUTION, "solution.py", "exec"), {{"__name__": "__main__"}})
        if lines(out.getvalue()) != lines(as_text(expected)):
            sys.exit(1)
    else:
        namespace = {{"__name__": "solution"}}
        exec(compile(SOLUTION, "solution.py", "exec"), namespace)
        function = namespace.get(FN_NAME)
        if function is None and "Solution" in namespace:
            function = getattr(namespace["Solution"](), FN_NAME)
        result = function(*given) if isinstance(given, list) else function(given)
        # APPS stores a function's expected return value wrapped in a one-element list.
        if plain(result) != plain(expected) and [plain(result)] != plain(expected):
            sys.exit(1)
"""


def _decode(test_case: Any) -> Any:
    if isinstance(test_case, str) and test_case.lstrip()[:1] in ("{", "["):
        try:
            return json.loads(test_case)
        except json.JSONDecodeError:
            return test_case
    return test_case


def _is_test_code(text: Any) -> bool:
    return isinstance(text, str) and ("assert" in text or "def test" in text)


def _pytest_program(solution: str, tests: str) -> str:
    return f"{_SOLUTION_MODULE.format(solution=solution)}\n{tests}\n{_RUN_TEST_FUNCTIONS}"


def _io_program(solution: str, spec: dict[str, Any]) -> str | None:
    inputs, outputs = spec.get("inputs"), spec.get("outputs")
    if (
        not isinstance(inputs, list)
        or not isinstance(outputs, list)
        or len(inputs) != len(outputs)
        or not inputs
    ):
        return None
    fn_name = spec.get("fn_name") or None
    return _IO_PROGRAM.format(
        solution=solution, cases=list(zip(inputs, outputs, strict=True)), fn_name=fn_name
    )


def _from_object(solution: str, spec: dict[str, Any]) -> str | None:
    if "inputs" in spec or "outputs" in spec:
        return _io_program(solution, spec)
    if isinstance(spec.get("test"), str) and isinstance(spec.get("entry_point"), str):
        return build_humaneval_program(
            str(spec.get("prompt") or ""), solution, spec["test"], spec["entry_point"]
        )
    tests = spec.get("test_list")
    if isinstance(tests, list) and tests and all(isinstance(test, str) for test in tests):
        return build_mbpp_program(solution, tests, str(spec.get("test_setup_code") or ""))
    code = spec.get("test_code", spec.get("test"))
    return _pytest_program(solution, code) if _is_test_code(code) else None


def build_test_program(solution: str, test_case: Any) -> str | None:
    """The program running `solution` against `test_case`, or None when the test cases' form is unknown."""
    if not solution.strip():
        return None
    spec = _decode(test_case)
    if isinstance(spec, dict):
        return _from_object(solution, spec)
    if isinstance(spec, list) and spec and all(_is_test_code(test) for test in spec):
        return build_mbpp_program(solution, spec)
    return _pytest_program(solution, spec) if _is_test_code(spec) else None
