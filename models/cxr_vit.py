"""A Vision Transformer for chest radiographs, multi-label over IMAGING_FINDINGS.

images (B, 1, H, W)
  -> conv patch embedding                        (B, N, D), N = (H/p) * (W/p)
  -> + learned 2-D position (row + column)       (B, N, D)
  -> [CLS, registers..., patches]                (B, 1 + R + N, D)
  -> pre-LN transformer blocks
  -> final LayerNorm; CLS = the embedding        (B, D)
  -> linear head                                 (B, L) logits

Register tokens (Darcet et al., "Vision Transformers Need Registers") give the network scratch
space; they are dropped at the output.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from mmdx.core.labels import IMAGING_FINDINGS
from mmdx.models.transformer import Block


@dataclass
class ViTConfig:
    image_size: int = 64  # input side in pixels; images are resized to image_size x image_size
    patch_size: int = 8  # square patch side; image_size must be a multiple
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # attention heads per block
    n_embd: int = 128  # token width D
    mlp_ratio: int = 4  # feed-forward hidden = mlp_ratio * n_embd
    n_registers: int = 2  # extra learned tokens, discarded at the output (0 = none)
    dropout: float = 0.1  # dropout in attention output, feed-forward and embeddings
    labels: tuple[str, ...] = IMAGING_FINDINGS  # head outputs, in this order

    def __post_init__(self):
        self.labels = tuple(self.labels)
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")


class CxrViT(nn.Module):
    def __init__(self, config: ViTConfig):
        super().__init__()
        self.config = config
        c = config
        g = c.image_size // c.patch_size  # patches per side
        self.patch_embed = nn.Conv2d(1, c.n_embd, kernel_size=c.patch_size, stride=c.patch_size)
        self.row_pos = nn.Parameter(torch.zeros(g, c.n_embd))
        self.col_pos = nn.Parameter(torch.zeros(g, c.n_embd))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, c.n_embd))
        self.registers = nn.Parameter(torch.zeros(1, c.n_registers, c.n_embd))
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([Block(c.n_embd, c.n_head, c.mlp_ratio, c.dropout) for _ in range(c.n_layer)])
        self.ln_f = nn.LayerNorm(c.n_embd)
        self.head = nn.Linear(c.n_embd, len(c.labels))
        for p in (self.row_pos, self.col_pos, self.cls_token, self.registers):
            nn.init.normal_(p, std=0.02)

    def forward(self, images: torch.Tensor, return_tokens: bool = False):
        """(logits (B, L), embedding (B, D)); with `return_tokens` also the patch tokens pooled 2x2,
        (B, N/4, D), and their mask (B, N/4): what the fusion model reads."""
        c = self.config
        B, _, H, W = images.shape
        if H != c.image_size or W != c.image_size:
            raise ValueError(f"expected images of {c.image_size}x{c.image_size}, got {H}x{W}")
        x = self.patch_embed(images)  # (B, D, g, g)
        x = x.flatten(2).transpose(1, 2)  # (B, N, D)
        pos = self.row_pos[:, None, :] + self.col_pos[None, :, :]  # (g, g, D): row r, column c
        x = x + pos.reshape(1, -1, c.n_embd)  # (B, N, D)
        cls = self.cls_token.expand(B, -1, -1)  # (B, 1, D)
        reg = self.registers.expand(B, -1, -1)  # (B, R, D)
        x = self.drop(torch.cat([cls, reg, x], dim=1))  # (B, 1 + R + N, D)
        for block in self.blocks:
            x = block(x)
        x = self.ln_f(x)
        emb = x[:, 0]  # (B, D)
        if not return_tokens:
            return self.head(emb), emb  # (B, L), (B, D)
        g = c.image_size // c.patch_size
        patches = x[:, 1 + c.n_registers:].reshape(B, g, g, c.n_embd).permute(0, 3, 1, 2)  # (B, D, g, g)
        pooled = torch.nn.functional.avg_pool2d(patches, 2, ceil_mode=True).flatten(2).transpose(1, 2)  # (B, N/4, D)
        return self.head(emb), emb, pooled, torch.ones(pooled.shape[:2], dtype=torch.bool, device=x.device)
