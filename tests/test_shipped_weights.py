"""The default weights shipped in the repository load offline, match their cards, say what they were
trained on (the synthetic ED cohort, every seed) and run on the demo cases, through the tools."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdx import tools
from mmdx.core.case import PatientCase
from mmdx.core.errors import ModalityAbsent
from mmdx.core.tool import CaseInput, ClassifierOutput, can_run
from mmdx.data.demo_cases import copy_demo
from mmdx.models.card import load_card
from mmdx.models.inference import WEIGHTS_ROOT

SHIPPED = ["cxr", "labs", "notes", "fused", "student_cxr", "student_labs", "student_notes"]
MANIFEST = Path(__file__).resolve().parents[1] / "evals" / "results" / "cohort_default_manifest.json"


@pytest.fixture(scope="module")
def demo_cases(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    copy_demo(out)
    return [PatientCase.load(f) for f in sorted((out / "cases").glob("*.json"))]


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_say_they_were_trained_on_the_whole_synthetic_ed_cohort(name):
    card = json.loads((WEIGHTS_ROOT / name / "card.json").read_text())
    desc = card["data_description"]
    seeds = json.loads(MANIFEST.read_text())["params"]["seeds"]
    assert "synthetic" in desc.lower() and "mmdx-ed" in desc, desc
    assert f"seeds {', '.join(map(str, seeds))}" in desc, desc
    assert card["metrics"]["test"]["macro_auroc"] is not None


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_tool_runs_on_every_demo_case_it_can_read(name, demo_cases):
    tool = tools.get(name)
    sha = load_card(WEIGHTS_ROOT / name).weights_sha256
    ran = 0
    for case in demo_cases:
        if can_run(tool, case):
            out = tool(CaseInput(case=case))
            assert isinstance(out, ClassifierOutput) and out.provenance.weights_sha256 == sha
            ran += 1
        else:
            with pytest.raises(ModalityAbsent):
                tool(CaseInput(case=case))
    assert ran >= 2


def test_demo_cases_cover_missing_modalities_and_a_disagreement(demo_cases):
    kinds = {frozenset(m.value for m in c.modalities) for c in demo_cases}
    assert frozenset({"cxr", "labs", "notes"}) in kinds and any(len(k) == 1 for k in kinds) and len(demo_cases) >= 6
    from mmdx.data.cohort import _disagreeing_dyspnoea

    assert any(_disagreeing_dyspnoea(c) for c in demo_cases)


def test_the_disagreeing_demo_case_is_read_differently_by_its_modalities(demo_cases):
    """The dyspnoea case where the modalities disagree: the image and the labs (or notes) do not rank
    the same diagnosis first, and the fused model sees all three."""
    from mmdx.data.cohort import _disagreeing_dyspnoea

    case = next(c for c in demo_cases if _disagreeing_dyspnoea(c))
    tops = {}
    for name in ("student_cxr", "labs", "notes"):
        out = tools.get(name)(CaseInput(case=case))
        tops[name] = max(out.scores, key=lambda s: s.probability).label
    assert len(set(tops.values())) >= 2, tops
    fused = tools.get("fused")(CaseInput(case=case))
    assert isinstance(fused, ClassifierOutput)
