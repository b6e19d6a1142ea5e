"""Evaluation prompts: chat template vs the training-side plain format, enable_thinking, code questions."""

from __future__ import annotations

from typing import Any

import pytest

from tests.helpers import make_tiny_tokenizer
from wmss.eval.prompting import build_prompt, format_question
from wmss.eval.records import BenchmarkRecord
from wmss.prompts import REASONING_SYSTEM_PROMPT, plain_prompt

THINKING_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "<|im_start|>assistant\n{% if enable_thinking is defined and not enable_thinking %}<think>\n\n</think>\n\n{% endif %}"
)
NO_SYSTEM_TEMPLATE = (
    "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "{% for m in messages %}<start_of_turn>{{ m['role'] }}\n{{ m['content'] }}<end_of_turn>\n{% endfor %}"
    "<start_of_turn>model\n"
)


class RecordingTokenizer:
    """Stands in for a tokenizer to see exactly which keyword arguments reach apply_chat_template."""

    def __init__(self, chat_template: str) -> None:
        self.chat_template = chat_template
        self.calls: list[dict[str, Any]] = []

    def apply_chat_template(self, messages: list[dict[str, str]], **kwargs: Any) -> str:
        self.calls.append(kwargs)
        return "rendered"


def test_plain_format_matches_training_side_format() -> None:
    tokenizer = make_tiny_tokenizer(chat_template=False)
    assert build_prompt(tokenizer, "What is 2+3?", system_prompt=None) == (
        "User: What is 2+3?\nAssistant: ",
        "plain",
    )
    text, name = build_prompt(tokenizer, "What is 2+3?")
    assert name == "plain"
    assert text == f"{REASONING_SYSTEM_PROMPT}\n\nUser: What is 2+3?\nAssistant: "
    assert plain_prompt([{"role": "user", "content": "q"}], "S") == "S\n\nUser: q\nAssistant: "
    assert build_prompt(None, "q", "S") == ("S\n\nUser: q\nAssistant: ", "plain")


def test_chat_template_renders_system_user_and_generation_prompt() -> None:
    tokenizer = make_tiny_tokenizer(chat_template=True)
    text, name = build_prompt(tokenizer, "Hi?", system_prompt="Be brief.")
    assert name == "chat_template"
    assert (
        text
        == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"
    )
    no_system, _ = build_prompt(tokenizer, "Hi?", system_prompt=None)
    assert no_system == "<|im_start|>user\nHi?<|im_end|>\n<|im_start|>assistant\n"


def test_enable_thinking_reaches_only_templates_that_read_it() -> None:
    tokenizer = make_tiny_tokenizer(chat_template=True)
    tokenizer.chat_template = THINKING_TEMPLATE
    off, _ = build_prompt(tokenizer, "Hi?", system_prompt=None, enable_thinking=False)
    on, _ = build_prompt(tokenizer, "Hi?", system_prompt=None, enable_thinking=True)
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    assert on.endswith("<|im_start|>assistant\n")

    aware, plain = RecordingTokenizer(THINKING_TEMPLATE), RecordingTokenizer("{{ messages }}")
    build_prompt(aware, "q", enable_thinking=False)
    build_prompt(plain, "q", enable_thinking=False)
    build_prompt(aware, "q")
    assert aware.calls[0] == {"tokenize": False, "add_generation_prompt": True, "enable_thinking": False}
    assert plain.calls[0] == {"tokenize": False, "add_generation_prompt": True}
    assert aware.calls[1] == {"tokenize": False, "add_generation_prompt": True}


def test_template_without_system_role_gets_the_prompt_in_the_user_turn() -> None:
    tokenizer = make_tiny_tokenizer(chat_template=True)
    tokenizer.chat_template = NO_SYSTEM_TEMPLATE
    text, name = build_prompt(tokenizer, "Hi?", system_prompt="Be brief.")
    assert name == "chat_template"
    assert text == "<start_of_turn>user\nBe brief.\n\nHi?<end_of_turn>\n<start_of_turn>model"


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (BenchmarkRecord("g/0", "What is 2+3?", "5", "numeric"), "What is 2+3?"),
        (
            BenchmarkRecord(
                "HumanEval/0",
                "def f(x):\n    '''Double x.'''\n",
                "def check(c): pass",
                "code",
                metadata={"prompt": "def f(x):\n    '''Double x.'''\n", "test": "...", "entry_point": "f"},
            ),
            "Complete the following Python function:\n```python\ndef f(x):\n    '''Double x.'''\n```",
        ),
        (
            BenchmarkRecord(
                "mbpp/11",
                "Write a function g returning 2.",
                "assert g() == 2",
                "code",
                metadata={"test_list": ["assert g() == 2", "assert g() + 1 == 3"], "test_setup_code": ""},
            ),
            "Write a function g returning 2.\nYour code should pass these tests:\n"
            "```python\nassert g() == 2\nassert g() + 1 == 3\n```",
        ),
    ],
)
def test_format_question(record: BenchmarkRecord, expected: str) -> None:
    assert format_question(record) == expected


def test_training_renders_a_system_rejecting_template_exactly_as_evaluation() -> None:
    from wmss.data.render import render_example

    tokenizer = make_tiny_tokenizer(chat_template=True)
    tokenizer.chat_template = NO_SYSTEM_TEMPLATE
    record = {"prompt_messages": [{"role": "user", "content": "Hi?"}], "completion": "Hello."}
    prompt_text, completion_text = render_example(record, tokenizer, "Be brief.")
    assert prompt_text == build_prompt(tokenizer, "Hi?", system_prompt="Be brief.")[0]
    assert completion_text.startswith("Hello.")
