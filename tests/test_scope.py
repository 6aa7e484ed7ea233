"""Honest scope: red-flag vital signs by rule (NEWS2), no all-clear, unusual inputs of any modality."""
from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from mmdx.agent.graph import DiagnosticAgent
from mmdx.agent.scope import news2_points, vital_signs
from mmdx.core.case import PatientCase
from mmdx.tools.runner import InProcessRunner

from agent_fakes import FAKE_TOOLS, FakeLabs, FakeNotes, make_case
from llm_fakes import ScriptedLLM

PLAN = {"tools": ["labs", "notes"]}


@pytest.mark.parametrize("variable,value,points", [
    ("respiratory_rate", 8, 3), ("respiratory_rate", 9, 1), ("respiratory_rate", 20, 0), ("respiratory_rate", 21, 2),
    ("respiratory_rate", 25, 3), ("spo2", 91, 3), ("spo2", 92, 2), ("spo2", 95, 1), ("spo2", 96, 0),
    ("systolic_bp", 90, 3), ("systolic_bp", 91, 2), ("systolic_bp", 110, 1), ("systolic_bp", 111, 0), ("systolic_bp", 219, 0),
    ("systolic_bp", 220, 3), ("heart_rate", 40, 3), ("heart_rate", 41, 1), ("heart_rate", 90, 0), ("heart_rate", 91, 1),
    ("heart_rate", 130, 2), ("heart_rate", 131, 3), ("temperature", 35.0, 3), ("temperature", 35.1, 1),
    ("temperature", 36.1, 0), ("temperature", 38.1, 1), ("temperature", 39.1, 2), ("temperature", 41.0, 2),
])
def test_news2_chart(variable, value, points):
    """RCP 2017 NEWS2 chart 1, at every band edge."""
    assert news2_points(variable, value) == points


def vignette(vitals: dict[str, float], case_id="v1", note="Short of breath since this morning.") -> PatientCase:
    """A hand-written case in the style of a published vignette (not a real patient)."""
    t0 = datetime(2024, 5, 1, 10)
    units = {"heart_rate": "bpm", "systolic_bp": "mmHg", "diastolic_bp": "mmHg", "respiratory_rate": "/min",
             "temperature": "degC", "spo2": "%", "wbc": "10^3/uL"}
    meas = [{"time": (t0 + timedelta(minutes=5)).isoformat(), "variable": v, "value": x, "unit": units[v]} for v, x in vitals.items()]
    return PatientCase.from_dict({"case_id": case_id, "demographics": {"age": 58, "sex": "male"}, "measurements": meas,
                                  "notes": [{"kind": "triage", "text": note}], "origin": "hand-written vignette (synthetic)"})


class NothingCoveredLabs(FakeLabs):
    """The tools call it 'none of the conditions': the lowest-threshold label, the old all-clear."""
    probs = {"no_acute_finding": 0.8}


class NothingCoveredNotes(FakeNotes):
    probs = {"no_acute_finding": 0.7}


NOTHING = {**FAKE_TOOLS, "labs": NothingCoveredLabs, "notes": NothingCoveredNotes}


def run(case, tools=NOTHING, script=None):
    llm = ScriptedLLM(script or [PLAN])
    agent = DiagnosticAgent(llm, runner=InProcessRunner(tool_factory=lambda n: tools[n]()), tools=tools)
    stages: list[tuple[str, int]] = []
    final = agent.run(case, progress=lambda e: stages.append((e["stage"], len(llm.calls))))
    return final["diagnosis"], stages


TAMPONADE = {"systolic_bp": 85, "diastolic_bp": 45, "heart_rate": 125, "respiratory_rate": 24, "spo2": 96, "temperature": 36.9}
HEAT_STROKE = {"temperature": 41.0, "heart_rate": 170, "systolic_bp": 118, "respiratory_rate": 22, "spo2": 97}


@pytest.mark.parametrize("vitals,flagged", [(TAMPONADE, "systolic blood pressure 85 mmHg"), (HEAT_STROKE, "pulse 170 bpm")])
def test_red_flags_overrule_an_all_clear(vitals, flagged):
    dx, stages = run(vignette(vitals))
    assert dx.urgent_review and dx.abstained
    nat = next(e for e in dx.differential if e.diagnosis == "no_acute_finding")
    assert nat.probability >= nat.threshold and not nat.likely and "normal vital signs" in nat.held_back
    assert dx.rationale.startswith("Urgent clinical review is needed: red-flag vital signs (")
    assert flagged in dx.rationale
    assert "None of the 6 conditions mmdx covers reaches its threshold, so none of them explains these signs." in dx.rationale
    assert "no acute finding" not in dx.rationale.lower() and "no acute finding" not in dx.summary().lower()
    assert "URGENT REVIEW" in dx.summary() and "NEWS2 (Royal College of Physicians, 2017)" in dx.summary()
    # checked by rule before any model spoke
    assert stages[0] == ("triage", 0)


def test_heat_stroke_temperature_is_flagged_by_mmdx_own_rule():
    vitals = vital_signs(vignette({"temperature": 41.0, "heart_rate": 88, "systolic_bp": 125, "respiratory_rate": 16, "spo2": 98}))
    assert [f.rule for f in vitals.red_flags] == ["mmdx rule (not NEWS2): temperature >= 40 degC is hyperpyrexia"]


def test_aggregate_of_five_is_a_red_flag_without_any_three():
    vitals = vital_signs(vignette({"heart_rate": 115, "respiratory_rate": 22, "temperature": 38.5, "spo2": 97, "systolic_bp": 130}))
    assert vitals.news2_partial == 5 and [f.variable for f in vitals.red_flags] == ["news2_aggregate"]


def test_none_of_the_covered_conditions_needs_normal_vitals_and_is_never_an_all_clear():
    normal = {"heart_rate": 72, "systolic_bp": 124, "respiratory_rate": 14, "temperature": 36.8, "spo2": 98}
    dx, _ = run(vignette(normal), script=[PLAN, {"claims": [{"label": "pneumonia", "says": "unlikely", "tool": "labs", "p": 0.02}]}])
    assert not dx.urgent_review and not dx.abstained
    assert dx.top().diagnosis == "no_acute_finding" and dx.top().likely
    assert "most likely none of the 6 conditions mmdx covers" in dx.summary()
    assert "This is not an all-clear: conditions outside those 6 are not assessed." in dx.rationale
    # the same tool outputs without vital signs: not called likely
    case = PatientCase.from_dict({"case_id": "nv", "demographics": {"age": 40}, "notes": [{"text": "Feels unwell."}],
                                  "measurements": [{"time": "2024-05-01T10:00", "variable": "wbc", "value": 7.0, "unit": "10^3/uL"}]})
    dx, _ = run(case, script=[PLAN])
    nat = dx.top()
    assert nat.diagnosis == "no_acute_finding" and not nat.likely and "too few vital signs" in nat.held_back
    assert dx.abstained and "needs normal vital signs" in dx.abstention_reason


def test_red_flags_beside_a_covered_diagnosis_do_not_claim_it_explains_them():
    dx, _ = run(vignette(TAMPONADE), tools=FAKE_TOOLS, script=[PLAN, {"claims": [
        {"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7}]}])
    assert dx.urgent_review and not dx.abstained and dx.top().diagnosis == "pneumonia"
    assert "does not establish that any of them explains these signs" in dx.rationale


def test_unusual_labs_and_notes_are_flagged_not_only_images():
    class OddLabs(FakeLabs):
        def batch(self, inputs):
            return [o.model_copy(update={"ood_score": 2.7, "ood_flag": True}) for o in super().batch(inputs)]

    class OddNotes(FakeNotes):
        def batch(self, inputs):
            return [o.model_copy(update={"ood_score": 1.9, "ood_flag": True}) for o in super().batch(inputs)]

    dx, _ = run(make_case(cxr=False), tools={**FAKE_TOOLS, "labs": OddLabs, "notes": OddNotes},
                script=[PLAN, {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7}]}])
    assert any(w.startswith("labs: the input is unlike what the labs model was trained on (OOD score 2.70)") for w in dx.input_warnings)
    assert any(w.startswith("notes:") for w in dx.input_warnings)
    assert "unusual input: labs" in dx.summary()
    assert dx.abstained and "unlike its training data" in dx.abstention_reason  # every diagnosis tool is unsure
