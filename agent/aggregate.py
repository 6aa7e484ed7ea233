"""Turn typed tool outputs into a ranked, evidence-linked differential, and check the rationale.

Probabilities come only from the tools: a fused multimodal model when it ran (it was trained on the
joint inputs), else the mean of the calibrated per-tool probabilities of the diagnosis tools. The
LLM never sets a probability. Imaging findings are linked as supporting evidence
(core/labels.FINDING_SUPPORTS), not added to the numbers.
"""
from __future__ import annotations

import re

from mmdx.core.labels import DIAGNOSES, FINDING_SUPPORTS, HUMAN_NAMES, OUTSIDE_TERMS, SYNONYMS
from mmdx.core.tool import ClassifierOutput
from mmdx.agent.diagnosis import DifferentialEntry, Evidence, GroundingReport

FUSED_TOOLS = ("fused",)  # joint models whose output replaces the per-tool mean when present


def _evidence(out: ClassifierOutput, label: str) -> Evidence:
    s = next(s for s in out.scores if s.label == label)
    return Evidence(tool=out.tool, label=label, probability=s.probability, threshold=s.threshold, positive=s.positive,
                    model_id=out.provenance.model_id, weights_sha256=out.provenance.weights_sha256)


def imaging_evidence(outputs: list[ClassifierOutput]) -> list[Evidence]:
    ev = []
    for out in outputs:
        if out.target == "imaging_findings":
            ev.extend(_evidence(out, s.label) for s in out.scores)
    return sorted(ev, key=lambda e: -e.probability)


def differential(outputs: list[ClassifierOutput]) -> tuple[list[DifferentialEntry], str]:
    """(entries ranked by probability, how they were combined)."""
    dx = [o for o in outputs if o.target == "diagnoses"]
    fused = [o for o in dx if o.tool in FUSED_TOOLS]
    sources = fused or dx
    if not sources:
        return [], "no diagnosis tool produced an output"
    how = (f"taken from the fused model ({fused[0].provenance.model_id})" if fused else
           "mean of the calibrated probabilities of " + ", ".join(o.tool for o in sources))
    imaging = imaging_evidence(outputs)
    entries = []
    for label in DIAGNOSES:
        scored = [o for o in sources if any(s.label == label for s in o.scores)]
        if not scored:
            continue
        ev = [_evidence(o, label) for o in scored]
        p = sum(e.probability for e in ev) / len(ev)
        thr = sum(e.threshold for e in ev) / len(ev)
        ev += [e for e in imaging if e.positive and label in FINDING_SUPPORTS.get(e.label, ())]
        entries.append(DifferentialEntry(diagnosis=label, probability=round(p, 4), threshold=round(thr, 4), likely=p >= thr, evidence=tuple(ev)))
    entries.sort(key=lambda e: (-e.probability, e.diagnosis))
    return entries, how


def abstention(entries: list[DifferentialEntry], outputs: list[ClassifierOutput]) -> str | None:
    """Why the agent should not name a diagnosis, or None when the evidence suffices."""
    if not entries:
        return "no diagnosis model could run on the available inputs"
    dx_outputs = [o for o in outputs if o.target == "diagnoses"]
    if dx_outputs and all(o.ood_flag for o in dx_outputs):
        return "every diagnosis tool flagged its input as unlike its training data"
    if not any(e.likely for e in entries):
        return "no diagnosis reaches its decision threshold"
    return None


# ---- grounding: the rationale may only assert what a tool supports
_NEGATION = re.compile(r"\b(no|not|without|absent|absence|unlikely|negative|against|rule[sd]? out|ruled out|exclude[sd]?|lack|lacks|nor|below|low|less likely|lower)\b[^.;:]*$", re.I)
_NEGATION_AFTER = re.compile(r"^(?:[^.;:]|\.\d){0,40}\b(unlikely|is not|are not|below (its |the )?threshold|not supported|ruled out|excluded|less likely|low probability)\b", re.I)


def _mentions(text: str, term: str) -> list[int]:
    return [m.start() for m in re.finditer(r"(?<![a-z])" + re.escape(term) + r"(?![a-z])", text, re.I)]


def _negated(text: str, pos: int) -> bool:
    """A negated mention: 'no X', 'X is unlikely', 'X (0.02, below its threshold)' in the same clause."""
    before = re.split(r"[;:!?]|\.(?!\d)", text[max(0, pos - 60):pos])[-1]  # a decimal point does not end a clause
    after = text[pos:pos + 80]
    return bool(_NEGATION.search(before) or _NEGATION_AFTER.search(after))


def check_grounding(rationale: str, entries: list[DifferentialEntry], outputs: list[ClassifierOutput],
                    extra_supported: set[str] = frozenset()) -> GroundingReport:
    """Reject a rationale that asserts a finding or diagnosis no tool supports.

    Supported: diagnoses above their decision threshold (or the top one when none is), and imaging
    findings a tool called positive. Any other label, and anything outside mmdx's label set
    (pneumothorax, cancer...), may only be mentioned negated ("no effusion", "pneumonia is
    unlikely", "below threshold"). `extra_supported` widens the set (the chat's explanations may
    discuss every scored diagnosis).
    """
    likely = {e.diagnosis for e in entries if e.likely}
    supported = (likely or {e.diagnosis for e in entries[:1]}) | set(extra_supported)
    for out in outputs:
        if out.target == "imaging_findings":
            supported |= {s.label for s in out.scores if s.positive}
    terms: list[tuple[str, str]] = [(lab, syn) for lab, syns in SYNONYMS.items() for syn in syns]
    terms += [(lab, HUMAN_NAMES[lab]) for lab in HUMAN_NAMES if lab not in SYNONYMS]
    terms += [("outside:" + t, t) for t in OUTSIDE_TERMS]
    unsupported, checked = set(), 0
    for label, term in terms:
        for pos in _mentions(rationale, term):
            checked += 1
            if label in supported or label in ("no_acute_finding", "no_finding"):
                continue
            if _negated(rationale, pos):
                continue
            unsupported.add(term)
    return GroundingReport(ok=not unsupported, unsupported=tuple(sorted(unsupported)), checked_terms=checked)


def template_rationale(entries: list[DifferentialEntry], imaging: list[Evidence], how: str, abstain: str | None) -> str:
    """The rationale written without the LLM (used when the LLM fails or is ungrounded twice)."""
    parts = []
    if abstain:
        parts.append(f"No diagnosis is given: {abstain}.")
    if entries:
        # every below-threshold diagnosis is written as such, so the template passes its own grounding check
        parts.append("Ranked by " + how + ": " + "; ".join(
            f"{HUMAN_NAMES[e.diagnosis]} {e.probability:.2f}" + ("" if e.likely else " (below its threshold)") for e in entries[:3]) + ".")
    pos = [e for e in imaging if e.positive]
    if pos:
        parts.append("Chest X-ray model positive for " + ", ".join(f"{HUMAN_NAMES[e.label]} ({e.probability:.2f})" for e in pos) + ".")
    elif imaging:
        parts.append("Chest X-ray model found no finding above its thresholds.")
    return " ".join(parts) or "No tool produced an output."
