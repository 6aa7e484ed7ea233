"""The rationale a clinician reads, put together from rules and checked claims only.

Order: urgent review first (red-flag vital signs, by rule), then why no diagnosis is given (when the
agent abstains), then the rendered claims, then what "none of the N conditions mmdx covers" means
here. No sentence comes from free LLM text: the LLM chose the claims, mmdx wrote the words.
"""
from __future__ import annotations

from mmdx.agent.diagnosis import DifferentialEntry, VitalSigns
from mmdx.agent.scope import describe_flags
from mmdx.agent.wording import COVERED, NO_ACUTE, capitalised, scope_phrase


def urgent_sentence(vitals: VitalSigns, entries: list[DifferentialEntry]) -> str:
    covered_likely = [e for e in entries if e.likely and e.diagnosis != NO_ACUTE]
    head = f"Urgent clinical review is needed: red-flag vital signs ({describe_flags(vitals)})."
    if covered_likely:
        return head + (f" mmdx covers only {len(COVERED)} conditions and does not establish that any of them "
                       "explains these signs.")
    return head + f" {capitalised(scope_phrase())} reaches its threshold, so none of them explains these signs."


def scope_sentence(entries: list[DifferentialEntry]) -> str | None:
    e = next((e for e in entries if e.diagnosis == NO_ACUTE), None)
    if e is None:
        return None
    if e.likely:
        return (f"The tools favour '{scope_phrase()}' ({e.probability:.2f}, threshold {e.threshold:.2f}) and the vital "
                f"signs are normal. This is not an all-clear: conditions outside those {len(COVERED)} are not assessed.")
    if e.held_back:
        return f"'{capitalised(scope_phrase())}' scores {e.probability:.2f} but is not called likely: {e.held_back}."
    return None


def compose(claim_sentences: list[str], entries: list[DifferentialEntry], vitals: VitalSigns | None,
            abstain: str | None) -> str:
    parts = []
    if vitals is not None and vitals.red_flags:
        parts.append(urgent_sentence(vitals, entries))
    if abstain:
        parts.append(f"No diagnosis is given: {abstain}.")
    parts += claim_sentences
    if (s := scope_sentence(entries)) is not None:
        parts.append(s)
    return " ".join(parts) or "No tool produced an output."
