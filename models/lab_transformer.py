"""A transformer over irregular lab and vital-sign series, multi-label over DIAGNOSES.

After "Temporal Cross-Attention for Dynamic Embedding and Tokenization of Multimodal EHR": every
measurement is one token, nothing is resampled to a grid and no value is imputed.

  token = variable embedding[var]                          which variable
        + value encoder_var(normalised value)              a per-variable small MLP
        + Time2Vec(hours since the first measurement)      when (learned periodic + linear)

There is no positional index: two tokens at the same time get the same time code, and the order of
the tokens does not matter (attention is permutation-equivariant and the readout is a CLS token).

sequence = [CLS, DEMO, measurement tokens...]            (B, 2 + T, D)
  -> pre-LN blocks with a key padding mask -> LayerNorm -> CLS = embedding (B, D) -> head (B, L)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdx.core.labels import DIAGNOSES
from mmdx.core.units import VARIABLES
from mmdx.models.transformer import Block

N_DEMO = 4  # demographic features: age / 100, female, male, other-or-unknown (see featurize.demo_vector)


@dataclass
class LabConfig:
    # The variable vocabulary, in embedding order: variable index = position here. Recorded in the
    # card, so adding a variable to core.units never changes what a trained model's indices mean.
    # Empty = every variable core.units knows when the config is made.
    variables: tuple[str, ...] = ()
    n_layer: int = 3  # transformer blocks
    n_head: int = 4  # attention heads
    n_embd: int = 64  # token width D
    mlp_ratio: int = 4  # feed-forward hidden = mlp_ratio * n_embd
    value_hidden: int = 16  # hidden width of each per-variable value MLP
    time_dim: int = 16  # Time2Vec features (1 linear + time_dim - 1 periodic), projected to D
    n_demo: int = N_DEMO  # demographic features fed as one extra token
    max_tokens: int = 256  # longest series kept (the most recent measurements)
    dropout: float = 0.1  # dropout in blocks and embeddings
    labels: tuple[str, ...] = DIAGNOSES  # head outputs, in this order
    # Variables the model reads (empty = every variable in `variables`). A panel narrows what a model
    # reads: the clinosim-era default read only vitals, blood count, chemistry and CRP because that
    # cohort's test ordering gave the label away (AUROC 0.999 from which tests were ordered).
    panel: tuple[str, ...] = ()

    def __post_init__(self):
        self.variables = tuple(self.variables) or tuple(sorted(VARIABLES))
        self.labels = tuple(self.labels)
        self.panel = tuple(self.panel)

    @property
    def n_vars(self) -> int:
        return len(self.variables)


class Time2Vec(nn.Module):
    """t2v(t) = [w0 t + b0, sin(w_i t + b_i) for i = 1..k-1] (Kazemi et al. 2019), learned w, b.

    Frequencies start log-spaced over periods of 1 hour to ~60 days so both a fast trend within a
    shift and a slow one over an admission are representable from the first step.
    """

    def __init__(self, dim: int):
        super().__init__()
        periods = torch.logspace(0, math.log10(24 * 60), dim - 1)  # hours
        self.w = nn.Parameter(torch.cat([torch.tensor([1.0 / (24 * 7)]), 2 * math.pi / periods]))  # (k,)
        self.b = nn.Parameter(torch.zeros(dim))  # (k,)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        z = t[..., None] * self.w + self.b  # (B, T, k)
        return torch.cat([z[..., :1], torch.sin(z[..., 1:])], dim=-1)  # (B, T, k)


class LabTransformer(nn.Module):
    def __init__(self, config: LabConfig):
        super().__init__()
        self.config = config
        c = config
        self.var_embed = nn.Embedding(c.n_vars, c.n_embd)
        # per-variable value MLP, first layer: value -> value_hidden, own weights for each variable
        self.value_w1 = nn.Parameter(torch.randn(c.n_vars, c.value_hidden) * 0.5)
        self.value_b1 = nn.Parameter(torch.zeros(c.n_vars, c.value_hidden))
        # second layer: per-variable (value_hidden -> value_hidden), then a shared projection to D
        self.value_w2 = nn.Parameter(torch.randn(c.n_vars, c.value_hidden, c.value_hidden) / math.sqrt(c.value_hidden))
        self.value_proj = nn.Linear(c.value_hidden, c.n_embd)
        self.time2vec = Time2Vec(c.time_dim)
        self.time_proj = nn.Linear(c.time_dim, c.n_embd)
        self.demo_proj = nn.Linear(c.n_demo, c.n_embd)
        self.cls_token = nn.Parameter(torch.randn(1, 1, c.n_embd) * 0.02)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([Block(c.n_embd, c.n_head, c.mlp_ratio, c.dropout) for _ in range(c.n_layer)])
        self.ln_f = nn.LayerNorm(c.n_embd)
        self.head = nn.Linear(c.n_embd, len(c.labels))

    def encode_values(self, var_idx: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
        h = F.gelu(values[..., None] * self.value_w1[var_idx] + self.value_b1[var_idx])  # (B, T, H)
        h = F.gelu(torch.einsum("bth,bthk->btk", h, self.value_w2[var_idx]))  # (B, T, H)
        return self.value_proj(h)  # (B, T, D)

    def forward(
        self,
        var_idx: torch.Tensor,  # (B, T) long, index into config.variables
        values: torch.Tensor,  # (B, T) float, normalised values
        times: torch.Tensor,  # (B, T) float, hours since the first measurement
        mask: torch.Tensor,  # (B, T) bool, True for real tokens
        demo: torch.Tensor,  # (B, n_demo) float
        return_tokens: bool = False,  # also return the demographic and measurement tokens (for fusion)
    ):
        B, T = var_idx.shape
        mask = mask.bool()
        var_idx = var_idx.masked_fill(~mask, 0)  # padding indices may be anything; make them valid
        tok = self.var_embed(var_idx) + self.encode_values(var_idx, values) + self.time_proj(self.time2vec(times))  # (B, T, D)
        demo_tok = self.demo_proj(demo)[:, None, :]  # (B, 1, D)
        x = torch.cat([self.cls_token.expand(B, -1, -1), demo_tok, tok], dim=1)  # (B, 2 + T, D)
        x = self.drop(x)
        full_mask = torch.cat([mask.new_ones(B, 2), mask], dim=1)  # (B, 2 + T)
        for block in self.blocks:
            x = block(x, mask=full_mask)
        x = self.ln_f(x)
        emb = x[:, 0]  # (B, D)
        if not return_tokens:
            return self.head(emb), emb  # (B, L), (B, D)
        return self.head(emb), emb, x[:, 1:], full_mask[:, 1:]  # ..., (B, 1 + T, D), (B, 1 + T)
