"""What the agent's answer is made of, and which tools matter for a case.

The *answer* of a set of tool outputs is what the agent would say from them: the differential of
agent/aggregate.py (the fused model when it ran, else the better-measured model of each modality),
the scope rule that holds back "none of the conditions" without normal vital signs, and the
abstention rule. `answer(outputs, vitals) -> Answer(top, abstained, scores)`: every policy and
baseline in the evaluations is scored through it, so they differ only in which outputs they had.

**Relevance** (what tool-selection precision and recall are measured against): a tool is relevant
to a case when

1. it can run on the case (its inputs are present),
2. it ran (a tool that failed, or an encoder the fused model's run asked for on a case without its
   modality, is not relevant), and
3. leaving it out of "every runnable tool" changes the answer: the top diagnosis or whether the
   agent abstains.

Leaving out a modality encoder the fused model reads also takes that modality from the fused model:
its output is replaced by the fused model run on the case without that modality (and dropped when
fewer than two modalities remain), since a fused output cannot exist without the tokens it read.
Students and the fused model are left out alone. So an encoder whose modality does not move the
answer is not relevant, however cheap; a student is relevant only where it is what the answer rests
on (no fused output). This is stricter than "its modality is present", which made "propose every
tool" score recall 1.0 by construction.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from mmdx.agent import aggregate as agg
from mmdx.agent.scope import vital_signs
from mmdx.core import registry
from mmdx.core.case import Modality, PatientCase
from mmdx.core.tool import ClassifierOutput, can_run
from mmdx.tools.schedule import run_with_dependencies

ENCODERS: tuple[str, ...] = ("cxr", "labs", "notes")  # tools whose tokens the fused model reads
FUSED = "fused"


@dataclass(frozen=True)
class Answer:
    top: str | None  # the top-ranked diagnosis (None when no diagnosis model ran)
    abstained: bool
    scores: dict[str, float] = field(default_factory=dict, compare=False)  # the differential's probabilities
    thresholds: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def key(self) -> tuple:
        """What counts as 'the answer changed': the top diagnosis and the abstention."""
        return (self.top, self.abstained)


def answer(outputs: list[ClassifierOutput], vitals) -> Answer:
    """The agent's answer from `outputs` (aggregate, scope rule, abstention)."""
    entries, _ = agg.differential(outputs)
    entries = agg.hold_back_no_acute(entries, vitals)
    why = agg.abstention(entries, outputs, vitals)
    return Answer(top=entries[0].diagnosis if entries else None, abstained=why is not None,
                  scores={e.diagnosis: e.probability for e in entries},
                  thresholds={e.diagnosis: e.threshold for e in entries})


def runnable(case: PatientCase, names: list[str] | None = None) -> list[str]:
    """Registered tools (or `names`) whose inputs the case has."""
    out = []
    for n in names if names is not None else registry.names():
        cls = registry.tool_class(n)
        if (cls.requires or getattr(cls, "accepts", None)) and can_run(cls, case):
            out.append(n)
    return out


@dataclass
class ToolTable:
    """Every runnable tool's result on one case, and the fused model without each modality."""

    case: PatientCase
    results: dict  # tool -> ClassifierOutput | ToolFailure, on the whole case
    fused_without: dict  # encoder modality -> the fused result on the case without it (absent: cannot run)
    costs_ms: dict = field(default_factory=dict)  # tool -> its compute, as the runner reports it (when it does)

    def outputs(self, names) -> list[ClassifierOutput]:
        return [self.results[n] for n in names if isinstance(self.results.get(n), ClassifierOutput)]


def tool_table(runner, case: PatientCase, names: list[str] | None = None, timeout_s: float | None = None) -> ToolTable:
    """Run every runnable tool (`names`: those the caller knows to be runnable; default: the registry's)
    and, when the fused model ran, the fused model on the case without each of its present
    modalities (reusing the other encoders' tokens)."""
    names = runnable(case) if names is None else list(names)
    results = run_with_dependencies(runner, case, names, timeout_s=timeout_s) if names else {}
    costs = dict(getattr(runner, "last_costs_ms", {}))
    without = {}
    if isinstance(results.get(FUSED), ClassifierOutput):
        for m in ENCODERS:
            if Modality(m) not in case.modalities:
                continue
            reduced = case.without(m)
            if not can_run(registry.tool_class(FUSED), reduced):
                continue
            previous = {k: v for k, v in results.items() if k in ENCODERS and k != m}
            without[m] = run_with_dependencies(runner, reduced, [FUSED], previous=previous, timeout_s=timeout_s)[FUSED]
    return ToolTable(case=case, results=results, fused_without=without, costs_ms=costs)


def _leave_out(table: ToolTable, tool: str) -> list[ClassifierOutput]:
    """The outputs of every runnable tool but `tool` (and, for an encoder, the fused model without it)."""
    keep = [n for n in table.results if n != tool]
    outs = [o for o in table.outputs(keep) if o.tool != FUSED]
    if tool in ENCODERS and tool in table.fused_without:
        alt = table.fused_without[tool]
        if isinstance(alt, ClassifierOutput):
            outs.append(alt)
    elif tool != FUSED and isinstance(table.results.get(FUSED), ClassifierOutput) and not (
            tool in ENCODERS and Modality(tool) in table.case.modalities):
        # a student, or an encoder whose modality the case lacks (the fused model never read it): the
        # fused model stands as it ran. Only an encoder that read a present modality takes the fused
        # model with it when the fused model cannot run without that modality.
        outs.append(table.results[FUSED])
    return outs


def relevant_tools(table: ToolTable, vitals="auto") -> set[str]:
    """The tools relevant to the case under the module's definition."""
    v = vital_signs(table.case) if vitals == "auto" else vitals
    full = answer(table.outputs(table.results), v)
    out = set()
    for tool in table.results:
        if not isinstance(table.results[tool], ClassifierOutput):
            continue  # it could not run on the case (a dependency asked for anyway, a failure): never relevant
        if answer(_leave_out(table, tool), v).key != full.key:
            out.add(tool)
    return out
