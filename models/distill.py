"""Distilling a unimodal student from the fused teacher (used by `mmdx train student_<m> --teacher DIR`).

The teacher sees every modality a case has; the student sees one. Per training case the teacher's
logits and fused embedding are computed once (models/encodings.py caches the encoder pass), and the
student trains on

    loss = BCE(student logits, labels)
         + ALPHA * T^2 * BCE(sigmoid(student / T), sigmoid(teacher / T))    soft targets at temperature T
         + BETA * MSE(P(student embedding), teacher embedding)              intermediate feature loss

where P is a linear map trained alongside and dropped afterwards (the student ships as a plain
model of its kind). Hinton et al. 2015 for the soft targets (multi-label: a binary KL per label);
FitNets (Romero et al. 2015) for the feature loss.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

ALPHA = 1.0  # weight of the soft-target loss
TEMPERATURE = 2.0  # softening temperature T
BETA = 0.5  # weight of the feature loss


class DistillHead(nn.Module):
    """The student plus the map P from its embedding to the teacher's: forward -> (logits, emb, P(emb))."""

    def __init__(self, student: nn.Module, student_dim: int, teacher_dim: int):
        super().__init__()
        self.student = student
        self.proj = nn.Linear(student_dim, teacher_dim)

    def forward(self, **batch):
        logits, emb = self.student(**batch)
        return logits, emb, self.proj(emb)


def make_loss(n_labels: int, pos_weight: torch.Tensor):
    """The distillation loss over targets packed as [labels | teacher logits | teacher embedding]."""
    def loss_fn(out, t: torch.Tensor) -> torch.Tensor:
        logits, _, projected = out
        y, t_logits, t_emb = t[:, :n_labels], t[:, n_labels:2 * n_labels], t[:, 2 * n_labels:]
        hard = F.binary_cross_entropy_with_logits(logits.float(), y, pos_weight=pos_weight.to(logits.device))
        soft = F.binary_cross_entropy_with_logits(logits.float() / TEMPERATURE, torch.sigmoid(t_logits / TEMPERATURE))
        feat = F.mse_loss(projected.float(), t_emb)
        return hard + ALPHA * TEMPERATURE ** 2 * soft + BETA * feat
    return loss_fn


def teacher_targets(teacher_dir: Path, encoders_dir: Path | None, cases: list, cache_dir: Path | None) -> dict[str, tuple]:
    """case id -> (teacher raw logits (L,), fused embedding (d,)) with every modality the case has."""
    from mmdx.models.fused_model import load_fused
    from mmdx.models.train_fusion import load_encoders, predict

    teacher = load_fused(teacher_dir)
    encoders = load_encoders(encoders_dir)
    for m, e in encoders.items():
        teacher.check_encoder(m, e.card.weights_sha256)
    from mmdx.models.encodings import encode_cases

    enc = encode_cases(cases, encoders, cache_dir)
    logits, emb = predict(teacher.model, enc)
    return {cid: (logits[i].astype(np.float32), emb[i].astype(np.float32)) for i, cid in enumerate(enc.case_ids)}, teacher
