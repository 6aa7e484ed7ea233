"""Which LLM to use and how: one frozen config, and the rule that picks a backend from it.

A model is named four ways, by flag (`--llm`) or environment (`MMDX_LLM`):
- a packaged model (`qwen2.5-coder-1.5b`, the default; `qwen2.5-coder-0.5b`): llama.cpp in process;
- a path to any `.gguf` file: llama.cpp in process;
- a path to a Hugging Face model folder (`config.json` + weights): transformers + xgrammar;
- an `http(s)://` URL of an OpenAI-compatible server (vLLM, a llama.cpp server, Ollama): HTTP.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from mmdx.agent.llm.protocol import LLMError
from mmdx.agent.llm.weights import DEFAULT_MODEL, MODELS

Backend = Literal["auto", "llamacpp", "transformers", "openai"]
BACKENDS: tuple[str, ...] = ("auto", "llamacpp", "transformers", "openai")


@dataclass(frozen=True)
class LLMConfig:
    backend: Backend = "auto"  # "auto": decided by what `model` names (see resolved_backend)
    model: str = DEFAULT_MODEL  # a packaged name, a .gguf path, a transformers folder, or an endpoint's model name
    endpoint: str | None = None  # base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1
    api_key: str | None = None  # for the endpoint; the CLI reads it from MMDX_LLM_API_KEY, never from argv
    n_threads: int = 1  # CPU threads; 0 = as many cores as are free right now (load average)
    n_ctx: int = 4096  # context window in tokens (prompt + answer)
    temperature: float = 0.0  # 0 = greedy, reproducible
    seed: int = 0  # sampling seed (matters only when temperature > 0)
    timeout_s: float | None = 120.0  # default per-call limit for complete_json; None = no limit
    json_retries: int = 2  # validated retries on a server that cannot constrain its output to a schema

    def threads(self) -> int:
        return self.n_threads if self.n_threads > 0 else free_cores()

    def resolved_backend(self) -> str:
        """The backend `model` and `endpoint` call for, unless one was set explicitly."""
        if self.backend != "auto":
            if self.backend not in BACKENDS:
                raise LLMError(f"unknown LLM backend {self.backend!r}; use one of {', '.join(BACKENDS)}")
            return self.backend
        if self.endpoint:
            return "openai"
        if self.model in MODELS or self.model.lower().endswith(".gguf"):
            return "llamacpp"
        if Path(self.model).expanduser().is_dir():
            return "transformers"
        raise LLMError(f"LLM {self.model!r} is not a packaged model ({', '.join(sorted(MODELS))}), a .gguf file, "
                       "a transformers folder or an http(s):// endpoint")


def free_cores() -> int:
    """Cores not busy right now: the CPU count less the 1-minute load average, at least 1.

    On a shared machine a thread count above the free cores makes llama.cpp's threads wait on each
    other (measured here: 2 threads on 2 contended cores fell below 1 token/s)."""
    n = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:  # not available on this platform
        return 1
    return max(1, min(n, int(n - load + 0.5)))


def config_from_spec(spec: str, *, backend: str = "auto", name: str | None = None, **kw) -> LLMConfig:
    """An LLMConfig from what a user typed: a packaged name, a path, or an endpoint URL.

    For a URL, `name` is the model the server should run (None: the server's first listed model)."""
    spec = spec.strip()
    if spec.startswith(("http://", "https://")):
        return LLMConfig(backend="openai" if backend == "auto" else backend, model=name or "", endpoint=spec, **kw)
    return LLMConfig(backend=backend, model=spec, **kw)  # type: ignore[arg-type]
