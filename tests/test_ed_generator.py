"""The emergency-department generator (data/ed/): calibration to the published figures, the sampler's
marginals, what orders and notes may depend on, determinism."""
from __future__ import annotations

import re
from datetime import datetime

import numpy as np
import pytest

from mmdx.core.labels import DIAGNOSES, find_label_leaks
from mmdx.data.ed import parameters as P
from mmdx.data.ed.calibration import check, selector
from mmdx.data.ed.generate import IDX, presentations
from mmdx.data.ed.notes import write_notes
from mmdx.data.ed.sources import CALIBRATION, SOURCES

START, END = datetime(2024, 1, 1), datetime(2024, 12, 31)


@pytest.fixture(scope="module")
def large_draw():
    """About 20,000 presentations from seeds never used for the shipped cohort."""
    out = []
    for seed in range(900, 920):
        out += presentations(seed, 4000, START, END)
    return out


def test_every_published_figure_is_reproduced_by_a_large_draw(large_draw):
    results = check(large_draw)
    assert len(results) == len(CALIBRATION) >= 40
    missed = [r.line() for r in results if not r.ok]
    assert not missed, "\n".join(missed)
    for r in results:  # every row had enough cases behind it to mean something
        assert r.n_target >= 300, r.line()


def test_every_figure_cites_a_known_source_and_a_sane_interval():
    for f in CALIBRATION:
        assert f.source in SOURCES, f
        assert f.lo <= f.value <= f.hi or f.quantity == "rate", f  # the figure lies in its own interval
        selector(f.target), selector(f.comparison)  # selectors parse


def test_sampler_draws_each_tabled_probability(large_draw):
    """Typical single-condition presentations show each symptom, sign and history item at the tabled
    rate (within 4.5 binomial standard errors): the copula keeps every marginal exact."""
    for cond in P.CONDITIONS:
        group = [p for p in large_draw if p.conditions == (cond,) and not p.atypical]
        assert len(group) > 300, cond
        for table in (P.SYMPTOMS, P.SIGNS, P.HISTORY):
            for name, row in table.items():
                women = name in P.FEMALE_ONLY
                g = [p for p in group if p.sex == "female"] if women else group
                want = row[IDX[cond]]
                got = np.mean([p.findings[name] for p in g])
                se = max(np.sqrt(want * (1 - want) / len(g)), 1e-3)
                assert abs(got - want) <= 4.5 * se, (cond, name, want, got, len(g))


def test_findings_of_a_condition_come_together(large_draw):
    """Within heart failure, orthopnoea and a raised JVP are positively associated (the expression
    latent): a florid case shows several signs, an atypical one few."""
    hf = [p for p in large_draw if p.conditions == ("heart_failure",)]
    a = np.array([p.findings["orthopnoea"] for p in hf])
    b = np.array([p.findings["jvd"] for p in hf])
    assert np.mean(b[a]) > np.mean(b[~a]) + 0.1


def test_orders_depend_on_the_complaint_and_age_not_the_diagnosis(large_draw):
    for test in ("bnp", "troponin", "abg", "urinalysis", "lactate"):
        for complaint in ("dyspnoea", "cough_fever"):
            older = [p for p in large_draw if p.complaint == complaint and p.age >= 65]
            hf = [test in p.ordered for p in older if "heart_failure" in p.conditions]
            other = [test in p.ordered for p in older if "heart_failure" not in p.conditions]
            if len(hf) > 200 and len(other) > 200:
                q = (sum(hf) + sum(other)) / (len(hf) + len(other))
                se = np.sqrt(q * (1 - q) * (1 / len(hf) + 1 / len(other)))
                assert abs(np.mean(hf) - np.mean(other)) < 4 * se, (test, complaint, np.mean(hf), np.mean(other), se)


def test_measurement_count_does_not_depend_on_the_diagnosis_given_the_complaint(large_draw):
    dysp = [p for p in large_draw if p.complaint == "dyspnoea"]
    vitals = lambda p: sum(m.variable == "heart_rate" for m in p.measurements)  # noqa: E731
    by = {d: np.mean([vitals(p) for p in dysp if d in p.true_diagnoses]) for d in DIAGNOSES}
    assert max(by.values()) - min(by.values()) < 0.12, by


def _without_history(text: str) -> str:
    return re.sub(r"(PMH|Past history|Hx|PMHx):[^.]*\.", "", text)


def test_notes_never_name_the_final_diagnosis(large_draw):
    for p in large_draw[:5000]:
        for kind, text in write_notes(p, "ed"):
            assert not find_label_leaks(_without_history(text)), (p.case_id, kind, text)
        report = write_notes(p, "case_report")[0][1]
        assert not find_label_leaks(re.sub(r"past medical history[^.]*\.", "", report)), (p.case_id, report)


def test_comorbid_history_is_written_in_every_class(large_draw):
    """'known COPD' is history, not a diagnosis: it appears in other classes at their prevalence."""
    for label, word in (("copd_exacerbation", r"\bCOPD\b|emphysema"), ("heart_failure", r"\bCHF\b|heart failure|HFrEF")):
        others = [p for p in large_draw if label not in p.recorded_diagnoses]
        share = np.mean([bool(re.search(word, write_notes(p, "ed")[1][1])) for p in others[:3000]])
        assert share > 0.04, (label, share)


def test_the_held_out_style_shares_no_template_with_the_training_style(large_draw):
    train_openers = ("Reports", "Endorses", "Denies", "PMH:", "Past history:", "Hx:", "VS:", "Lungs:", " y/o ")
    for p in large_draw[:300]:
        report = write_notes(p, "case_report")[0][1]
        assert not any(o in report for o in train_openers), report


def test_presentations_are_deterministic_and_stable_as_the_population_grows():
    a = presentations(5, 800, START, END)
    b = presentations(5, 800, START, END)
    assert [(p.conditions, p.findings, p.physiology, p.recorded_diagnoses) for p in a] == \
           [(p.conditions, p.findings, p.physiology, p.recorded_diagnoses) for p in b]
    c = presentations(5, 1600, START, END)  # a case's draws depend on (seed, index) only
    assert [(p.conditions, p.findings) for p in a[:100]] == [(p.conditions, p.findings) for p in c[:100]]


def test_some_labels_are_wrong_and_marked_noisy(large_draw):
    noisy = [p for p in large_draw if p.noisy]
    assert 0.03 < len(noisy) / len(large_draw) < 0.08
    assert all(p.recorded_diagnoses != p.true_diagnoses for p in noisy)
