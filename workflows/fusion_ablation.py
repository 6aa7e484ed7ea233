"""The fusion ablation: every fusion strategy and missing-modality method, against the baselines, per
missingness pattern, on the held-out split and on a cohort built from seeds never used in training.

    rows = run_ablation(cohort, out, unseen=cohorts/unseen)      # also: mmdx eval ablation ...

What is trained (all on the frozen encoders' tokens, encoded once):
- the six strategies of models/fusion.py with the `dropout` missing-modality method;
- the five missing-modality methods with the best strategy of that first pass (by validation loss);
- for each pattern with one modality missing, the best configuration trained for that subset only.
Baselines: late fusion (a logistic-regression stacker over the encoders' outputs plus presence
flags, fitted on validation), the plain mean of the labs and notes probabilities (mmdx's old
differential), and each single modality's own model (the labs and notes encoders; the X-ray encoder
predicts findings, so the X-ray alone enters as the stacker restricted to it).

Scored on the complete test cases (all three modalities present) with modalities hidden by pattern:
macro AUROC with a bootstrap 95% CI, macro AUPRC and ECE after calibration (per-label temperature
and bias fitted on the validation split under the same pattern). Writes ablation.json, ablation.md
and plots (ablation_auroc.png). Everything is synthetic data and says so.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from mmdx.core.labels import DIAGNOSES
from mmdx.models.calibration import apply_temperature, ece, evaluate, fit_calibration
from mmdx.models.encodings import Encoded
from mmdx.models.fusion import MISSING, MODALITIES, STRATEGIES, FusionConfig
from mmdx.models.train_fusion import encode_cohort, load_encoders, predict, train_fused

log = logging.getLogger(__name__)

PATTERNS: dict[str, tuple[bool, bool, bool]] = {  # (cxr, labs, notes) shown
    "all present": (True, True, True),
    "no cxr": (False, True, True), "no labs": (True, False, True), "no notes": (True, True, False),
    "cxr only": (True, False, False), "labs only": (False, True, False), "notes only": (False, False, True),
}


def _mask(enc: Encoded, pattern: tuple[bool, ...]) -> np.ndarray:
    return np.tile(np.array(pattern, dtype=bool), (len(enc), 1))


def _score(probs: np.ndarray, y: np.ndarray, n_boot: int, seed: int) -> dict:
    ev = evaluate(probs, y, DIAGNOSES, n_boot=0)
    rng = np.random.default_rng(seed)
    macros = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        vals = [_auc(y[i, j], probs[i, j]) for j in range(y.shape[1]) if 0 < y[i, j].sum() < len(i)]
        macros.append(np.mean(vals))
    lo, hi = (np.percentile(macros, [2.5, 97.5]) if macros else (np.nan, np.nan))
    return {"macro_auroc": round(ev["macro_auroc"], 4), "ci95": [round(float(lo), 4), round(float(hi), 4)],
            "macro_auprc": round(ev["macro_auprc"], 4), "ece": round(ev["ece"], 4), "n": int(len(y))}


def _auc(y, p):
    from mmdx.models.calibration import auroc

    return auroc(y, p)


def _calibrated(val_logits, val_y, test_logits):
    t, b = fit_calibration(val_logits, val_y)
    return apply_temperature(test_logits, t, b)


def fused_rows(name: str, model, enc: dict[str, Encoded], complete_test: np.ndarray, complete_val: np.ndarray,
               n_boot: int, seed: int, patterns=PATTERNS) -> list[dict]:
    rows = []
    va, te = enc["val"].subset(complete_val), enc["test"].subset(complete_test)
    for pname, pat in patterns.items():
        vl, _ = predict(model, va, _mask(va, pat))
        tl, _ = predict(model, te, _mask(te, pat))
        rows.append({"model": name, "pattern": pname, **_score(_calibrated(vl, va.y, tl), te.y, n_boot, seed)})
    return rows


def _stack_features(enc: Encoded, pattern: tuple[bool, ...]) -> np.ndarray:
    blocks = []
    for j, m in enumerate(MODALITIES):
        x = np.nan_to_num(enc.logits[m]).copy()
        shown = ~np.isnan(enc.logits[m]).any(1) & pattern[j]
        x[~shown] = 0.0
        blocks += [x, shown[:, None].astype(float)]
    return np.hstack(blocks)


def late_fusion_rows(enc: dict[str, Encoded], complete_test, complete_val, n_boot: int, seed: int) -> list[dict]:
    """The baseline every strategy must beat: per-label logistic regression over the encoders' logits and
    presence flags, fitted on the validation split with random modality masking (so it has seen every
    pattern), scored on the complete test cases per pattern."""
    from sklearn.linear_model import LogisticRegression

    va, te = enc["val"], enc["test"].subset(complete_test)
    rng = np.random.default_rng(seed)
    feats = [_stack_features(va, p) for p in PATTERNS.values()]  # (N, k) per pattern
    X, Y = [], []
    for _ in range(3):  # three random patterns per validation case
        pick = rng.integers(len(feats), size=len(va))
        X.append(np.stack([feats[k][i] for i, k in enumerate(pick)]))
        Y.append(va.y)
    X, Y = np.concatenate(X), np.concatenate(Y)
    clfs = [LogisticRegression(C=1.0, max_iter=3000).fit(X, Y[:, j]) for j in range(Y.shape[1])]
    rows = []
    for pname, pat in PATTERNS.items():
        Xt = _stack_features(te, pat)
        probs = np.column_stack([c.predict_proba(Xt)[:, 1] for c in clfs])
        rows.append({"model": "late fusion (stacker)", "pattern": pname, **_score(probs, te.y, n_boot, seed)})
    return rows


def single_and_mean_rows(enc: dict[str, Encoded], complete_test, complete_val, n_boot: int, seed: int) -> list[dict]:
    """The labs and notes encoders alone, and their plain mean (the differential mmdx had before)."""
    va, te = enc["val"].subset(complete_val), enc["test"].subset(complete_test)
    rows = []
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    for m in ("labs", "notes"):
        rows.append({"model": f"{m} model alone", "pattern": f"{m} only",
                     **_score(_calibrated(va.logits[m], va.y, te.logits[m]), te.y, n_boot, seed)})
    mean = (sig(te.logits["labs"]) + sig(te.logits["notes"])) / 2
    rows.append({"model": "mean of labs and notes (old differential)", "pattern": "no cxr", **_score(mean, te.y, n_boot, seed)})
    return rows


def run_ablation(cohort: Path, out: Path, *, unseen: Path | None = None, encoders_dir: Path | None = None,
                 strategies=STRATEGIES, methods=MISSING, base: FusionConfig | None = None, epochs: int = 12,
                 seed: int = 0, n_boot: int = 200, cache_dir: Path | None = Path("runs/cache")) -> dict:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    encoders = load_encoders(encoders_dir)
    dims = tuple(getattr(e.model.config, "n_embd", None) or e.model.bert.config.hidden_size for e in
                 (encoders[m] for m in MODALITIES))
    base = replace(base or FusionConfig(), input_dims=dims)
    enc = encode_cohort(cohort, encoders, cache_dir)
    complete_test = np.where(enc["test"].present().all(1))[0]
    complete_val = np.where(enc["val"].present().all(1))[0]
    rows, trained, val_loss = [], {}, {}

    def fit(cfg: FusionConfig, name: str, restrict=None):
        model, info = train_fused(cfg, enc["train"], enc["val"], epochs=epochs, seed=seed, restrict=restrict)
        trained[name], val_loss[name] = model, info["best_val_loss"]
        log.info("ablation %s: val loss %.4f (%.0f s so far)", name, info["best_val_loss"], time.time() - t0)
        return model

    for s in strategies:
        name = f"{s} + dropout"
        rows += fused_rows(name, fit(replace(base, strategy=s, missing="dropout"), name), enc, complete_test,
                           complete_val, n_boot, seed)
    best_strategy = min(strategies, key=lambda s: val_loss[f"{s} + dropout"])
    for m in methods:
        name = f"{best_strategy} + {m}"
        if name in trained:
            continue
        rows += fused_rows(name, fit(replace(base, strategy=best_strategy, missing=m), name), enc, complete_test,
                           complete_val, n_boot, seed)
    candidates = [k for k in trained]
    best = min(candidates, key=lambda k: val_loss[k])
    best_cfg = replace(base, strategy=best.split(" + ")[0], missing=best.split(" + ")[1])
    for pname in ("no cxr", "no labs", "no notes"):
        name = f"{best} trained for '{pname}'"
        model = fit(best_cfg, name, restrict=np.array(PATTERNS[pname]))
        rows += fused_rows(name, model, enc, complete_test, complete_val, n_boot, seed, {pname: PATTERNS[pname]})
    rows += late_fusion_rows(enc, complete_test, complete_val, n_boot, seed)
    rows += single_and_mean_rows(enc, complete_test, complete_val, n_boot, seed)
    unseen_rows = []
    if unseen is not None:
        enc_u = encode_cohort(unseen, encoders, cache_dir)
        all_u = {"val": enc["val"], "test": _concat(enc_u["train"], enc_u["val"], enc_u["test"])}
        cu = np.where(all_u["test"].present().all(1))[0]
        for name in (best, f"{best_strategy} + dropout"):
            unseen_rows += fused_rows(name, trained[name], {"val": enc["val"], "test": all_u["test"]}, cu, complete_val,
                                      n_boot, seed)
        unseen_rows += late_fusion_rows(all_u, cu, complete_val, n_boot, seed)
        unseen_rows += single_and_mean_rows(all_u, cu, complete_val, n_boot, seed)
    result = {
        "what": "fusion ablation on the synthetic ED cohort (synthetic data)",
        "cohort": str(cohort), "unseen_cohort": str(unseen) if unseen else None,
        "n_test_complete": int(len(complete_test)), "epochs": epochs, "seed": seed,
        "best_strategy_with_dropout": best_strategy, "best": best, "val_loss": val_loss,
        "rows": rows, "unseen_rows": unseen_rows, "seconds": round(time.time() - t0, 1),
    }
    (out / "ablation.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "ablation.md").write_text(render_markdown(result))
    _plot(result, out / "ablation_auroc.png")
    return result


def _concat(*parts: Encoded) -> Encoded:
    return Encoded(sum((p.case_ids for p in parts), []), np.concatenate([p.y for p in parts]),
                   {m: sum((p.tokens[m] for p in parts), []) for m in MODALITIES},
                   {m: np.concatenate([p.logits[m] for p in parts]) for m in MODALITIES},
                   {m: np.concatenate([p.pooled[m] for p in parts]) for m in MODALITIES})


def render_markdown(result: dict) -> str:
    def table(rows):
        patterns = list(dict.fromkeys(r["pattern"] for r in rows))
        models = list(dict.fromkeys(r["model"] for r in rows))
        cell = {(r["model"], r["pattern"]): r for r in rows}
        lines = ["| model | " + " | ".join(patterns) + " |", "|---|" + "---|" * len(patterns)]
        for m in models:
            vals = []
            for p in patterns:
                r = cell.get((m, p))
                vals.append(f"{r['macro_auroc']:.3f} [{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] ECE {r['ece']:.3f}" if r else "")
            lines.append(f"| {m} | " + " | ".join(vals) + " |")
        return "\n".join(lines)

    out = [f"Synthetic data. Complete test cases: {result['n_test_complete']}. Macro AUROC [bootstrap 95% CI] and ECE "
           f"after calibration, per missingness pattern. Best by validation loss: {result['best']}.", "", table(result["rows"])]
    if result["unseen_rows"]:
        out += ["", f"Cohort from seeds never used in training ({result['unseen_cohort']}), every case with all modalities:",
                "", table(result["unseen_rows"])]
    return "\n".join(out) + "\n"


def _plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [r for r in result["rows"] if r["pattern"] == "all present"]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(rows) + 1.5))
    names = [r["model"] for r in rows]
    vals = [r["macro_auroc"] for r in rows]
    err = [[v - r["ci95"][0] for v, r in zip(vals, rows)], [r["ci95"][1] - v for v, r in zip(vals, rows)]]
    ax.barh(names, vals, xerr=err, color="#4a7ab5")
    ax.set_xlim(min(vals) - 0.05, 1.0)
    ax.set_xlabel("macro AUROC, complete test cases (synthetic data)")
    ax.set_title("Fusion strategies and missing-modality methods, all modalities present")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m mmdx.workflows.fusion_ablation", description=__doc__.split("\n\n")[0])
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--unseen", type=Path, default=None, help="a cohort built from seeds never used in training")
    p.add_argument("--encoders", type=Path, default=None, help="folder of cxr/, labs/, notes/ (default: shipped)")
    p.add_argument("--epochs", type=int, default=12)
    p.add_argument("--strategies", default=",".join(STRATEGIES))
    p.add_argument("--methods", default=",".join(MISSING))
    p.add_argument("--boot", type=int, default=200)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run_ablation(args.cohort, args.out, unseen=args.unseen, encoders_dir=args.encoders,
                          strategies=tuple(args.strategies.split(",")), methods=tuple(args.methods.split(",")),
                          epochs=args.epochs, n_boot=args.boot)
    print(render_markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
