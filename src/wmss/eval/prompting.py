"""Evaluation prompts: the model's chat template when it has one, else the same plain format training uses.

Plain format (tokenizers without a chat template), identical to the training side so a model is evaluated on
the text it was trained on::

    "{system}\\n\\n" (only when there is a system prompt) + "User: {question}\\nAssistant: "

Code benchmarks turn the record into a question first (`format_question`):

* HumanEval: "Complete the following Python function:\\n```python\\n{prompt}```"
* MBPP: "{text}\\nYour code should pass these tests:\\n```python\\n{tests}\\n```"
"""

from __future__ import annotations

from typing import Any

from wmss.eval.records import BenchmarkRecord
from wmss.prompts import REASONING_SYSTEM_PROMPT, apply_template, plain_prompt

CHAT_TEMPLATE = "chat_template"
PLAIN = "plain"


def format_question(record: BenchmarkRecord) -> str:
    """The user message for a record: the question itself, or a code task with its signature or tests."""
    if record.kind != "code":
        return record.question
    if "entry_point" in record.metadata:
        return f"Complete the following Python function:\n```python\n{record.question}```"
    tests = "\n".join(record.metadata["test_list"])
    return f"{record.question}\nYour code should pass these tests:\n```python\n{tests}\n```"


def _template_source(tokenizer: Any) -> str | None:
    template = getattr(tokenizer, "chat_template", None)
    if isinstance(template, dict):
        # Tokenizers may ship several named templates; "default" is what apply_chat_template uses.
        template = template.get("default")
    return template or None


def build_prompt(
    tokenizer: Any,
    question: str,
    system_prompt: str | None = REASONING_SYSTEM_PROMPT,
    enable_thinking: bool | None = None,
) -> tuple[str, str]:
    """Return (prompt_text, format_name) for one question; format_name is "chat_template" or "plain"."""
    source = _template_source(tokenizer)
    if source is None:
        return plain_prompt([{"role": "user", "content": question}], system_prompt), PLAIN
    kwargs: dict[str, Any] = {}
    # Only thinking-aware templates (Qwen3 style) get the switch; every other template renders its default.
    if enable_thinking is not None and "enable_thinking" in source:
        kwargs["enable_thinking"] = enable_thinking
    text, _ = apply_template(tokenizer, [{"role": "user", "content": question}], system_prompt, **kwargs)
    return text, CHAT_TEMPLATE
