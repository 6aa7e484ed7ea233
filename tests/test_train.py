"""`mmdx train` end to end on a tiny synthetic cohort, then load_model + predict.

The cohort is synthetic and built here: three diagnoses, each with a learnable signal in every
modality (an image pattern, raised lab values, keywords in the note), in the layout `mmdx data
build` writes: DATA/cases/{train,val,test}/<id>.json, DATA/images/<id>.png.
"""
import json
from datetime import datetime, timedelta

import numpy as np
import pytest
import torch
from PIL import Image

from mmdx.core.case import PatientCase
from mmdx.core.errors import CorruptInput, ModalityAbsent
from mmdx.models.calibration import evaluate
from mmdx.models.card import load_card
from mmdx.models.inference import Prediction, load_model
from mmdx.models.train import main

torch.set_num_threads(1)
DX = {  # diagnosis -> (findings, lab shifts, note words)
    "pneumonia": (("consolidation",), {"wbc": 9.0, "temperature": 2.0}, "productive cough, fever and rigors"),
    "heart_failure": (("cardiomegaly", "effusion"), {"bnp": 900.0}, "orthopnea, ankle swelling, weight gain"),
    "no_acute_finding": (("no_finding",), {}, "routine visit, feels well, no complaints"),
}
NORMAL = {"wbc": 7.0, "temperature": 36.8, "bnp": 60.0, "heart_rate": 80.0}
UNITS = {"wbc": "10^3/uL", "temperature": "degC", "bnp": "pg/mL", "heart_rate": "bpm"}


def _image(findings, rng, size=48):
    yy, xx = np.mgrid[0:size, 0:size] / size
    img = 0.2 + 0.25 * yy + 0.1 * rng.random((size, size))  # a smooth gradient, as anatomy (noise alone is refused)
    if "consolidation" in findings:
        img[10:26, 6:20] += 0.5  # bright patch in the right lung
    if "cardiomegaly" in findings:
        img += 0.5 * (((yy - 0.6) ** 2 + (xx - 0.5) ** 2) < 0.06)  # large central disc
    if "effusion" in findings:
        img[38:, :] += 0.4  # bright bases
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def write_cohort(root, n_per_split=(36, 12, 12), seed=0):
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    names = list(DX)
    t0 = datetime(2024, 5, 1, 8)
    k = 0
    for split, n in zip(("train", "val", "test"), n_per_split):
        for _ in range(n):
            dx = names[k % 3]
            findings, shifts, words = DX[dx]
            cid = f"syn{k:03d}"
            Image.fromarray(_image(findings, rng)).save(root / "images" / f"{cid}.png")
            meas = []
            for h in sorted(rng.uniform(0, 48, size=int(rng.integers(3, 7)))):
                for var, base in NORMAL.items():
                    v = base + shifts.get(var, 0.0) * rng.uniform(0.6, 1.2) + rng.normal(0, 0.05 * base)
                    meas.append({"time": (t0 + timedelta(hours=float(h))).isoformat(), "variable": var, "value": round(float(v), 3), "unit": UNITS[var]})
            case = PatientCase.from_dict({
                "case_id": cid, "demographics": {"age": float(rng.integers(30, 90)), "sex": str(rng.choice(["female", "male"]))},
                "cxr": {"path": f"../../images/{cid}.png", "view": "PA"},
                "measurements": meas,
                "notes": [{"kind": "subjective", "text": f"patient reports {words}. {rng.choice(['seen today', 'came in'])}."}],
                "labels": {"diagnoses": [dx], "findings": list(findings), "source": "test fixture (synthetic)"},
                "origin": "synthetic: tests/test_train.py",
            })
            case.save(root / "cases" / split / f"{cid}.json")
            k += 1
    return root


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("cohort"))


@pytest.mark.parametrize("kind,epochs", [("labs", 12), ("cxr", 12), ("notes", 8)])
def test_train_tiny_loss_falls_and_card_is_complete(cohort, tmp_path, kind, epochs):
    out = tmp_path / kind
    assert main([kind, "--data", str(cohort), "--config", "tiny", "--out", str(out), "--epochs", str(epochs),
                 "--seed", "0", "--batch-size", "12", "--lr", "3e-3"]) == 0
    card = load_card(out)
    hist = card.training["history"]
    assert hist[-1]["train_loss"] < 0.8 * hist[0]["train_loss"], hist
    assert card.n_train == 36 and card.n_val == 12 and card.n_test == 12
    assert all(0.0 <= t <= 1.0 for t in card.thresholds) and all(t > 0 for t in card.temperatures)
    assert "synthetic" in card.data_description
    test = card.metrics["test"]
    assert test["macro_auroc"] is not None and test["per_label"][card.labels[0]]["auroc_ci95"] is not None
    assert card.ood is not None and len(card.ood.mean) == len(card.ood.var) > 0 and card.ood.p95_val > 0
    # inference (featurize + full forward) reproduces the test metrics computed during training
    model = load_model(kind, out, device="cpu")
    cases = [PatientCase.load(p) for p in sorted((cohort / "cases" / "test").glob("*.json"))]
    probs = np.stack([r.probs for r in model.predict(cases)])
    y = np.stack([[lab in (c.labels.findings if kind == "cxr" else c.labels.diagnoses) for lab in card.labels] for c in cases]).astype(float)
    assert evaluate(probs, y, tuple(card.labels))["macro_auroc"] == pytest.approx(test["macro_auroc"], abs=1e-3)
    if kind == "notes":
        assert card.metrics["baseline_tfidf_logreg"]["macro_auroc"] is not None
    if kind == "labs":
        assert set(card.feature_stats) == set(NORMAL)


@pytest.fixture(scope="module")
def trained_labs(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("labs")
    main(["labs", "--data", str(cohort), "--config", "tiny", "--out", str(out), "--epochs", "15",
          "--batch-size", "12", "--lr", "3e-3"])
    return out


def test_labs_signal_is_learned(trained_labs):
    test = load_card(trained_labs).metrics["test"]
    assert test["macro_auroc"] > 0.8, test


def test_recalibrate_keeps_weights(cohort, trained_labs, tmp_path):
    import shutil

    out = tmp_path / "re"
    shutil.copytree(trained_labs, out)
    before = load_card(out)
    assert main(["labs", "--data", str(cohort), "--out", str(out), "--recalibrate"]) == 0
    after = load_card(out)
    assert after.weights_sha256 == before.weights_sha256 and after.config == before.config
    assert after.temperatures == pytest.approx(before.temperatures, rel=1e-6) and "recalibrated_at" in after.training


def test_predict_returns_errors_in_place(cohort, trained_labs, tmp_path):
    model = load_model("labs", trained_labs, device="cpu")
    cases = [PatientCase.load(p) for p in sorted((cohort / "cases" / "test").glob("*.json"))[:3]]
    res = model.predict([cases[0], cases[1].without("labs"), cases[2]])
    assert isinstance(res[0], Prediction) and isinstance(res[2], Prediction)
    assert isinstance(res[1], ModalityAbsent) and res[1].field == "measurements"
    p = res[0]
    assert p.probs.shape == (len(model.card.labels),) and ((p.probs >= 0) & (p.probs <= 1)).all()
    assert p.embedding.shape == (model.config.n_embd,) and np.isfinite(p.ood_score)
    # batching does not change a case's result
    alone = model.predict([cases[2]])[0]
    np.testing.assert_allclose(alone.probs, res[2].probs, rtol=1e-5, atol=1e-6)


def test_cxr_predict_corrupt_image_in_place(cohort, tmp_path):
    out = tmp_path / "cxr"
    main(["cxr", "--data", str(cohort), "--config", "tiny", "--out", str(out), "--max-steps", "2", "--batch-size", "12"])
    model = load_model("cxr", out, device="cpu")
    good = PatientCase.load(sorted((cohort / "cases" / "test").glob("*.json"))[0])
    bad_png = tmp_path / "bad.png"
    bad_png.write_bytes(b"not a png")
    bad = good.model_copy(update={"cxr": good.cxr.model_copy(update={"path": str(bad_png)})})
    res = model.predict([bad, good, good.without("cxr")])
    assert isinstance(res[0], CorruptInput) and isinstance(res[1], Prediction) and isinstance(res[2], ModalityAbsent)
    assert model.card.training["steps"] == 2
    assert json.loads((out / "card.json").read_text())["weights_sha256"] == model.card.weights_sha256


@pytest.mark.slow
def test_iu_reports_wiring_with_baseline(tmp_path):
    """Real Indiana University report texts (packaged with torchxrayvision): the notes model and the
    TF-IDF baseline are evaluated on the same split and reported side by side."""
    pytest.importorskip("mmdx.data.readers")
    out = tmp_path / "iu"
    assert main(["notes", "--iu-reports", "--config", "tiny", "--out", str(out), "--max-steps", "3"]) == 0
    card = load_card(out)
    assert card.target == "imaging_findings" and card.n_test > 500
    assert card.metrics["baseline_tfidf_logreg"]["n_cases"] == card.metrics["test"]["n_cases"] == card.n_test
    assert card.metrics["baseline_tfidf_logreg"]["macro_auroc"] > 0.8  # the reports name their findings
    assert "Indiana" in card.data_description and "synthetic" not in card.data_description
