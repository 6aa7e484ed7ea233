"""Turn typed tool outputs into a ranked, evidence-linked differential, and decide when to abstain.

Probabilities come only from the tools: a fused multimodal model when it ran (it was trained on the
joint inputs), else the mean of the calibrated per-tool probabilities of the diagnosis tools. The
LLM never sets a probability. Imaging findings are linked as supporting evidence
(core/labels.FINDING_SUPPORTS), not added to the numbers. What the answer may say about these numbers
is decided in agent/claims.py; when vital signs overrule them, in agent/scope.py.
"""
from __future__ import annotations

from mmdx.core.labels import DIAGNOSES, FINDING_SUPPORTS
from mmdx.core.tool import ClassifierOutput
from mmdx.core.case import Modality, PatientCase
from mmdx.agent.diagnosis import DifferentialEntry, Evidence, MissingModality, VitalSigns
from mmdx.agent.wording import NO_ACUTE, scope_phrase, tool_name

FUSED_TOOLS = ("fused",)  # joint models whose output is the differential when present
STUDENT_PREFIX = "student_"  # unimodal students distilled from the fused model: student_cxr, ...


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


def _modality_of(tool: str) -> str:
    return tool[len(STUDENT_PREFIX):] if tool.startswith(STUDENT_PREFIX) else tool


def choose_sources(outputs: list[ClassifierOutput]) -> tuple[list[ClassifierOutput], str]:
    """The outputs whose probabilities are the differential's, and why.

    Two or more modalities: the fused model (trained on them jointly, calibrated). One modality, or
    the fused model unavailable: per modality, whichever of its diagnosis models (the modality model,
    its distilled student) has the higher measured test macro AUROC (recorded in its card); several
    modalities without the fused model fall back to the mean of those, and say so."""
    dx = [o for o in outputs if o.target == "diagnoses"]
    fused = [o for o in dx if o.tool in FUSED_TOOLS]
    if fused:
        return fused, f"taken from the fused model ({fused[0].provenance.model_id})"
    by_modality: dict[str, list[ClassifierOutput]] = {}
    for o in dx:
        by_modality.setdefault(_modality_of(o.tool), []).append(o)
    chosen = []
    for mod in sorted(by_modality):
        cands = by_modality[mod]
        best = max(cands, key=lambda o: (o.provenance.test_macro_auroc or 0.0, o.tool.startswith(STUDENT_PREFIX)))
        chosen.append(best)
    if not chosen:
        return [], "no diagnosis tool produced an output"
    why = [f"{o.tool} (test macro AUROC {o.provenance.test_macro_auroc:.3f})" if o.provenance.test_macro_auroc is not None
           else o.tool for o in chosen]
    if len(chosen) == 1:
        return chosen, f"taken from {why[0]}, the better-measured model of the one modality"
    return chosen, "mean of " + ", ".join(why) + " (no fused model output: a fallback)"


def differential(outputs: list[ClassifierOutput]) -> tuple[list[DifferentialEntry], str]:
    """(entries ranked by probability, how they were combined). The other diagnosis tools' outputs
    stay as evidence beside the chosen source's number."""
    dx = [o for o in outputs if o.target == "diagnoses"]
    sources, how = choose_sources(outputs)
    if not sources:
        return [], how
    imaging = imaging_evidence(outputs)
    entries = []
    for label in DIAGNOSES:
        scored = [o for o in sources if any(s.label == label for s in o.scores)]
        if not scored:
            continue
        ev = [_evidence(o, label) for o in scored]
        p = sum(e.probability for e in ev) / len(ev)
        thr = sum(e.threshold for e in ev) / len(ev)
        ev += [_evidence(o, label) for o in dx if o not in sources and any(s.label == label for s in o.scores)]
        ev += [e for e in imaging if e.positive and label in FINDING_SUPPORTS.get(e.label, ())]
        entries.append(DifferentialEntry(diagnosis=label, probability=round(p, 4), threshold=round(thr, 4), likely=p >= thr, evidence=tuple(ev)))
    entries.sort(key=lambda e: (-e.probability, e.diagnosis))
    return entries, how


def hold_back_no_acute(entries: list[DifferentialEntry], vitals: VitalSigns | None) -> list[DifferentialEntry]:
    """ "None of the N conditions mmdx covers" is only called likely with normal vital signs.

    Without them it is the label that sounds like an all-clear on a patient in shock: its
    probability stays, `likely` is withdrawn and the reason is kept on the entry."""
    out = []
    for e in entries:
        if e.diagnosis == NO_ACUTE and e.likely and not (vitals is not None and vitals.normal):
            why = ("the vital signs include red flags" if vitals is not None and vitals.red_flags else
                   "the vital signs are not all normal" if vitals is not None and len(vitals.parameters) >= 3 else
                   "too few vital signs were measured to call them normal")
            e = e.model_copy(update={"likely": False, "held_back": f"{scope_phrase()} needs normal vital signs to be called likely; {why}"})
        out.append(e)
    return out


def abstention(entries: list[DifferentialEntry], outputs: list[ClassifierOutput], vitals: VitalSigns | None = None) -> str | None:
    """Why the agent should not name a diagnosis, or None when the evidence suffices."""
    if not entries:
        return "no diagnosis model could run on the available inputs"
    dx_outputs = [o for o in outputs if o.target == "diagnoses"]
    if dx_outputs and all(o.ood_flag for o in dx_outputs):
        return "every diagnosis tool flagged its input as unlike its training data"
    covered_likely = [e for e in entries if e.likely and e.diagnosis != NO_ACUTE]
    if vitals is not None and vitals.red_flags and not covered_likely:
        return f"the vital signs have red flags and {scope_phrase()} reaches its threshold; the cause may lie outside them"
    if not any(e.likely for e in entries):
        held = next((e.held_back for e in entries if e.held_back), None)
        return "no diagnosis reaches its decision threshold" + (f" ({held})" if held else "")
    return None


def input_warnings(outputs: list[ClassifierOutput]) -> list[str]:
    """Every tool whose input is unlike its training data, whatever the modality."""
    return [f"{o.tool}: the input is unlike what the {tool_name(o.tool)} was trained on (OOD score {o.ood_score:.2f}); "
            "its probabilities are less reliable" for o in outputs if o.ood_flag]


def missing_modalities(case: PatientCase, tools: dict[str, type], results: dict, failures: dict) -> list[MissingModality]:
    """Each modality the answer does not rest on, and why: absent from the case, or present but
    not examined (its tool failed, or nobody chose it)."""
    out = []
    for m in Modality:
        if m not in case.modalities:
            out.append(MissingModality(modality=m.value, handling=f"no {m.value} in the case; the answer rests on "
                                       + (", ".join(sorted(results)) or "nothing")))
            continue
        users = [t for t in sorted(tools) if m in tools[t].requires]
        if not any(t in results for t in users):
            why = "; ".join(f"{t} {failures[t].kind}" for t in users if t in failures) or "not selected by the planner"
            out.append(MissingModality(modality=m.value, handling=f"present but not examined ({why})"))
    return out
