"""One-off conversion of a packaged GGUF into a transformers folder (dequantized, bf16 safetensors).

`TransformersLLM` reads that folder; so does anyone who wants the packaged model in torch.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path

from mmdx.agent.llm.weights import DEFAULT_MODEL, ensure_gguf, model_spec
from mmdx.core.config import home, offline_env

log = logging.getLogger(__name__)


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
    spec = model_spec(name)
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
