"""`mmdx case import`: a flat CSV (wide or long) or a FHIR Observation bundle -> a case, every
unmapped column or code named and kept (tests/fixtures/import/)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdx.cli import main
from mmdx.core.case import PatientCase
from mmdx.core.case_import import import_case
from mmdx.core.errors import CaseValidationError

FIX = Path(__file__).parent / "fixtures" / "import"


def _by_var(case):
    """variable -> its first measurement"""
    out = {}
    for m in case.measurements:
        out.setdefault(m.variable, m)
    return out


def test_wide_csv_with_units_in_headers_and_blood_pressure_strings():
    case, unmapped = import_case(FIX / "vitals_wide.csv", age=64, sex="female")
    m = _by_var(case)
    assert m["temperature"].value == pytest.approx(38.5) and m["platelets"].value == pytest.approx(250)
    assert m["wbc"].value == pytest.approx(15.6) and m["spo2"].value == 91
    bp = sorted((x.time.hour, x.variable, x.value) for x in case.measurements if x.variable.endswith("_bp"))
    assert bp == [(8, "diastolic_bp", 95), (8, "systolic_bp", 145), (14, "diastolic_bp", 88), (14, "systolic_bp", 138)]
    assert [u.split(" (")[0].split(":")[0] for u in unmapped] == ["Urine pH", "CK", "Troponin I"]
    assert {r.name for r in case.other_results} == {"Urine pH", "CK", "Troponin I"}


def test_long_csv_reads_specimens_and_keeps_what_no_model_reads():
    case, unmapped = import_case(FIX / "labs_long.csv", age=50)
    m = _by_var(case)
    assert m["wbc"].value == pytest.approx(15.6) and m["sodium"].specimen.value == "serum"
    assert m["ph"].specimen.value == "arterial_blood" and "glucose" not in m  # CSF glucose is not blood glucose
    assert any(u.startswith("glucose (LOINC 2342-4)") for u in unmapped)
    assert any(u.startswith("WBC: qualitative") for u in unmapped) and any(u.startswith("FEV1") for u in unmapped)


def test_fhir_bundle_by_loinc_with_components_and_patient():
    case, unmapped = import_case(FIX / "observations_bundle.json")
    assert case.case_id == "fhir:pt-17" and case.demographics.sex == "female" and case.demographics.age == pytest.approx(71.7, abs=0.1)
    m = _by_var(case)
    assert m["temperature"].value == 38.9 and m["systolic_bp"].value == 145 and m["diastolic_bp"].value == 95
    assert m["spo2"].value == 91 and m["wbc"].value == pytest.approx(15.6) and m["urine_nitrite"].value == 1
    assert "ph" not in m  # urine pH by its LOINC code stays urine pH
    assert {r.code for r in case.other_results} == {"5803-2", "2157-6", None}
    assert any("Local sepsis score" in u for u in unmapped)


def test_cli_writes_a_case_that_validates(tmp_path, capsys):
    out = tmp_path / "case.json"
    assert main(["case", "import", str(FIX / "observations_bundle.json"), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["measurements"] == 6 and len(summary["unmapped"]) == 3
    assert main(["case", "validate", str(out)]) == 0
    assert "present, not read by any model" in capsys.readouterr().out
    assert PatientCase.load(out).other_results


def test_bad_inputs_name_the_problem(tmp_path):
    with pytest.raises(CaseValidationError, match="demographics.age"):
        import_case(FIX / "vitals_wide.csv")  # no age anywhere
    bad = tmp_path / "bad.csv"
    bad.write_text("time,variable,value,unit\n2024-01-01T00:00,glucose,5.5,\n")
    with pytest.raises(CaseValidationError) as e:
        import_case(bad, age=40)
    assert e.value.problems[0][0] == "measurements.0.unit"  # glucose without a unit: mg/dL or mmol/L?
    nobody = tmp_path / "x.json"
    nobody.write_text(json.dumps({"resourceType": "Patient"}))
    with pytest.raises(CaseValidationError, match="expected a FHIR Bundle"):
        import_case(nobody, age=40)
