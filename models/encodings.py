"""A cohort through the frozen modality encoders, once: the tokens the fusion model and the students'
teacher read, and each encoder's own logits (the inputs of the late-fusion baseline).

    enc = encode_cases(cases, encoders)            # Encoded: per modality, tokens or None per case
    batch = collate_fused(enc, idx, present=...)   # padded tensors for FusionModel.forward

Encodings are cached on disk keyed by (case ids and labels, encoder weight digests), so an ablation
over thirty fusion configurations encodes the cohort once.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmdx.core.case import PatientCase
from mmdx.core.errors import ToolInputError
from mmdx.core.labels import DIAGNOSES
from mmdx.models.fusion import MODALITIES

log = logging.getLogger(__name__)
CACHE_VERSION = 1


@dataclass
class Encoded:
    """One split through the encoders. `tokens[m][i]` is case i's token set of modality m, or None
    when the case lacks it (or its input was unusable); `logits[m]` (N, L_m) is NaN there."""

    case_ids: list[str]
    y: np.ndarray  # (N, L) diagnoses, multi-hot
    tokens: dict[str, list[np.ndarray | None]]
    logits: dict[str, np.ndarray]
    pooled: dict[str, np.ndarray]  # (N, D_m) the encoders' pooled embeddings (NaN where absent)

    def __len__(self) -> int:
        return len(self.case_ids)

    def present(self) -> np.ndarray:
        """(N, M) bool: which modalities each case has."""
        return np.array([[self.tokens[m][i] is not None for m in MODALITIES] for i in range(len(self))], dtype=bool)

    def subset(self, idx) -> "Encoded":
        idx = list(idx)
        return Encoded([self.case_ids[i] for i in idx], self.y[idx], {m: [t[i] for i in idx] for m, t in self.tokens.items()},
                       {m: v[idx] for m, v in self.logits.items()}, {m: v[idx] for m, v in self.pooled.items()})


def encoders_digest(encoders: dict) -> str:
    """What the encodings depend on: each encoder's weights (tokens, pooled embeddings) and its
    calibration (the logits are those of its calibrated probabilities)."""
    return hashlib.sha256(json.dumps({m: [e.card.weights_sha256, list(e.card.temperatures), list(e.card.biases or [])]
                                      for m, e in sorted(encoders.items())}).encode()).hexdigest()


def encode_cases(cases: list[PatientCase], encoders: dict, cache_dir: Path | None = None, batch: int = 256) -> Encoded:
    """Run each encoder (a LoadedModel per modality name) over the cases that have its modality."""
    ids = [c.case_id for c in cases]
    y = np.array([[d in (c.labels.diagnoses if c.labels else ()) for d in DIAGNOSES] for c in cases], dtype=np.float32)
    key = hashlib.sha256(json.dumps([CACHE_VERSION, ids, y.astype(int).tolist(), encoders_digest(encoders)]).encode()).hexdigest()
    path = Path(cache_dir) / f"encoded-{key[:24]}.pt" if cache_dir else None
    if path is not None and path.is_file():
        log.info("encodings from cache %s", path)
        return torch.load(path, weights_only=False)
    tokens, logits, pooled = {}, {}, {}
    for m in MODALITIES:
        enc = encoders[m]
        items, where = [], []
        for i, case in enumerate(cases):
            try:
                items.append(enc.featurize(case))
                where.append(i)
            except ToolInputError:
                continue
        toks: list[np.ndarray | None] = [None] * len(cases)
        lo = np.full((len(cases), len(enc.labels)), np.nan, dtype=np.float32)
        po = None
        for k in range(0, len(items), batch):
            preds = enc.predict_items(items[k:k + batch], with_tokens=True)
            for i, pred in zip(where[k:k + batch], preds):
                toks[i] = pred.tokens
                lo[i] = np.log(np.clip(pred.probs, 1e-6, 1 - 1e-6) / np.clip(1 - pred.probs, 1e-6, 1))
                if po is None:
                    po = np.full((len(cases), len(pred.embedding)), np.nan, dtype=np.float32)
                po[i] = pred.embedding
        tokens[m], logits[m] = toks, lo
        pooled[m] = po if po is not None else np.full((len(cases), 1), np.nan, dtype=np.float32)
        log.info("encoded %s: %d of %d cases", m, len(where), len(cases))
    out = Encoded(ids, y, tokens, logits, pooled)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(out, path)
    return out


def collate_fused(enc: Encoded, idx, present: np.ndarray | None = None, dims: tuple[int, ...] | None = None) -> dict:
    """Padded tensors for FusionModel.forward: tokens[m] (B, T_m, D_m), masks[m] (B, T_m),
    present (B, M). `present` (B, M) may hide modalities a case has (missingness experiments)."""
    idx = list(idx)
    have = enc.present()[idx] if present is None else present & enc.present()[idx]
    toks, masks = [], []
    for j, m in enumerate(MODALITIES):
        rows = [enc.tokens[m][i] if have[r, j] else None for r, i in enumerate(idx)]
        width = max([len(t) for t in rows if t is not None] or [1])
        dim = next((t.shape[1] for t in rows if t is not None), None) or (dims[j] if dims else 1)
        x = torch.zeros(len(idx), width, dim)
        mk = torch.zeros(len(idx), width, dtype=torch.bool)
        for r, t in enumerate(rows):
            if t is not None:
                x[r, : len(t)] = torch.from_numpy(t.astype(np.float32))
                mk[r, : len(t)] = True
        toks.append(x)
        masks.append(mk)
    return {"tokens": toks, "masks": masks, "present": torch.from_numpy(have)}
