"""Are the note and lab models reading clinical content, or the way the training data was written?

    python -m mmdx.workflows.style_shift --cohort cohorts/default --out runs/style-shift [--seeds 1,2,...]

Two checks, each against a stated tolerance:

1. Notes rewritten in a phrasing grammar never used in training. The same cohort is rebuilt with
   `--note-style case_report` (same seeds, same patients, same facts: one paragraph of case-report
   prose instead of the ED chart) and the notes model scores both test splits. Target: macro AUROC
   within NOTES_TOLERANCE of the original, and a higher out-of-distribution score on the rewritten
   text (the model should know it is reading something unlike its training notes).
2. Labs repeated or reordered in time. Each test case's measurements are (a) repeated at two more
   time points, one and two hours later, (b) given in reverse time order with the times kept. Target:
   the mean absolute change of the labs model's probabilities at most LABS_TOLERANCE, and the top
   diagnosis unchanged in at least LABS_TOP1_AGREEMENT of cases.

Writes style_shift.json. Synthetic data; the rewrite grammar is data/ed/notes.py's "case_report".
"""
from __future__ import annotations

import json
import logging
from datetime import timedelta
from pathlib import Path

import numpy as np

from mmdx.core.case import PatientCase
from mmdx.core.errors import ToolInputError
from mmdx.core.labels import DIAGNOSES

log = logging.getLogger(__name__)

NOTES_TOLERANCE = 0.05  # macro AUROC drop allowed on the rewritten notes
LABS_TOLERANCE = 0.05  # mean |change in probability| allowed when labs are repeated or reordered
LABS_TOP1_AGREEMENT = 0.90  # share of cases whose top diagnosis must not change


def _macro_auroc(probs: np.ndarray, y: np.ndarray) -> float:
    from mmdx.models.calibration import auroc

    vals = [auroc(y[:, j], probs[:, j]) for j in range(y.shape[1]) if 0 < y[:, j].sum() < len(y)]
    return float(np.mean(vals))


def _predict(model, cases: list[PatientCase]):
    preds = model.predict(cases)
    keep = [i for i, p in enumerate(preds) if not isinstance(p, ToolInputError)]
    return keep, np.stack([preds[i].probs for i in keep]), np.array([preds[i].ood_score for i in keep])


def _y(cases: list[PatientCase]) -> np.ndarray:
    return np.array([[d in c.labels.diagnoses for d in DIAGNOSES] for c in cases], dtype=float)


def notes_shift(original: list[PatientCase], rewritten: list[PatientCase], model) -> dict:
    by_id = {c.case_id: c for c in rewritten}
    pairs = [(c, by_id[c.case_id]) for c in original if c.case_id in by_id and c.notes]
    a = [p[0] for p in pairs]
    b = [p[1] for p in pairs]
    ka, pa, oa = _predict(model, a)
    kb, pb, ob = _predict(model, b)
    auc_a, auc_b = _macro_auroc(pa, _y([a[i] for i in ka])), _macro_auroc(pb, _y([b[i] for i in kb]))
    return {"n": len(pairs), "macro_auroc_original": round(auc_a, 4), "macro_auroc_rewritten": round(auc_b, 4),
            "drop": round(auc_a - auc_b, 4), "tolerance": NOTES_TOLERANCE, "within_tolerance": bool(auc_a - auc_b <= NOTES_TOLERANCE),
            "ood_median_original": round(float(np.median(oa)), 3), "ood_median_rewritten": round(float(np.median(ob)), 3),
            "ood_higher_on_rewritten": bool(np.median(ob) > np.median(oa)),
            "share_rewritten_flagged": round(float(np.mean(ob > 1.5)), 3)}


def repeated(case: PatientCase) -> PatientCase:
    extra = tuple(m.model_copy(update={"time": m.time + timedelta(hours=h)}) for h in (1, 2) for m in case.measurements)
    return case.model_copy(update={"measurements": case.measurements + extra})


def reordered(case: PatientCase) -> PatientCase:
    return case.model_copy(update={"measurements": tuple(reversed(case.measurements))})


def labs_invariance(cases: list[PatientCase], model) -> dict:
    cases = [c for c in cases if c.measurements]
    _, base, _ = _predict(model, cases)
    out = {"n": len(cases), "tolerance": LABS_TOLERANCE, "top1_agreement_required": LABS_TOP1_AGREEMENT}
    for name, fn in (("repeated_at_two_more_times", repeated), ("reversed_order", reordered)):
        _, p, _ = _predict(model, [fn(c) for c in cases])
        delta = np.abs(p - base)
        agree = float(np.mean(p.argmax(1) == base.argmax(1)))
        out[name] = {"mean_abs_change": round(float(delta.mean()), 4), "max_abs_change": round(float(delta.max()), 4),
                     "top1_agreement": round(agree, 4),
                     "within_tolerance": bool(delta.mean() <= LABS_TOLERANCE and agree >= LABS_TOP1_AGREEMENT)}
    return out


def run(cohort: Path, rewritten: Path, out: Path, notes_weights: Path | None = None, labs_weights: Path | None = None) -> dict:
    from mmdx.data.cohort import iter_cases
    from mmdx.models.inference import load_model

    test = list(iter_cases(cohort, "test"))
    notes, labs = load_model("notes", notes_weights), load_model("labs", labs_weights)
    manifest = json.loads((Path(cohort) / "manifest.json").read_text())
    result = {
        "what": "style shift of the notes model and time invariance of the labs model (synthetic data)",
        "cohort": str(cohort), "rewritten_cohort": str(rewritten), "cohort_params": manifest.get("params"),
        "weights": {m.kind: {"model_id": m.card.model_id, "weights_sha256": m.card.weights_sha256} for m in (notes, labs)},
        "notes": notes_shift(test, list(iter_cases(rewritten, "test")), notes),
        "labs": labs_invariance(test, labs),
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "style_shift.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(prog="python -m mmdx.workflows.style_shift", description=__doc__.split("\n\n")[0])
    p.add_argument("--cohort", type=Path, required=True, help="a built cohort (ED-chart notes)")
    p.add_argument("--rewritten", type=Path, default=None,
                   help="the same cohort built with --note-style case_report (built next to --out when absent)")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--notes-weights", type=Path, default=None)
    p.add_argument("--labs-weights", type=Path, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    rewritten = args.rewritten
    if rewritten is None:
        from mmdx.data.cohort import build_cohort

        manifest = json.loads((args.cohort / "manifest.json").read_text())
        prm = manifest["params"]
        rewritten = args.out / "cohort-case-report"
        build_cohort(rewritten, prm["seeds"], prm["population"], prm["start"], prm["end"], note_style="case_report")
    result = run(args.cohort, rewritten, args.out, args.notes_weights, args.labs_weights)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
