"""No diagnosis reaches a model input: checked by a detector that shares no code with the one that
redacts notes (core/labels.py `find_label_leaks` / `redact`, one regex).

The detector here lower-cases the text, splits it into alphanumeric words with `str` methods (no
regex) and looks for each term as a run of whole words. Its vocabulary is every diagnosis synonym of
core/labels.py *plus* terms written here from clinical usage that core does not list (LRTI, CCF,
LVF, "water infection", ...): a leak in either vocabulary fails the test.

The ED cohort's notes never name the final diagnosis, but their past-history clause names
comorbidities ("PMH: COPD, CHF"), in every class at its prevalence (tests/test_ed_generator.py).
History clauses are cut here by sentence, independently of the generator's wording, and the test
checks they do hold label words, so the detector is shown to see them.
"""
from __future__ import annotations

from datetime import datetime

import pytest

from mmdx.core.labels import DIAGNOSES, HUMAN_NAMES, SYNONYMS

# Terms a clinician would write for each diagnosis, beyond core's list (abbreviations in upper case
# are matched case-sensitively, like "CAP" in core: "cap refill" is not community-acquired pneumonia).
EXTRA_TERMS: dict[str, tuple[str, ...]] = {
    "pneumonia": ("LRTI", "lower respiratory tract infection", "chest sepsis", "lobar pneumonia"),
    "heart_failure": ("CCF", "LVF", "congestive cardiac failure", "left ventricular failure", "fluid overloaded heart"),
    "copd_exacerbation": ("AECOPD", "COAD", "chronic obstructive airways disease"),
    "asthma_exacerbation": ("asthma attack", "acute severe asthma", "wheezy bronchitis"),
    "urinary_tract_infection": ("water infection", "urine infection", "bladder infection", "kidney infection", "pyelo"),
    "sepsis": ("septic shock", "severe sepsis", "blood poisoning"),
}
UPPER_ONLY = {"CAP", "HAP", "HF", "SIRS", "LRTI", "CCF", "LVF", "COAD", "UTI", "UTIs", "CHF", "COPD", "AECOPD", "ADHF",
              "HFrEF", "HFpEF"}
HISTORY_OPENERS = ("pmh", "pmhx", "hx", "past history", "past medical history", "his past medical history",
                   "her past medical history")


def _words(text: str, lower: bool = True) -> list[str]:
    out, cur = [], []
    for ch in text:
        if ch.isalnum():
            cur.append(ch)
        elif cur:
            out.append("".join(cur))
            cur = []
    if cur:
        out.append("".join(cur))
    return [w.lower() for w in out] if lower else out


def _vocabulary() -> list[tuple[str, tuple[str, ...], bool]]:
    terms = set()
    for d in DIAGNOSES:
        if d == "no_acute_finding":
            continue
        terms.update(SYNONYMS.get(d, ()))
        terms.update(EXTRA_TERMS.get(d, ()))
        terms.update((d.replace("_", " "), HUMAN_NAMES[d]))
    vocab = []
    for t in sorted(terms):
        upper = t in UPPER_ONLY
        vocab.append((t, tuple(_words(t, lower=not upper)), upper))
    return vocab


VOCAB = _vocabulary()


def leaks(text: str) -> list[str]:
    """Diagnosis terms in `text`, as whole-word runs (case-insensitive, abbreviations exact)."""
    low, raw = _words(text), _words(text, lower=False)
    found = []
    for term, seq, upper in VOCAB:
        words = raw if upper else low
        n = len(seq)
        if any(tuple(words[i:i + n]) == seq for i in range(len(words) - n + 1)):
            found.append(term)
    return found


def split_history(text: str) -> tuple[str, str]:
    """(the text without its past-history sentences, those sentences). A sentence is history when
    it opens with a history heading ("PMH:", "Hx:", "Her past medical history ...")."""
    keep, hist = [], []
    for sentence in text.replace("\n", " ").split(". "):
        head = " ".join(_words(sentence.split(":")[0])[:4])
        (hist if any(head == h or head.startswith(h + " ") for h in HISTORY_OPENERS) else keep).append(sentence)
    return ". ".join(keep), ". ".join(hist)


def test_the_detector_sees_leaks_the_redactor_vocabulary_does_not_list():
    assert leaks("Impression: chest infection, likely CAP.") == ["CAP", "chest infection"]
    assert leaks("Ext: cap refill 2 s; no edema.") == []  # ordinary words
    assert "water infection" in leaks("treated for a water infection last week")
    assert "heart failure" in leaks("HEART-FAILURE")
    text, hist = split_history("58F with cough. PMH: COPD, CHF. Never smoker.")
    assert leaks(hist) == ["CHF", "COPD"] and leaks(text) == []


@pytest.fixture(scope="module")
def ed_notes():
    from mmdx.data.ed.generate import presentations
    from mmdx.data.ed.notes import write_notes

    out = []
    for p in presentations(43, 3000, datetime(2024, 1, 1), datetime(2024, 12, 31)):
        out += [(p, kind, text) for kind, text in write_notes(p, "ed")]
        out += [(p, kind, text) for kind, text in write_notes(p, "case_report")]
    return out


def test_ed_notes_never_name_a_diagnosis_outside_past_history(ed_notes):
    bad = []
    history_hits = 0
    for p, kind, text in ed_notes:
        body, hist = split_history(text)
        if leaks(body):
            bad.append((p.case_id, kind, leaks(body), body[:200]))
        history_hits += bool(leaks(hist))
    assert not bad, bad[:5]
    assert history_hits > 20  # the detector does see the comorbidities the history names


def test_built_cohort_inputs_hold_no_diagnosis(tmp_path):
    """The case files a model reads (notes, variable names, units, image metadata), from a real
    build, outside past history."""
    import json

    from mmdx.data import cohort

    cohort.build_cohort(tmp_path, seeds=[44], population=250, start="2024-01-01", end="2024-06-30", workers=1)
    checked = 0
    for case in cohort.iter_cases(tmp_path):
        inputs = case.model_dump(mode="json", exclude={"labels", "origin", "base_dir", "case_id", "notes"})
        assert not leaks(json.dumps(inputs)), case.case_id
        for note in case.notes:
            body, _ = split_history(note.text)
            assert not leaks(body), (case.case_id, note.kind, leaks(body))
            checked += 1
    assert checked > 50
