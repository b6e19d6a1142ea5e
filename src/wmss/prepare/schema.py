"""The record layout of AM-DeepSeek-R1-Distilled-1.4M, read into one `Sample` per row.

Per the dataset card (a-m-team/AM-DeepSeek-R1-Distilled-1.4M, "Unified Format") each row is::

    {"messages": [
        {"role": "user", "content": "...",
         "info": {"source": "<dataset the problem comes from>", "reference_answer": "...", "test_case": ...}},
        {"role": "assistant", "content": "<think> reasoning </think> <answer> solution </answer>",
         "info": {"source": "<response source>", "think_content": "...", "answer_content": "..."}}
    ]}

`reference_answer` is the ground truth of math, science and other answer-checked problems, `test_case` holds
the test cases of code problems. The authors' filter (`dataprocess/am_deepseek_r1_distilled.py`) reads the
reference from `messages[0].info`. Parquet and hub copies carry every `info` key on every turn, null where
the JSON has none, so null and absent mean the same here.

A row that does not have this layout at all stops the run (DataError naming the row and the fields found);
a row that has it but is not a usable sample (no user or assistant turn, an empty one) gets a
`structure_problem` and is dropped and counted by the structure filter.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wmss.errors import DataError
from wmss.io import JsonRow

ROLES = ("system", "user", "assistant")
CATEGORIES = ("math", "code", "other")
UNKNOWN_SOURCE = "unknown"
# Code sources named in the authors' script; their samples are code even when a row carries no test_case.
CODE_SOURCES = frozenset({"KodCode", "codeio", "OpenCoder", "OpenCoderStage2"})
_EXPECTED = 'expected the AM-DeepSeek-R1-Distilled layout {"messages": [{"role", "content", "info"}, ...]}'


@dataclass(frozen=True)
class Sample:
    """One row as training needs it: the conversation, what checks it, and where it came from."""

    origin: str  # "am_0.9M.jsonl.zst:7"
    messages: tuple[dict[str, str], ...]  # role/content only, in order
    source: str  # the problem's source (messages[0].info.source)
    category: str  # math | code | other
    reference_answer: str | None
    test_case: Any
    structure_problem: str | None = None

    @property
    def prompt_messages(self) -> list[dict[str, str]]:
        """Every turn before the final assistant turn."""
        return list(self.messages[:-1])

    @property
    def response(self) -> str:
        """The final assistant turn: the completion that is trained on."""
        return self.messages[-1]["content"]

    @property
    def prompt_text(self) -> str:
        """The prompt turns' texts, one per line, for de-duplication and decontamination."""
        return "\n".join(message["content"] for message in self.prompt_messages)


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _fields(value: dict[str, Any]) -> str:
    return ", ".join(map(str, value)) or "none"


def _layout_error(row: JsonRow, problem: str) -> DataError:
    return DataError(f"{row.where}: unknown record layout: {problem}; {_EXPECTED}")


def _present(value: Any) -> bool:
    return value is not None and not (isinstance(value, str) and not value.strip())


def _category(source: str, reference_answer: Any, test_case: Any) -> str:
    if _present(test_case) or source in CODE_SOURCES:
        return "code"
    return "math" if _present(reference_answer) else "other"


def _structure_problem(messages: list[dict[str, str]]) -> str | None:
    if not any(message["role"] == "user" for message in messages):
        return "no user turn"
    if messages[-1]["role"] != "assistant":
        return "no assistant turn after the last user turn"
    for index, message in enumerate(messages):
        if not message["content"].strip():
            return f"messages[{index}] ({message['role']}) is empty"
    return None


def read_sample(row: JsonRow) -> Sample:
    """Read one row; DataError naming the row and the fields it has when its layout is not the dataset's."""
    if row.problem is not None:
        raise DataError(f"{row.where}: {row.problem}")
    value = row.value
    if not isinstance(value, dict):
        raise _layout_error(row, f"the row is a JSON {_kind(value)}, not an object")
    raw_messages = value.get("messages")
    if raw_messages is None:
        raise _layout_error(row, f"no 'messages' field (fields found: {_fields(value)})")
    if not isinstance(raw_messages, list) or not raw_messages:
        what = "an empty list" if isinstance(raw_messages, list) else f"a {_kind(raw_messages)}"
        raise _layout_error(row, f"'messages' is {what} (fields found: {_fields(value)})")
    messages: list[dict[str, str]] = []
    infos: list[dict[str, Any]] = []
    for index, message in enumerate(raw_messages):
        if not isinstance(message, dict):
            raise _layout_error(row, f"messages[{index}] is a {_kind(message)}, not an object")
        role, content, info = message.get("role"), message.get("content", ""), message.get("info")
        if role not in ROLES:
            raise _layout_error(
                row,
                f"messages[{index}] has role {role!r} (fields found: {_fields(message)}); roles are {ROLES}",
            )
        if content is None:
            content = ""
        if not isinstance(content, str):
            raise _layout_error(row, f"messages[{index}].content is a {_kind(content)}, not a string")
        if info is not None and not isinstance(info, dict):
            raise _layout_error(row, f"messages[{index}].info is a {_kind(info)}, not an object")
        messages.append({"role": role, "content": content})
        infos.append(info or {})
    # The problem's info sits on its (first) user turn, messages[0] in the dataset.
    first = next(
        (info for message, info in zip(messages, infos, strict=True) if message["role"] == "user"), infos[0]
    )
    source = str(first["source"]) if _present(first.get("source")) else UNKNOWN_SOURCE
    reference = first.get("reference_answer")
    test_case = first.get("test_case")
    return Sample(
        origin=row.source,
        messages=tuple(messages),
        source=source,
        category=_category(source, reference, test_case),
        reference_answer=str(reference).strip() if _present(reference) else None,
        test_case=test_case if _present(test_case) else None,
        structure_problem=_structure_problem(messages),
    )
