"""The model card: everything needed to use, audit and reproduce a trained modality model.

A checkpoint directory holds `model.safetensors` and `card.json`. The card records the config,
labels, per-label thresholds and temperatures, the lab feature statistics, the out-of-distribution
statistics, what data it was trained on (and whether it is synthetic), metrics with CIs, and the
sha256 of the weights file; loading checks that digest and raises WeightsError on any mismatch.

OOD score of an embedding e: mean over dimensions of (e - mean)^2 / var (a diagonal Mahalanobis
distance, using the training embeddings' mean and variance), divided by its 95th percentile on the
validation split. So about 5% of validation cases score above 1; a score well above 1 is unusual.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field
from safetensors.torch import load_file, save_file

from mmdx.core.errors import WeightsError

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "card.json"


class OODStats(BaseModel):
    mean: list[float]  # (D,) training-embedding mean
    var: list[float]  # (D,) training-embedding variance (floored)
    p95_val: float  # 95th percentile of the raw distance on the validation split

    def score(self, emb: np.ndarray) -> np.ndarray:
        """(N,) OOD scores for embeddings (N, D); > 1 = further out than 95% of validation cases."""
        return ood_distance(emb, np.asarray(self.mean), np.asarray(self.var)) / self.p95_val


def ood_distance(emb: np.ndarray, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
    return (((np.atleast_2d(emb) - mean) ** 2) / var).mean(axis=1)  # (N,)


def fit_ood(train_emb: np.ndarray, val_emb: np.ndarray) -> OODStats:
    mean = train_emb.mean(0)
    var = np.maximum(train_emb.var(0), 1e-6)
    p95 = float(np.percentile(ood_distance(val_emb, mean, var), 95))
    return OODStats(mean=mean.tolist(), var=var.tolist(), p95_val=max(p95, 1e-9))


class ModelCard(BaseModel):
    model_config = ConfigDict(protected_namespaces=())

    model_id: str  # e.g. "mmdx-labs-small-<first 12 of sha256>"
    kind: str  # a models/registry.py kind, or "fused"
    config_name: str  # "tiny", "small", ...
    config: dict  # the dataclass fields, enough to rebuild the architecture
    labels: list[str]
    target: Literal["imaging_findings", "diagnoses"]
    thresholds: list[float]  # per label, chosen on validation (max F1), applied to calibrated probs
    temperatures: list[float]  # per label, fitted on validation
    biases: list[float] = Field(default_factory=list)  # per label, fitted with the temperatures (empty: none)
    feature_stats: dict[str, tuple[float, float]] = Field(default_factory=dict)  # labs: variable -> (median, IQR)
    ood: OODStats | None = None
    data_digest: str = ""  # sha256 over the sorted training/validation/test case ids and labels
    data_description: str = ""  # where the data came from; says "synthetic" for simulated data
    n_train: int = 0
    n_val: int = 0
    n_test: int = 0
    metrics: dict = Field(default_factory=dict)  # {"test": {...}, "test_uncalibrated": {...}, "baseline": {...}}
    weights_sha256: str = ""
    weights_file: str = WEIGHTS_FILE
    base_model: str = ""  # for notes: the packaged base the checkpoint's partial weights sit on
    training_seconds: float = 0.0
    training: dict = Field(default_factory=dict)  # epochs, steps, seed, batch size, lr, device
    torch_version: str = torch.__version__
    created_at: str = ""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(out_dir: Path, card: ModelCard, state_dict: dict[str, torch.Tensor]) -> ModelCard:
    """Write the weights, fill in their digest and the model id, write the card. Returns the card."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    wpath = out_dir / card.weights_file
    save_file({k: v.detach().contiguous().cpu() for k, v in state_dict.items()}, str(wpath))
    digest = sha256_file(wpath)
    card = card.model_copy(update={"weights_sha256": digest, "model_id": f"mmdx-{card.kind}-{card.config_name}-{digest[:12]}"})
    tmp = out_dir / (CARD_FILE + ".tmp")
    tmp.write_text(card.model_dump_json(indent=2))
    tmp.replace(out_dir / CARD_FILE)
    return card


def load_card(weights_dir: Path) -> ModelCard:
    path = Path(weights_dir) / CARD_FILE
    if not path.is_file():
        raise WeightsError(f"no model card at {path}; train one with `mmdx train`")
    try:
        return ModelCard.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValueError) as e:
        raise WeightsError(f"unreadable model card {path}: {e}") from e


def load_weights(weights_dir: Path, card: ModelCard) -> dict[str, torch.Tensor]:
    """The state dict, after checking the file's sha256 against the card."""
    path = Path(weights_dir) / card.weights_file
    if not path.is_file():
        raise WeightsError(f"weights file missing: {path}")
    digest = sha256_file(path)
    if digest != card.weights_sha256:
        raise WeightsError(f"weights {path} have sha256 {digest[:16]}..., the card records {card.weights_sha256[:16]}...")
    return load_file(str(path))
