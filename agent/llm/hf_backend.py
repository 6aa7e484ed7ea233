"""`TransformersLLM`: a Hugging Face model folder in torch; xgrammar masks the logits to the schema.

The folder is any local transformers model directory (bring your own: `config.json`, weights,
tokenizer), or a packaged model's GGUF dequantized once by `hf_convert`. Slower than llama.cpp on a
CPU; the one to use on a GPU without a CUDA llama.cpp build. Nothing is fetched from a hub.
"""
from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmdx.agent.llm.config import LLMConfig
from mmdx.agent.llm.hf_convert import convert_gguf_to_hf
from mmdx.agent.llm.protocol import LLMOutputError, LLMTimeout, Message, check_json
from mmdx.agent.llm.weights import MODELS, model_spec
from mmdx.core.config import offline_env
from mmdx.core.errors import WeightsError

log = logging.getLogger(__name__)


def resolve_hf_folder(model: str) -> tuple[Path, str]:
    """(folder, model id) for a packaged model name (converted once) or a local transformers folder.

    A folder's id carries a digest of its config and the sizes of its weight files: cheap, and it
    changes when the weights are replaced."""
    if model in MODELS:
        return convert_gguf_to_hf(model), f"{model}@sha256:{model_spec(model)['sha256'][:12]}"
    folder = Path(model).expanduser()
    if not (folder / "config.json").is_file():
        raise WeightsError(f"LLM {model!r} is neither a packaged model ({', '.join(sorted(MODELS))}) "
                           "nor a transformers folder with a config.json")
    h = hashlib.sha256((folder / "config.json").read_bytes())
    for f in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin")):
        h.update(f"{f.name}:{f.stat().st_size}".encode())
    return folder.resolve(), f"{folder.name}@config:{h.hexdigest()[:12]}"


@functools.lru_cache(maxsize=2)
def _transformers_model(folder: str, device: str, dtype):
    """Tokenizer and model, loaded once per process for each (folder, device, dtype)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    t0 = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=dtype).to(device).eval()
    log.info("transformers loaded %s on %s (%s) in %.1f s", folder, device, dtype, time.perf_counter() - t0)
    return tokenizer, model


class TransformersLLM:
    """The dequantized model in torch; xgrammar masks the logits so output follows the schema.

    CUDA + bf16 when a GPU is present, CPU float32 otherwise (bf16 matmuls are slow on most CPUs).
    """

    def __init__(self, config: LLMConfig):
        offline_env()
        import torch
        import xgrammar as xgr

        self.config = config
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        if self.device == "cpu":
            torch.set_num_threads(config.threads())
        folder, ident = resolve_hf_folder(config.model)
        t0 = time.perf_counter()
        self.tokenizer, self.model = _transformers_model(str(folder), self.device, dtype)
        self.load_s = time.perf_counter() - t0
        self.model_id = f"{ident} (transformers, {self.device})"
        info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=self.model.config.vocab_size)
        self._compiler = xgr.GrammarCompiler(info, max_threads=1)
        self._grammars: dict[str, Any] = {}
        self.last_timings: dict[str, Any] = {}

    def _inputs(self, messages: list[Message]):
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return self.tokenizer(text, return_tensors="pt").to(self.device)

    def _sampling(self) -> dict[str, Any]:
        import torch

        if self.config.temperature > 0:
            torch.manual_seed(self.config.seed)
            return {"do_sample": True, "temperature": self.config.temperature}
        return {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}

    def complete_json(
        self, messages: list[Message], schema: dict, *, max_tokens: int = 256, timeout_s: float | None = None
    ) -> str:
        import torch
        from xgrammar.contrib.hf import LogitsProcessor

        timeout_s = self.config.timeout_s if timeout_s is None else timeout_s
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            # The schema's own key order (not `key`'s sorted one) fixes the order properties are
            # generated in. Compact separators: any_whitespace would let a small model pad forever.
            self._grammars[key] = self._compiler.compile_json_schema(json.dumps(schema), any_whitespace=False)
        inputs = self._inputs(messages)
        n_prompt = inputs["input_ids"].shape[1]
        t0 = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                **inputs,
                max_new_tokens=max_tokens,
                logits_processor=[LogitsProcessor(self._grammars[key])],
                max_time=timeout_s,
                pad_token_id=self.tokenizer.eos_token_id,
                **self._sampling(),
            )
        elapsed = time.perf_counter() - t0
        new = out[0, n_prompt:].tolist()  # (T_new,)
        eos = self.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos]) | {self.tokenizer.eos_token_id}
        finished = bool(new) and new[-1] in eos_ids
        self.last_timings = {"prompt_n": n_prompt, "predicted_n": len(new), "total_ms": elapsed * 1000}
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        if not finished:
            if timeout_s is not None and elapsed >= timeout_s:
                raise LLMTimeout(f"{self.model_id}: generation passed its {timeout_s:.0f} s limit")
            if len(new) >= max_tokens:
                raise LLMOutputError(f"LLM output hit max_tokens={max_tokens} before the JSON closed", text)
        check_json(text, schema)
        return text

    def stream(self, messages: list[Message], *, max_tokens: int = 256) -> Iterator[str]:
        import torch
        from transformers import TextIteratorStreamer

        inputs = self._inputs(messages)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        failure: list[BaseException] = []
        stop = threading.Event()

        def stop_requested(input_ids, scores, **kwargs):  # a StoppingCriteria: consumer closed early
            return torch.full((input_ids.shape[0],), stop.is_set(), dtype=torch.bool, device=input_ids.device)

        def worker() -> None:
            try:
                with torch.inference_mode():
                    self.model.generate(
                        **inputs,
                        max_new_tokens=max_tokens,
                        streamer=streamer,
                        stopping_criteria=[stop_requested],
                        pad_token_id=self.tokenizer.eos_token_id,
                        **self._sampling(),
                    )
            except BaseException as e:  # noqa: BLE001 - re-raised in the consumer
                failure.append(e)
                streamer.end()

        t = threading.Thread(target=worker, name="transformers-stream", daemon=True)
        t.start()
        try:
            for text in streamer:
                if text:
                    yield text
        finally:
            stop.set()
            t.join()
        if failure:
            raise failure[0]
