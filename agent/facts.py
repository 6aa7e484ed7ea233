"""What the tools said about one case, indexed for checking claims against it.

`Facts` is built from the typed tool outputs and the combined differential; the claim checker
(agent/claims.py) and the prose checker (agent/prose_check.py) read only this. A label is
*supported* when the answer may call it likely or present: a diagnosis whose combined probability
reaches its threshold (and is not held back by a scope rule), an imaging finding a tool called
positive. Everything else may only be called unlikely or absent, and only with the right numbers.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mmdx.core.labels import DIAGNOSES, IMAGING_FINDINGS
from mmdx.core.tool import ClassifierOutput, LabelScore
from mmdx.agent.diagnosis import DifferentialEntry

@dataclass(frozen=True)
class Facts:
    entries: dict[str, DifferentialEntry]  # diagnosis -> combined entry
    scores: dict[tuple[str, str], LabelScore]  # (tool, label) -> what that tool said
    targets: dict[str, str] = field(default_factory=dict)  # tool -> "diagnoses" | "imaging_findings"

    @classmethod
    def build(cls, entries: list[DifferentialEntry] | tuple[DifferentialEntry, ...], outputs: list[ClassifierOutput]) -> "Facts":
        scores = {(o.tool, s.label): s for o in outputs for s in o.scores}
        return cls(entries={e.diagnosis: e for e in entries}, scores=scores, targets={o.tool: o.target for o in outputs})

    @classmethod
    def from_diagnosis(cls, dx) -> "Facts":
        """The facts a stored Diagnosis carries: its entries and the per-tool evidence behind them."""
        scores, targets = {}, {}
        for ev in (*(ev for e in dx.differential for ev in e.evidence), *dx.imaging_findings):
            scores[(ev.tool, ev.label)] = LabelScore(label=ev.label, probability=ev.probability, threshold=ev.threshold)
            targets[ev.tool] = "imaging_findings" if ev.label in IMAGING_FINDINGS else "diagnoses"
        return cls(entries={e.diagnosis: e for e in dx.differential}, scores=scores, targets=targets)

    @property
    def tools(self) -> list[str]:
        return sorted(self.targets)

    def labels(self) -> list[str]:
        """Every label some tool that ran scored (diagnoses first, in vocabulary order)."""
        seen = {label for _, label in self.scores}
        return [lab for lab in (*DIAGNOSES, *IMAGING_FINDINGS) if lab in seen]

    def is_finding(self, label: str) -> bool:
        return label in IMAGING_FINDINGS

    def scored_by(self, label: str) -> list[str]:
        return sorted(t for t, lab in self.scores if lab == label)

    def supported(self, label: str) -> bool:
        """May the answer call `label` likely / present?"""
        if label in self.entries:
            return self.entries[label].likely
        return any(s.positive for (t, lab), s in self.scores.items() if lab == label)

    def numbers(self, label: str, tools: set[str] | None = None) -> list[float]:
        """Every figure a sentence about `label` may cite: combined probability and threshold, and
        each tool's (only the named tools' when `tools` is given)."""
        e = self.entries.get(label)
        out = [e.probability, e.threshold] if e is not None else []
        for (t, lab), s in self.scores.items():
            if lab == label and (not tools or t in tools):
                out += [s.probability, s.threshold]
        return out
