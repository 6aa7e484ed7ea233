"""Students against their teachers and their alone-trained twins, on the same test cases, in one run.

    python -m mmdx.evals.students --cohort cohorts/default --alone runs/w/alone \
        --out evals/results/students.json

For each modality: the distilled student (models/weights/student_<m>, or --students DIR), the same
architecture trained alone on the same data (--alone DIR/student_<m>), and the modality's encoder
(models/weights/<m>). Reported: macro AUROC over the diagnoses on the test split (bootstrap 95% CI;
the cxr encoder predicts imaging findings, so it has no diagnosis AUROC), parameter counts, and the
model's time per case on this machine: batches of 32 from already-featurized inputs, the student and
the encoder timed in alternating rounds so drift on a shared machine hits both alike (the figure that
means something is the ratio, not the milliseconds). Synthetic data.
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from mmdx.core.errors import ToolInputError
from mmdx.core.labels import DIAGNOSES
from mmdx.models.calibration import auroc
from mmdx.models.inference import WEIGHTS_ROOT, LoadedModel, load_model

log = logging.getLogger(__name__)


def _macro(probs: np.ndarray, y: np.ndarray, n_boot: int = 200, seed: int = 0) -> dict:
    def macro(idx):
        vals = [auroc(y[idx, j], probs[idx, j]) for j in range(y.shape[1]) if 0 < y[idx, j].sum() < len(idx)]
        return float(np.mean(vals))

    all_idx = np.arange(len(y))
    rng = np.random.default_rng(seed)
    boots = [macro(rng.integers(0, len(y), len(y))) for _ in range(n_boot)]
    return {"macro_auroc": round(macro(all_idx), 4), "ci95": [round(float(np.percentile(boots, 2.5)), 4),
                                                             round(float(np.percentile(boots, 97.5)), 4)], "n": int(len(y))}


def _diagnosis_probs(model: LoadedModel, cases) -> tuple[list[int], np.ndarray]:
    preds = model.predict(cases)
    keep = [i for i, p in enumerate(preds) if not isinstance(p, ToolInputError)]
    order = [model.labels.index(d) for d in DIAGNOSES]
    return keep, np.stack([preds[i].probs[order] for i in keep])


def _n_params(model: LoadedModel) -> int:
    return int(sum(p.numel() for p in model.model.parameters()))


def _ms_per_case(models: dict[str, LoadedModel], cases, rounds: int = 5, batch: int = 32, n: int = 256) -> dict[str, float]:
    """Median over alternating rounds of each model's forward time per case (inputs featurized once)."""
    items = {}
    for name, m in models.items():
        its = []
        for c in cases:
            try:
                its.append(m.featurize(c))
            except ToolInputError:
                continue
            if len(its) >= n:
                break
        items[name] = its
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        for name, m in models.items():  # warm-up
            m.forward_items(items[name][:batch])
        for _ in range(rounds):
            for name, m in models.items():
                t0 = time.perf_counter()
                for k in range(0, len(items[name]), batch):
                    m.forward_items(items[name][k:k + batch])
                times[name].append(1000 * (time.perf_counter() - t0) / max(1, len(items[name])))
    return {k: round(float(np.median(v)), 3) for k, v in times.items()}


def run(cohort: Path, alone: Path, students: Path | None = None, encoders: Path | None = None) -> dict:
    from mmdx.data.cohort import iter_cases

    test = list(iter_cases(cohort, "test"))
    out = {"what": "distilled students against alone-trained twins and the encoders (synthetic data)",
           "cohort": str(cohort), "torch_threads": torch.get_num_threads(), "modalities": {}}
    for m in ("cxr", "labs", "notes"):
        kind = f"student_{m}"
        models = {"distilled": load_model(kind, (students or WEIGHTS_ROOT) / kind),
                  "alone": load_model(kind, alone / kind),
                  "encoder": load_model(m, (encoders or WEIGHTS_ROOT) / m)}
        has = [c for c in test if c.labels is not None and getattr(c, m if m != "labs" else "measurements")]
        y_all = np.array([[d in c.labels.diagnoses for d in DIAGNOSES] for c in has], dtype=float)
        row: dict = {"n_test": len(has)}
        for name, model in models.items():
            entry = {"model_id": model.card.model_id, "weights_sha256": model.card.weights_sha256,
                     "parameters": _n_params(model), "target": model.card.target}
            if model.card.target == "diagnoses":
                keep, probs = _diagnosis_probs(model, has)
                entry |= _macro(probs, y_all[keep])
            row[name] = entry
        row["ms_per_case"] = _ms_per_case({k: models[k] for k in ("distilled", "encoder")}, has)
        row["distilled_beats_alone"] = row["distilled"]["macro_auroc"] > row["alone"]["macro_auroc"]
        row["speedup_over_encoder"] = round(row["ms_per_case"]["encoder"] / row["ms_per_case"]["distilled"], 2)
        row["parameter_ratio"] = round(row["distilled"]["parameters"] / row["encoder"]["parameters"], 4)
        out["modalities"][m] = row
        log.info("%s: %s", m, {k: row[k].get("macro_auroc") for k in ("distilled", "alone", "encoder")})
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mmdx.evals.students", description=__doc__.split("\n\n")[0])
    p.add_argument("--cohort", type=Path, required=True)
    p.add_argument("--alone", type=Path, required=True, help="folder holding student_cxr/, student_labs/, student_notes/ trained alone")
    p.add_argument("--students", type=Path, default=None, help="folder of the distilled students (default: shipped)")
    p.add_argument("--encoders", type=Path, default=None, help="folder of the encoders (default: shipped)")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    result = run(args.cohort, args.alone, args.students, args.encoders)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
