"""The fused multimodal classifier: token sets of the frozen modality encoders -> one differential.

Each encoder (cxr ViT, labs transformer, notes MiniLM) gives a small set of tokens for its modality
(`Encoding`: cxr 16 pooled patch tokens, labs up to 48 measurement tokens, notes up to 32 pooled
word-piece tokens). The fusion model

  tokens_m (B, T_m, D_m) --Linear--> (B, T_m, d) + modality embedding_m       per modality m
  missing modality m     --> a stand-in chosen by `missing` (below)           (B, K, d)
  --> `strategy` (below) --> pooled (B, d) --> LayerNorm --> head (B, L) logits

Strategies, after the fusion taxonomy of "Multimodal Learning with Transformers: A Survey" (Xu, Zhu
& Clifton, TPAMI 2023, Fig. 5) and IRENE (Zhou et al., Nat. Biomed. Eng. 2023):
- early_sum: each modality is read into K slots by learned-query attention pooling; the slots are
  summed over modalities (one stream of K tokens); self-attention blocks; mean of the slots;
- early_concat: all tokens in one sequence with a CLS token; self-attention blocks; CLS;
- hierarchical: per-modality self-attention streams first (n_layer_modality), then the streams
  concatenated with a CLS token through joint self-attention (multi-stream to one-stream);
- cross_attention: per modality, blocks of self-attention then cross-attention into the other
  modalities' tokens; each stream mean-pooled; the pooled streams averaged;
- cross_to_concat: the cross-attention blocks, then the streams concatenated with a CLS token
  through joint self-attention;
- irene: bidirectional multimodal attention blocks (each modality's tokens attend to themselves
  and, through a separate cross-attention, to every other modality, in both directions at once),
  then self-attention over all tokens with a CLS token.

Missing modalities (`missing`), each selectable:
- zero: the modality becomes one all-zero token (after projection: zero + its modality embedding);
- learned: one learned token per modality stands in for it;
- dropout: learned tokens, and in training each present modality is dropped with
  p = `modality_dropout` (at least one modality kept), so the model learns to answer without it;
- retrieval: the projected tokens of the nearest training case (cosine on the mean of the present
  modalities' pooled projections) stand in; the bank (`retrieval_bank` cases) is kept in the model;
- generative: a small network predicts K tokens of the missing modality from the pooled projections
  of the present ones, trained to reproduce the real tokens where the modality is present.
Attention never reads padding; a stand-in token is real input.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdx.core.labels import DIAGNOSES
from mmdx.models.transformer import Block, CrossAttention

MODALITIES: tuple[str, ...] = ("cxr", "labs", "notes")
STRATEGIES: tuple[str, ...] = ("early_sum", "early_concat", "hierarchical", "cross_attention", "cross_to_concat", "irene")
MISSING: tuple[str, ...] = ("zero", "learned", "dropout", "retrieval", "generative")


@dataclass
class FusionConfig:
    strategy: str = "irene"  # one of STRATEGIES
    missing: str = "dropout"  # one of MISSING
    input_dims: tuple[int, ...] = (128, 64, 384)  # token width of each encoder, in MODALITIES order
    n_embd: int = 64  # fusion width d
    n_head: int = 4  # attention heads
    n_layer: int = 2  # joint (or cross) blocks
    n_layer_modality: int = 1  # per-modality blocks (hierarchical) / bidirectional blocks (irene)
    mlp_ratio: int = 2  # feed-forward hidden = mlp_ratio * d
    n_slots: int = 8  # K: slots of early_sum; tokens of a generated or retrieved stand-in
    dropout: float = 0.1  # dropout in blocks
    modality_dropout: float = 0.3  # P(drop a present modality) in training ("dropout" method)
    retrieval_bank: int = 1024  # training cases kept for retrieval imputation
    generative_weight: float = 0.5  # weight of the token-reconstruction loss ("generative" method)
    labels: tuple[str, ...] = DIAGNOSES  # head outputs, in this order

    def __post_init__(self):
        self.input_dims = tuple(self.input_dims)
        self.labels = tuple(self.labels)
        if self.strategy not in STRATEGIES:
            raise ValueError(f"unknown fusion strategy {self.strategy!r}; known: {', '.join(STRATEGIES)}")
        if self.missing not in MISSING:
            raise ValueError(f"unknown missing-modality method {self.missing!r}; known: {', '.join(MISSING)}")
        if len(self.input_dims) != len(MODALITIES):
            raise ValueError(f"input_dims needs one width per modality {MODALITIES}, got {self.input_dims}")


class SlotPool(nn.Module):
    """K learned queries read a token set: (B, T, d) -> (B, K, d)."""

    def __init__(self, d: int, n_head: int, k: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(1, k, d) * 0.02)
        self.read = CrossAttention(d, n_head, mlp_ratio=2)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.read(self.queries.expand(x.shape[0], -1, -1), x, kv_mask=mask)  # (B, K, d)


class FusionModel(nn.Module):
    def __init__(self, config: FusionConfig):
        super().__init__()
        self.config = c = config
        d, M = c.n_embd, len(MODALITIES)
        self.proj = nn.ModuleList([nn.Linear(dim, d) for dim in c.input_dims])
        self.modality_embed = nn.Parameter(torch.randn(M, d) * 0.02)
        self.missing_token = nn.Parameter(torch.randn(M, 1, d) * 0.02)
        self.cls_token = nn.Parameter(torch.randn(1, 1, d) * 0.02)
        blocks = lambda n: nn.ModuleList([Block(d, c.n_head, c.mlp_ratio, c.dropout) for _ in range(n)])  # noqa: E731
        cross = lambda n: nn.ModuleList([CrossAttention(d, c.n_head, c.mlp_ratio, c.dropout) for _ in range(n)])  # noqa: E731
        s = c.strategy
        if s == "early_sum":
            self.slots = nn.ModuleList([SlotPool(d, c.n_head, c.n_slots) for _ in range(M)])
            self.joint = blocks(c.n_layer)
        elif s == "early_concat":
            self.joint = blocks(c.n_layer)
        elif s == "hierarchical":
            self.streams = nn.ModuleList([blocks(c.n_layer_modality) for _ in range(M)])
            self.joint = blocks(c.n_layer)
        elif s in ("cross_attention", "cross_to_concat"):
            self.self_blocks = nn.ModuleList([blocks(c.n_layer) for _ in range(M)])
            self.cross_blocks = nn.ModuleList([cross(c.n_layer) for _ in range(M)])
            if s == "cross_to_concat":
                self.joint = blocks(c.n_layer)
        elif s == "irene":
            self.self_blocks = nn.ModuleList([blocks(c.n_layer_modality) for _ in range(M)])
            self.cross_blocks = nn.ModuleList([cross(c.n_layer_modality) for _ in range(M)])
            self.joint = blocks(c.n_layer)
        if c.missing == "generative":
            self.generator = nn.ModuleList([nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, c.n_slots * d))
                                            for _ in range(M)])
        if c.missing == "retrieval":
            self.register_buffer("bank_keys", torch.zeros(M, c.retrieval_bank, d))  # pooled projections
            self.register_buffer("bank_tokens", torch.zeros(M, c.retrieval_bank, c.n_slots, d))
            self.register_buffer("bank_size", torch.zeros((), dtype=torch.long))
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, len(c.labels))

    # ---- inputs: project, then stand in for what is missing
    def _project(self, tokens: list[torch.Tensor], masks: list[torch.Tensor]) -> list[torch.Tensor]:
        return [self.proj[m](tokens[m]) + self.modality_embed[m] for m in range(len(MODALITIES))]  # each (B, T_m, d)

    @staticmethod
    def _pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        w = mask.float()[..., None]  # (B, T, 1)
        return (x * w).sum(1) / w.sum(1).clamp(min=1.0)  # (B, d)

    @staticmethod
    def slots_of(x: torch.Tensor, mask: torch.Tensor, k: int) -> torch.Tensor:
        """K fixed-position summaries of a token set (chunk means over the real tokens): (B, k, d)."""
        B, T, d = x.shape
        out = torch.zeros(B, k, d, dtype=x.dtype, device=x.device)
        n = mask.sum(1)  # (B,)
        pos = torch.arange(T, device=x.device)[None, :].float()  # (1, T)
        bucket = (pos * k / n.clamp(min=1)[:, None].float()).long().clamp(max=k - 1)  # (B, T) slot of each token
        w = mask.float()
        out.index_put_((torch.arange(B, device=x.device)[:, None].expand(B, T), bucket), x * w[..., None], accumulate=True)
        cnt = torch.zeros(B, k, device=x.device).index_put_((torch.arange(B, device=x.device)[:, None].expand(B, T), bucket),
                                                            w, accumulate=True)
        return out / cnt.clamp(min=1.0)[..., None]

    def _stand_ins(self, xs, masks, present) -> tuple[list[torch.Tensor], list[torch.Tensor], torch.Tensor]:
        """Replace each absent modality's tokens by the method's stand-in. Returns tokens, masks and the
        generative reconstruction loss (0 unless `generative`)."""
        c = self.config
        M = len(MODALITIES)
        B = present.shape[0]
        pooled = torch.stack([self._pool(xs[m], masks[m]) for m in range(M)], 1)  # (B, M, d)
        have = present.float()  # (B, M)
        context = (pooled * have[..., None]).sum(1) / have.sum(1, keepdim=True).clamp(min=1.0)  # (B, d)
        recon = pooled.new_zeros(())
        out_x, out_m = [], []
        for m in range(M):
            absent = ~present[:, m]  # (B,)
            if c.missing == "zero":
                stand = (self.proj[m].bias + self.modality_embed[m]).expand(B, 1, -1)  # the projection of a zero token
            elif c.missing in ("learned", "dropout"):
                stand = (self.missing_token[m] + self.modality_embed[m]).expand(B, -1, -1)  # (B, 1, d)
            elif c.missing == "generative":
                stand = self.generator[m](context).view(B, c.n_slots, -1)  # (B, K, d)
                if self.training and present[:, m].any():
                    others = present.clone()
                    others[:, m] = False
                    ctx = (pooled * others.float()[..., None]).sum(1) / others.float().sum(1, keepdim=True).clamp(min=1.0)
                    target = self.slots_of(xs[m], masks[m], c.n_slots).detach()
                    keep = present[:, m] & others.any(1)
                    if keep.any():
                        recon = recon + F.mse_loss(self.generator[m](ctx[keep]).view(-1, c.n_slots, c.n_embd), target[keep])
            else:  # retrieval
                stand = self._retrieve(m, context, present)
            stand_mask = torch.ones(B, stand.shape[1], dtype=torch.bool, device=stand.device)
            T = xs[m].shape[1]
            K = stand.shape[1]
            width = max(T, K)
            x = torch.zeros(B, width, c.n_embd, dtype=xs[m].dtype, device=xs[m].device)
            mk = torch.zeros(B, width, dtype=torch.bool, device=xs[m].device)
            x[:, :T], mk[:, :T] = xs[m], masks[m]
            x[absent] = 0.0
            mk[absent] = False
            x[absent, :K], mk[absent, :K] = stand[absent], stand_mask[absent]
            out_x.append(x)
            out_m.append(mk)
        return out_x, out_m, recon

    def _retrieve(self, m: int, context: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """The slots of modality m of the bank case nearest to `context` (cosine), per row: (B, K, d)."""
        n = int(self.bank_size)
        if n == 0:
            return (self.missing_token[m] + self.modality_embed[m]).expand(context.shape[0], -1, -1)
        keys = self.bank_keys[:, :n]  # (M, n, d)
        have = present.float()  # (B, M)
        sims = torch.einsum("bd,mnd->bmn", F.normalize(context, dim=-1), F.normalize(keys, dim=-1))  # (B, M, n)
        others = have.clone()
        others[:, m] = 0.0
        score = (sims * others[..., None]).sum(1) / others.sum(1, keepdim=True).clamp(min=1.0)  # (B, n)
        best = score.argmax(1)  # (B,)
        return self.bank_tokens[m, best]  # (B, K, d)

    @torch.no_grad()
    def fill_bank(self, tokens: list[torch.Tensor], masks: list[torch.Tensor]) -> None:
        """Keep the projected slots and pooled keys of complete training cases for retrieval imputation."""
        if self.config.missing != "retrieval":
            return
        xs = self._project(tokens, masks)
        k = min(self.config.retrieval_bank, xs[0].shape[0])
        for m in range(len(MODALITIES)):
            self.bank_keys[m, :k] = self._pool(xs[m][:k], masks[m][:k])
            self.bank_tokens[m, :k] = self.slots_of(xs[m][:k], masks[m][:k], self.config.n_slots)
        self.bank_size.fill_(k)

    # ---- the strategies
    def _run(self, blocks, x, mask):
        for b in blocks:
            x = b(x, mask=mask)
        return x

    def _with_cls(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B = x.shape[0]
        return torch.cat([self.cls_token.expand(B, -1, -1), x], 1), torch.cat([mask.new_ones(B, 1), mask], 1)

    def forward(self, tokens: list[torch.Tensor], masks: list[torch.Tensor], present: torch.Tensor,
                return_aux: bool = False):
        """tokens[m] (B, T_m, D_m), masks[m] (B, T_m) bool, present (B, M) bool -> logits (B, L), pooled (B, d)
        [, auxiliary loss]. A modality that is not present is replaced by its stand-in."""
        c = self.config
        M = len(MODALITIES)
        present = present.bool()
        if self.training and c.missing == "dropout":
            drop = (torch.rand_like(present.float()) < c.modality_dropout) & present
            keep_one = drop.all(1) | (present & ~drop).sum(1).eq(0)
            drop[keep_one] = False
            present = present & ~drop
        xs = self._project(tokens, masks)
        xs, ms, aux = self._stand_ins(xs, masks, present)
        s = c.strategy
        if s == "early_sum":
            x = sum(self.slots[m](xs[m], ms[m]) for m in range(M))  # (B, K, d)
            x = self._run(self.joint, x, None)
            pooled = x.mean(1)
        elif s == "early_concat":
            x, mk = self._with_cls(torch.cat(xs, 1), torch.cat(ms, 1))
            pooled = self._run(self.joint, x, mk)[:, 0]
        elif s == "hierarchical":
            streams = [self._run(self.streams[m], xs[m], ms[m]) for m in range(M)]
            x, mk = self._with_cls(torch.cat(streams, 1), torch.cat(ms, 1))
            pooled = self._run(self.joint, x, mk)[:, 0]
        elif s in ("cross_attention", "cross_to_concat"):
            streams = list(xs)
            for layer in range(c.n_layer):
                new = []
                for m in range(M):
                    y = self.self_blocks[m][layer](streams[m], mask=ms[m])
                    ctx = torch.cat([streams[o] for o in range(M) if o != m], 1)
                    cmask = torch.cat([ms[o] for o in range(M) if o != m], 1)
                    new.append(self.cross_blocks[m][layer](y, ctx, kv_mask=cmask))
                streams = new
            if s == "cross_attention":
                pooled = torch.stack([self._pool(streams[m], ms[m]) for m in range(M)], 1).mean(1)
            else:
                x, mk = self._with_cls(torch.cat(streams, 1), torch.cat(ms, 1))
                pooled = self._run(self.joint, x, mk)[:, 0]
        else:  # irene: bidirectional multimodal attention, then self-attention over all tokens
            streams = list(xs)
            for layer in range(c.n_layer_modality):
                new = []
                for m in range(M):
                    ctx = torch.cat([streams[o] for o in range(M) if o != m], 1)
                    cmask = torch.cat([ms[o] for o in range(M) if o != m], 1)
                    y = self.self_blocks[m][layer](streams[m], mask=ms[m])
                    new.append(self.cross_blocks[m][layer](y, ctx, kv_mask=cmask))  # every direction at once
                streams = new
            x, mk = self._with_cls(torch.cat(streams, 1), torch.cat(ms, 1))
            pooled = self._run(self.joint, x, mk)[:, 0]
        emb = self.ln_f(pooled)  # (B, d)
        logits = self.head(emb)  # (B, L)
        if return_aux:
            return logits, emb, c.generative_weight * aux
        return logits, emb
