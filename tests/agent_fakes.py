"""Fakes for fast agent tests: tools with scripted scores (the real models are tested elsewhere)."""
from __future__ import annotations

from datetime import datetime, timedelta

from mmdx.core.case import Modality, PatientCase
from mmdx.core.labels import DIAGNOSES, IMAGING_FINDINGS
from mmdx.core.tool import CaseInput, ClassifierOutput, LabelScore, Provenance, partition_runnable


def make_case(cxr=True, labs=True, notes=True, case_id="c1", note_text="Cough and fever for three days.") -> PatientCase:
    t0 = datetime(2024, 3, 1, 8)
    data = {"case_id": case_id, "demographics": {"age": 71, "sex": "female"}, "origin": "synthetic test case"}
    if cxr:
        data["cxr"] = {"path": "img.png", "view": "PA"}
    if labs:
        data["measurements"] = [
            {"time": (t0 + timedelta(hours=h)).isoformat(), "variable": v, "value": x, "unit": u}
            for h, v, x, u in [(0, "wbc", 14.2, "10^3/uL"), (0, "temperature", 38.6, "degC"), (3, "spo2", 95, "%")]
        ]
    if notes:
        data["notes"] = [{"kind": "subjective", "text": note_text}]
    return PatientCase.from_dict(data)


def _out(tool, case_id, target, probs: dict[str, float], thr=0.5) -> ClassifierOutput:
    labels = IMAGING_FINDINGS if target == "imaging_findings" else DIAGNOSES
    scores = tuple(LabelScore(label=lab, probability=probs.get(lab, 0.02), threshold=thr) for lab in labels)
    return ClassifierOutput(tool=tool, case_id=case_id, target=target, scores=scores, embedding=(0.0, 1.0),
                            provenance=Provenance(model_id=f"fake-{tool}", weights_sha256="0" * 64))


class _FakeTool:
    probs: dict[str, float] = {}
    target = "diagnoses"
    calls = 0

    def batch(self, inputs: list[CaseInput]):
        type(self).calls += 1
        outs, todo = partition_runnable(self, inputs)
        for i in todo:
            outs[i] = _out(self.name, inputs[i].case.case_id, self.target, self.probs)
        return outs

    def __call__(self, inp):
        (o,) = self.batch([inp])
        if isinstance(o, Exception):
            raise o
        return o


class FakeCxr(_FakeTool):
    """Fake chest X-ray tool."""
    name = "cxr"
    requires = frozenset({Modality.cxr})
    target = "imaging_findings"
    probs = {"consolidation": 0.81, "effusion": 0.3}


class FakeLabs(_FakeTool):
    """Fake labs tool."""
    name = "labs"
    requires = frozenset({Modality.labs})
    probs = {"pneumonia": 0.7, "sepsis": 0.35, "heart_failure": 0.1}


class FakeNotes(_FakeTool):
    """Fake notes tool."""
    name = "notes"
    requires = frozenset({Modality.notes})
    probs = {"pneumonia": 0.6, "copd_exacerbation": 0.2}


class CrashingNotes(FakeNotes):
    """Fake notes tool with a bug."""
    def batch(self, inputs):
        raise RuntimeError("boom")


class FakeFused(FakeNotes):
    """Fake fused model: reads two or more modalities and says COPD, against the encoders' pneumonia."""
    name = "fused"
    requires = frozenset()
    accepts = frozenset({Modality.cxr, Modality.labs, Modality.notes})
    min_modalities = 2
    probs = {"copd_exacerbation": 0.9}


class FakeStudentLabs(FakeLabs):
    """Fake labs student."""
    name = "student_labs"


FAKE_TOOLS = {"cxr": FakeCxr, "labs": FakeLabs, "notes": FakeNotes}
