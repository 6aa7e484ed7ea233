"""Where mmdx keeps things. Environment variables override; nothing is fetched from the network.

Two roots, because cache cleaners empty caches: `home()` holds what can be rebuilt (built cohorts,
the joined LLM file, converted models); `data_home()` holds what cannot (the audit log and its
anchor, chat conversations, which hold patient data).
"""
from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """Cache root: built cohorts, the joined LLM file, converted models. $MMDX_HOME or ~/.cache/mmdx."""
    p = Path(os.environ.get("MMDX_HOME", Path.home() / ".cache" / "mmdx"))
    p.mkdir(parents=True, exist_ok=True)
    return p


def data_home() -> Path:
    """Data root for what must not be lost: $MMDX_DATA_HOME, else $XDG_DATA_HOME/mmdx, else
    ~/.local/share/mmdx. Created owner-only (0700): it holds patient data."""
    explicit = os.environ.get("MMDX_DATA_HOME")
    if explicit:
        p = Path(explicit)
    else:
        xdg = os.environ.get("XDG_DATA_HOME")
        p = (Path(xdg) if xdg and Path(xdg).is_absolute() else Path.home() / ".local" / "share") / "mmdx"
    p.mkdir(parents=True, exist_ok=True, mode=0o700)
    return p


def offline_env() -> None:
    """Make transformers / huggingface_hub fail fast instead of reaching for a hub."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
