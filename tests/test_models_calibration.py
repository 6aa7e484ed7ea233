"""Temperature scaling, thresholds, metrics (models/calibration.py)."""
import numpy as np
import pytest

from mmdx.models.calibration import apply_temperature, auprc, auroc, ece, evaluate, fit_temperature, fit_thresholds, nll


def _overconfident(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    true_logits = rng.normal(0, 1.5, size=(n, 3))
    y = (rng.random((n, 3)) < 1 / (1 + np.exp(-true_logits))).astype(np.float32)
    return true_logits * np.array([4.0, 1.0, 0.3]), y  # label 0 overconfident, 2 underconfident


def test_temperature_recovers_the_miscalibration_and_lowers_nll():
    logits, y = _overconfident()
    temps = fit_temperature(logits[:1000], y[:1000])
    np.testing.assert_allclose(temps, [4.0, 1.0, 0.3], rtol=0.2)
    before, after = apply_temperature(logits[1000:], np.ones(3)), apply_temperature(logits[1000:], temps)
    assert nll(after, y[1000:]) < nll(before, y[1000:]) - 0.05
    assert ece(after, y[1000:]) < ece(before, y[1000:])


def test_thresholds_in_unit_interval_and_maximise_f1():
    logits, y = _overconfident()
    probs = apply_temperature(logits, np.ones(3))
    thr = fit_thresholds(probs, y)
    assert ((thr >= 0) & (thr <= 1)).all()
    def f1(t, j):
        pred = probs[:, j] >= t
        return 2 * (pred & (y[:, j] == 1)).sum() / (pred.sum() + y[:, j].sum())
    for j in range(3):
        assert all(f1(thr[j], j) >= f1(t, j) - 1e-12 for t in np.linspace(0, 1, 21))
    assert fit_thresholds(probs, np.zeros_like(y)).tolist() == [0.5, 0.5, 0.5]  # no positives


def test_evaluate_has_cis_around_the_estimate():
    logits, y = _overconfident(600)
    probs = apply_temperature(logits, np.ones(3))
    m = evaluate(probs, y, ("a", "b", "c"), fit_thresholds(probs, y), n_boot=100)
    for row in m["per_label"].values():
        lo, hi = row["auroc_ci95"]
        assert lo <= row["auroc"] <= hi and 0.5 < row["auroc"] <= 1.0
        assert row["auprc_ci95"][0] <= row["auprc"] <= row["auprc_ci95"][1]
    y1 = y.copy()
    y1[:, 2] = 0  # one class only: no AUROC, excluded from the macro average
    m1 = evaluate(probs, y1, ("a", "b", "c"))
    assert "auroc" not in m1["per_label"]["c"] and m1["macro_auroc"] is not None


def test_rank_auroc_and_auprc_match_sklearn():
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(3)
    y = (rng.random(300) < 0.3).astype(float)
    p = np.round(rng.random(300) * 0.5 + 0.4 * y, 2)  # rounded: many ties
    assert auroc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert auprc(y, p) == pytest.approx(average_precision_score(y, p), abs=1e-12)
