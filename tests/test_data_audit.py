"""`mmdx data audit`: the artefact probes stay at chance on the generated cohort, and each planted
artefact pushes its probe over 0.60 (a probe that cannot fire would prove nothing)."""
from __future__ import annotations

import json
import shutil
from datetime import timedelta

import pytest

from mmdx.core.case import PatientCase
from mmdx.core.labels import DIAGNOSES
from mmdx.data import cohort
from mmdx.data.audit import PROBE_MAX, run_audit, template_shape


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit-cohort")
    cohort.build_cohort(out, seeds=[41, 42, 43], population=2500, workers=2)
    return out


@pytest.fixture(scope="module")
def clean_report(built):
    return run_audit(built, n_boot=20, probes_only=True)


def _label_index(case: PatientCase) -> int:
    return DIAGNOSES.index(case.labels.diagnoses[0])


def _plant(src, dst, edit) -> None:
    """Copy the cohort's case files, editing each case with `edit(case) -> case`."""
    for p in sorted((src / "cases").rglob("*.json")):
        case = edit(PatientCase.load(p))
        q = dst / p.relative_to(src)
        q.parent.mkdir(parents=True, exist_ok=True)
        q.write_text(case.to_json())


def test_every_probe_is_at_chance_on_the_generated_cohort(clean_report):
    probes = [r for r in clean_report.rows if r.kind == "probe"]
    assert {r.name for r in probes} == {"probe: labs values shuffled", "probe: measurement count",
                                        "probe: notes template shape", "probe: encounter type (note kinds)",
                                        "probe: note length"}
    for r in probes:
        assert r.macro_auroc <= PROBE_MAX and r.passed, r


def test_a_planted_measurement_artefact_fires_the_labs_probes(built, tmp_path):
    def edit(case):  # the number of repeated heart-rate readings encodes the label
        extra = tuple(m.model_copy(update={"time": m.time + timedelta(hours=1 + k)})
                      for m in case.measurements[:1] for k in range(2 * _label_index(case)))
        return case.model_copy(update={"measurements": case.measurements + extra})

    _plant(built, tmp_path, edit)
    report = run_audit(tmp_path, n_boot=20, probes_only=True,
                       only=frozenset({"probe: measurement count", "probe: labs values shuffled"}))
    assert report.row("probe: measurement count").macro_auroc > PROBE_MAX
    assert report.row("probe: labs values shuffled").macro_auroc > PROBE_MAX


def test_a_planted_template_artefact_fires_the_shape_probe(built, tmp_path):
    teams = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf")

    def edit(case):  # a label-specific sentence with no clinical word in it
        n = case.notes[0]
        note = n.model_copy(update={"text": n.text + f" Seen by team {teams[_label_index(case)]}."})
        return case.model_copy(update={"notes": (note, *case.notes[1:])})

    _plant(built, tmp_path, edit)
    report = run_audit(tmp_path, n_boot=20, probes_only=True, only=frozenset({"probe: notes template shape"}))
    assert report.row("probe: notes template shape").macro_auroc > PROBE_MAX


def test_a_planted_length_artefact_fires_the_length_probe(built, tmp_path):
    def edit(case):
        n = case.notes[-1]
        note = n.model_copy(update={"text": n.text + " Reviewed." * (3 * _label_index(case))})
        return case.model_copy(update={"notes": (*case.notes[:-1], note)})

    _plant(built, tmp_path, edit)
    report = run_audit(tmp_path, n_boot=20, probes_only=True, only=frozenset({"probe: note length"}))
    assert report.row("probe: note length").macro_auroc > PROBE_MAX


def test_the_shape_keeps_the_template_and_masks_clinical_words():
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    from mmdx.data.audit import _content_vocabulary

    content, stop = _content_vocabulary(), frozenset(ENGLISH_STOP_WORDS)
    a = template_shape("72 y/o F presenting with dyspnea x 3 days. Reports orthopnea and leg swelling. PMH: CHF, COPD.",
                       content, stop)
    b = template_shape("31 y/o M presenting with dysuria x 2 days. Reports frequency, urgency. PMH: none significant.",
                       content, stop)
    assert a == b and "presenting" in a and "Reports" in a and ":" in a
    assert "orthopnea" not in a and "3" not in a


def test_the_cli_writes_the_report_as_json(built, tmp_path, capsys):
    from mmdx.data.cli import main

    out = tmp_path / "audit.json"
    assert main(["audit", str(built), "--probes-only", "--boot", "10", "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "probe: notes template shape" in text and "synthetic data" in text
    report = json.loads(out.read_text())
    assert report["n_test"] > 200 and all(r["kind"] == "probe" for r in report["rows"])


def test_a_second_build_is_identical(built, tmp_path):
    cohort.build_cohort(tmp_path, seeds=[41, 42, 43], population=2500, workers=2)
    a = json.loads((built / "manifest.json").read_text())
    b = json.loads((tmp_path / "manifest.json").read_text())
    assert a["sha256"] == b["sha256"] and (built / "truth.jsonl").read_bytes() == (tmp_path / "truth.jsonl").read_bytes()
    shutil.rmtree(tmp_path / "images")
