"""Metrics of an evaluation run, computed from result records (never from a live model).

- `classification`: per label AUROC and AUPRC with bootstrap 95% CIs (models/calibration.evaluate),
  F1 at the model's stored thresholds, and macro AUROC / AUPRC / F1 with CIs from resampling cases;
- `reliability`: the reliability diagram's bins and the expected calibration error (ECE);
- `conformal`: split-conformal prediction sets over the labels, fitted on the calibration split and
  measured on the evaluated one: a case's set holds every label with p >= 1 - q, where q is the
  ceil((n+1)(1-alpha))/n quantile of the calibration cases' scores max over true labels (1 - p);
  coverage is the share of cases whose true labels all fall in their set (target 1 - alpha);
- `top1`, `selection`, `latency`: top-1 agreement, tool-selection precision/recall, percentiles.
Every function takes arrays and returns plain JSON-able dicts, rounded for a stable summary.
"""
from __future__ import annotations

import math

import numpy as np

from mmdx.models.calibration import auprc, auroc, evaluate


def _r(x, nd: int = 4):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return None
    return round(float(x), nd)


def _macro(probs: np.ndarray, y: np.ndarray, fn) -> float | None:
    vals = [fn(y[:, j], probs[:, j]) for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    return float(np.mean(vals)) if vals else None


def _macro_f1(probs: np.ndarray, y: np.ndarray, thr: np.ndarray) -> float | None:
    vals = []
    for j in range(y.shape[1]):
        if y[:, j].sum() == 0:
            continue
        pred = probs[:, j] >= thr[j]
        vals.append(2 * float((pred & (y[:, j] == 1)).sum()) / float(pred.sum() + y[:, j].sum()))
    return float(np.mean(vals)) if vals else None


def _boot_ci(probs, y, fn, n_boot: int, rng) -> list | None:
    if n_boot <= 0 or len(y) < 2:
        return None
    stats = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        v = fn(probs[idx], y[idx])
        if v is not None:
            stats.append(v)
    if len(stats) < n_boot // 2:
        return None
    lo, hi = np.percentile(stats, [2.5, 97.5])
    return [_r(lo), _r(hi)]


def classification(probs: np.ndarray, y: np.ndarray, labels: tuple[str, ...], thresholds: np.ndarray | None,
                   n_boot: int = 200, seed: int = 0) -> dict:
    """(N, L) calibrated probabilities against (N, L) multi-hot truth."""
    if len(y) == 0:
        return {"n_cases": 0}
    thr = np.full(len(labels), 0.5) if thresholds is None else np.asarray(thresholds, dtype=float)
    ev = evaluate(probs, y, labels, thr, n_boot=n_boot, seed=seed)
    rng = np.random.default_rng(seed + 1)
    per_label = {}
    for lab, row in ev["per_label"].items():
        per_label[lab] = {k: ([_r(v) for v in row[k]] if isinstance(row.get(k), (list, tuple)) else
                              (_r(row[k]) if isinstance(row.get(k), float) else row.get(k)))
                          for k in ("n_pos", "n", "auroc", "auroc_ci95", "auprc", "auprc_ci95", "f1") if k in row}
    return {
        "n_cases": int(len(y)),
        "macro_auroc": _r(ev["macro_auroc"]), "macro_auroc_ci95": _boot_ci(probs, y, lambda p, t: _macro(p, t, auroc), n_boot, rng),
        "macro_auprc": _r(ev["macro_auprc"]), "macro_auprc_ci95": _boot_ci(probs, y, lambda p, t: _macro(p, t, auprc), n_boot, rng),
        "macro_f1": _r(_macro_f1(probs, y, thr)), "macro_f1_ci95": _boot_ci(probs, y, lambda p, t: _macro_f1(p, t, thr), n_boot, rng),
        "per_label": per_label,
    }


def reliability(probs: np.ndarray, y: np.ndarray, n_bins: int = 10) -> dict:
    """Equal-width bins over every (case, label) pair: mean predicted, observed rate, count; and ECE."""
    p, t = probs.ravel(), y.ravel()
    if len(p) == 0:
        return {"ece": None, "bins": []}
    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
    bins, total = [], 0.0
    for b in range(n_bins):
        sel = idx == b
        if sel.any():
            gap = abs(p[sel].mean() - t[sel].mean())
            total += sel.sum() * gap
            bins.append({"lo": _r(b / n_bins), "hi": _r((b + 1) / n_bins), "mean_p": _r(p[sel].mean()),
                         "observed": _r(t[sel].mean()), "n": int(sel.sum())})
    return {"ece": _r(total / len(p)), "bins": bins}


def conformal(cal_probs: np.ndarray, cal_y: np.ndarray, probs: np.ndarray, y: np.ndarray, alpha: float = 0.1) -> dict:
    """Split-conformal label sets: fitted on (cal_probs, cal_y), measured on (probs, y)."""
    def scores(p, t):
        keep = t.sum(1) > 0
        return np.where(t[keep] == 1, 1 - p[keep], -np.inf).max(1), keep

    s_cal, _ = scores(cal_probs, cal_y)
    n = len(s_cal)
    if n == 0 or len(y) == 0:
        return {"n_calibration": n, "n": int(len(y)), "coverage": None}
    level = min(1.0, math.ceil((n + 1) * (1 - alpha)) / n)
    q = float(np.quantile(s_cal, level, method="higher"))
    sets = probs >= 1 - q  # (N, L)
    s_test, keep = scores(probs, y)
    covered = s_test <= q
    sizes = sets[keep].sum(1)
    return {"alpha": alpha, "target_coverage": _r(1 - alpha), "n_calibration": n, "n": int(keep.sum()),
            "qhat": _r(q), "coverage": _r(covered.mean()), "mean_set_size": _r(sizes.mean()),
            "set_size_histogram": {int(k): int(v) for k, v in zip(*np.unique(sizes, return_counts=True))},
            "empty_sets": int((sizes == 0).sum())}


def top1(tops: list[str | None], truths: list[list[str]]) -> dict:
    """Top-1 in the recorded labels; None (an abstention or no answer) counts as a miss."""
    pairs = [(t, tr) for t, tr in zip(tops, truths) if tr]
    hit = sum(t is not None and t in tr for t, tr in pairs)
    answered = [(t, tr) for t, tr in pairs if t is not None]
    return {"n": len(pairs), "top1": _r(hit / len(pairs)) if pairs else None, "hits": hit,
            "answered": len(answered), "top1_answered": _r(hit / len(answered)) if answered else None}


def selection(proposed: list[set[str]], relevant: list[set[str]]) -> dict:
    tp = sum(len(p & r) for p, r in zip(proposed, relevant))
    n_p, n_r = sum(len(p) for p in proposed), sum(len(r) for r in relevant)
    return {"precision": _r(tp / n_p) if n_p else None, "recall": _r(tp / n_r) if n_r else None,
            "proposed": n_p, "relevant": n_r, "true_positives": tp}


def latency(values_ms: list[float]) -> dict:
    v = np.asarray([x for x in values_ms if x is not None], dtype=float)
    if len(v) == 0:
        return {"n": 0}
    return {"n": int(len(v)), "mean_ms": _r(v.mean(), 2), "p50_ms": _r(np.percentile(v, 50), 2),
            "p90_ms": _r(np.percentile(v, 90), 2), "max_ms": _r(v.max(), 2)}
