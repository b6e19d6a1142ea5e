"""A scripted generation backend for evaluation tests (no model)."""

from __future__ import annotations

from collections.abc import Callable

from wmss.eval.backends import Generation


class FakeBackend:
    """Scripted responses for tests: a function of the prompt, a prompt -> text dict, or a list used in order."""

    def __init__(self, responses: Callable[[str], str] | dict[str, str] | list[str]) -> None:
        self.responses = responses
        self.prompts: list[str] = []
        self._next = 0

    def _respond(self, prompt: str) -> str:
        if callable(self.responses):
            return self.responses(prompt)
        if isinstance(self.responses, dict):
            return self.responses[prompt]
        text = self.responses[self._next]
        self._next += 1
        return text

    def generate(self, prompts: list[str], n: int = 1) -> list[list[Generation]]:
        """Return the scripted text n times per prompt, all marked finished."""
        self.prompts.extend(prompts)
        return [
            [
                Generation(text, finished=True, n_tokens=len(text.split()))
                for text in (self._respond(p) for _ in range(n))
            ]
            for p in prompts
        ]
