"""How much of the synthetic cohort's labs signal is test ordering alone?

A logistic regression that sees only WHICH variables were measured (and how many values), never a
value, trained on the train split and scored on test. When it comes close to the lab transformer,
the data give the label away through ordering: `python -m mmdx.evals.shortcut_baseline data/cohort`.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from mmdx.core.labels import DIAGNOSES
from mmdx.core.units import VARIABLES

VARS = sorted(VARIABLES)


def features(case: dict, panel: tuple[str, ...] = ()) -> np.ndarray:
    ms = [m for m in case.get("measurements", []) if not panel or m["variable"] in panel]
    present = np.zeros(len(VARS) + 1)
    for m in ms:
        present[VARS.index(m["variable"])] = 1
    present[-1] = len(ms) / 20
    return present


def load(root: Path, split: str, panel: tuple[str, ...] = ()):
    X, Y = [], []
    for f in sorted((root / "cases" / split).glob("*.json")):
        c = json.loads(f.read_text())
        if not any(not panel or m["variable"] in panel for m in c.get("measurements", [])):
            continue
        X.append(features(c, panel))
        Y.append([d in c["labels"]["diagnoses"] for d in DIAGNOSES])
    return np.array(X), np.array(Y, dtype=int)


def scores(root: Path, panel: tuple[str, ...] = ()) -> dict:
    Xtr, Ytr = load(root, "train", panel)
    Xte, Yte = load(root, "test", panel)
    out = {}
    for j, d in enumerate(DIAGNOSES):
        if Ytr[:, j].sum() < 2 or Yte[:, j].sum() < 1:
            continue
        clf = LogisticRegression(max_iter=2000).fit(Xtr, Ytr[:, j])
        out[d] = round(roc_auc_score(Yte[:, j], clf.predict_proba(Xte)[:, 1]), 3)
    out["macro"] = round(float(np.mean(list(out.values()))), 3)
    return out


def main(argv: list[str] | None = None) -> int:
    from mmdx.models.build import load_config

    root = Path((argv or sys.argv[1:] or ["data/cohort"])[0])
    panel = load_config("labs", "small").panel
    print(json.dumps({"ordering_only_test_auroc_all_variables": scores(root),
                      "ordering_only_test_auroc_default_panel": scores(root, panel),
                      "data": "synthetic clinosim cohort"}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
