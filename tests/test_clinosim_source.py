"""Tests of mmdx.data.cohort: label mapping, redaction, splits, and a tiny real clinosim build.

The tiny cohort (one seed, small population) is simulated once per test session; its raw run is
cached under the session's base temp dir so tests/test_data_cli.py reuses it.
"""
from __future__ import annotations

import csv
import json
from collections import Counter
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from mmdx.data import clinosim_source as cohort
from mmdx.core.labels import DIAGNOSES, HUMAN_NAMES, IMAGING_FINDINGS
from test_label_leaks import leaks as independent_leaks

TINY_SEED = 5
TINY_POP = 300


def tiny_raw(tmp_path_factory) -> Path:
    """Simulate (once per session) a tiny clinosim run; returns the cohort dir holding raw/."""
    root = tmp_path_factory.getbasetemp() / "tiny-clinosim"
    cohort.run_simulations(root, [TINY_SEED], TINY_POP, workers=1)
    return root


@pytest.fixture(scope="session")
def tiny(tmp_path_factory):
    root = tiny_raw(tmp_path_factory)
    out = tmp_path_factory.mktemp("tiny-cohort")
    raw = cohort.raw_dir_for(root, TINY_SEED, TINY_POP)
    manifest = cohort.convert_cohort(out, [(TINY_SEED, raw)], {"seeds": [TINY_SEED], "population": TINY_POP})
    return out, raw, manifest


# ---------------------------------------------------------------- label mapping


@pytest.mark.parametrize("code,label", [
    ("J18.9", "pneumonia"), ("J13", "pneumonia"), ("J15.7", "pneumonia"), ("J12.9", "pneumonia"),
    ("J69.0", "pneumonia"), ("I50.9", "heart_failure"), ("I50.23", "heart_failure"),
    ("J44.1", "copd_exacerbation"), ("J45.901", "asthma_exacerbation"), ("J46", "asthma_exacerbation"),
    ("N39.0", "urinary_tract_infection"), ("N10", "urinary_tract_infection"), ("N30.00", "urinary_tract_infection"),
    ("N12", "urinary_tract_infection"), ("A41.9", "sepsis"), ("A40.3", "sepsis"), ("R65.20", "sepsis"),
    ("R65.21", "sepsis"), ("J06.9", None), ("J10.1", None), ("I21.9", None), ("A08.4", None), ("R07.89", None),
    ("N39.3", None), ("R65.10", None), ("J11", None),
])
def test_icd_to_label(code, label):
    assert cohort.icd_to_label(code) == label


def test_labels_for_simulator_disease_ids():
    assert cohort.labels_for(["sepsis", "bacterial_pneumonia"]) == ("pneumonia", "sepsis")
    assert cohort.labels_for(["urinary_tract_infection", "bacterial_pneumonia"]) == ("pneumonia", "urinary_tract_infection")
    assert cohort.labels_for(["heart_failure_exacerbation"]) == ("heart_failure",)
    assert cohort.labels_for(["copd_exacerbation"]) == ("copd_exacerbation",)
    assert cohort.labels_for(["asthma_attack_mild"]) == ("asthma_exacerbation",)
    assert cohort.labels_for(["uti_uncomplicated"]) == ("urinary_tract_infection",)
    assert cohort.labels_for(["aspiration_pneumonia"]) == ("pneumonia",)
    for other in ("viral_uri", "viral_gastroenteritis", "chest_pain_noncardiac", "diabetic_ketoacidosis", "influenza"):
        assert cohort.labels_for([other]) == ("no_acute_finding",), other
    assert cohort.labels_for(["Z38.0"]) is None  # newborn
    assert cohort.labels_for(["Z37.0", "O24.9"]) is None  # delivery
    assert cohort.labels_for(["no_such_disease_xyz"]) is None


# ---------------------------------------------------------------- redaction


def test_redaction_removes_every_label_name_and_synonym():
    text = ("Hx of COPD, CHF and asthma. Lungs clear (no findings of Pneumonia). Possible urosepsis / UTI; "
            "rule out heart-failure, Sepsis, septic shock, acute exacerbation of chronic obstructive pulmonary "
            "disease, pyelonephritis, heart_failure, no acute finding.")
    clean = cohort.redact(text)
    assert cohort.find_label_leaks(clean) == []
    assert independent_leaks(clean) == []  # not only the redactor's own regex
    assert "[redacted]" in clean
    assert "Lungs clear" in clean  # ordinary words survive
    for term in [*DIAGNOSES, *(HUMAN_NAMES[d] for d in DIAGNOSES)]:
        assert cohort.find_label_leaks(f"x {term} y"), term  # the detector itself catches every label
        assert not cohort.find_label_leaks(cohort.redact(f"x {term.upper()} y")), term


def test_redaction_keeps_clinical_words():
    for text in ("Fever, cough, dyspnea", "Dysuria, urinary frequency, suprapubic discomfort",
                 "Dyspnea on exertion, orthopnea, lower extremity edema", "Nasal congestion, capillary refill normal"):
        assert cohort.redact(text) == text


def _write_doc(d: Path, name: str, sections: dict, day_index=None, text=""):
    md = {"generator": "template"}
    if day_index is not None:
        md["day_index"] = day_index
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_text(json.dumps({"narrative": {"text": text, "sections": sections, "generator_metadata": md}}))


def test_notes_take_only_presentation_sections(tmp_path):
    from datetime import datetime

    d = tmp_path / "ENC-1"
    _write_doc(d, "doc-01.json", {"chief_complaint": "Fever, cough", "hpi": "Three days of cough.",
                                  "past_medical_history": "Secret history [J44.1]",
                                  "physical_examination": "Crackles at the right base.",
                                  "assessment_and_plan": "Assessment: secret plan"})
    _write_doc(d, "doc-02.json", {"subjective": "Day 1: feels short of breath", "objective": "SpO2 90%",
                                  "assessment": "secret assessment", "plan": "secret antibiotics"}, day_index=0)
    _write_doc(d, "doc-03.json", {"subjective": "Day 2: secret better", "objective": "secret SpO2 97%"}, day_index=1)
    _write_doc(d, "doc-04.json", {"admission_summary": "secret", "discharge_diagnoses": "secret (J18.9)",
                                  "hospital_course": "secret"})
    _write_doc(d, "doc-05.json", {}, text="[Nursing Shift Note] secret")
    _write_doc(d, "doc-ED.json", {"chief_complaint": "Fever, cough", "hpi": "Pneumonia suspected",
                                  "physical_exam": "On arrival: HR 110", "ed_workup": "secret labs",
                                  "disposition": "secret"})
    stats = Counter()
    notes = cohort._encounter_notes(d, datetime(2024, 1, 1), stats)
    texts = [n.text for n in notes]
    assert not any("secret" in t for t in texts), texts
    assert [n.kind for n in notes].count("chief_complaint") == 1  # deduplicated across documents
    kinds = {n.kind for n in notes}
    # SOAP subjective/objective exist only for admitted patients: not read (they gave the label away)
    assert kinds == {"chief_complaint", "history_of_present_illness", "physical_exam"}
    assert len(notes) == len(kinds)  # the first note of each kind only
    assert "Three days of cough." in texts
    assert cohort.redact("Pneumonia suspected") == "[redacted] suspected"
    assert stats["note_sections_redacted"] == 1


# ---------------------------------------------------------------- findings, split, rng


def test_findings_follow_the_stated_rates():
    rng = np.random.default_rng(0)
    n = 3000
    pn = [cohort.sample_findings(["pneumonia"], rng) for _ in range(n)]
    assert 0.67 < sum("consolidation" in f for f in pn) / n < 0.77
    assert 0.17 < sum(f == ("no_finding",) for f in pn) / n < 0.27  # atypical normal films
    hf = [cohort.sample_findings(["heart_failure"], rng) for _ in range(n)]
    assert 0.60 < sum("cardiomegaly" in f for f in hf) / n < 0.70
    naf = [cohort.sample_findings(["no_acute_finding"], rng) for _ in range(n)]
    assert 0.80 < sum(f == ("no_finding",) for f in naf) / n < 0.90
    for f in pn + hf + naf:
        assert set(f) <= set(IMAGING_FINDINGS) and (f == ("no_finding",) or "no_finding" not in f)


def test_split_is_stable_and_near_fractions():
    keys = [f"s1-POP-{i:06d}" for i in range(6000)]
    splits = [cohort.split_of(k) for k in keys]
    assert splits == [cohort.split_of(k) for k in keys]
    c = Counter(splits)
    assert 0.67 < c["train"] / 6000 < 0.73 and 0.12 < c["val"] / 6000 < 0.18 and 0.12 < c["test"] / 6000 < 0.18


def test_case_rng_depends_only_on_seed_case_stream():
    a = cohort.case_rng(1, "s1-ENC-A", 0).random(3)
    assert np.array_equal(a, cohort.case_rng(1, "s1-ENC-A", 0).random(3))
    assert not np.array_equal(a, cohort.case_rng(2, "s1-ENC-A", 0).random(3))
    assert not np.array_equal(a, cohort.case_rng(1, "s1-ENC-B", 0).random(3))
    assert not np.array_equal(a, cohort.case_rng(1, "s1-ENC-A", 1).random(3))


# ---------------------------------------------------------------- a tiny real build


def _raw_rows(raw: Path, name: str) -> list[dict]:
    with open(raw / "csv" / name, newline="") as f:
        return list(csv.DictReader(f))


def test_tiny_build_cases_are_valid_and_labelled_from_ground_truth(tiny):
    out, raw, manifest = tiny
    cases = list(cohort.iter_cases(out))
    assert len(cases) == sum(manifest["cases_per_split"].values()) > 10
    dx = {r["encounter_id"]: r for r in _raw_rows(raw, "diagnoses.csv")}
    label_count = Counter()
    for c in cases:
        eid = c.case_id.split("-", 1)[1]
        assert c.labels.diagnoses == cohort.labels_for(dx[eid]["ground_truth_diseases"].split("|"))
        assert c.labels.source == "clinosim ground truth (synthetic)"
        assert c.labels.noisy == (dx[eid]["diagnosis_correct"] == "False")
        assert c.origin == f"synthetic: clinosim {cohort.clinosim_version()} seed {TINY_SEED}"
        label_count.update(c.labels.diagnoses)
        if c.cxr is not None:
            p = c.image_path()
            assert p.is_file() and c.cxr.metadata == {"synthetic": "true", "renderer": "mmdx cxr_render"}
            assert c.cxr.view in ("PA", "AP") and c.labels.findings
            import hashlib
            assert hashlib.sha256(p.read_bytes()).hexdigest() == c.cxr.sha256
        else:
            assert c.labels.findings == ()
    total = Counter()
    for s in cohort.SPLITS:
        total.update(manifest["counts"][s])
    assert {k: v for k, v in total.items() if v} == dict(label_count)
    assert manifest["sha256"] == cohort.cohort_digest(out)


def test_tiny_build_inputs_are_the_presentation_window(tiny):
    out, raw, _ = tiny
    enc = {r["encounter_id"]: r for r in _raw_rows(raw, "encounters.csv")}
    from datetime import datetime

    n = 0
    cfg = cohort.CohortConfig()
    for c in cohort.iter_cases(out):
        admitted = datetime.fromisoformat(enc[c.case_id.split("-", 1)[1]]["admission_datetime"])
        per_var = {}
        for m in c.measurements:
            assert admitted <= m.time <= admitted + timedelta(hours=cfg.first_hours)
            per_var[m.variable] = per_var.get(m.variable, 0) + 1
            n += 1
        assert all(v <= cfg.max_values_per_variable for v in per_var.values())
        assert len({nt.kind for nt in c.notes}) == len(c.notes)  # one note per kind
        assert not {"subjective", "objective"} & {nt.kind for nt in c.notes}
    assert n > 0


def test_no_label_string_or_synonym_in_any_model_input(tiny):
    out, _, _ = tiny
    checked = 0
    for c in cohort.iter_cases(out):
        inputs = c.model_dump(mode="json", exclude={"labels", "origin", "base_dir", "case_id"})
        for note in c.notes:
            assert not cohort.find_label_leaks(note.text), (c.case_id, note.text)
            assert not independent_leaks(note.text), (c.case_id, note.text)  # a detector that shares no code with redact
            assert note.kind in {"chief_complaint", "history_of_present_illness", "physical_exam", "subjective", "objective"}
            checked += 1
        variables = {m.variable for m in c.measurements}
        assert not cohort.find_label_leaks(" ".join(variables))
        # and nothing anywhere in the serialised inputs (metadata, views, units...)
        assert not cohort.find_label_leaks(json.dumps(inputs)), c.case_id
        assert not independent_leaks(json.dumps(inputs)), c.case_id
    assert checked > 0


def test_no_patient_in_two_splits(tiny):
    out, raw, manifest = tiny
    patient_of = {r["encounter_id"]: r["patient_id"] for r in _raw_rows(raw, "encounters.csv")}
    split_of_patient: dict[str, set[str]] = {}
    for split in cohort.SPLITS:
        for c in cohort.iter_cases(out, split):
            split_of_patient.setdefault(patient_of[c.case_id.split("-", 1)[1]], set()).add(split)
    assert split_of_patient and all(len(s) == 1 for s in split_of_patient.values())
    assert sum(1 for s in cohort.SPLITS if manifest["cases_per_split"][s]) >= 2


def test_conversion_is_deterministic(tiny, tmp_path):
    out, raw, manifest = tiny
    again = cohort.convert_cohort(tmp_path, [(TINY_SEED, raw)], {"seeds": [TINY_SEED], "population": TINY_POP})
    assert again["sha256"] == manifest["sha256"]
    assert (tmp_path / "manifest.json").read_bytes() == (out / "manifest.json").read_bytes()
    # the digest does see content: flipping one byte of one case changes it
    first = sorted((tmp_path / "cases").rglob("*.json"))[0]
    first.write_bytes(first.read_bytes().replace(b"{", b"{ ", 1))
    assert cohort.cohort_digest(tmp_path) != manifest["sha256"]


def test_cached_simulation_is_reused(tmp_path_factory):
    root = tiny_raw(tmp_path_factory)
    marker = cohort.raw_dir_for(root, TINY_SEED, TINY_POP) / cohort.MARKER
    before = marker.stat().st_mtime_ns
    cohort.run_simulations(root, [TINY_SEED], TINY_POP, workers=1)
    assert marker.stat().st_mtime_ns == before
    params = json.loads(marker.read_text())
    assert params["clinosim_version"] == cohort.clinosim_version() and params["seed"] == TINY_SEED
    assert not cohort.raw_is_complete(marker.parent, {**params, "population": TINY_POP + 1})


@pytest.mark.slow
def test_full_build_twice_is_byte_identical(tmp_path):
    """Two independent simulations + conversions of one seed give the same digest."""
    a = cohort.build_cohort(tmp_path / "a", [TINY_SEED], TINY_POP, workers=1)
    b = cohort.build_cohort(tmp_path / "b", [TINY_SEED], TINY_POP, workers=1)
    assert a["sha256"] == b["sha256"]


def test_atypical_presentation_replaces_the_chief_complaint_from_a_shared_pool():
    from datetime import datetime

    from mmdx.core.case import Note

    notes = [Note(time=datetime(2024, 1, 1), kind="chief_complaint", text="Dysuria and urinary frequency"),
             Note(time=datetime(2024, 1, 1), kind="physical_exam", text="Suprapubic tenderness")]
    out = cohort.atypical_presentation(notes, np.random.default_rng(0))
    assert out[0].text in cohort.NONSPECIFIC_COMPLAINTS and out[1] == notes[1]
    assert not any(cohort.find_label_leaks(c) for c in cohort.NONSPECIFIC_COMPLAINTS)
