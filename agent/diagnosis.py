"""The agent's answer: a typed, evidence-linked, calibrated differential diagnosis."""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from mmdx.agent.wording import label_name


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
    likely: bool  # probability >= threshold, unless a scope rule holds it back
    evidence: tuple[Evidence, ...]  # the tool outputs that produced or support this entry
    held_back: str | None = None  # why a probability over its threshold is still not called likely


class RedFlag(_Frozen):
    """A vital sign that needs urgent review whatever the tools say (agent/scope.py)."""

    variable: str
    value: float
    unit: str
    points: int  # NEWS2 points of this parameter (for the aggregate flag: the aggregate)
    rule: str  # the rule and its source, e.g. "NEWS2 (RCP 2017): systolic blood pressure 85 mmHg scores 3"


class VitalSigns(_Frozen):
    news2_partial: int  # NEWS2 aggregate over the parameters present (a lower bound of the full score)
    parameters: tuple[str, ...]  # the NEWS2 parameters measured
    points: tuple[int, ...]  # their points, in the same order
    red_flags: tuple[RedFlag, ...] = ()
    normal: bool  # enough parameters measured and every one scores 0
    not_scored: tuple[str, ...] = ()  # NEWS2 parameters the case format cannot hold


class MissingModality(_Frozen):
    modality: str
    handling: str  # what the agent did about it


class PlannedCall(_Frozen):
    tool: str
    reason: str
    source: Literal["llm", "guard", "fallback", "reflect", "reused", "what_if"]


class GuardOverride(_Frozen):
    action: Literal["dropped", "added", "deduplicated"]
    tool: str
    why: str


class Claim(_Frozen):
    """A checked statement of the answer (agent/claims.py): `tool` gave `label` probability `p`."""

    label: str
    says: Literal["likely", "unlikely"]
    tool: str
    p: float = Field(ge=0, le=1)


class GroundingReport(_Frozen):
    ok: bool  # the rationale shown passed: every sentence is a rendered, checked claim
    claims: tuple[Claim, ...] = ()  # what the rationale says, as data
    rejected: tuple[str, ...] = ()  # why an LLM answer was refused (it is never shown)
    checked_clauses: int = 0


class Diagnosis(_Frozen):
    case_id: str
    differential: tuple[DifferentialEntry, ...]
    imaging_findings: tuple[Evidence, ...] = ()
    missing: tuple[MissingModality, ...] = ()
    abstained: bool
    abstention_reason: str | None = None
    urgent_review: bool = False  # red-flag vital signs: review now, whatever the differential says
    vitals: VitalSigns | None = None
    input_warnings: tuple[str, ...] = ()  # inputs unlike what a model was trained on (any modality)
    rationale: str
    rationale_source: Literal["llm", "template"]
    grounding: GroundingReport
    plan: tuple[PlannedCall, ...] = ()
    overrides: tuple[GuardOverride, ...] = ()
    tool_failures: tuple[str, ...] = ()
    degraded: tuple[str, ...] = ()  # what was lost and how the answer copes
    llm_model: str = ""
    data_notice: str = "Default models were trained on SYNTHETIC data (generated ED presentations, rendered radiographs); not for clinical use."

    def top(self) -> DifferentialEntry | None:
        return self.differential[0] if self.differential else None

    def summary(self) -> str:
        top = self.top()
        lines = [f"Case {self.case_id}: " + ("ABSTAINED - " + (self.abstention_reason or "") if self.abstained or top is None else
                 f"most likely {label_name(top.diagnosis)} (p={top.probability:.2f})")]
        if self.urgent_review and self.vitals is not None:
            lines.append("  URGENT REVIEW: " + "; ".join(f.rule for f in self.vitals.red_flags))
        for e in self.differential[:5]:
            tools = ", ".join(sorted({ev.tool for ev in e.evidence}))
            lines.append(f"  {'*' if e.likely else ' '} {label_name(e.diagnosis):<40} p={e.probability:.2f} (threshold {e.threshold:.2f}; from {tools})")
        if self.imaging_findings:
            pos = [f"{f.label} {f.probability:.2f}" for f in self.imaging_findings if f.positive]
            lines.append("  imaging: " + (", ".join(pos) if pos else "no finding above threshold"))
        for m in self.missing:
            lines.append(f"  missing {m.modality}: {m.handling}")
        for w in self.input_warnings:
            lines.append(f"  unusual input: {w}")
        for d in self.degraded:
            lines.append(f"  degraded: {d}")
        lines.append(f"  rationale ({self.rationale_source}): {self.rationale}")
        lines.append(f"  {self.data_notice}")
        return "\n".join(lines)
