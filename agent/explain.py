"""Answers to follow-up questions, written from the stored tool outputs (no LLM prose).

"Why not pneumonia?" gets pneumonia's combined probability and threshold, what each tool said with
its own threshold, and which X-ray findings that would support it were present or absent.
"Compare" sets the answers of a thread (the full case, each what-if) side by side.
"""
from __future__ import annotations

from mmdx.core.labels import DIAGNOSES, FINDING_SUPPORTS, IMAGING_FINDINGS
from mmdx.core.tool import ClassifierOutput
from mmdx.agent.diagnosis import Diagnosis
from mmdx.agent.wording import capitalised, label_name, tool_name


def _tool_lines(label: str, outputs: dict[str, ClassifierOutput]) -> list[str]:
    lines = []
    for tool, out in sorted(outputs.items()):
        s = next((s for s in out.scores if s.label == label), None)
        if s is not None:
            verdict = "at or over its threshold" if s.positive else "below its threshold"
            lines.append(f"  {tool_name(tool)}: {s.probability:.2f} (its threshold {s.threshold:.2f}, {verdict})"
                         + (" - input unlike its training data" if out.ood_flag else ""))
    return lines


def explain_label(label: str, dx: Diagnosis, outputs: dict[str, ClassifierOutput]) -> str:
    name = capitalised(label_name(label))
    if label in IMAGING_FINDINGS:
        lines = _tool_lines(label, outputs)
        if not lines:
            return f"{name}: no tool that ran reads the chest X-ray, so mmdx cannot say."
        ev = next((e for e in dx.imaging_findings if e.label == label), None)
        head = f"{name}: {'present' if ev is not None and ev.positive else 'absent'} on the chest X-ray model."
        return "\n".join([head, *lines])
    e = next((e for e in dx.differential if e.diagnosis == label), None)
    if e is None:
        return f"{name}: no diagnosis tool that ran scores it."
    if e.likely:
        verdict = "likely"
    elif e.held_back:
        verdict = f"not called likely ({e.held_back})"
    else:
        verdict = "unlikely"
    lines = [f"{name}: {verdict}, {e.probability:.2f} against its threshold {e.threshold:.2f}."]
    lines += _tool_lines(label, outputs)
    supporting = [f for f, dxs in FINDING_SUPPORTS.items() if label in dxs]
    if supporting:
        found = {ev.label: ev for ev in dx.imaging_findings}
        if found:
            present = [f"{label_name(f)} {found[f].probability:.2f}" for f in supporting if f in found and found[f].positive]
            absent = [f"{label_name(f)} {found[f].probability:.2f}" for f in supporting if f in found and not found[f].positive]
            lines.append("  X-ray findings that would support it: present: " + (", ".join(present) or "none")
                         + "; absent: " + (", ".join(absent) or "none") + ".")
        else:
            lines.append("  No chest X-ray was read, so no finding supports or weighs against it.")
    for m in dx.missing:
        lines.append(f"  Not used: {m.modality} ({m.handling}).")
    return "\n".join(lines)


def explain(labels: list[str], dx: Diagnosis, outputs: dict[str, ClassifierOutput]) -> str:
    """The explanation of each label asked about (the top of the differential when none was named)."""
    if not labels:
        labels = [dx.top().diagnosis] if dx.top() else [f.label for f in dx.imaging_findings]
    if not labels:
        return "No tool produced an output to explain."
    head = ["Urgent clinical review is needed (red-flag vital signs); the figures below do not change that."] if dx.urgent_review else []
    return "\n\n".join(head + [explain_label(lab, dx, outputs) for lab in labels])


def compare(answers: list[tuple[str, Diagnosis]]) -> str:
    """The answers so far, side by side: the top of each and every diagnosis that moved by 0.05 or more."""
    if len(answers) < 2:
        return "Nothing to compare yet: ask a what-if first (for example /whatif labs)."
    (name_a, a), (name_b, b) = answers[-2], answers[-1]
    lines = [f"{name_a} vs {name_b}:"]
    for name, dx in ((name_a, a), (name_b, b)):
        top = dx.top()
        lines.append(f"  {name}: " + (f"abstains ({dx.abstention_reason})" if dx.abstained or top is None
                                      else f"{label_name(top.diagnosis)} {top.probability:.2f}"))
    pa = {e.diagnosis: e.probability for e in a.differential}
    pb = {e.diagnosis: e.probability for e in b.differential}
    for d in DIAGNOSES:
        if d in pa and d in pb and abs(pa[d] - pb[d]) >= 0.05:
            lines.append(f"  {label_name(d)}: {pa[d]:.2f} -> {pb[d]:.2f}")
    return "\n".join(lines)


def what_if_summary(before: Diagnosis, after: Diagnosis, dropped: str, reused: list[str], rerun: list[str]) -> str:
    top_b = before.top().diagnosis if before.top() and not before.abstained else None
    top_a = after.top().diagnosis if after.top() and not after.abstained else None
    lines = [f"Without the {dropped}:"]
    lines.append(f"  tools reused (they do not read the {dropped}): {', '.join(reused) or 'none'}; "
                 f"rerun: {', '.join(rerun) or 'none'}.")
    if after.abstained:
        lines.append(f"  the agent would abstain ({after.abstention_reason}).")
    elif top_a != top_b:
        lines.append(f"  the top diagnosis changes from {label_name(top_b) if top_b else 'none'} to {label_name(top_a)}.")
    else:
        lines.append(f"  the top diagnosis stays {label_name(top_a)}.")
    pa = {e.diagnosis: e.probability for e in before.differential}
    pb = {e.diagnosis: e.probability for e in after.differential}
    for d in DIAGNOSES:
        if d in pa and d in pb and abs(pa[d] - pb[d]) >= 0.05:
            lines.append(f"  {label_name(d)}: {pa[d]:.2f} -> {pb[d]:.2f}")
    return "\n".join(lines)
