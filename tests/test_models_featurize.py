"""PatientCase -> tensors (models/featurize.py)."""
from datetime import datetime, timedelta

import numpy as np
import pytest
from PIL import Image

from mmdx.core.case import PatientCase
from mmdx.core.errors import CorruptInput, ModalityAbsent
from mmdx.models.build import load_config
from mmdx.models.lab_transformer import LabConfig
from mmdx.models.featurize import (collate, cxr_features, featurize, fit_lab_stats, lab_features,
                                   note_text)

T0 = datetime(2024, 3, 1, 8, 0)
VAR_INDEX = {v: i for i, v in enumerate(LabConfig().variables)}


def _case(tmp_path, image=True, labs=True, notes=True, n_meas=4):
    data = {"case_id": "c1", "demographics": {"age": 70, "sex": "female"}}
    if image:
        yy, xx = np.mgrid[0:40, 0:40]  # smooth, like anatomy (uniform noise is refused as not a radiograph)
        arr = (120 + 80 * np.sin(xx / 6.0) * np.cos(yy / 9.0) + np.random.default_rng(0).normal(0, 8, (40, 40))).clip(0, 255).astype(np.uint8)
        Image.fromarray(arr).save(tmp_path / "c1.png")
        data["cxr"] = {"path": "c1.png"}
    if labs:
        data["measurements"] = [
            {"time": (T0 + timedelta(hours=2 * i)).isoformat(), "variable": "wbc", "value": 10 + i, "unit": "10^3/uL"}
            for i in range(n_meas)
        ] + [{"time": T0.isoformat(), "variable": "temp", "value": 101.3, "unit": "degF"}]
    if notes:
        data["notes"] = [{"kind": "chief_complaint", "text": "cough"}, {"kind": "subjective", "text": "fever for 3 days"}]
    return PatientCase.from_dict(data, base_dir=tmp_path)


def test_labs_tokens_times_and_normalisation(tmp_path):
    case = _case(tmp_path)
    stats = fit_lab_stats([case])
    assert stats["wbc"][0] == pytest.approx(11.5)  # median of 10, 11, 12, 13
    item = lab_features(case, stats, max_tokens=64)
    assert len(item.var_idx) == 5
    assert item.times[0] == 0.0 and item.times.max() == pytest.approx(6.0)  # hours since the first measurement
    assert VAR_INDEX["temperature"] in item.var_idx.tolist()  # alias + degF canonicalised by PatientCase
    wbc = item.values[item.var_idx == VAR_INDEX["wbc"]]
    np.testing.assert_allclose(np.median(wbc), 0.0, atol=1e-6)
    assert item.demo.tolist() == pytest.approx([0.7, 1.0, 0.0, 0.0])


def test_labs_truncation_keeps_most_recent_and_says_so(tmp_path):
    case = _case(tmp_path, n_meas=10)
    stats = fit_lab_stats([case])
    item = lab_features(case, stats, max_tokens=3)
    assert len(item.var_idx) == 3 and "most recent 3" in item.notes[0]
    assert item.times.tolist() == [0.0, 2.0, 4.0]  # hours 14, 16, 18 re-based to the first kept
    batch = collate("labs", [item, lab_features(case, stats, 64)], load_config("labs", "tiny"))
    assert batch["mask"].sum(1).tolist() == [3, 11]


def test_unseen_variable_is_noted(tmp_path):
    item = lab_features(_case(tmp_path), {"wbc": (10.0, 2.0)}, 64)
    assert any("temperature" in n for n in item.notes)


def test_image_resized_and_standardised(tmp_path):
    item = cxr_features(_case(tmp_path), 32)
    assert item.image.shape == (1, 32, 32)
    assert abs(item.image.mean()) < 1e-4 and item.image.std() == pytest.approx(1.0, rel=1e-3)


def test_corrupt_image_raises_corrupt_input(tmp_path):
    case = _case(tmp_path)
    (tmp_path / "c1.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(CorruptInput) as e:
        cxr_features(case, 32)
    assert e.value.field == "cxr.path"


def test_notes_joined_with_kind_headers(tmp_path):
    assert note_text(_case(tmp_path)) == "[chief complaint] cough\n[subjective] fever for 3 days"


@pytest.mark.parametrize("kind,drop,field", [("cxr", "image", "cxr"), ("labs", "labs", "measurements"), ("notes", "notes", "notes")])
def test_missing_modality(tmp_path, kind, drop, field):
    case = _case(tmp_path, **{drop: False})
    with pytest.raises(ModalityAbsent) as e:
        featurize(kind, case, load_config(kind, "tiny"), {})
    assert e.value.field == field


def test_labs_read_only_the_models_vocabulary_and_say_what_was_left(tmp_path):
    case = _case(tmp_path)
    item = lab_features(case, fit_lab_stats([case]), max_tokens=64, variables=("wbc", "sodium"))
    assert item.var_idx.tolist() == [0, 0, 0, 0]  # wbc is index 0 of this vocabulary; temperature is not in it
    assert any("present, not read by this model: temperature" in n for n in item.notes)
    with pytest.raises(ModalityAbsent):
        lab_features(case, {}, max_tokens=64, variables=("sodium",))
