"""The three modality tools on tiny trained weights: typed outputs, provenance, typed errors, CLI, faults."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from mmdx.core.case import PatientCase
from mmdx.core.errors import CorruptInput, ModalityAbsent, WeightsError
from mmdx.core.labels import DIAGNOSES, IMAGING_FINDINGS
from mmdx.core.tool import CaseInput, ClassifierOutput, describe
from mmdx.models.train import run as train
from mmdx.tools import CxrTool, LabsTool, NotesTool, registry
from mmdx.tools.runner import InProcessRunner

from test_train import write_cohort

TOOLS = {"cxr": CxrTool, "labs": LabsTool, "notes": NotesTool}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("tools")
    cohort = write_cohort(root / "cohort", n_per_split=(24, 12, 12))
    dirs = {}
    for kind in TOOLS:
        dirs[kind] = root / kind
        train(kind, cohort, "tiny", dirs[kind], epochs=3, seed=0, batch_size=12, n_boot=20)
    return cohort, dirs


def _case(cohort, **drop) -> PatientCase:
    case = PatientCase.load(sorted((cohort / "cases" / "test").glob("*.json"))[0])
    return case.without(*[m for m, d in drop.items() if d])


def test_registry_and_descriptions_come_from_docstrings():
    assert set(registry()) >= {"cxr", "labs", "notes"}
    for name, cls in TOOLS.items():
        d = describe(cls)
        assert d.startswith(cls.__doc__.split(":")[0]) and "Requires: " + name in d


@pytest.mark.parametrize("name", list(TOOLS))
def test_tool_output_is_typed_calibrated_and_traceable(trained, name):
    cohort, dirs = trained
    out = TOOLS[name](weights_dir=dirs[name])(CaseInput(case=_case(cohort)))
    assert isinstance(out, ClassifierOutput)
    labels = IMAGING_FINDINGS if name == "cxr" else DIAGNOSES
    assert [s.label for s in out.scores] == list(labels)
    assert all(0 <= s.probability <= 1 and 0 <= s.threshold <= 1 for s in out.scores)
    card = json.loads((dirs[name] / "card.json").read_text())
    assert out.provenance.weights_sha256 == card["weights_sha256"] and out.provenance.model_id == card["model_id"]
    assert len(out.provenance.temperatures) == len(labels) and out.embedding and out.ood_score >= 0


@pytest.mark.parametrize("name,modality", [("cxr", "cxr"), ("labs", "labs"), ("notes", "notes")])
def test_absent_modality_is_typed_not_a_guess(trained, name, modality):
    cohort, dirs = trained
    with pytest.raises(ModalityAbsent) as e:
        TOOLS[name](weights_dir=dirs[name])(CaseInput(case=_case(cohort, **{modality: True})))
    assert e.value.kind == "modality_absent"


def test_corrupt_image_is_typed(trained, tmp_path):
    cohort, dirs = trained
    case = _case(cohort)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    case = case.model_copy(update={"cxr": case.cxr.model_copy(update={"path": str(bad)})})
    with pytest.raises(CorruptInput):
        CxrTool(weights_dir=dirs["cxr"])(CaseInput(case=case))


def test_batch_returns_errors_in_place(trained):
    cohort, dirs = trained
    good, nolabs = _case(cohort), _case(cohort, labs=True)
    outs = LabsTool(weights_dir=dirs["labs"]).batch([CaseInput(case=good), CaseInput(case=nolabs), CaseInput(case=good)])
    assert isinstance(outs[0], ClassifierOutput) and isinstance(outs[1], ModalityAbsent) and isinstance(outs[2], ClassifierOutput)
    assert outs[0].scores == outs[2].scores


@pytest.mark.parametrize("name", list(TOOLS))
def test_prepare_in_parts_then_infer_equals_batch(trained, tmp_path, name):
    """The two stages a pipelining runner uses: prepare (in any split) + infer give `batch`'s answers,
    with input errors in place."""
    from mmdx.core.tool import StagedTool

    cohort, dirs = trained
    tool = TOOLS[name](weights_dir=dirs[name])
    assert isinstance(tool, StagedTool)
    cases = [PatientCase.load(p) for p in sorted((cohort / "cases" / "test").glob("*.json"))[:5]]
    cases[2] = cases[2].without(name)
    inputs = [CaseInput(case=c) for c in cases]
    whole = tool.batch(inputs)
    prepared = tool.prepare(inputs[:3]) + tool.prepare(inputs[3:])
    staged = tool.infer(inputs, prepared)
    assert isinstance(whole[2], ModalityAbsent) and isinstance(staged[2], ModalityAbsent)
    for a, b in zip(whole, staged):
        if isinstance(a, ClassifierOutput):
            assert a.case_id == b.case_id
            assert [s.probability for s in a.scores] == pytest.approx([s.probability for s in b.scores], abs=1e-5)


def test_tampered_weights_fail_typed_and_the_runner_reports_it(trained, tmp_path):
    cohort, dirs = trained
    bad = tmp_path / "labs"
    shutil.copytree(dirs["labs"], bad)
    w = bad / "model.safetensors"
    blob = bytearray(w.read_bytes())
    blob[-1] ^= 0xFF
    w.write_bytes(bytes(blob))
    with pytest.raises(WeightsError):
        LabsTool(weights_dir=bad)(CaseInput(case=_case(cohort)))
    runner = InProcessRunner(tool_factory=lambda n: LabsTool(weights_dir=bad) if n == "labs" else NotesTool(weights_dir=dirs["notes"]))
    res = runner.run([("labs", CaseInput(case=_case(cohort))), ("notes", CaseInput(case=_case(cohort)))])
    msg = res[0].message.lower()
    assert res[0].kind == "tool_error" and ("sha256" in msg or "digest" in msg), res[0]
    assert isinstance(res[1], ClassifierOutput)  # the other tool still answers


def test_cli_tool_and_tools_list(trained, capsys, tmp_path):
    from mmdx.cli import main

    cohort, dirs = trained
    f = sorted((cohort / "cases" / "test").glob("*.json"))[0]
    assert main(["tool", "labs", "--case", str(f), "--weights", str(dirs["labs"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["tool"] == "labs" and len(out["scores"]) == len(DIAGNOSES)
    nolabs = PatientCase.load(f).without("labs").model_copy(update={"cxr": None}).save(tmp_path / "nolabs.json")
    assert main(["tool", "labs", "--case", str(nolabs), "--weights", str(dirs["labs"]), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "modality_absent"
    assert main(["tools", "list", "--json"]) == 0
    assert {r["name"] for r in json.loads(capsys.readouterr().out)} >= {"cxr", "labs", "notes"}


def test_a_noise_image_is_refused_like_a_blank_one(tmp_path):
    """Failed before: a uniform-noise "radiograph" passed load_image, and the cxr tool answered on it
    without an OOD flag (198/198 in the trust probes: its OOD score, median 0.95, looked like a
    validation case's). Neighbouring pixels of noise do not correlate; a radiograph's do."""
    from PIL import Image

    from mmdx.core.images import NOISE_BELOW, load_image, neighbour_correlation

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (224, 224), dtype=np.uint8)).save(tmp_path / "noise.png")
    with pytest.raises(CorruptInput, match="random noise") as e:
        load_image(tmp_path / "noise.png")
    assert e.value.field == "cxr.path"
    demo = sorted((Path(__file__).resolve().parents[1] / "data" / "demo").glob("**/*.png"))
    assert demo and all(neighbour_correlation(load_image(p)) > 0.9 for p in demo)
    yy = np.mgrid[0:224, 0:224][0] / 224  # a low-dose film: anatomy under heavy quantum noise still correlates
    noisy = np.clip(0.2 + 0.6 * yy + rng.normal(0, 0.1, (224, 224)), 0, 1)
    Image.fromarray((noisy * 255).astype(np.uint8)).save(tmp_path / "lowdose.png")
    assert neighbour_correlation(load_image(tmp_path / "lowdose.png")) > NOISE_BELOW
