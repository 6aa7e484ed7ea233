"""The LLM layer: one protocol, three backends, packaged weights, typed errors. One file per job:

- `protocol.py`: the `LLM` protocol, `LLMError` / `LLMTimeout` / `LLMOutputError`, `check_json`;
- `config.py`: `LLMConfig` and how a model spec (name, .gguf, folder, URL) picks a backend;
- `weights.py`: the packaged GGUF files (chunk join, sha256, stamps) and digests of your own;
- `llamacpp.py`: llama.cpp in process (xllamacpp), JSON schema -> grammar;
- `hf_backend.py` + `hf_convert.py`: transformers + xgrammar, on any model folder or a converted GGUF;
- `openai_compat.py`: an OpenAI-compatible endpoint, response_format or a validated retry.

The fake that replays scripted outputs for agent tests lives in tests/llm_fakes.py, not here.
"""
from __future__ import annotations

from mmdx.agent.llm.config import BACKENDS, LLMConfig, config_from_spec, free_cores
from mmdx.agent.llm.protocol import LLM, LLMError, LLMOutputError, LLMTimeout, Message, check_json
from mmdx.agent.llm.weights import DEFAULT_MODEL, MODELS, ensure_gguf, join_chunks, numeric_sorted, sha256_file

__all__ = [
    "BACKENDS", "DEFAULT_MODEL", "LLM", "LLMConfig", "LLMError", "LLMOutputError", "LLMTimeout", "MODELS", "Message",
    "check_json", "config_from_spec", "ensure_gguf", "free_cores", "join_chunks", "load_llm", "numeric_sorted", "sha256_file",
]


def load_llm(config: LLMConfig) -> LLM:
    """Build the backend `config` calls for (imports only that backend's runtime)."""
    backend = config.resolved_backend()
    if backend == "llamacpp":
        from mmdx.agent.llm.llamacpp import LlamaCppLLM

        return LlamaCppLLM(config)
    if backend == "transformers":
        from mmdx.agent.llm.hf_backend import TransformersLLM

        return TransformersLLM(config)
    from mmdx.agent.llm.openai_compat import OpenAICompatLLM

    return OpenAICompatLLM(config)
