"""Turning a normalised record into (prompt_text, completion_text).

With a chat template: ``prompt_text = apply_chat_template(prompt, add_generation_prompt=True)`` and the
completion is what the full conversation renders beyond it, so it ends with the template's end-of-turn
markup (e.g. ``<|im_end|>\\n``). Templates that re-render history once an assistant turn follows (Qwen3's
thinking handling, for one) break that prefix relation; the completion is then the assistant content plus
the text the template puts after it in the full rendering, or, when the template rewrites the content
itself, plus ``<|im_end|>`` when the vocabulary has it, else the eos token.

Without a chat template the plain format is used (the evaluation side renders prompts identically)::

    prompt_text     = ("{system}\\n\\n" if system else "") + "User: {prompt}\\nAssistant: "
    completion_text = "{completion}" + eos_token

Earlier turns of a multi-turn chat record appear as ``"User: ...\\n"`` / ``"Assistant: ...\\n"`` lines.
The record's own system text wins over `data.system_prompt` ("reasoning" or literal text). Training and
evaluation build the conversation with the same `wmss.prompts.apply_template`: a template that rejects a system
turn (Gemma's) gets the instruction at the head of the first user message, on both sides.
"""

from __future__ import annotations

from typing import Any

from wmss.prompts import apply_template, plain_prompt, resolve_system_prompt

IM_END = "<|im_end|>"


def has_chat_template(tokenizer: Any) -> bool:
    """Whether the tokenizer renders conversations with its own chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def _end_of_turn(tokenizer: Any) -> str:
    if IM_END in tokenizer.get_vocab():
        return IM_END
    return tokenizer.eos_token or ""


def _render_chat(
    tokenizer: Any, messages: list[dict[str, str]], system: str | None, completion: str
) -> tuple[str, str]:
    prompt_text, messages = apply_template(tokenizer, messages, system)
    full = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": completion}], tokenize=False
    )
    if full.startswith(prompt_text):
        return prompt_text, full[len(prompt_text) :]
    at = full.rfind(completion)
    end = full[at + len(completion) :] if at >= 0 else _end_of_turn(tokenizer)
    return prompt_text, completion + end


def render_example(record: dict[str, Any], tokenizer: Any, system_prompt: str | None) -> tuple[str, str]:
    """Return (prompt_text, completion_text) of a normalised record, as the model is trained on it."""
    system = record.get("system") or resolve_system_prompt(system_prompt)
    if has_chat_template(tokenizer):
        return _render_chat(tokenizer, record["prompt_messages"], system, record["completion"])
    return plain_prompt(record["prompt_messages"], system), record["completion"] + (tokenizer.eos_token or "")
