"""Prompt de-duplication: exact text, and text normalised for case, width and whitespace.

Keys are 96-bit digests: remembering a kept prompt costs about a hundred bytes, whatever its length.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata

DEDUP_MODES = ("normalized", "exact", "off")
_SPACE_RE = re.compile(r"\s+")


def normalize_prompt(text: str) -> str:
    """Casefolded NFKC text without whitespace: "Simplify  6/8 ." and "simplify 6/8." become one key."""
    # Whitespace is removed rather than collapsed: "x = 5" and "x=5" are the same question. Punctuation stays,
    # since "3.5" and "35" are not.
    return _SPACE_RE.sub("", unicodedata.normalize("NFKC", text).casefold())


def prompt_keys(text: str) -> tuple[str, str]:
    """(exact key, normalised key) of a prompt text."""
    return _digest(text), _digest(normalize_prompt(text))


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=12).hexdigest()


class Deduplicator:
    """Remembers kept prompts; says which filter (if any) drops a later one."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self._exact: set[str] = set()
        self._normalized: set[str] = set()

    def check(self, exact_key: str, normalized_key: str) -> str | None:
        """ "duplicate_exact", "duplicate_normalized" or None (then the prompt is remembered as kept)."""
        if self.mode == "off":
            return None
        if exact_key in self._exact:
            return "duplicate_exact"
        if self.mode == "normalized" and normalized_key in self._normalized:
            return "duplicate_normalized"
        self._exact.add(exact_key)
        self._normalized.add(normalized_key)
        return None
