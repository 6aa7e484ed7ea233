"""Kind -> config dataclass -> model. Named sizes ("tiny", "small") are JSON in models/configs/."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Literal

import torch.nn as nn

from mmdx.models.cxr_vit import CxrViT, ViTConfig
from mmdx.models.lab_transformer import LabConfig, LabTransformer
from mmdx.models.note_encoder import NoteConfig, NoteEncoder

Kind = Literal["cxr", "labs", "notes"]
KINDS: tuple[str, ...] = ("cxr", "labs", "notes")
CONFIG_DIR = Path(__file__).resolve().parent / "configs"
_CLASSES = {"cxr": (ViTConfig, CxrViT), "labs": (LabConfig, LabTransformer), "notes": (NoteConfig, NoteEncoder)}


def config_from_dict(kind: str, data: dict):
    cfg_cls = _CLASSES[kind][0]
    known = {f.name for f in dataclasses.fields(cfg_cls)}
    unknown = set(data) - known
    if unknown:
        raise ValueError(f"unknown {kind} config keys {sorted(unknown)}; known: {sorted(known)}")
    return cfg_cls(**data)


def load_config(kind: str, size: str, **overrides):
    """The named config `size` for `kind`, from models/configs/<kind>_<size>.json, with overrides."""
    if kind not in _CLASSES:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}")
    path = CONFIG_DIR / f"{kind}_{size}.json"
    if not path.is_file():
        sizes = sorted(p.stem.split("_", 1)[1] for p in CONFIG_DIR.glob(f"{kind}_*.json"))
        raise ValueError(f"no config {size!r} for {kind}; known: {', '.join(sizes)}")
    data = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
    return config_from_dict(kind, {**data, **overrides})


def config_to_dict(config) -> dict:
    d = dataclasses.asdict(config)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}  # JSON-shaped: tuples as lists


def build_model(kind: str, config) -> nn.Module:
    return _CLASSES[kind][1](config)
