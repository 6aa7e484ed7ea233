"""Grounding that cannot be talked past: claims as data, and a closed-world reader for any prose.

The adversarial suite below is at least 100 rationales that the old negation-window check passed or
could pass (affirmations behind negation words, double negatives, diseases outside mmdx's labels,
wrong numbers, hedges, all-clears): every one must be refused. Real negations, and the sentences
mmdx renders from accepted claims, must pass.
"""
from __future__ import annotations

import pytest

from mmdx.agent import aggregate as agg
from mmdx.agent.claims import check_claims, render_claims, template_claims
from mmdx.agent.diagnosis import Claim
from mmdx.agent.facts import Facts
from mmdx.agent.prose_check import check_prose

from agent_fakes import _out

# The facts every sentence is checked against (synthetic):
#   labs:  pneumonia 0.70 (+), sepsis 0.35, heart failure 0.10, others 0.02; threshold 0.50
#   notes: pneumonia 0.60 (+), COPD exacerbation 0.20, others 0.02
#   cxr:   consolidation 0.81 (+), pleural effusion 0.30, others 0.02
#   combined: pneumonia 0.65 likely, sepsis 0.185, COPD 0.11, heart failure 0.06
OUTPUTS = [
    _out("cxr", "c", "imaging_findings", {"consolidation": 0.81, "effusion": 0.30}),
    _out("labs", "c", "diagnoses", {"pneumonia": 0.70, "sepsis": 0.35, "heart_failure": 0.10}),
    _out("notes", "c", "diagnoses", {"pneumonia": 0.60, "copd_exacerbation": 0.20}),
]
ENTRIES, _ = agg.differential(OUTPUTS)
FACTS = Facts.build(ENTRIES, OUTPUTS)
UNSUPPORTED = ["heart failure", "sepsis", "COPD exacerbation", "asthma exacerbation", "pleural effusion", "cardiomegaly"]

AFFIRMATION_BEHIND_NEGATION = [t.format(x=x) for x in UNSUPPORTED for t in (
    "Without doubt, {x} is present.",
    "There is no reason to think {x} is absent.",
    "Not only pneumonia but also {x} is likely.",
    "Despite no fever, {x} is present.",
    "No, {x} is likely.",
    "{x} is present, not absent.",
    "Nothing argues against {x}.",
)] + [
    "Low oxygen saturation and a pneumothorax are present.",  # the examples, verbatim
    "Without delay, treat the lung cancer.",
    "Pneumothorax is not excluded and needs a chest tube.",
    "The absence of a chest X-ray is a below-threshold diagnosis.",
    "No clinician would miss the heart failure here.",
    "Heart failure: no longer unlikely.",
]
DOUBLE_NEGATIVES = [t.format(x=x) for x in UNSUPPORTED for t in (
    "{x} is not unlikely.",
    "{x} is not absent.",
    "It is not true that {x} is unlikely.",
    "{x} is unlikely to be absent.",
)] + [
    "The X-ray model does not find no pleural effusion.",
    "No absence of cardiomegaly.",
    "Sepsis is not below its threshold.",
    "There is no sepsis that is not present.",
]
OUT_OF_LABEL = [
    "Cardiac tamponade is likely.",
    "Heat stroke explains the fever and tachycardia.",
    "Pulmonary embolism is likely (0.65).",
    "There is a pneumothorax.",
    "Lung cancer is unlikely (0.10).",
    "Myocardial infarction is unlikely.",
    "Pericarditis is present.",
    "Aortic dissection is the most likely diagnosis.",
    "Tuberculosis is likely (0.70 from the labs model).",
    "Influenza is the most likely diagnosis (0.65).",
    "There is no evidence of pneumothorax.",
    "The X-ray model finds a nodule (0.81).",
    "A rib fracture is present.",
    "COVID is unlikely (0.06).",
    "Atelectasis is likely.",
    "Meningitis is unlikely.",
    "Anaphylaxis is likely.",
    "Diabetic ketoacidosis is present.",
    "Pneumonia and pancreatitis are likely.",
    "Stroke is unlikely (0.02).",
]
WRONG_NUMBERS = [
    "Pneumonia is likely (0.95).",
    "Pneumonia is likely: 0.65, threshold 0.30.",
    "Heart failure is unlikely (0.01).",
    "The chest X-ray model finds consolidation (0.18).",
    "Sepsis is unlikely at 35.5%.",
    "Pneumonia is likely (p = 1).",
    "Pneumonia is likely (0.65 from the chest X-ray model).",
    "The labs model finds consolidation (0.81).",
    "Pneumonia is likely at 99%.",
    "COPD exacerbation is unlikely (0.40 from the notes model).",
    "Heart failure is unlikely; its threshold is 0.20.",
    "Pleural effusion is absent (0.03).",
    "Pneumonia has probability 0.80.",
    "The notes model finds pneumonia likely (0.70).",
    "Sepsis is unlikely (0.35 from the notes model).",
    "The labs model does not find pneumonia (0.70).",
]
HEDGES = [t.format(x=x) for x in ("heart failure", "pneumonia", "sepsis") for t in (
    "{x} may be present.",
    "{x} is probably present (0.65).",
    "{x} cannot be excluded.",
    "Consider {x}.",
    "Possible {x}.",
    "{x} could be contributing.",
    "{x} seems likely.",
)]
OVERCLAIMS_AND_ALL_CLEARS = [
    "No acute finding.",
    "The chest X-ray is normal.",
    "The patient is healthy.",
    "Nothing acute; safe to discharge.",
    "Heart failure is ruled out (0.06).",
    "Pneumonia is confirmed (0.65).",
    "Sepsis is excluded.",
    "The X-ray model finds no abnormality.",
    "Pneumonia is definitely likely (0.65).",
    "The clinician should prioritize COPD exacerbation as the diagnosis.",
    "COPD exacerbation is likely (0.20).",
    "Sepsis is the most likely diagnosis (0.35).",
    "The chest X-ray model finds pleural effusion (0.30).",
    "Heart failure is likely.",
    "The patient has heart failure (0.10).",
]
ADVERSARIAL = (AFFIRMATION_BEHIND_NEGATION + DOUBLE_NEGATIVES + OUT_OF_LABEL + WRONG_NUMBERS + HEDGES
               + OVERCLAIMS_AND_ALL_CLEARS)

REAL_NEGATIONS_AND_CLAIMS = [
    "Heart failure is unlikely (0.10).",
    "Heart failure is unlikely: 0.06, below its threshold of 0.50.",
    "Sepsis is below its threshold (0.35 from the labs model).",
    "The X-ray model finds no pleural effusion (0.30).",
    "There is no cardiomegaly on the chest X-ray model (0.02).",
    "No pleural effusion (0.30, below its threshold of 0.50).",
    "COPD exacerbation is not likely (0.20 from the notes model).",
    "Pneumonia is likely (0.65) but heart failure is unlikely (0.10).",
    "The labs model does not find sepsis (0.35).",
    "Asthma exacerbation is absent (0.02).",
    "Pleural effusion is not supported by the X-ray model (0.30).",
    "Sepsis is negative for the labs model (0.35).",
    "Pneumonia is the most likely diagnosis (0.65); heart failure is unlikely at 0.10.",
    "Pneumonia is likely, 65% from the combined models.",
    "The chest X-ray model finds consolidation (0.81, threshold 0.50).",
    "Heart failure has probability 0.10 from the labs model.",
    "Urinary tract infection is unlikely (0.02).",
    "Pneumonia is supported by the labs model (0.70) and the notes model (0.60).",
]


def test_the_suite_is_large_and_distinct():
    assert len(set(ADVERSARIAL)) == len(ADVERSARIAL) >= 100


@pytest.mark.parametrize("text", ADVERSARIAL)
def test_adversarial_rationale_is_refused(text):
    report = check_prose(text, FACTS)
    assert not report.ok, f"passed: {text!r}"
    assert report.problems  # and it says why


@pytest.mark.parametrize("text", REAL_NEGATIONS_AND_CLAIMS)
def test_true_statement_passes(text):
    report = check_prose(text, FACTS)
    assert report.ok, report.problems


def test_refusals_name_the_reason():
    why = " ".join(check_prose("Pneumothorax is not excluded and needs a chest tube.", FACTS).problems)
    assert "pneumothorax, which no mmdx tool assesses" in why
    assert "two negations" in " ".join(check_prose("Sepsis is unlikely to be absent.", FACTS).problems)
    assert "hedges" in " ".join(check_prose("Heart failure may be present.", FACTS).problems)
    assert "0.95" in " ".join(check_prose("Pneumonia is likely (0.95).", FACTS).problems)


# ---- claims as data


def _claim(label, says, tool, p):
    return Claim(label=label, says=says, tool=tool, p=p)


@pytest.mark.parametrize("claims,why", [
    ([_claim("pneumonia", "likely", "labs", 0.95)], "cites 0.95 for pneumonia"),
    ([_claim("pneumonia", "likely", "cxr", 0.7)], "does not score"),
    ([_claim("pneumonia", "likely", "fused", 0.7)], "did not run"),
    ([_claim("pneumonia", "likely", "labs", 0.7), _claim("heart_failure", "likely", "labs", 0.1)], "heart failure likely"),
    ([_claim("pneumonia", "unlikely", "labs", 0.7)], "calls pneumonia unlikely"),
    ([_claim("heart_failure", "unlikely", "labs", 0.1)], "leaves out pneumonia"),
    ([_claim("pneumonia", "likely", "labs", 0.7), _claim("pneumonia", "unlikely", "notes", 0.6)], "calls pneumonia unlikely"),
    ([_claim("pneumonia", "likely", "labs", 0.7), _claim("effusion", "likely", "cxr", 0.3)], "pleural effusion likely"),
    ([_claim("pneumonia", "likely", "labs", 0.7), _claim("no_acute_finding", "unlikely", "labs", 0.02)], "scope rule"),
])
def test_claims_that_the_tools_do_not_support_are_refused(claims, why):
    accepted, problems = check_claims(claims, FACTS)
    assert problems and why in " ".join(problems), problems


def test_accepted_claims_render_to_checked_prose():
    claims = [_claim("pneumonia", "likely", "labs", 0.7), _claim("heart_failure", "unlikely", "labs", 0.1),
              _claim("effusion", "unlikely", "cxr", 0.3)]
    accepted, problems = check_claims(claims, FACTS)
    assert problems == [] and accepted == claims
    text = " ".join(render_claims(accepted, FACTS))
    assert text == ("Pneumonia is likely: 0.65, threshold 0.50 (labs model 0.70). "
                    "Heart failure is unlikely: 0.06, below its threshold of 0.50 (labs model 0.10). "
                    "The chest X-ray model finds no pleural effusion (0.30, below its threshold of 0.50).")
    assert check_prose(text, FACTS).ok


def test_what_does_the_xray_show_lists_findings_as_present_or_absent():
    """The old chat printed all six findings as present. mmdx's own claims say which are absent."""
    text = " ".join(render_claims(template_claims(FACTS), FACTS))
    assert "The chest X-ray model finds consolidation (0.81, threshold 0.50)." in text
    assert "finds pleural effusion" not in text
    only_negative = [_out("cxr", "c", "imaging_findings", {"effusion": 0.3})]
    facts = Facts.build([], only_negative)
    text = " ".join(render_claims(template_claims(facts), facts))
    assert "finds no pleural effusion (0.30" in text and "finds no cardiomegaly" in text and check_prose(text, facts).ok


@pytest.mark.parametrize("student", ["student_labs", "student_notes", "student_cxr"])
def test_claims_citing_a_student_render_to_prose_the_check_accepts(student):
    """The routing evaluation crashed here: 'labs student model 0.56' read as the labs model's figure,
    and 'student' as wording the check could not verify. The students' names are tools of the check."""
    outputs = [*OUTPUTS, _out(student, "c", "diagnoses", {"urinary_tract_infection": 0.56, "pneumonia": 0.4})]
    entries, _ = agg.differential(outputs)
    facts = Facts.build(entries, outputs)
    claims = [_claim("pneumonia", "likely", "labs", 0.7), _claim("urinary_tract_infection", "unlikely", student, 0.56)]
    accepted, problems = check_claims(claims, facts)
    assert problems == [], problems
    text = " ".join(render_claims(accepted, facts))
    assert "student model 0.56" in text
    assert check_prose(text, facts).ok, check_prose(text, facts).problems
