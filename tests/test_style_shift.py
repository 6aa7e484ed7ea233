"""Issue 11, part 3: the shipped notes and labs models read clinical content, not how it was written.

On a small cohort of seeds the models never saw (built here, both note styles), the shipped models
are held to the tolerances of workflows/style_shift.py; the full-cohort figures in the README come
from evals/results/style_shift.json, which the last test ties to the shipped weights."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdx.core.case import PatientCase
from mmdx.data.cohort import build_cohort, iter_cases
from mmdx.models.card import load_card
from mmdx.models.inference import WEIGHTS_ROOT, load_model
from mmdx.workflows import style_shift

RESULT = Path(__file__).resolve().parents[1] / "evals" / "results" / "style_shift.json"


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    root = tmp_path_factory.mktemp("style")
    for style in ("ed", "case_report"):
        build_cohort(root / style, [61, 62], 700, "2026-01-01", "2026-06-30", workers=1, note_style=style)
    return root / "ed", root / "case_report"


def test_the_rewrite_keeps_the_facts_and_changes_the_words(cohorts):
    ed, cr = ({c.case_id: c for c in iter_cases(d)} for d in cohorts)
    assert ed.keys() == cr.keys() and len(ed) > 100
    same_words = 0
    for cid, a in ed.items():
        b = cr[cid]
        assert a.labels == b.labels and a.measurements == b.measurements and a.demographics == b.demographics
        same_words += [n.text for n in a.notes] == [n.text for n in b.notes]
    assert same_words == 0


def test_repeats_and_reversal_keep_every_value():
    demo = sorted((Path(__file__).resolve().parents[1] / "data" / "demo" / "cases").glob("*.json"))
    case = next(c for c in map(PatientCase.load, demo) if c.measurements)
    rep, rev = style_shift.repeated(case), style_shift.reordered(case)
    assert len(rep.measurements) == 3 * len(case.measurements)
    assert sorted((m.variable, m.value) for m in rev.measurements) == sorted((m.variable, m.value) for m in case.measurements)
    assert {(m.variable, m.value) for m in rep.measurements} == {(m.variable, m.value) for m in case.measurements}


def test_shipped_labs_model_barely_moves_when_values_repeat_or_reorder(cohorts):
    cases = list(iter_cases(cohorts[0]))
    out = style_shift.labs_invariance(cases, load_model("labs"))
    for name in ("repeated_at_two_more_times", "reversed_order"):
        r = out[name]
        assert r["within_tolerance"], (name, r)


def test_shipped_notes_model_reads_case_report_prose(cohorts):
    original, rewritten = (list(iter_cases(d)) for d in cohorts)
    out = style_shift.notes_shift(original, rewritten, load_model("notes"))
    assert out["n"] > 100
    # a small cohort: the full-cohort tolerance (0.05) is checked on the recorded run below
    assert out["drop"] <= 2 * style_shift.NOTES_TOLERANCE, out
    assert out["macro_auroc_rewritten"] >= 0.70, out
    assert out["ood_higher_on_rewritten"], out


def test_recorded_full_cohort_run_is_for_the_shipped_weights_and_within_tolerance():
    r = json.loads(RESULT.read_text())
    for kind in ("notes", "labs"):
        assert r["weights"][kind]["weights_sha256"] == load_card(WEIGHTS_ROOT / kind).weights_sha256, \
            f"evals/results/style_shift.json is stale for {kind}: rerun python -m mmdx.workflows.style_shift"
    assert r["notes"]["within_tolerance"] and r["notes"]["ood_higher_on_rewritten"], r["notes"]
    assert r["labs"]["repeated_at_two_more_times"]["within_tolerance"] and r["labs"]["reversed_order"]["within_tolerance"]
