"""Calibration and metrics for multi-label classifiers.

- `fit_calibration`: per label a temperature T and a bias b (Platt scaling), fitted on the
  validation split by LBFGS on the binary negative log-likelihood; calibrated probability =
  sigmoid(logit / T + b). The bias matters: training weights positives up (pos_weight), which
  shifts every logit, and a temperature alone cannot undo a shift. `fit_temperature` is the
  bias-free special case.
- `fit_thresholds`: per-label decision threshold maximising F1 on the validation split.
- `evaluate`: per-label AUROC and AUPRC with bootstrap 95% CIs, F1 at the stored threshold,
  prevalence, and expected calibration error (ECE); macro averages over labels that have both
  classes in the evaluated split.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.stats import rankdata

T_MIN, T_MAX = 0.05, 20.0  # temperatures are clamped to this range


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60, 60)))


def apply_temperature(logits: np.ndarray, temperature: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    z = logits / np.asarray(temperature, dtype=np.float64)
    if bias is not None and len(bias):
        z = z + np.asarray(bias, dtype=np.float64)
    return sigmoid(z)  # (N, L)


def fit_calibration(logits: np.ndarray, y: np.ndarray, max_iter: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(L,) temperatures and (L,) biases minimising the validation NLL of sigmoid(logits / T + b)."""
    z = torch.as_tensor(logits, dtype=torch.float64)  # (N, L)
    t = torch.as_tensor(y, dtype=torch.float64)  # (N, L)
    log_t = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)  # (L,)
    b = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)  # (L,)
    opt = torch.optim.LBFGS([log_t, b], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z / log_t.exp() + b, t, reduction="sum")
        loss.backward()
        return loss

    opt.step(closure)
    temps = log_t.detach().exp().clamp(T_MIN, T_MAX).numpy().astype(np.float64)
    return temps, b.detach().clamp(-20, 20).numpy().astype(np.float64)


def nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Mean binary negative log-likelihood over every (case, label)."""
    p = np.clip(probs, 1e-7, 1 - 1e-7)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def fit_temperature(logits: np.ndarray, y: np.ndarray, max_iter: int = 100) -> np.ndarray:
    """(L,) temperatures minimising the validation NLL of sigmoid(logits / T), per label."""
    z = torch.as_tensor(logits, dtype=torch.float64)  # (N, L)
    t = torch.as_tensor(y, dtype=torch.float64)  # (N, L)
    log_t = torch.zeros(z.shape[1], dtype=torch.float64, requires_grad=True)  # (L,), T = exp(log_t)
    opt = torch.optim.LBFGS([log_t], lr=0.5, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(z / log_t.exp(), t, reduction="sum")
        loss.backward()
        return loss

    opt.step(closure)
    temps = log_t.detach().exp().clamp(T_MIN, T_MAX).numpy()
    return temps.astype(np.float64)


def fit_thresholds(probs: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(L,) thresholds in [0, 1] maximising F1 per label; 0.5 for a label with no positives."""
    out = np.full(probs.shape[1], 0.5)
    for j in range(probs.shape[1]):
        p, t = probs[:, j], y[:, j]
        if t.sum() == 0:
            continue
        cands = np.unique(p)  # sorted
        best_f1, best_k = -1.0, 0
        for k, thr in enumerate(cands):
            pred = p >= thr
            tp = float((pred & (t == 1)).sum())
            f1 = 2 * tp / (pred.sum() + t.sum())
            if f1 > best_f1:
                best_f1, best_k = f1, k
        # midway to the next lower score: same F1 on validation, less fragile than a saturated score
        out[j] = float(cands[0]) if best_k == 0 else float((cands[best_k] + cands[best_k - 1]) / 2)
    return out


def ece(probs: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """Expected calibration error over every (case, label) pair, equal-width bins."""
    p, t = probs.ravel(), y.ravel()
    bins = np.minimum((p * n_bins).astype(int), n_bins - 1)
    total = 0.0
    for b in range(n_bins):
        sel = bins == b
        if sel.any():
            total += sel.sum() * abs(p[sel].mean() - t[sel].mean())
    return float(total / max(len(p), 1))


def auroc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve by the rank-sum (Mann-Whitney) identity; ties count one half."""
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    ranks = rankdata(p)
    return float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auprc(y: np.ndarray, p: np.ndarray) -> float:
    """Average precision (step-wise area under precision-recall), ties grouped as sklearn does."""
    order = np.argsort(-p, kind="mergesort")
    y_s, p_s = y[order], p[order]
    last = np.r_[np.diff(p_s) != 0, True]  # last index of each distinct score
    tps = np.cumsum(y_s)[last]
    fps = np.arange(1, len(y_s) + 1)[last] - tps
    precision, recall = tps / (tps + fps), tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _bootstrap_ci(y: np.ndarray, p: np.ndarray, fn, n_boot: int, rng: np.random.Generator) -> tuple[float, float] | None:
    stats = []
    n = len(y)
    for _ in range(n_boot):
        idx = rng.integers(0, n, n)
        if y[idx].min() == y[idx].max():
            continue  # a resample with one class has no AUROC
        stats.append(fn(y[idx], p[idx]))
    if not stats or len(stats) < n_boot // 2:
        return None
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return float(lo), float(hi)


def evaluate(probs: np.ndarray, y: np.ndarray, labels: tuple[str, ...], thresholds: np.ndarray | None = None,
             n_boot: int = 200, seed: int = 0) -> dict:
    """Per-label and macro metrics. `probs` should already be calibrated."""
    rng = np.random.default_rng(seed)
    per_label = {}
    for j, lab in enumerate(labels):
        t, p = y[:, j], probs[:, j]
        row: dict = {"n_pos": int(t.sum()), "n": int(len(t))}
        if 0 < t.sum() < len(t):
            row["auroc"] = auroc(t, p)
            row["auroc_ci95"] = _bootstrap_ci(t, p, auroc, n_boot, rng)
            row["auprc"] = auprc(t, p)
            row["auprc_ci95"] = _bootstrap_ci(t, p, auprc, n_boot, rng)
        if thresholds is not None:
            pred = p >= thresholds[j]
            tp = float((pred & (t == 1)).sum())
            denom = pred.sum() + t.sum()
            row["f1"] = float(2 * tp / denom) if denom else None
        per_label[lab] = row
    aurocs = [r["auroc"] for r in per_label.values() if "auroc" in r]
    auprcs = [r["auprc"] for r in per_label.values() if "auprc" in r]
    return {
        "n_cases": int(len(y)),
        "macro_auroc": float(np.mean(aurocs)) if aurocs else None,
        "macro_auprc": float(np.mean(auprcs)) if auprcs else None,
        "nll": nll(probs, y),
        "ece": ece(probs, y),
        "per_label": per_label,
    }
