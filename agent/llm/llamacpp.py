"""`LlamaCppLLM`: a GGUF model served by llama.cpp's server engine in this process (xllamacpp).

The model is a packaged name (weights joined and verified by `weights.ensure_gguf`) or any GGUF file
(hashed once by `weights.file_digest`, so the model id names the exact weights). JSON schemas become
grammars in the request (compact: no whitespace between tokens), so every token is constrained. One slot (`n_parallel=1`) with prompt
caching: a call that starts with the same system prompt as the last one reuses its KV cache, which
is why the agent keeps its fixed text (rules, tool list) in one identical system message.
"""
from __future__ import annotations

import functools
import json
import logging
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmdx.agent.llm.config import LLMConfig
from mmdx.agent.llm.protocol import LLMError, LLMOutputError, LLMTimeout, Message, check_json
from mmdx.agent.llm.weights import MODELS, ensure_gguf, file_digest, model_spec
from mmdx.core.errors import WeightsError

log = logging.getLogger(__name__)


def resolve_gguf(model: str) -> tuple[Path, str]:
    """(path, model id) for a packaged model name or a GGUF file path."""
    if model in MODELS:
        spec = model_spec(model)
        return ensure_gguf(model), f"{model}@sha256:{spec['sha256'][:12]}"
    path = Path(model).expanduser()
    if path.suffix.lower() != ".gguf" or not path.is_file():
        raise WeightsError(f"LLM {model!r} is neither a packaged model ({', '.join(sorted(MODELS))}) nor a .gguf file")
    return path.resolve(), f"{path.stem}@sha256:{file_digest(path)[:12]}"


# llguidance (llama.cpp's JSON-schema engine here) lets a schema fix its separators: no whitespace,
# so a small model cannot spend tokens on pretty-printing (it did: a third of its output was indent).
COMPACT = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":", "whitespace_pattern": ""}


@functools.lru_cache(maxsize=64)
def _grammar(schema_json: str) -> str:
    import xllamacpp as xlc

    return xlc.json_schema_to_grammar(schema_json)


def compact_json_grammar(schema: dict) -> str:
    """The llama.cpp grammar for `schema`, compact JSON only (compiled once per schema)."""
    return _grammar(json.dumps({**schema, "x-guidance": COMPACT}))


@functools.lru_cache(maxsize=2)
def _llama_server(path: str, n_threads: int, n_ctx: int, seed: int):
    """One loaded model per (file, threads, context): loading is the slow part, so do it once."""
    import xllamacpp as xlc

    params = xlc.CommonParams()
    params.model.path = path
    params.n_ctx = n_ctx
    params.n_parallel = 1  # one sequence: the agent asks one question at a time
    params.cpuparams.n_threads = n_threads
    params.cpuparams_batch.n_threads = n_threads
    params.sampling.seed = seed
    params.warmup = False  # a warm-up decode costs seconds on 2 cores and buys nothing here
    params.verbosity = 0  # llama.cpp's per-slot info lines would flood stderr; errors still print
    t0 = time.perf_counter()
    server = xlc.Server(params)
    log.info("llama.cpp loaded %s (%d threads, n_ctx %d) in %.1f s", path, n_threads, n_ctx, time.perf_counter() - t0)
    return server


class LlamaCppLLM:
    """A GGUF model served by llama.cpp in this process; JSON schemas become grammars in the request."""

    def __init__(self, config: LLMConfig):
        self.config = config
        self.path, ident = resolve_gguf(config.model)
        self.model_id = f"{ident} (llama.cpp)"
        self.n_threads = config.threads()  # fixed at load: llama.cpp keeps its thread pool
        self._server = _llama_server(str(self.path), self.n_threads, config.n_ctx, config.seed)
        self.last_timings: dict[str, Any] = {}  # llama.cpp timings of the last call (tokens, ms)

    def _request(self, messages: list[Message], max_tokens: int) -> dict[str, Any]:
        return {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": self.config.temperature,
            "seed": self.config.seed,
            "stream": True,
            "cache_prompt": True,  # reuse the KV cache of the prefix this call shares with the last
        }

    def _run_stream(self, request: dict, on_text, deadline: float | None, stop: threading.Event | None = None) -> str:
        """Run a streaming request, handing each text delta to `on_text`; returns the finish reason.

        xllamacpp swallows exceptions raised inside the callback, so the callback catches its own
        and asks llama.cpp to stop (returning True); they are re-raised here.
        """
        state: dict[str, Any] = {"reason": None, "error": None, "timed_out": False, "exc": None}

        def callback(chunk) -> bool:
            try:
                if isinstance(chunk, (str, bytes)):
                    chunk = json.loads(chunk)
                if "error" in chunk:
                    state["error"] = chunk["error"]
                    return True
                for choice in chunk.get("choices", []):
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        on_text(text)
                    if choice.get("finish_reason"):
                        state["reason"] = choice["finish_reason"]
                if chunk.get("timings"):
                    self.last_timings = chunk["timings"]
                if state["reason"] is None and deadline is not None and time.monotonic() > deadline:
                    state["timed_out"] = True
                    return True  # tells llama.cpp to stop generating
                return stop is not None and stop.is_set()
            except BaseException as e:  # noqa: BLE001 - re-raised below, outside the C callback
                state["exc"] = e
                return True

        self.last_timings = {}
        result = self._server.handle_chat_completions(request, callback)
        if isinstance(result, dict) and "error" in result:
            state["error"] = result["error"]
        if state["exc"] is not None:
            raise state["exc"]
        if state["timed_out"]:
            raise LLMTimeout(f"{self.model_id}: generation passed its time limit")
        if state["error"] is not None:
            raise LLMError(f"llama.cpp error: {state['error']}")
        return state["reason"] or "unknown"

    def complete_json(
        self, messages: list[Message], schema: dict, *, max_tokens: int = 256, timeout_s: float | None = None
    ) -> str:
        timeout_s = self.config.timeout_s if timeout_s is None else timeout_s
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        request = self._request(messages, max_tokens)
        request["grammar"] = compact_json_grammar(schema)
        parts: list[str] = []
        reason = self._run_stream(request, parts.append, deadline)
        text = "".join(parts)
        if reason == "length":
            raise LLMOutputError(f"LLM output hit max_tokens={max_tokens} before the JSON closed", text)
        check_json(text, schema)
        return text

    def stream(self, messages: list[Message], *, max_tokens: int = 256) -> Iterator[str]:
        """Yields text deltas as llama.cpp produces them (generation runs on a worker thread;
        closing the iterator early stops it)."""
        q: queue.Queue = queue.Queue()
        done = object()
        stop = threading.Event()

        def worker() -> None:
            try:
                self._run_stream(self._request(messages, max_tokens), q.put, None, stop)
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, re-raised there
                q.put(e)
            finally:
                q.put(done)

        t = threading.Thread(target=worker, name="llamacpp-stream", daemon=True)
        t.start()
        try:
            while (item := q.get()) is not done:
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            t.join()
