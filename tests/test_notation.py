"""Clinical notation as clinicians write it (core/notation.py, core/units.py, core/vocabulary.py):
a fixture set of real notation, a property test over unit spellings, specimens, and the contract
with the cohort generator and trained models (canonical names and units never change)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st

from mmdx.core.case import Measurement, PatientCase
from mmdx.core.errors import AmbiguousSpecimen, CaseValidationError
from mmdx.core.units import EXAMPLE_UNITS, VARIABLES, canonical_variable, to_canonical, UnknownUnit

FIX = Path(__file__).parent / "fixtures" / "notation" / "real_notation.json"
T0 = "2024-03-01T08:00"


def _case(*entries) -> PatientCase:
    return PatientCase.from_dict({"case_id": "n", "demographics": {"age": 60},
                                  "measurements": [{"time": T0, **e} for e in entries]})


@pytest.mark.parametrize("item", json.loads(FIX.read_text())["entries"], ids=lambda it: json.dumps(it["written"], ensure_ascii=False))
def test_real_notation(item):
    expect = item["expect"]
    if isinstance(expect, dict) and "error" in expect:
        with pytest.raises(CaseValidationError) as e:
            _case(item["written"])
        assert [f for f, _ in e.value.problems] == [expect["error"]], e.value.problems
        return
    case = _case(item["written"])
    if isinstance(expect, dict) and "other" in expect:
        assert not case.measurements, "a result no model reads must not become a measurement"
        (r,) = case.other_results
        assert r.name == expect["other"] and r.why
        for k in ("code", "text"):
            if k in expect:
                assert getattr(r, k) == expect[k]
        if "specimen" in expect:
            assert r.specimen.value == expect["specimen"]
        assert case.not_read().startswith("present, not read by any model: " + expect["other"])
        return
    expected = expect if isinstance(expect, list) else [expect]
    assert not case.other_results
    assert len(case.measurements) == len(expected)
    for m, want in zip(case.measurements, expected):
        assert m.variable == want["variable"] and m.unit == VARIABLES[m.variable].unit
        assert m.value == pytest.approx(want["value"], rel=1e-3)
        if "specimen" in want:
            assert m.specimen.value == want["specimen"]


# ---- every accepted spelling of a unit converts to the same canonical value

def _micro(s: str, sign: str) -> str:
    return s.replace("u", sign) if s.startswith(("u", "/u", "10^3/u", "ug", "umol")) or "/uL" in s else s


# groups of spellings that mean the same unit, per variable (first = reference)
SAME = {
    "temperature": [("degC", "°C", "° C", "ºC", "C", "Cel", "deg C", "celsius"), ("degF", "°F", "F", "[degF]", "deg F", "fahrenheit")],
    "systolic_bp": [("mmHg", "mm Hg", "mm[Hg]", "mmhg", "MMHG", "torr")],
    "heart_rate": [("bpm", "/min", "beats/min", "{beats}/min", "min-1", "1/min", "beats per minute", "per min")],
    "respiratory_rate": [("/min", "breaths/min", "{breaths}/min", "insp/min", "bpm", "br/min")],
    "wbc": [("10^3/uL", "K/uL", "x10^9/L", "×10⁹/L", "10*3/uL", "10^9/L", "10³/µL", "10^3/μL", "thou/uL", "G/L", "10e9/L", "x 10^3/uL"),
            ("/uL", "/µL", "/μL", "/mm3", "/mm³", "/cumm", "/cu mm", "cells/uL", "cells/mm3", "{cells}/uL", "/cmm")],
    "platelets": [("10^3/uL", "K/uL", "x10^9/L", "10^9/L", "10*3/uL", "10³/mm³", "K/mm3"),
                  ("/uL", "/µL", "/μL", "/mm3", "/mm³", "cells/mm3")],
    "glucose": [("mg/dL", "mg/dl", "MG/DL"), ("mmol/L", "mmol/l", "mM")],
    "creatinine": [("umol/L", "µmol/L", "μmol/L", "umol/l", "micromol/L")],
    "sodium": [("mmol/L", "mEq/L", "meq/L", "mEq/l", "MEQ/L")],
    "alt": [("U/L", "IU/L", "[iU]/L", "u/L", "units/L", "U/l")],
    "weight": [("lb", "lbs", "[lb_av]", "pound", "pounds")],
    "troponin": [("ng/L", "pg/mL", "pg/ml")],
    "hemoglobin": [("g/dL", "g/dl", "gm/dL", "gm/dl", "gms/dL")],
    "d_dimer": [("ug/mL FEU", "µg/mL FEU", "mg/L FEU", "mcg/mL FEU", "ug/mL")],
}
# known factors between units (value in the first * factor = value in the second), the clinical conventions
FACTORS = [
    ("wbc", "/uL", "10^3/uL", 1e-3), ("platelets", "lakh/mm3", "10^3/uL", 100.0),
    ("glucose", "mmol/L", "mg/dL", 18.016), ("creatinine", "mg/dL", "umol/L", 88.42), ("bun", "mmol/L", "mg/dL", 1 / 0.357),
    ("calcium", "mmol/L", "mg/dL", 4.008), ("calcium", "mEq/L", "mmol/L", 0.5), ("bilirubin", "mg/dL", "umol/L", 17.1),
    ("lactate", "mmol/L", "mg/dL", 9.01), ("hemoglobin", "g/dL", "mmol/L", 0.6206), ("hemoglobin", "g/dL", "g/L", 10.0),
    ("troponin", "ng/mL", "ng/L", 1000.0), ("systolic_bp", "kPa", "mmHg", 7.50062), ("alt", "ukat/L", "U/L", 60.0),
    ("d_dimer", "ng/mL DDU", "ng/mL FEU", 2.0), ("spo2", "fraction", "%", 100.0), ("weight", "lb", "kg", 0.45359237),
]


@st.composite
def _spelling(draw, spelling: str) -> str:
    """Surface variants a spelling is written in: spaces around '/', micro sign or Greek mu for u."""
    s = spelling
    if "/" in s and draw(st.booleans()) and not s.startswith("{"):
        s = s.replace("/", draw(st.sampled_from([" / ", "/ ", " /"])), 1)
    if draw(st.booleans()):
        s = _micro(s, draw(st.sampled_from(["µ", "μ"])))
    return draw(st.sampled_from(["", " "])) + s + draw(st.sampled_from(["", " "]))


@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_every_accepted_spelling_gives_the_same_canonical_value(data):
    var = data.draw(st.sampled_from(sorted(SAME)))
    group = data.draw(st.sampled_from(SAME[var]))
    value = data.draw(st.floats(min_value=0.001, max_value=1e6, allow_nan=False))
    reference = to_canonical(var, value, group[0])
    spelling = data.draw(_spelling(data.draw(st.sampled_from(group))))
    assert to_canonical(var, value, spelling) == pytest.approx(reference, rel=1e-9), spelling


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_conversions_follow_the_clinical_factors(data):
    var, a, b, factor = data.draw(st.sampled_from(FACTORS))
    value = data.draw(st.floats(min_value=0.001, max_value=1e5, allow_nan=False))
    assert to_canonical(var, value, a) == pytest.approx(to_canonical(var, value * factor, b), rel=1e-6)


def test_every_example_unit_converts_and_junk_is_refused():
    for var, units in EXAMPLE_UNITS.items():
        for u in units:
            to_canonical(var, 1.0, u)
    for var, u in [("sodium", "furlong"), ("glucose", "mmHg"), ("ph", "mmol/L"), ("platelets", "%"), ("temperature", "kg"),
                   ("heart_rate", "mg"), ("wbc", "x10^9")]:
        with pytest.raises(UnknownUnit):
            to_canonical(var, 1.0, u)


def test_temperature_offsets_are_not_scales():
    assert to_canonical("temperature", 98.6, "°F") == pytest.approx(37.0)
    assert to_canonical("temperature", 32, "F") == pytest.approx(0.0, abs=1e-9)
    assert to_canonical("temperature", 310.15, "K") == pytest.approx(37.0)


# ---- the contract: names, units and the generator's mapping stay as they were

CANONICAL = {  # every variable of core/units.py before this vocabulary, with its canonical unit
    "heart_rate": "bpm", "systolic_bp": "mmHg", "diastolic_bp": "mmHg", "respiratory_rate": "/min", "temperature": "degC",
    "spo2": "%", "weight": "kg", "glucose": "mg/dL", "creatinine": "mg/dL", "bun": "mg/dL", "sodium": "mmol/L",
    "potassium": "mmol/L", "chloride": "mmol/L", "bicarbonate": "mmol/L", "calcium": "mg/dL", "albumin": "g/dL",
    "bilirubin": "mg/dL", "alt": "U/L", "ast": "U/L", "lactate": "mmol/L", "crp": "mg/L", "procalcitonin": "ng/mL",
    "bnp": "pg/mL", "nt_probnp": "pg/mL", "troponin": "ng/mL", "hba1c": "%", "ph": "pH", "pco2": "mmHg", "po2": "mmHg",
    "wbc": "10^3/uL", "hemoglobin": "g/dL", "hematocrit": "%", "platelets": "10^3/uL", "neutrophils": "%",
    "d_dimer": "ug/mL FEU", "urine_nitrite": "{pos}", "urine_leukocyte_esterase": "{grade}",
}
# clinosim's analyte names -> what canonical_variable made of them before (the generator skips None)
SIMULATOR = {'ALP': None, 'ALT': 'alt', 'APTT': None, 'AST': 'ast', 'Albumin': 'albumin', 'BNP': 'bnp', 'BUN': 'bun', 'CK_MB': None,
             'CRP': 'crp', 'Ca': 'calcium', 'Cl': 'chloride', 'Creatinine': 'creatinine', 'D_dimer': 'd_dimer', 'Fibrinogen': None,
             'GGT': None, 'Glucose': 'glucose', 'HCO3': 'bicarbonate', 'HDL': None, 'Hb': 'hemoglobin', 'HbA1c': 'hba1c',
             'Hct': 'hematocrit', 'K': 'potassium', 'LDH': None, 'LDL': None, 'Lactate': 'lactate', 'Na': 'sodium',
             'PCT': 'procalcitonin', 'PT': None, 'PT_INR': None, 'Plt': 'platelets', 'TC': None, 'TG': None, 'TP': None,
             'T_Bil': None, 'Troponin_I': 'troponin', 'WBC': 'wbc', 'eGFR': None, 'pCO2': 'pco2', 'pH': 'ph', 'pO2': 'po2',
             'NT_proBNP': 'nt_probnp', 'Urine_pH': None, 'Urine_specific_gravity': None, 'Urine_protein': None,
             'Urine_glucose': None, 'Urine_ketones': None, 'Urine_blood': None, 'Urine_nitrite': 'urine_nitrite',
             'Urine_leukocyte_esterase': 'urine_leukocyte_esterase', 'Total_bilirubin': 'bilirubin', 'Total_protein': None,
             'Troponin': 'troponin'}


def test_canonical_names_and_units_are_kept():
    assert {n: s.unit for n, s in VARIABLES.items()} == CANONICAL


def test_simulator_names_map_as_before():
    assert {n: canonical_variable(n) for n in SIMULATOR} == SIMULATOR


def test_existing_case_files_load_with_default_specimens():
    root = Path(__file__).resolve().parents[1] / "data" / "demo" / "cases"
    files = sorted(root.glob("*.json"))
    assert files
    for f in files:
        case = PatientCase.load(f)
        for m in case.measurements:
            spec = VARIABLES[m.variable]
            assert m.specimen == spec.default_specimen
        assert PatientCase.from_json(case.to_json(), base_dir=case.base_dir) == case


# ---- specimens

def test_urine_ph_never_becomes_arterial_ph_and_csf_glucose_never_blood_glucose():
    case = _case({"variable": "pH", "value": 6.0, "specimen": "urine"}, {"variable": "glucose", "value": 45, "unit": "mg/dL", "specimen": "CSF"},
                 {"variable": "pH", "value": 7.31}, {"variable": "glucose", "value": 110, "unit": "mg/dL"})
    assert [(m.variable, m.specimen.value) for m in case.measurements] == [("ph", "arterial_blood"), ("glucose", "serum")]
    assert [(r.name, r.specimen.value, r.code) for r in case.other_results] == [("pH", "urine", "5803-2"), ("glucose", "csf", "2342-4")]


def test_ambiguous_specimen_is_a_typed_error_naming_the_field():
    with pytest.raises(CaseValidationError) as e:
        _case({"variable": "heart_rate", "value": 80, "unit": "bpm"}, {"variable": "pCO2", "value": 45, "unit": "mmHg", "specimen": "blood"})
    assert e.value.problems[0][0] == "measurements.1.specimen" and "which specimen" in e.value.problems[0][1]
    from pydantic import ValidationError

    with pytest.raises(ValidationError) as e2:
        Measurement(time=T0, variable="ph", value=7.3, unit="pH", specimen="blood")
    assert isinstance(e2.value.errors()[0]["ctx"]["error"], AmbiguousSpecimen)


def test_error_fields_name_the_input_entry_after_a_blood_pressure_split():
    with pytest.raises(CaseValidationError) as e:
        _case({"variable": "BP", "value": "145/95"}, {"variable": "sodium", "value": 400, "unit": "mmol/L"})
    assert e.value.problems[0][0] == "measurements.1.value"


def test_qualitative_and_unread_results_are_kept_and_reach_the_answer():
    import sys

    sys.path.insert(0, str(Path(__file__).parent))
    from agent_fakes import FAKE_TOOLS
    from mmdx.agent.graph import DiagnosticAgent
    from llm_fakes import ScriptedLLM
    from mmdx.tools.runner import InProcessRunner

    case = _case({"variable": "WBC", "value": "elevated"}, {"variable": "creatine kinase", "value": 2400, "unit": "U/L"},
                 {"variable": "heart_rate", "value": 110, "unit": "bpm"})
    assert PatientCase.from_json(case.to_json()) == case  # kept through the JSON round trip
    agent = DiagnosticAgent(ScriptedLLM([{"tools": ["labs"]}, {"tools": []},
                                         {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7}]}]),
                            runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()), tools=FAKE_TOOLS)
    dx = agent.diagnose(case)
    line = next(d for d in dx.degraded if d.startswith("present, not read by any model"))
    assert "WBC elevated" in line and "creatine kinase 2400 U/L" in line
    assert "present, not read by any model" in dx.summary()


def test_the_readme_vignette_validates_as_the_readme_shows(capsys):
    from mmdx.cli import main

    f = "tests/fixtures/notation/vignette_case.json"
    root = Path(__file__).resolve().parents[1]
    import os

    here = os.getcwd()
    os.chdir(root)
    try:
        assert main(["case", "validate", f]) == 0
    finally:
        os.chdir(here)
    out = capsys.readouterr().out.strip()
    readme = (root / "README.md").read_text()
    assert out and out in readme, out


@settings(max_examples=400, deadline=None)
@given(var=st.sampled_from(sorted(VARIABLES)), unit=st.one_of(st.text(max_size=12), st.sampled_from(
    ["{", "(", "10^", "1e999/L", "/0", "mg/(dL", "**", "x10^", "K/", "°", "{beats", "mmHg^mmHg", "1/0/L", "__import__"])))
def test_any_unit_text_converts_or_is_unknown(var, unit):
    import math

    try:
        v = to_canonical(var, 1.0, unit)
    except UnknownUnit:
        return
    assert math.isfinite(v)
