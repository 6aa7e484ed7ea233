"""Tests of the synthetic chest radiograph renderer (mmdx.data.cxr_render).

Effect checks measure the rendered pixels (not the parameters) averaged over ~30 renders, so they
fail if a finding stops showing; the separability check fails if a finding becomes trivially visible
in a global statistic. The first test run builds the anatomy cache from the torchxrayvision data
folder (~15 s CPU); later runs read it from mmdx home.
"""
from __future__ import annotations

import time

import numpy as np
import pytest

from mmdx.data.cxr_render import load_anatomy, render_cxr, render_cxr_detailed
from mmdx.core.labels import IMAGING_FINDINGS

N = 30  # renders per group in the effect checks


def _renders(findings, seed, n=N, size=128):
    rng = np.random.default_rng(seed)
    return [render_cxr_detailed(findings, rng, size=size) for _ in range(n)]


def _auc(neg: np.ndarray, pos: np.ndarray) -> float:
    """P(pos > neg) over all pairs: 0.5 = the statistic cannot tell the groups apart."""
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def test_anatomy_is_real_and_filtered():
    a = load_anatomy()
    assert 300 <= len(a.masks) <= 517  # 517 real masks less empty / cut / implausible ones
    assert a.masks.shape[1:] == (2, 128, 128) and a.masks.dtype == np.uint8
    assert len(a.cons_boxes) > 9000 and len(a.eff_boxes) == 153 and len(a.cardio_boxes) == 146
    assert np.all((a.cons_boxes >= 0) & (a.cons_boxes <= 1))


@pytest.mark.parametrize("size", [64, 128])
@pytest.mark.parametrize("findings", [(), ("no_finding",), ("consolidation", "effusion", "cardiomegaly",
                                                             "hyperinflation", "edema")])
def test_shape_dtype_range(findings, size):
    img = render_cxr(findings, np.random.default_rng(1), size=size, age=60, sex="female")
    assert img.shape == (size, size) and img.dtype == np.uint8
    assert int(img.max()) - int(img.min()) > 100  # a radiograph, not a flat field


def test_deterministic_for_a_generator_state():
    a = render_cxr(["edema", "effusion"], np.random.default_rng(42))
    b = render_cxr(["edema", "effusion"], np.random.default_rng(42))
    c = render_cxr(["edema", "effusion"], np.random.default_rng(43))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a.astype(int) - c).mean() > 2


def test_bad_input_raises_valueerror_naming_the_field():
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="pneumothorax"):
        render_cxr(["pneumothorax"], rng)
    with pytest.raises(ValueError, match="findings"):
        render_cxr(["no_finding", "edema"], rng)
    with pytest.raises(ValueError, match="findings"):
        render_cxr("edema", rng)  # a bare string is a sequence of letters, not of findings
    with pytest.raises(ValueError, match="sex"):
        render_cxr([], rng, sex="F")
    with pytest.raises(ValueError, match="age"):
        render_cxr([], rng, age=float("nan"))
    with pytest.raises(ValueError, match="size"):
        render_cxr([], rng, size=8)


def test_ctr_follows_the_cardiomegaly_label():
    for f in IMAGING_FINDINGS:
        for r in _renders((f,), seed=5, n=10):
            assert (r.ctr > 0.5) == (f == "cardiomegaly"), (f, r.ctr)


def _lung_rows(r, lo, hi):
    rows = np.flatnonzero((r.lung_mask > 0.5).any(1))
    top, bot = rows.min(), rows.max()
    return int(top + lo * (bot - top)), int(top + hi * (bot - top)) + 1


def _lower_minus_upper(r):
    """Mean intensity of the lowest third of the lung fields minus the upper third (exposure-free)."""
    img, lung = r.image.astype(float), r.lung_mask > 0.5
    a0, a1 = _lung_rows(r, 0.67, 1.0)
    b0, b1 = _lung_rows(r, 0.1, 0.4)
    return img[a0:a1][lung[a0:a1]].mean() - img[b0:b1][lung[b0:b1]].mean()


def test_effusion_brightens_the_lung_bases():
    normal = np.array([_lower_minus_upper(r) for r in _renders(("no_finding",), seed=10)])
    eff = np.array([_lower_minus_upper(r) for r in _renders(("effusion",), seed=11)])
    assert eff.mean() - normal.mean() > 5, (eff.mean(), normal.mean())


def _silhouette_ratio(r):
    """Measured CTR: width of the bright central run at heart level / width of the lung fields."""
    img = r.image.astype(float)
    lung = r.lung_mask > 0.5
    r0, r1 = _lung_rows(r, 0.62, 0.85)
    cols = np.flatnonzero(lung[r0:r1].any(0))
    thorax = cols.max() - cols.min() + 1
    prof = img[r0:r1].mean(0)  # (S,) row-band profile
    inner = prof[cols.min():cols.max() + 1]
    dark = np.percentile(inner, 15)
    mid = (cols.min() + cols.max()) // 2
    bright = prof[mid - 3:mid + 8].max()
    thr = (dark + bright) / 2
    left = mid
    while left > cols.min() and prof[left - 1] > thr:
        left -= 1
    right = mid
    while right < cols.max() and prof[right + 1] > thr:
        right += 1
    return (right - left + 1) / thorax


def test_cardiomegaly_widens_the_central_silhouette():
    normal = [_renders(("no_finding",), seed=20)]
    big = [_renders(("cardiomegaly",), seed=21)]
    m_n = np.array([_silhouette_ratio(r) for r in normal[0]])
    m_c = np.array([_silhouette_ratio(r) for r in big[0]])
    assert m_c.mean() - m_n.mean() > 0.06, (m_c.mean(), m_n.mean())
    # the measured ratio tracks the rendered CTR across both groups
    true = np.array([r.ctr for r in normal[0] + big[0]])
    assert np.corrcoef(true, np.concatenate([m_n, m_c]))[0, 1] > 0.6


def _dark_fraction(r):
    img = r.image.astype(float)
    lo, hi = np.percentile(img, [2, 98])
    return float((img < lo + 0.3 * (hi - lo)).mean())


def test_hyperinflation_enlarges_the_dark_lung_area():
    normal = np.array([_dark_fraction(r) for r in _renders(("no_finding",), seed=30)])
    hyper = np.array([_dark_fraction(r) for r in _renders(("hyperinflation",), seed=31)])
    assert hyper.mean() - normal.mean() > 0.02, (hyper.mean(), normal.mean())


def test_consolidation_is_not_separable_by_mean_intensity():
    normal = np.array([r.image.mean() for r in _renders(("no_finding",), seed=40, n=40)])
    cons = np.array([r.image.mean() for r in _renders(("consolidation",), seed=41, n=40)])
    auc = _auc(normal, cons)
    assert 0.25 < auc < 0.75, auc
    assert cons.min() < normal.max() and normal.min() < cons.max()  # the ranges overlap


def test_render_speed_guard():
    rng = np.random.default_rng(0)
    render_cxr(["edema"], rng)  # warm caches
    t = time.process_time()
    for f in IMAGING_FINDINGS * 3:
        render_cxr([f], rng)
    per = (time.process_time() - t) / (3 * len(IMAGING_FINDINGS))
    assert per < 0.06, f"{per * 1000:.1f} ms CPU per 128x128 render"  # loose: the machine is shared
