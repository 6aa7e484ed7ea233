"""The workflow steps that involve the agent: the whole agent with its baselines, and routing.

**Agent** (`kind: agent`): the agent (LLM plan, guard, tools, reflection, answer) on each case of
the split (or an evenly spread sample), its answer, tool choice against the relevance of
evals/relevance.py, and on the same case the baselines: the majority class of the training split,
each single diagnosis tool alone and the fused model alone, scored through the same aggregate and
abstention rules.

**Routing** (`kind: routing`): what the LLM scheduler is worth. On the same cases:
- `every_tool`: every runnable tool (the encoders, the fused model, the students);
- `fused_only`: the fused model and the encoders it reads;
- `students_only`: the distilled student of each present modality;
- `escalation`: the cheapest student first (by weights size); when its top probability is under
  `escalate_below` or its answer abstains, the encoders and the fused model too;
- `single:<tool>`: each diagnosis tool alone, and `majority`: the training split's majority class;
- `oracle`: per case, the cheapest of those tool sets whose top diagnosis is among the case's labels
  (chosen with hindsight: an upper bound, not a policy); the cheapest set when none is right;
- `llm_scheduler`: the agent, on `agent.sample` evenly spread cases (the LLM is slow on a CPU).
Cost: tool compute ms (each tool's latency when it computed that output, from the output cache, so
every policy is charged the same for the same call), LLM ms and model calls.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from mmdx.agent.scope import vital_signs
from mmdx.core.case import PatientCase
from mmdx.core.labels import DIAGNOSES
from mmdx.core.tool import ClassifierOutput
from mmdx.evals.relevance import FUSED, answer, relevant_tools, tool_table
from mmdx.workflows.results_log import Cost, NamedResult

log = logging.getLogger(__name__)
STUDENTS = ("student_cxr", "student_labs", "student_notes")
ENCODERS = ("cxr", "labs", "notes")


def _answer_result(outputs: list[ClassifierOutput], vitals, costs: dict[str, float], names: list[str],
                   llm_ms: float = 0.0, llm_calls: int = 0, extra: dict | None = None) -> NamedResult:
    a = answer(outputs, vitals)
    return NamedResult(ok=a.top is not None, target="diagnoses", scores=a.scores, thresholds=a.thresholds, top=a.top,
                       abstained=a.abstained, tools_run=sorted(names),
                       cost=Cost(tool_ms=round(sum(costs.get(n, 0.0) for n in names), 3), llm_ms=round(llm_ms, 3),
                                 model_calls=len(names) + llm_calls),
                       extra=extra or {})


def majority_from(source) -> str:
    """The most frequent recorded diagnosis of the training split (the cohort manifest), else no_acute_finding."""
    folder = getattr(source, "folder", None)
    if folder is not None and (Path(folder) / "manifest.json").is_file():
        counts = json.loads((Path(folder) / "manifest.json").read_text()).get("counts", {}).get("train", {})
        counts = {k: v for k, v in counts.items() if k in DIAGNOSES}
        if counts:
            return max(counts, key=counts.get)
    return "no_acute_finding"


def _majority(label: str) -> NamedResult:
    scores = {d: (1.0 if d == label else 0.0) for d in DIAGNOSES}
    return NamedResult(target="diagnoses", scores=scores, thresholds={d: 0.5 for d in DIAGNOSES}, top=label, abstained=False,
                       extra={"baseline": "the training split's majority class"})


class AgentHarness:
    """Builds the agent once (lazily: the LLM loads only when a case needs it), behind the caches."""

    def __init__(self, spec, ctx):
        self.spec, self.ctx = spec, ctx
        self._agent = None

    @property
    def agent(self):
        if self._agent is None:
            from mmdx.agent.graph import AgentConfig, DiagnosticAgent

            llm = self.ctx.llm(self.spec)
            cfg = AgentConfig(rationale_by_llm=self.spec.claims_by_llm, llm_timeout_s=self.spec.llm_timeout_s)
            self._agent = DiagnosticAgent(llm, runner=self.ctx.runner, config=cfg)
            # the fixed system prompt into the LLM's prompt cache once, as `mmdx diagnose` and a server do:
            # a start-up cost, not any case's (through the answer cache, so a replay makes the same call)
            self._agent.warm_up()
            self.ctx.llm_cache.drain_ms()
        return self._agent

    def run(self, case: PatientCase, table) -> NamedResult:
        agent = self.agent
        self.ctx.llm_cache.drain_ms()
        final = agent.run(case)
        llm_ms, llm_calls = self.ctx.llm_cache.drain_ms()
        asks = [e["step"] for e in final.get("events", []) if "schema_valid" in e]  # one per LLM call, in order
        by_stage: dict[str, float] = {}
        if len(asks) == len(self.ctx.llm_cache.last_calls_ms):
            for stage, ms in zip(asks, self.ctx.llm_cache.last_calls_ms):
                by_stage[stage] = round(by_stage.get(stage, 0.0) + ms, 3)
        dx = final["diagnosis"]
        proposed = set()
        for e in final.get("events", []):
            if e["step"] in ("plan_proposed", "reflect_proposed"):
                proposed |= set(e["tools"])
        ran = sorted(set(final.get("results", {})) | set(final.get("failures", {})))
        top = dx.top()
        return NamedResult(
            ok=top is not None, target="diagnoses", scores={e.diagnosis: e.probability for e in dx.differential},
            thresholds={e.diagnosis: e.threshold for e in dx.differential}, top=top.diagnosis if top else None,
            abstained=dx.abstained, tools_run=ran,
            cost=Cost(tool_ms=round(sum(table.costs_ms.get(n, 0.0) for n in ran), 3), llm_ms=round(llm_ms, 3),
                      model_calls=len(ran) + llm_calls),
            extra={"proposed": sorted(proposed), "relevant": sorted(relevant_tools(table)), "llm_calls": llm_calls,
                   "llm_valid": sum(bool(e.get("schema_valid")) for e in final.get("events", []) if "schema_valid" in e),
                   "llm_ms_by_stage": by_stage,
                   "overrides": len(dx.overrides), "rationale_source": dx.rationale_source,
                   "claims_refused": len(dx.grounding.rejected), "urgent_review": dx.urgent_review,
                   "degraded": len(dx.degraded)})


def _baselines(table, vitals, majority: str) -> dict[str, NamedResult]:
    out = {"majority": _majority(majority)}
    for name, res in table.results.items():
        if isinstance(res, ClassifierOutput) and res.target == "diagnoses":
            deps = [d for d in ENCODERS if d in table.results] if name == FUSED else []
            outs = [res] + [table.results[d] for d in deps if isinstance(table.results[d], ClassifierOutput)]
            out[f"single:{name}"] = _answer_result(outs, vitals, table.costs_ms, [name, *deps])
    return out


class AgentStepRunner:
    def __init__(self, step, ctx):
        self.step, self.ctx = step, ctx
        self.harness = AgentHarness(step.agent, ctx)
        self.majority = majority_from(ctx.source)

    def run_case(self, case: PatientCase) -> dict[str, NamedResult]:
        table = tool_table(self.ctx.runner, case)
        vitals = vital_signs(case)
        return {"agent": self.harness.run(case, table), **_baselines(table, vitals, self.majority)}


class RoutingStepRunner:
    def __init__(self, step, ctx):
        self.step, self.ctx = step, ctx
        self.harness = AgentHarness(step.agent, ctx)
        self.majority = majority_from(ctx.source)
        self.student_order = sorted(STUDENTS, key=_weights_size)

    def run_case(self, case: PatientCase) -> dict[str, NamedResult]:
        table = tool_table(self.ctx.runner, case)
        vitals = vital_signs(case)
        ok = {n for n, r in table.results.items() if isinstance(r, ClassifierOutput)}
        costs = table.costs_ms
        out: dict[str, NamedResult] = _baselines(table, vitals, self.majority)
        sets: dict[str, list[str]] = {}
        sets["every_tool"] = sorted(table.results)
        if FUSED in table.results:
            sets["fused_only"] = sorted([FUSED] + [e for e in ENCODERS if e in table.results])
        students = [s for s in STUDENTS if s in table.results]
        if students:
            sets["students_only"] = students
        for name, names in sets.items():
            if name in self.step.policies:
                out[name] = _answer_result(table.outputs(names), vitals, costs, names)
        if "escalation" in self.step.policies:
            out["escalation"] = self._escalate(table, vitals, ok)
        if "oracle" in self.step.policies:
            out["oracle"] = self._oracle(out, case)
        if "llm_scheduler" in self.step.policies and self.ctx.in_sample(case, self.step.agent.sample):
            out["llm_scheduler"] = self.harness.run(case, table)
        return out

    def _escalate(self, table, vitals, ok: set[str]) -> NamedResult:
        first = next((s for s in self.student_order if s in ok), None)
        if first is None:  # no student ran (weights missing or no modality): the fused path directly
            names = [n for n in [*ENCODERS, FUSED] if n in table.results]
            return _answer_result(table.outputs(names), vitals, table.costs_ms, names, extra={"escalated": True, "why": "no student"})
        a = answer(table.outputs([first]), vitals)
        top_p = max(a.scores.values()) if a.scores else 0.0
        if not a.abstained and top_p >= self.step.escalate_below:
            return _answer_result(table.outputs([first]), vitals, table.costs_ms, [first], extra={"escalated": False})
        names = [first] + [n for n in [*ENCODERS, FUSED] if n in table.results]
        return _answer_result(table.outputs(names), vitals, table.costs_ms, names,
                              extra={"escalated": True, "student_top_p": round(top_p, 4)})

    def _oracle(self, out: dict[str, NamedResult], case: PatientCase) -> NamedResult:
        truth = set(case.labels.diagnoses) if case.labels else set()
        cands = [(r.cost.tool_ms, k) for k, r in out.items() if k != "majority" and r.top is not None]
        right = [c for c in cands if out[c[1]].top in truth and not out[c[1]].abstained]
        pool = right or cands
        if not pool:
            return NamedResult(ok=False, failure_kind="no_policy", failure="no policy produced an answer")
        _, best = min(pool)
        r = out[best].model_copy(deep=True)
        r.extra = {"chose": best, "hindsight": True}
        return r


def _weights_size(tool: str) -> int:
    path = Path(__file__).resolve().parents[1] / "models" / "weights" / tool / "model.safetensors"
    return path.stat().st_size if path.is_file() else 1 << 62
