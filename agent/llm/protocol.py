"""What every LLM backend is: the `LLM` protocol, its typed errors, and the schema check.

Every `complete_json` result is parsed and checked against the schema before it is returned: a
truncated or off-schema answer raises `LLMOutputError`, a slow one `LLMTimeout`. Backends differ
only in how they constrain decoding (a grammar in-process, a response format over HTTP, or a
validated retry where a server offers neither).
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, Protocol, runtime_checkable

from mmdx.core.errors import MmdxError


class LLMError(MmdxError):
    """The LLM could not give a usable answer."""


class LLMTimeout(LLMError):
    """Generation ran past its time limit; whatever it produced is discarded."""


class LLMOutputError(LLMError):
    """The LLM's text is not valid JSON, or does not match the requested schema.

    `text` holds the raw output so a caller can log it or show it back to the LLM.
    """

    def __init__(self, message: str, text: str = ""):
        self.text = text
        super().__init__(message)


Message = dict[str, str]  # {"role": "system" | "user" | "assistant", "content": "..."}


@runtime_checkable
class LLM(Protocol):
    model_id: str

    def complete_json(
        self,
        messages: list[Message],
        schema: dict,
        *,
        max_tokens: int = 256,
        timeout_s: float | None = None,
    ) -> str:
        """Generate under `schema`; return the raw JSON text, already checked to parse and to
        match the schema (LLMOutputError otherwise)."""
        ...

    def stream(self, messages: list[Message], *, max_tokens: int = 256) -> Iterator[str]:
        """Free text, yielded in token-sized chunks as it is generated."""
        ...


def check_json(text: str, schema: dict) -> Any:
    """Parse `text` and validate it against `schema`; LLMOutputError names what is wrong."""
    import jsonschema  # a dependency of ray, hence always present with mmdx

    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise LLMOutputError(f"LLM output is not valid JSON ({e.msg} at char {e.pos})", text) from None
    try:
        jsonschema.validate(value, schema)
    except jsonschema.ValidationError as e:
        where = "/".join(str(p) for p in e.absolute_path) or "<root>"
        raise LLMOutputError(f"LLM output does not match the schema at {where}: {e.message}", text) from None
    return value
