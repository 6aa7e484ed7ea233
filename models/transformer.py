"""Transformer building blocks shared by the modality models (and, later, the fusion model).

Read top to bottom: multi-head attention over `F.scaled_dot_product_attention` (optional causal
mask, optional key padding mask), the feed-forward layer, and pre-LayerNorm residual blocks:

    x = x + attn(ln1(x))
    x = x + ffwd(ln2(x))

Masks follow one convention everywhere in mmdx: a boolean `(B, S)` tensor that is True where the
token is real and False where it is padding. Padding keys are never attended to; padding queries
still produce (ignored) outputs, so callers pool only over real tokens or over a CLS token.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiHeadAttention(nn.Module):
    """Queries from `x`, keys and values from `context` (= `x` for self-attention)."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        if n_embd % n_head != 0:
            raise ValueError(f"n_embd {n_embd} is not divisible by n_head {n_head}")
        self.n_head = n_head
        self.q_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.kv_proj = nn.Linear(n_embd, 2 * n_embd, bias=bias)
        self.out_proj = nn.Linear(n_embd, n_embd, bias=bias)
        self.dropout = dropout
        self.resid_dropout = nn.Dropout(dropout)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        kv_mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        context = x if context is None else context
        B, T, C = x.shape
        S = context.shape[1]
        nh, hs = self.n_head, C // self.n_head
        q = self.q_proj(x).view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k, v = self.kv_proj(context).split(C, dim=2)  # 2 x (B, S, C)
        k = k.view(B, S, nh, hs).transpose(1, 2)  # (B, nh, S, hs)
        v = v.view(B, S, nh, hs).transpose(1, 2)  # (B, nh, S, hs)

        attn_mask = None  # boolean: True = may attend
        if kv_mask is not None:
            attn_mask = kv_mask.bool()[:, None, None, :]  # (B, 1, 1, S)
        if causal:
            tri = torch.ones(T, S, dtype=torch.bool, device=x.device).tril(diagonal=S - T)  # (T, S)
            attn_mask = tri if attn_mask is None else attn_mask & tri  # (B, 1, T, S)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=self.dropout if self.training else 0.0
        )  # (B, nh, T, hs)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.out_proj(y))


class FeedForward(nn.Module):
    def __init__(self, n_embd: int, mlp_ratio: int = 4, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.fc = nn.Linear(n_embd, mlp_ratio * n_embd, bias=bias)
        self.proj = nn.Linear(mlp_ratio * n_embd, n_embd, bias=bias)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x))))  # (B, T, C)


class Block(nn.Module):
    """Pre-LayerNorm self-attention block."""

    def __init__(self, n_embd: int, n_head: int, mlp_ratio: int = 4, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.ln1 = nn.LayerNorm(n_embd, bias=bias)
        self.attn = MultiHeadAttention(n_embd, n_head, dropout, bias)
        self.ln2 = nn.LayerNorm(n_embd, bias=bias)
        self.ffwd = FeedForward(n_embd, mlp_ratio, dropout, bias)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None, causal: bool = False) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), kv_mask=mask, causal=causal)  # (B, T, C)
        x = x + self.ffwd(self.ln2(x))  # (B, T, C)
        return x


class CrossAttention(nn.Module):
    """Pre-LayerNorm cross-attention block: tokens of one stream (`q_from`) read another (`kv_from`).

    `kv_mask` (B, S) marks the real tokens of `kv_from`. Used by the fusion model to let, say, lab
    tokens attend to image patches (models/fusion.py: cross_attention, irene).
    """

    def __init__(self, n_embd: int, n_head: int, mlp_ratio: int = 4, dropout: float = 0.0, bias: bool = True):
        super().__init__()
        self.ln_q = nn.LayerNorm(n_embd, bias=bias)
        self.ln_kv = nn.LayerNorm(n_embd, bias=bias)
        self.attn = MultiHeadAttention(n_embd, n_head, dropout, bias)
        self.ln2 = nn.LayerNorm(n_embd, bias=bias)
        self.ffwd = FeedForward(n_embd, mlp_ratio, dropout, bias)

    def forward(self, q_from: torch.Tensor, kv_from: torch.Tensor, kv_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = q_from + self.attn(self.ln_q(q_from), context=self.ln_kv(kv_from), kv_mask=kv_mask)  # (B, T, C)
        x = x + self.ffwd(self.ln2(x))  # (B, T, C)
        return x
