"""Named system prompts shipped with wmss."""

from __future__ import annotations

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
