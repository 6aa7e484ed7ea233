"""The agent's answer: a typed, evidence-linked, calibrated differential diagnosis."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, protected_namespaces=())


class Evidence(_Frozen):
    """One tool output behind a claim: which tool, which label, what it said."""

    tool: str
    label: str
    probability: float
    threshold: float
    positive: bool
    model_id: str
    weights_sha256: str


class DifferentialEntry(_Frozen):
    diagnosis: str
    probability: float = Field(ge=0, le=1, description="combined calibrated probability from the diagnosis tools")
    threshold: float = Field(ge=0, le=1)
    likely: bool  # probability >= threshold
    evidence: tuple[Evidence, ...]  # the tool outputs that produced or support this entry


class MissingModality(_Frozen):
    modality: str
    handling: str  # what the agent did about it


class PlannedCall(_Frozen):
    tool: str
    reason: str
    source: Literal["llm", "guard", "fallback", "reflect"]


class GuardOverride(_Frozen):
    action: Literal["dropped", "added", "deduplicated"]
    tool: str
    why: str


class GroundingReport(_Frozen):
    ok: bool
    unsupported: tuple[str, ...] = ()  # findings the rationale named that no tool output supports
    checked_terms: int = 0


class Diagnosis(_Frozen):
    case_id: str
    differential: tuple[DifferentialEntry, ...]
    imaging_findings: tuple[Evidence, ...] = ()
    missing: tuple[MissingModality, ...] = ()
    abstained: bool
    abstention_reason: str | None = None
    rationale: str
    rationale_source: Literal["llm", "template"]
    grounding: GroundingReport
    plan: tuple[PlannedCall, ...] = ()
    overrides: tuple[GuardOverride, ...] = ()
    tool_failures: tuple[str, ...] = ()
    degraded: tuple[str, ...] = ()  # what was lost and how the answer copes
    llm_model: str = ""
    data_notice: str = "Default models were trained on SYNTHETIC data (clinosim patients, rendered radiographs); not for clinical use."

    def top(self) -> DifferentialEntry | None:
        return self.differential[0] if self.differential else None

    def summary(self) -> str:
        lines = [f"Case {self.case_id}: " + ("ABSTAINED - " + (self.abstention_reason or "") if self.abstained else
                 f"most likely {self.differential[0].diagnosis} (p={self.differential[0].probability:.2f})")]
        for e in self.differential[:5]:
            tools = ", ".join(sorted({ev.tool for ev in e.evidence}))
            lines.append(f"  {'*' if e.likely else ' '} {e.diagnosis:<24} p={e.probability:.2f} (threshold {e.threshold:.2f}; from {tools})")
        if self.imaging_findings:
            pos = [f"{f.label} {f.probability:.2f}" for f in self.imaging_findings if f.positive]
            lines.append("  imaging: " + (", ".join(pos) if pos else "no finding above threshold"))
        for m in self.missing:
            lines.append(f"  missing {m.modality}: {m.handling}")
        for d in self.degraded:
            lines.append(f"  degraded: {d}")
        lines.append(f"  rationale ({self.rationale_source}): {self.rationale}")
        lines.append(f"  {self.data_notice}")
        return "\n".join(lines)
