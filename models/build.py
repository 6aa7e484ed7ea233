"""Kind -> config dataclass -> model. Named sizes ("tiny", "small") are JSON in models/configs/; the
kinds themselves are the table in models/registry.py."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch.nn as nn

from mmdx.core.labels import DIAGNOSES, IMAGING_FINDINGS
from mmdx.models.registry import KINDS as _SPECS
from mmdx.models.registry import spec

KINDS: tuple[str, ...] = tuple(_SPECS)
CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def config_from_dict(kind: str, data: dict):
    cfg_cls = spec(kind).config_cls
    known = {f.name for f in dataclasses.fields(cfg_cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {kind} config keys {sorted(unknown)}; known: {sorted(known)}")
    return cfg_cls(**data)


def load_config(kind: str, size: str, **overrides):
    """The named config `size` for `kind`, from models/configs/<kind>_<size>.json, with overrides. The
    head's labels follow the kind's target unless the file or the overrides set them."""
    s = spec(kind)
    path = CONFIG_DIR / f"{kind}_{size}.json"
    if not path.is_file():
        sizes = sorted(p.stem[len(kind) + 1:] for p in CONFIG_DIR.glob(f"{kind}_*.json"))
        raise ValueError(f"no config {size!r} for {kind}; known: {', '.join(sizes) or 'none'}")
    data = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
    data.setdefault("labels", list(IMAGING_FINDINGS if s.target == "imaging_findings" else DIAGNOSES))
    return config_from_dict(kind, {**data, **overrides})


def config_to_dict(config) -> dict:
    d = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}  # JSON-shaped: tuples as lists


def build_model(kind: str, config) -> nn.Module:
    return spec(kind).model_cls(config)
