"""The filters, in the order they run, and the cheap per-sample ones: category policy, format, length.

A dropped sample is counted under the first filter that drops it, in `FILTERS` order: cheap checks run
first, the expensive ones (math-verify, running code) only on what is left, and de-duplication last, over
samples that passed everything else, so a duplicate prompt keeps its first *good* response.
"""

from __future__ import annotations

import re
from typing import Any

FILTERS: dict[str, str] = {
    "structure": "not a usable chat sample (a missing or empty turn, or one the chat template rejects)",
    "category": "the category's policy is drop (code unless verified or kept, other)",
    "format": "the response does not have the <think>...</think> <answer>...</answer> format",
    "benchmark_overlap": "the prompt shares an n-gram with an evaluation benchmark question",
    "too_long": "more than max_length tokens with the target model's tokenizer",
    "gold_unparseable": "math-verify cannot parse the reference answer",
    "wrong_answer": "the response's final answer is not the reference answer",
    "code_tests_unusable": "no test cases, or test cases in a form that cannot be run",
    "code_failed": "the response's program fails its test cases (or times out)",
    "duplicate_exact": "the same prompt was already kept",
    "duplicate_normalized": "the same prompt up to case and whitespace was already kept",
}
POLICIES = {"math": ("verify", "keep", "drop"), "code": ("drop", "verify", "keep"), "other": ("drop", "keep")}
FORMATS = ("strict", "loose", "off")

# The authors' pattern, matched against the stripped response (their HACK comment: `$` may also match
# before a final newline). Its \boxed part only makes sense for math: code answers end in a program, so
# other categories get the same pattern without it.
_STRICT_MATH = re.compile(r"^<think>.*?</think>\s*<answer>.*?\\boxed\{.*?\}.*?</answer>$", re.DOTALL)
_STRICT_NO_BOX = re.compile(r"^<think>.*?</think>\s*<answer>.*?</answer>$", re.DOTALL)
# Looser: any whitespace around the tags and a non-empty answer; what the answer says is the graders' job.
_LOOSE = re.compile(r"^\s*<think>.*?</think>\s*<answer>(?P<answer>.*?)</answer>\s*$", re.DOTALL)


def format_ok(response: str, category: str, mode: str) -> bool:
    """Whether a response has the paper's format: "strict" (the authors' exact pattern), "loose" or "off"."""
    if mode == "off":
        return True
    if mode == "strict":
        pattern = _STRICT_MATH if category == "math" else _STRICT_NO_BOX
        return pattern.match(response.strip()) is not None
    match = _LOOSE.match(response)
    return match is not None and bool(match.group("answer").strip())


def token_length(
    messages: list[dict[str, str]], response: str, tokenizer: Any, system_prompt: str | None
) -> int:
    """Tokens of the example exactly as `wmss run` renders and tokenises it (prompt + completion)."""
    # Imported here: `wmss.data` loads `datasets`, which pool workers without a tokenizer never need.
    from wmss.data.encode import encode_example

    # Split off a leading system turn as `wmss.data.records` does, so rendering matches training exactly.
    system = messages[0]["content"] if messages and messages[0]["role"] == "system" else None
    turns = messages[1:] if system is not None else messages
    record = {
        "system": system if system and system.strip() else None,
        "prompt_messages": turns,
        "completion": response,
    }
    prompt_ids, completion_ids = encode_example(record, tokenizer, system_prompt)
    return len(prompt_ids) + len(completion_ids)
