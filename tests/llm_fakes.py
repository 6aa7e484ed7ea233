"""The scripted LLM for fast agent tests (moved out of the library: a fake is test code).

`ScriptedLLM` replays scripted outputs in order, one per complete_json / stream call, and checks
strings against the schema exactly as the real backends do, so scripted garbage raises
LLMOutputError. No model, no time.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from mmdx.agent.llm import Message, check_json


class ScriptExhausted(RuntimeError):
    """A ScriptedLLM was asked for more outputs than its script holds: a bug in the test, so it
    is deliberately not an MmdxError (an agent must not catch it as an LLM failure)."""


class ScriptedLLM:
    """Replays `responses` in order, one per complete_json / stream call.

    A dict is JSON-dumped; an Exception instance is raised (simulate LLMTimeout or garbage);
    a string is returned as the model's text. Every call is recorded in `calls` as
    {"kind", "messages", "schema"}.
    """

    def __init__(self, responses: list[str | dict | Exception], model_id: str = "scripted"):
        self.model_id = model_id
        self._responses = list(responses)
        self.calls: list[dict[str, Any]] = []

    @property
    def remaining(self) -> int:
        return len(self._responses)

    def _next(self, kind: str, messages: list[Message], schema: dict | None) -> str:
        self.calls.append({"kind": kind, "messages": [dict(m) for m in messages], "schema": schema})
        if not self._responses:
            raise ScriptExhausted(
                f"ScriptedLLM script ran out at call {len(self.calls)} ({kind}); "
                f"last message: {messages[-1]['content'][:200] if messages else '<none>'}"
            )
        item = self._responses.pop(0)
        if isinstance(item, BaseException):
            raise item
        return json.dumps(item) if isinstance(item, dict) else item

    def complete_json(
        self, messages: list[Message], schema: dict, *, max_tokens: int = 256, timeout_s: float | None = None
    ) -> str:
        text = self._next("complete_json", messages, schema)
        check_json(text, schema)
        return text

    def stream(self, messages: list[Message], *, max_tokens: int = 256) -> Iterator[str]:
        text = self._next("stream", messages, None)
        yield from re.findall(r"\S+\s*|\s+", text)
