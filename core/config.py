"""Where mmdx keeps things. Environment variables override; nothing is fetched from the network."""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Cache root: built cohorts, the joined LLM file, converted models. $MMDX_HOME or ~/.cache/mmdx."""
    p = Path(os.environ.get("MMDX_HOME", Path.home() / ".cache" / "mmdx"))
    p.mkdir(parents=True, exist_ok=True)
    return p


def offline_env() -> None:
    """Make transformers / huggingface_hub fail fast instead of reaching for a hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
