"""The default weights shipped in the repository load offline, match their cards and run on the demo cases."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdx.core.case import PatientCase
from mmdx.data.demo_cases import copy_demo
from mmdx.core.errors import ModalityAbsent
from mmdx.core.tool import CaseInput, ClassifierOutput
from mmdx.models.card import load_card
from mmdx.models.inference import WEIGHTS_ROOT
from mmdx import tools


@pytest.fixture(scope="module")
def demo_cases(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    copy_demo(out)
    return [PatientCase.load(f) for f in sorted((out / "cases").glob("*.json"))]


@pytest.mark.parametrize("name", ["cxr", "labs", "notes"])
def test_shipped_tool_runs_on_every_demo_case(name, demo_cases):
    card = load_card(WEIGHTS_ROOT / name)
    assert "synthetic" in card.data_description.lower()
    assert card.metrics["test"]["macro_auroc"] is not None and len(card.thresholds) == len(card.labels)
    tool = tools.get(name)
    ran = 0
    for case in demo_cases:
        if tool.requires <= case.modalities:
            out = tool(CaseInput(case=case))
            assert isinstance(out, ClassifierOutput) and out.provenance.weights_sha256 == card.weights_sha256
            ran += 1
        else:
            with pytest.raises(ModalityAbsent):
                tool(CaseInput(case=case))
    assert ran >= 2


def test_demo_cases_cover_missing_modalities(demo_cases):
    kinds = {frozenset(m.value for m in c.modalities) for c in demo_cases}
    assert frozenset({"cxr", "labs", "notes"}) in kinds and any(len(k) == 1 for k in kinds) and len(demo_cases) >= 5
