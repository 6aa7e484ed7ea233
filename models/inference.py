"""Load a trained modality model and predict on patient cases.

    model = load_model("labs")                      # models/weights/labs/ inside the package
    results = model.predict(cases)                  # one entry per case, in order
    for r in results:
        if isinstance(r, ToolInputError): ...       # absent modality, corrupt image: returned, not raised
        else: r.probs, r.embedding, r.ood_score, r.notes

Cases that featurize cleanly go through one batched forward pass (chunks of `max_batch` for very
long lists); bf16 autocast on CUDA, float32 on CPU. Probabilities are calibrated (per-label
temperature from the card). This is the interface the tools and the Ray runner call.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn as nn

from mmdx.core.case import PatientCase
from mmdx.core.errors import ToolInputError, WeightsError
from mmdx.models.build import build_model, config_from_dict
from mmdx.models.calibration import apply_temperature
from mmdx.models.card import ModelCard, load_card, load_weights
from mmdx.models.featurize import collate, featurize

log = logging.getLogger(__name__)
WEIGHTS_ROOT = Path(__file__).resolve().parent / "weights"


@dataclass
class Prediction:
    probs: np.ndarray  # (L,) calibrated probabilities, in card.labels order
    embedding: np.ndarray  # (D,) pooled representation
    ood_score: float  # > 1: further from the training data than 95% of validation cases
    notes: list[str] = field(default_factory=list)  # visible degradations (truncation, resizing, ...)
    tokens: np.ndarray | None = None  # (T, D) float16, when asked for: what the fusion model reads


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_state(model: nn.Module, kind: str, sd: dict[str, torch.Tensor]) -> None:
    if hasattr(model, "load_checkpoint_state_dict"):  # a note encoder stores only its trained parts
        model.load_checkpoint_state_dict(sd)
        return
    try:
        model.load_state_dict(sd)
    except RuntimeError as e:
        raise WeightsError(f"{kind} weights do not fit the card's config: {str(e)[:300]}") from e


MAX_FUSION_TOKENS = 48  # tokens per case handed to the fusion model (labs: the demographic token + the most recent)


@torch.inference_mode()
def predict_batches(model: nn.Module, items: list, collate_fn, device: str, max_batch: int = 256,
                    return_tokens: bool = False):
    """Raw logits (N, L) and embeddings (N, D) of `model(**collate_fn(chunk))`, eval mode, in chunks.
    With `return_tokens`, also each item's real tokens as a float16 array (T_i, D_tok) (at most
    MAX_FUSION_TOKENS: the first token and the last ones), the input of the fusion model."""
    if model.training:  # eval() walks every submodule: ~1 ms a call on the cxr ViT, so only when needed
        model.eval()
    logits, embs, tokens = [], [], []
    for i in range(0, len(items), max_batch):
        batch = {k: v.to(device) for k, v in collate_fn(items[i:i + max_batch]).items()}
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            out = model(**batch, return_tokens=True) if return_tokens else model(**batch)
        logits.append(out[0].float().cpu().numpy())
        embs.append(out[1].float().cpu().numpy())
        if return_tokens:
            toks, mask = out[2].float().cpu(), out[3].cpu()
            for t, m in zip(toks, mask):
                real = t[m].numpy().astype(np.float16)  # (T, D)
                if len(real) > MAX_FUSION_TOKENS:
                    real = np.concatenate([real[:1], real[-(MAX_FUSION_TOKENS - 1):]])
                tokens.append(real)
    if return_tokens:
        return np.concatenate(logits), np.concatenate(embs), tokens
    return np.concatenate(logits), np.concatenate(embs)


def forward_items(model: nn.Module, kind: str, config, items: list, device: str, max_batch: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Raw logits (N, L) and embeddings (N, D) for featurized items of `kind`."""
    return predict_batches(model, items, lambda chunk: collate(kind, chunk, config), device, max_batch)


class LoadedModel:
    def __init__(self, card: ModelCard, model: nn.Module, device: str, max_batch: int = 256):
        self.card = card
        self.kind = card.kind
        self.config = model.config
        self.model = model.to(device).eval()
        self.device = device
        self.max_batch = max_batch
        self.temperatures = np.asarray(card.temperatures, dtype=np.float64)
        self.biases = np.asarray(card.biases, dtype=np.float64)
        self.thresholds = np.asarray(card.thresholds, dtype=np.float64)

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.card.labels)

    def forward_items(self, items: list) -> tuple[np.ndarray, np.ndarray]:
        """Raw logits (N, L) and embeddings (N, D) for featurized items."""
        return forward_items(self.model, self.kind, self.config, items, self.device, self.max_batch)

    def featurize(self, case: PatientCase):
        """The model's input for one case (CPU work: decoding, resizing, tokenising); raises ToolInputError."""
        return featurize(self.kind, case, self.config, self.card.feature_stats)

    def predict_items(self, items: list, with_tokens: bool = False) -> list[Prediction]:
        """Calibrated predictions for featurized items: one batched forward pass (in chunks of max_batch).
        `with_tokens` also returns each item's token set (the same pass)."""
        if not items:
            return []
        tokens = [None] * len(items)
        if with_tokens:
            logits, embs, tokens = predict_batches(self.model, items, lambda chunk: collate(self.kind, chunk, self.config),
                                                   self.device, self.max_batch, return_tokens=True)
        else:
            logits, embs = self.forward_items(items)
        probs = apply_temperature(logits, self.temperatures, self.biases)
        ood = self.card.ood.score(embs) if self.card.ood is not None else np.zeros(len(items))
        # the score is returned; the tool flags it (at OOD_FLAG_AT), one threshold for one thing
        return [Prediction(probs=probs[j], embedding=embs[j], ood_score=float(ood[j]), notes=list(item.notes), tokens=tokens[j])
                for j, item in enumerate(items)]

    def predict(self, cases: list[PatientCase]) -> list[Prediction | ToolInputError]:
        results: list[Prediction | ToolInputError | None] = [None] * len(cases)
        items, where = [], []
        for i, case in enumerate(cases):
            try:
                items.append(self.featurize(case))
                where.append(i)
            except ToolInputError as e:
                results[i] = e
        for i, pred in zip(where, self.predict_items(items)):
            results[i] = pred
        return results  # type: ignore[return-value]


def load_model(kind: str, weights_dir: Path | None = None, device: str | None = None) -> LoadedModel:
    """The trained model of `kind` from `weights_dir` (default: models/weights/<kind>/ in the package).

    Raises WeightsError when the card or weights are missing, do not match the recorded sha256, or
    do not fit the recorded config.
    """
    weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_ROOT / kind
    card = load_card(weights_dir)
    if card.kind != kind:
        raise WeightsError(f"{weights_dir} holds a {card.kind} model, not {kind}")
    sd = load_weights(weights_dir, card)
    model = build_model(kind, config_from_dict(kind, card.config))
    load_state(model, kind, sd)
    return LoadedModel(card, model, device or default_device())
