"""`OpenAICompatLLM`: any server that speaks the OpenAI chat-completions API (vLLM, a llama.cpp
server, Ollama), over plain HTTP from the standard library.

JSON answers: the schema goes in `response_format` ({"type": "json_schema"}), which these servers
turn into constrained decoding. A server that refuses that field (HTTP 400/422 naming it) is asked
again with the schema written into the prompt instead, and from then on this client stays in that
mode. Either way the text is checked against the schema, and an invalid answer is asked again with
the validation error shown to the model, at most `config.json_retries` times; then LLMOutputError.
Only the endpoint the user named is contacted.
"""
from __future__ import annotations

import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

from mmdx.agent.llm.config import LLMConfig
from mmdx.agent.llm.protocol import LLMError, LLMOutputError, LLMTimeout, Message, check_json

log = logging.getLogger(__name__)
WHITESPACE_ROOM = 2.5  # measured: llama.cpp's server spent ~1.6 tokens of indentation per content token


def _base_url(endpoint: str) -> str:
    url = endpoint.rstrip("/")
    return url if url.endswith("/v1") else url + "/v1"


def _schema_prompt(schema: dict) -> str:
    return ("Answer with exactly one JSON object and nothing else. It must match this JSON schema:\n"
            + json.dumps(schema, separators=(",", ":")))


class OpenAICompatLLM:
    def __init__(self, config: LLMConfig):
        if not config.endpoint:
            raise LLMError("the openai backend needs an endpoint URL (--llm http://host:port/v1)")
        self.config = config
        self.base = _base_url(config.endpoint)
        self.name = config.model or self._first_model()
        self.model_id = f"{self.name} @ {self.base} (openai-compatible)"
        self.schema_mode = "response_format"  # or "prompt", after a server refused response_format
        self.last_timings: dict[str, Any] = {}

    # ---- HTTP
    def _open(self, path: str, body: dict | None, timeout: float | None):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if self.config.api_key:
            headers["Authorization"] = f"Bearer {self.config.api_key}"
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method="GET" if body is None else "POST")
        try:
            return urllib.request.urlopen(req, timeout=timeout)
        except urllib.error.HTTPError as e:
            detail = e.read().decode("utf-8", "replace")[:500]
            raise _HTTPRefusal(e.code, detail) from None
        except (socket.timeout, TimeoutError):
            raise LLMTimeout(f"{self.base}: no answer within {timeout:.0f} s") from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, (socket.timeout, TimeoutError)):
                raise LLMTimeout(f"{self.base}: no answer within {timeout:.0f} s") from None
            raise LLMError(f"cannot reach the LLM endpoint {self.base}: {e.reason}") from None

    def _first_model(self) -> str:
        try:
            with self._open("/models", None, timeout=30) as r:
                models = json.loads(r.read())
        except _HTTPRefusal as e:
            raise LLMError(f"{self.base}/models answered HTTP {e.code}; name the model with --llm-name") from None
        ids = [m.get("id") for m in models.get("data", []) if isinstance(m, dict) and m.get("id")]
        if not ids:
            raise LLMError(f"{self.base}/models lists no model; name one with --llm-name")
        return ids[0]

    def _body(self, messages: list[Message], max_tokens: int, stream: bool) -> dict:
        return {"model": self.name, "messages": messages, "max_tokens": max_tokens,
                "temperature": self.config.temperature, "seed": self.config.seed, "stream": stream}

    # ---- one JSON answer, constrained where the server can, validated always
    def _ask_once(self, messages: list[Message], schema: dict, max_tokens: int, deadline: float | None) -> tuple[str, str]:
        # a server decides its JSON's whitespace (llama.cpp's pretty-prints): room for it, the schema bounds the rest
        body = self._body(messages, int(max_tokens * WHITESPACE_ROOM) + 16, stream=False)
        if self.schema_mode == "response_format":
            body["response_format"] = {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": True}}
        timeout = None if deadline is None else max(0.1, deadline - time.monotonic())
        try:
            with self._open("/chat/completions", body, timeout) as r:
                reply = json.loads(r.read())
        except _HTTPRefusal as e:
            if self.schema_mode == "response_format" and e.code in (400, 422) and (
                    "response_format" in e.detail or "json_schema" in e.detail or "schema" in e.detail):
                log.info("%s refused response_format (HTTP %d); writing the schema into the prompt instead", self.base, e.code)
                self.schema_mode = "prompt"
                return self._ask_once(self._with_schema(messages, schema), schema, max_tokens, deadline)
            raise LLMError(f"LLM endpoint {self.base} answered HTTP {e.code}: {e.detail[:200]}") from None
        self.last_timings = reply.get("timings") or reply.get("usage") or {}
        try:
            choice = reply["choices"][0]
            return choice["message"].get("content") or "", choice.get("finish_reason") or "unknown"
        except (KeyError, IndexError, TypeError, AttributeError):
            raise LLMError(f"LLM endpoint {self.base} sent a reply without choices: {str(reply)[:200]}") from None

    @staticmethod
    def _with_schema(messages: list[Message], schema: dict) -> list[Message]:
        return [*messages[:-1], {**messages[-1], "content": messages[-1]["content"] + "\n\n" + _schema_prompt(schema)}]

    def complete_json(self, messages: list[Message], schema: dict, *, max_tokens: int = 256,
                      timeout_s: float | None = None) -> str:
        timeout_s = self.config.timeout_s if timeout_s is None else timeout_s
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        convo = self._with_schema(messages, schema) if self.schema_mode == "prompt" else list(messages)
        last: LLMOutputError | None = None
        for attempt in range(self.config.json_retries + 1):
            text, reason = self._ask_once(convo, schema, max_tokens, deadline)
            try:
                if reason == "length":
                    raise LLMOutputError(f"LLM output hit max_tokens={max_tokens} before the JSON closed", text)
                check_json(text, schema)
                return text
            except LLMOutputError as e:
                last = e
                log.info("attempt %d: %s", attempt + 1, e)
                if self.schema_mode == "prompt" and convo is messages:
                    convo = self._with_schema(messages, schema)
                convo = [*convo, {"role": "assistant", "content": text},
                         {"role": "user", "content": f"That answer was rejected: {e}. Answer again with JSON matching the schema."}]
        assert last is not None
        raise last

    def stream(self, messages: list[Message], *, max_tokens: int = 256) -> Iterator[str]:
        try:
            resp = self._open("/chat/completions", self._body(messages, max_tokens, stream=True), self.config.timeout_s)
        except _HTTPRefusal as e:
            raise LLMError(f"LLM endpoint {self.base} answered HTTP {e.code}: {e.detail[:200]}") from None
        with resp:
            for raw in resp:
                line = raw.decode("utf-8", "replace").strip()
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    return
                try:
                    chunk = json.loads(data)
                except json.JSONDecodeError:
                    raise LLMError(f"LLM endpoint {self.base} streamed a line that is not JSON: {data[:100]}") from None
                for choice in chunk.get("choices", []):
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        yield text


class _HTTPRefusal(Exception):
    """An HTTP error status from the endpoint (internal: turned into LLMError or a mode switch)."""

    def __init__(self, code: int, detail: str):
        self.code, self.detail = code, detail
        super().__init__(f"HTTP {code}: {detail[:200]}")
