"""Model kinds, written once: which modality a kind reads, its config and model classes, how a case
becomes its input, what it predicts and how it trains.

Adding a modality encoder or a model kind is one `KindSpec` here (plus its JSON configs in
models/configs/ and, for a tool, one class in tools/). build.py, featurize.py, train.py and
inference.py read this table; nothing else dispatches on the kind string.

Kinds:
- cxr, labs, notes: the modality encoders (cxr predicts imaging findings, labs and notes diagnoses);
- student_cxr, student_labs, student_notes: small unimodal models that predict diagnoses, trained
  alone or distilled from the fused model (models/distill.py);
- the fused model is not a KindSpec: it reads encoder tokens, not a case (models/fusion.py,
  models/train_fusion.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from mmdx.models.cxr_vit import CxrViT, ViTConfig
from mmdx.models.lab_transformer import LabConfig, LabTransformer
from mmdx.models.note_encoder import NoteConfig, NoteEncoder


@dataclass(frozen=True)
class KindSpec:
    name: str
    modality: str  # the case modality it reads: cxr, labs or notes
    config_cls: type
    model_cls: type
    target: str  # "imaging_findings" or "diagnoses"
    lr: float  # AdamW peak learning rate
    batch_size: int
    epochs: int
    description: str


KINDS: dict[str, KindSpec] = {k.name: k for k in (
    KindSpec("cxr", "cxr", ViTConfig, CxrViT, "imaging_findings", 5e-4, 64, 20, "chest X-ray ViT (imaging findings)"),
    KindSpec("labs", "labs", LabConfig, LabTransformer, "diagnoses", 1e-3, 64, 30, "lab and vital-sign transformer"),
    KindSpec("notes", "notes", NoteConfig, NoteEncoder, "diagnoses", 2e-4, 16, 3, "clinical-note MiniLM"),
    KindSpec("student_cxr", "cxr", ViTConfig, CxrViT, "diagnoses", 5e-4, 64, 20, "small image model of diagnoses"),
    KindSpec("student_labs", "labs", LabConfig, LabTransformer, "diagnoses", 1e-3, 64, 30, "small labs model"),
    KindSpec("student_notes", "notes", NoteConfig, NoteEncoder, "diagnoses", 5e-4, 32, 8, "small note model"),
)}
STUDENTS: dict[str, str] = {"student_cxr": "cxr", "student_labs": "labs", "student_notes": "notes"}  # kind -> modality


def spec(kind: str) -> KindSpec:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown model kind {kind!r}; known: {', '.join(KINDS)}") from None
