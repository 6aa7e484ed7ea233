"""Training the top of a note encoder on its frozen layers' outputs, computed once.

The frozen layers of MiniLM are most of the forward pass; `cache_frozen` runs them once per note and
keeps their hidden states, and `CachedTop` trains the top layers and the head on them. Every window
of a long note is cached, and the top pools them as inference does (`NoteEncoder.forward_from_hidden`
with `chunk_owner`): a model trained on first windows only would be scored, calibrated and
deployed on different inputs (tests/test_models_notes.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from mmdx.models.featurize import collate
from mmdx.models.note_encoder import NoteEncoder


@dataclass
class HiddenItem:
    """A note's hidden states after the frozen layers, one (T_i, H) float16 tensor per window of the
    encoder (padding removed): every window, as inference reads the note (featurize.collate_notes)."""
    windows: list[torch.Tensor]


class CachedTop(nn.Module):
    """Trains the top of a NoteEncoder on cached frozen-layer outputs (the frozen part runs once)."""

    def __init__(self, encoder: NoteEncoder):
        super().__init__()
        self.encoder = encoder

    def forward(self, hidden: torch.Tensor, attention_mask: torch.Tensor, chunk_owner: torch.Tensor):
        return self.encoder.forward_from_hidden(hidden, attention_mask, chunk_owner)


def cache_frozen(encoder: NoteEncoder, items: list, config, device: str, batch: int = 64) -> list[HiddenItem]:
    from tqdm.auto import tqdm

    encoder.to(device).eval()
    order = sorted(range(len(items)), key=lambda i: len(items[i].text))  # similar lengths together: less padding
    out: list[HiddenItem | None] = [None] * len(items)
    for i in tqdm(range(0, len(items), batch), desc="cache frozen layers", mininterval=5):
        idx = order[i:i + batch]
        enc = collate("notes", [items[j] for j in idx], config)
        h = encoder.frozen_hidden(enc["input_ids"].to(device), enc["attention_mask"].to(device))  # (C, T, H)
        owner = enc["chunk_owner"].tolist()  # every window of each note: the top trains on what inference pools
        for k, j in enumerate(idx):
            rows = [r for r, o in enumerate(owner) if o == k]
            out[j] = HiddenItem([h[r, : int(enc["attention_mask"][r].sum())].to("cpu", torch.float16) for r in rows])
    return out


def collate_hidden(items: list[HiddenItem]) -> dict[str, torch.Tensor]:
    """Every window of every note as one (C, T, H) batch, with `chunk_owner` (C,) naming its note."""
    windows = [(i, w) for i, it in enumerate(items) for w in it.windows]
    C, T, H = len(windows), max(len(w) for _, w in windows), windows[0][1].shape[1]
    hidden, mask = torch.zeros(C, T, H), torch.zeros(C, T, dtype=torch.long)
    for c, (_, w) in enumerate(windows):
        hidden[c, : len(w)] = w.float()
        mask[c, : len(w)] = 1
    return {"hidden": hidden, "attention_mask": mask,  # (C, T, H), (C, T)
            "chunk_owner": torch.tensor([i for i, _ in windows], dtype=torch.long)}  # (C,)
