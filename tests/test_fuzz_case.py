"""Property-based fuzzing of the case boundary: malformed input is a typed error naming a field, never a crash.

The default tier tries about 900 generated inputs; `-m slow` adds 10,000 generated cases.
"""
from __future__ import annotations

import io
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from mmdx.core.case import PatientCase
from mmdx.core.errors import CaseValidationError, CorruptInput
from mmdx.core.images import load_image
from mmdx.core.units import VARIABLES

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
LONG = settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])

junk = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                 st.text(max_size=30), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers(), max_size=2))
variables = st.one_of(st.sampled_from(sorted(VARIABLES)), st.text(max_size=12))
units = st.one_of(st.sampled_from(sorted({s.unit for s in VARIABLES.values()} | {"mmol/L", "degF", "g/L", "furlong"})), st.text(max_size=6))
values = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10**6, 10**6), junk)
times = st.one_of(st.datetimes().map(lambda d: d.isoformat()), st.text(max_size=12), junk)
measurement = st.fixed_dictionaries({"time": times, "variable": variables, "value": values, "unit": units})
note = st.fixed_dictionaries({"text": st.one_of(st.text(max_size=200), st.just(""), st.just("   "), junk)},
                             optional={"kind": st.one_of(st.text(max_size=70), junk)})
case_dict = st.fixed_dictionaries(
    {"case_id": st.one_of(st.text(max_size=20), st.just("ok-1"), junk),
     "demographics": st.one_of(st.fixed_dictionaries({"age": values, "sex": st.one_of(st.sampled_from(["female", "male", "x"]), junk)}), junk)},
    optional={"measurements": st.one_of(st.lists(measurement, max_size=5), junk),
              "notes": st.one_of(st.lists(note, max_size=3), junk),
              "cxr": st.one_of(st.fixed_dictionaries({"path": st.one_of(st.text(max_size=12), st.just("a.png"))}), junk),
              "extra_field": junk})


def _check(data) -> None:
    try:
        case = PatientCase.from_dict(data)
    except CaseValidationError as e:
        assert e.problems and all(isinstance(f, str) and f and m for f, m in e.problems)
        return
    # accepted: it must be finite, canonical and round-trip
    for m in case.measurements:
        assert math.isfinite(m.value) and m.unit == VARIABLES[m.variable].unit
    assert PatientCase.from_json(case.to_json()) == case


@FAST
@given(case_dict)
def test_generated_cases_never_crash(data):
    _check(data)


@pytest.mark.slow
@LONG
@given(case_dict)
def test_generated_cases_never_crash_long(data):
    _check(data)


@FAST
@given(st.binary(max_size=300))
def test_garbage_bytes_as_case_file(raw):
    with pytest.raises(CaseValidationError):
        PatientCase.from_json(raw)


def _png_bytes(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


@FAST
@given(h=st.integers(1, 64), w=st.integers(1, 64), c=st.sampled_from([1, 3, 4]), cut=st.integers(0, 400), garbage=st.binary(max_size=40))
def test_truncated_or_corrupt_images(tmp_path_factory, h, w, c, cut, garbage):
    rng = np.random.default_rng(h * 100 + w)
    arr = rng.integers(0, 255, size=(h, w) if c == 1 else (h, w, c), dtype=np.uint8)
    raw = _png_bytes(arr)
    variants = [raw, raw[: max(1, len(raw) - cut)], garbage, raw[:20] + garbage]
    d = tmp_path_factory.mktemp("img")
    for i, blob in enumerate(variants):
        p = d / f"x{i}.png"
        p.write_bytes(blob)
        try:
            out = load_image(p)
        except CorruptInput as e:
            assert e.field == "cxr.path"
            continue
        assert out.ndim == 2 and out.dtype == np.float32 and 0 <= out.min() and out.max() <= 1


def test_unit_conversion_and_impossible_values_name_the_field():
    ok = PatientCase.from_dict({"case_id": "u", "demographics": {"age": 50},
                                "measurements": [{"time": "2024-01-01T00:00", "variable": "temperature", "value": 101.3, "unit": "degF"}]})
    assert ok.measurements[0].value == pytest.approx(38.5, abs=0.01) and ok.measurements[0].original_unit == "degF"
    with pytest.raises(CaseValidationError) as e:
        PatientCase.from_dict({"case_id": "u", "demographics": {"age": 50},
                               "measurements": [{"time": "2024-01-01T00:00", "variable": "glucose", "value": 300, "unit": "mmol/L"}]})
    assert e.value.problems[0][0] == "measurements.0.value" and "impossible value for glucose" in e.value.problems[0][1]


def test_case_validate_cli(tmp_path):
    from mmdx.cli import main

    good = tmp_path / "good.json"
    good.write_text(json.dumps({"case_id": "g", "demographics": {"age": 40, "sex": "male"}, "notes": [{"text": "cough"}]}))
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"case_id": "b", "demographics": {"age": 400}, "notes": [{"text": ""}]}))
    assert main(["case", "validate", str(good)]) == 0
    assert main(["case", "validate", str(good), str(bad)]) == 1
    (tmp_path / "trunc.json").write_text('{"case_id": "t", "demo')
    assert main(["case", "validate", str(tmp_path / "trunc.json")]) == 1
