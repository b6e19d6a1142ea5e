"""Named system prompts shipped with wmss."""

from __future__ import annotations

from typing import Any

from jinja2 import TemplateError

# The reasoning prompt of the AM-DeepSeek-R1 distilled data the paper trains on; byte-exact.
REASONING_SYSTEM_PROMPT = (
    "You are a helpful assistant. To answer the user's question, you first think "
    "about the reasoning process and then provide the user with the answer. "
    "The reasoning process and answer are enclosed within <think> </think> and "
    "<answer> </answer> tags, respectively, i.e., "
    "<think> reasoning process here </think> <answer> answer here </answer>."
)

NAMED_SYSTEM_PROMPTS: dict[str, str] = {"reasoning": REASONING_SYSTEM_PROMPT}


def resolve_system_prompt(value: str | None) -> str | None:
    """Return the prompt text for a named prompt ("reasoning"), a literal string, or None."""
    if value is None or value == "":
        return None
    return NAMED_SYSTEM_PROMPTS.get(value, value)


_PLAIN_ROLES = {"user": "User", "assistant": "Assistant"}


def plain_prompt(messages: list[dict[str, str]], system: str | None) -> str:
    """The documented prompt format for tokenizers without a chat template (training and evaluation alike)."""
    prefix = f"{system}\n\n" if system else ""
    turns = "".join(f"{_PLAIN_ROLES[m['role']]}: {m['content']}\n" for m in messages)
    return f"{prefix}{turns}Assistant: "


def apply_template(
    tokenizer: Any, messages: list[dict[str, str]], system: str | None, **kwargs: Any
) -> tuple[str, list[dict[str, str]]]:
    """Render the generation prompt with the chat template; returns the text and the conversation it rendered."""
    kwargs = {"tokenize": False, "add_generation_prompt": True, **kwargs}
    if not system:
        return tokenizer.apply_chat_template(list(messages), **kwargs), list(messages)
    with_system = [{"role": "system", "content": system}, *messages]
    try:
        return tokenizer.apply_chat_template(with_system, **kwargs), with_system
    except TemplateError:
        # Some templates (e.g. Gemma's) reject a system turn; the instruction then leads the first user message.
        first, *rest = messages
        merged = [{"role": first["role"], "content": f"{system}\n\n{first['content']}"}, *rest]
        return tokenizer.apply_chat_template(merged, **kwargs), merged
