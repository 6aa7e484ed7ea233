"""The diagnostic agent: a LangGraph scheduler driven by a local LLM.

    intake -> triage -> plan -> guard -> execute -> reflect -(more, bounded)-> guard ...
                                                       `-> aggregate -> answer -> END

- triage: red-flag vital signs (NEWS2, agent/scope.py) are scored by rule before any model speaks.
- plan: the LLM lists the tools to run (schema-constrained: tool names are an enum).
  It sees the case's *shape*, never note text (agent/prompts.py).
- guard: rules drop calls whose inputs are absent and duplicates, add the fused model when two or
  more modalities are present (or a student when only one is) where those tools are registered, and
  fall back to every available tool when the plan is empty or the LLM failed. Every override is kept.
- execute: the calls fan out in parallel through the tool runner (in-process or Ray).
- reflect: the LLM sees the results and may ask for tools not yet run (at most `max_reflections`);
  not asked when all that remains is students and the fused model has run (its numbers are the
  differential then: agg.choose_sources), and the skip is an event.
- aggregate: probabilities come from the tools only (agent/aggregate.py); scope rules hold back
  "none of the N conditions mmdx covers" without normal vitals; abstain when the evidence is weak.
- answer: the LLM states claims as data (agent/claims.py), each checked against the tool outputs;
  the rationale is rendered from accepted claims (one retry, then the claims mmdx makes itself).
  LLM failures degrade to the classifiers, visibly.

`what_if_graph` is the what-if path (agent/what_if.py): intake -> triage -> execute -> aggregate ->
answer, rerunning only the tools that read the dropped modality and reusing the rest.

Nodes return updates; lists and dicts in the state grow through reducers (`Annotated[..., add]`),
never by mutation. Each node reports its stage to `progress(event)` when the caller passes one.

Why one file of ~400 lines: the nodes are the methods of `DiagnosticAgent`, so the whole flow above
reads in one place; what each node calls (prompts, guard rules, aggregation, claims, scope) already
lives in its own module.
"""
from __future__ import annotations

import json
import logging
import operator
import time
from dataclasses import dataclass
from typing import Annotated, Any, Callable, TypedDict

from langchain_core.runnables import RunnableConfig
from pydantic import BaseModel, Field, ValidationError

from mmdx.core.audit import text_digest
from mmdx.core.case import PatientCase
from mmdx.tools.schedule import run_with_dependencies
from mmdx.core.tool import CaseInput, ClassifierOutput, can_run, describe, requires_of
from mmdx.agent import aggregate as agg
from mmdx.agent import prompts
from mmdx.agent.claims import ClaimSet, check_claims, claimable, claims_schema, render_claims, template_claims
from mmdx.agent.diagnosis import Diagnosis, DifferentialEntry, Evidence, GroundingReport, GuardOverride, MissingModality, PlannedCall, VitalSigns
from mmdx.agent.facts import Facts
from mmdx.agent.llm.protocol import LLMError
from mmdx.agent.prose_check import check_prose
from mmdx.agent.rationale import compose
from mmdx.agent.scope import vital_signs

log = logging.getLogger(__name__)

STUDENT_PREFIX = "student_"  # unimodal students distilled from the fused model: student_cxr, ...
Progress = Callable[[dict], None]


@dataclass
class AgentConfig:
    max_reflections: int = 1  # how many times the LLM may ask for more tools after seeing results
    llm_retries: int = 1  # retries of a failed / invalid LLM output (then degrade)
    plan_max_tokens: int = 48  # a list of tool names
    answer_max_tokens: int = 80  # up to max_claims claims of ~22 tokens
    max_claims: int = 2  # the LLM's claims: the likely diagnosis and what matters most against it
    llm_timeout_s: float | None = 120.0
    rationale_by_llm: bool = True  # False: the claims mmdx makes itself (batch evaluations short of time)
    tool_timeout_s: float = 120.0


def _merge(a: dict | None, b: dict | None) -> dict:
    return {**(a or {}), **(b or {})}


class AgentState(TypedDict, total=False):
    case: PatientCase
    question: str | None
    what_if: bool  # the what-if path: no planning, claims by mmdx
    modalities: list[str]
    vitals: VitalSigns | None
    proposed: list[PlannedCall]  # what the LLM asked for this round (replaced each round)
    pending: list[str]  # tools to run this round (replaced each round)
    reflections: int
    plan: Annotated[list[PlannedCall], operator.add]  # accepted calls, all rounds
    overrides: Annotated[list[GuardOverride], operator.add]
    results: Annotated[dict[str, ClassifierOutput], _merge]
    failures: Annotated[dict[str, Any], _merge]  # tool -> ToolFailure
    degraded: Annotated[list[str], operator.add]
    events: Annotated[list[dict], operator.add]  # LLM decisions, tool runs, timings (benchmarks, audit)
    differential: list[DifferentialEntry]
    imaging: list[Evidence]
    how: str
    abstain: str | None
    missing: list[MissingModality]
    diagnosis: Diagnosis


class _Plan(BaseModel):
    tools: list[str] = Field(max_length=8)


def _progress(config: RunnableConfig | None, stage: str, **detail) -> None:
    cb = ((config or {}).get("configurable") or {}).get("progress")
    if cb is not None:
        cb({"stage": stage, **detail})


class DiagnosticAgent:
    """Build once, call `diagnose(case)` many times. `llm` is any mmdx.agent.llm.LLM; `runner` any
    mmdx.tools.runner.ToolRunner; `audit` an optional core.audit.AuditLog."""

    def __init__(self, llm, runner=None, config: AgentConfig | None = None, audit=None, tools: dict[str, type] | None = None):
        from mmdx.tools.runner import InProcessRunner

        self.llm = llm
        self.config = config or AgentConfig()
        self.runner = runner or InProcessRunner(timeout_s=self.config.tool_timeout_s)
        self.audit = audit
        if tools is None:
            import mmdx.tools  # registers the tools

            tools = mmdx.tools.registry()
        self.tools = dict(tools)  # name -> tool class (its `requires` drives the guard)
        self.tool_names = sorted(self.tools)
        self.prefix = prompts.prefix_turns()
        self.system = prompts.system_prompt([f"- {n}: {describe(self.tools[n])}" for n in self.tool_names], self.config.max_claims)
        self.graph = self._build(what_if=False)
        self.what_if_graph = self._build(what_if=True)

    def runnable(self, case: PatientCase) -> list[str]:
        """The tools that can run on the case: its required inputs present, and enough of the modalities it
        accepts (the fused model: two or more). A tool that reads nothing is never 'available'."""
        return [n for n in self.tool_names
                if (self.tools[n].requires or getattr(self.tools[n], "accepts", None)) and can_run(self.tools[n], case)]

    # ---- the LLM, with bounded retry: (parsed or None, error or None, events); the chat asks through it too
    def ask(self, case_id: str, step: str, messages: list[dict], schema: dict, model: type[BaseModel], max_tokens: int):
        err, events = None, []
        for attempt in range(self.config.llm_retries + 1):
            t0 = time.perf_counter()
            raw = parsed = None
            try:
                raw = self.llm.complete_json(messages, schema, max_tokens=max_tokens, timeout_s=self.config.llm_timeout_s)
                parsed = model.model_validate(json.loads(raw))
            except (json.JSONDecodeError, ValidationError, TypeError) as e:
                err = f"invalid output: {str(e)[:200]}"
            except LLMError as e:  # timeouts, garbage, runtime failures degrade, visibly
                err = f"{type(e).__name__}: {e}"
            ok = parsed is not None
            event = {"step": step, "attempt": attempt, "schema_valid": ok, "latency_s": round(time.perf_counter() - t0, 3),
                     "model": getattr(self.llm, "model_id", "?")}
            if (timings := getattr(self.llm, "last_timings", None)):
                event["tokens"] = {k: timings.get(k) for k in ("prompt_n", "predicted_n", "cache_n") if k in timings}
            events.append(event)
            if self.audit is not None:
                self.audit.append("llm_decision", case_id, step=step, ok=ok, model_id=event["model"],
                                  output=(parsed.model_dump() if parsed is not None else None),
                                  output_digest=text_digest(raw) if raw else None, error=None if ok else err,
                                  latency_s=event["latency_s"])
            if ok:
                return parsed, None, events
        return None, err, events

    def messages(self, user: str) -> list[dict]:
        """System message, the fixed example turns, then `user`: every call shares the same prefix."""
        return [{"role": "system", "content": self.system}, *self.prefix, {"role": "user", "content": user}]

    def warm_up(self) -> None:
        """Evaluate the fixed system prompt once, so the first case finds it in the LLM's prompt
        cache (a server calls this at start; the first case otherwise pays for it)."""
        try:
            self.llm.complete_json(self.messages("PLAN"), prompts.plan_schema(self.tool_names), max_tokens=1,
                                   timeout_s=self.config.llm_timeout_s)
        except LLMError:  # max_tokens=1 cannot close the JSON: the cache is filled all the same
            pass

    # ---- nodes
    def _intake(self, state: AgentState) -> dict:
        return {"modalities": sorted(m.value for m in state["case"].modalities), "reflections": 0}

    def _triage(self, state: AgentState, config: RunnableConfig) -> dict:
        vitals = vital_signs(state["case"])
        _progress(config, "triage", red_flags=[f.rule for f in vitals.red_flags] if vitals else [])
        if vitals is not None and vitals.red_flags and self.audit is not None:
            self.audit.append("red_flags", state["case"].case_id, flags=[f.model_dump() for f in vitals.red_flags])
        return {"vitals": vitals}

    def _plan(self, state: AgentState, config: RunnableConfig) -> dict:
        _progress(config, "planning", detail="the LLM chooses the tools")
        case = state["case"]
        parsed, err, events = self.ask(case.case_id, "plan", self.messages(prompts.plan_request(case, state.get("question"))),
                                        prompts.plan_schema(self.tool_names, min_tools=1), _Plan, self.config.plan_max_tokens)
        if parsed is None:
            return {"proposed": [], "events": events,
                    "degraded": [f"LLM planner unavailable ({err}); every tool whose input is present was run instead"]}
        events.append({"step": "plan_proposed", "tools": list(parsed.tools)})
        return {"proposed": [PlannedCall(tool=t, reason="chosen by the LLM planner", source="llm") for t in parsed.tools],
                "events": events}

    def _guard(self, state: AgentState) -> dict:
        case = state["case"]
        present = case.modalities
        done = {p.tool for p in state.get("plan", [])}
        accepted: list[PlannedCall] = []
        overrides: list[GuardOverride] = []
        for call in state.get("proposed", []):
            if call.tool not in self.tool_names:
                overrides.append(GuardOverride(action="dropped", tool=call.tool, why="unknown tool"))
                continue
            missing = self.tools[call.tool].requires - present
            if missing or not can_run(self.tools[call.tool], case):
                why = (f"input absent: {', '.join(sorted(m.value for m in missing))}" if missing
                       else f"needs {requires_of(self.tools[call.tool])}")
                overrides.append(GuardOverride(action="dropped", tool=call.tool, why=why))
                continue
            if call.tool in done or any(a.tool == call.tool for a in accepted):
                overrides.append(GuardOverride(action="deduplicated", tool=call.tool, why="already planned"))
                continue
            accepted.append(call)
        first_round = state.get("reflections", 0) == 0
        if first_round and not accepted:
            for name in self.runnable(case):
                if not name.startswith(STUDENT_PREFIX):
                    accepted.append(PlannedCall(tool=name, reason="fallback: the plan named no runnable tool", source="fallback"))
                    overrides.append(GuardOverride(action="added", tool=name, why="plan empty or LLM failed; ran every tool whose input is present"))
        if first_round:
            names = {c.tool for c in accepted} | done
            extra = None
            if len(present) >= 2 and "fused" in self.tool_names:
                extra = ("fused", f"{len(present)} modalities present: the fused model uses them jointly")
            elif len(present) == 1:
                (only,) = tuple(present)
                if (student := STUDENT_PREFIX + only.value) in self.tool_names:
                    extra = (student, f"only {only.value} present: its student distilled from the fused model")
            if extra and extra[0] not in names and can_run(self.tools[extra[0]], case):
                accepted.append(PlannedCall(tool=extra[0], reason=extra[1], source="guard"))
                overrides.append(GuardOverride(action="added", tool=extra[0], why=extra[1]))
        if self.audit is not None and overrides:
            self.audit.append("guard", case.case_id, overrides=[o.model_dump() for o in overrides])
        return {"plan": accepted, "pending": [c.tool for c in accepted], "overrides": overrides, "proposed": []}

    def _execute(self, state: AgentState, config: RunnableConfig) -> dict:
        case = state["case"]
        pending = state.get("pending", [])
        if not pending:
            return {"pending": []}
        _progress(config, "tools", tools=list(pending))
        t0 = time.perf_counter()
        # dependencies first (the fused model reads the encoders' tokens): tools/schedule.py; an encoder the
        # fused model needs runs even when not planned, and its output counts as evidence
        by_name = run_with_dependencies(self.runner, case, list(pending), previous=state.get("results", {}),
                                        timeout_s=self.config.tool_timeout_s)
        dt = time.perf_counter() - t0
        results, failures = {}, {}
        for name, out in by_name.items():
            (results if isinstance(out, ClassifierOutput) else failures)[name] = out
            if self.audit is not None:
                prov = getattr(out, "provenance", None)
                self.audit.append("tool_call", case.case_id, tool=name, input_digest=case.inputs_digest(),
                                  model_id=getattr(prov, "model_id", None), weights_sha256=getattr(prov, "weights_sha256", None),
                                  output=({s.label: round(s.probability, 4) for s in out.scores} if isinstance(out, ClassifierOutput)
                                          else {"failure": out.kind, "message": out.message}),
                                  latency_s=round(dt, 3))
        return {"results": results, "failures": failures, "pending": [],
                "events": [{"step": "tools", "tools": list(pending), "latency_s": round(dt, 3)}]}

    def _reflect(self, state: AgentState, config: RunnableConfig) -> dict:
        n = state.get("reflections", 0) + 1
        case = state["case"]
        planned = {p.tool for p in state.get("plan", [])}
        remaining = [t for t in self.runnable(case) if t not in planned]
        # with the fused model's output in hand the differential takes its numbers (agg.choose_sources):
        # a student distilled from it adds no number, so it is not worth an LLM call to offer
        fused_ran = sorted(t for t in state.get("results", {}) if t in agg.FUSED_TOOLS)
        idle = [t for t in remaining if fused_ran and t.startswith(STUDENT_PREFIX)]
        remaining = [t for t in remaining if t not in idle]
        if n > self.config.max_reflections or not remaining:
            events = ([{"step": "reflect_skipped", "why": f"{', '.join(fused_ran)} ran: {', '.join(idle)} would not change "
                        "the differential's numbers"}] if idle and n <= self.config.max_reflections else [])
            return {"reflections": n, "proposed": [], "events": events}
        _progress(config, "reflecting", detail="the LLM reads the results and may ask for more tools")
        parsed, err, events = self.ask(case.case_id, "reflect", self.messages(prompts.reflect_request(
            case, state.get("results", {}), state.get("failures", {}), remaining)), prompts.plan_schema(remaining), _Plan,
            self.config.plan_max_tokens)
        if parsed is None:
            return {"reflections": n, "proposed": [], "events": events}
        events.append({"step": "reflect_proposed", "tools": list(parsed.tools)})
        return {"reflections": n, "events": events,
                "proposed": [PlannedCall(tool=t, reason="asked for by the LLM after reading the results", source="reflect") for t in parsed.tools]}

    def _after_reflect(self, state: AgentState) -> str:
        return "guard" if state.get("proposed") else "aggregate"

    def _aggregate(self, state: AgentState, config: RunnableConfig) -> dict:
        case = state["case"]
        results, failures = state.get("results", {}), state.get("failures", {})
        outputs = list(results.values())
        entries, how = agg.differential(outputs)
        entries = agg.hold_back_no_acute(entries, state.get("vitals"))
        abstain = agg.abstention(entries, outputs, state.get("vitals"))
        missing = agg.missing_modalities(case, self.tools, results, failures)
        degraded = [f"{name} failed ({f.kind}): {f.message}" for name, f in failures.items()]
        for o in outputs:  # what a tool says it could not read as given (set-aside note text, OOD input, truncation)
            degraded += [f"{o.tool}: {n}" for n in o.notes]
        if case.not_read():  # results the case keeps that no model reads (qualitative, urine, spirometry...)
            degraded.append(case.not_read())
        _progress(config, "differential", abstain=abstain,
                  differential=[{"diagnosis": e.diagnosis, "probability": e.probability, "threshold": e.threshold, "likely": e.likely}
                                for e in entries])
        return {"differential": entries, "imaging": agg.imaging_evidence(outputs), "how": how, "abstain": abstain,
                "missing": missing, "degraded": degraded}

    def _answer(self, state: AgentState, config: RunnableConfig) -> dict:
        case = state["case"]
        entries = state["differential"]
        facts = Facts.build(entries, list(state.get("results", {}).values()))
        degraded, events, rejected = [], [], []
        claims, source = None, "template"
        if state.get("what_if"):
            pass  # a what-if answer is the comparison; its claims are mmdx's own
        elif not claimable(facts) or state.get("abstain"):
            pass  # nothing a claim could name, or no diagnosis to state: mmdx's own claims say what is unlikely
        elif not self.config.rationale_by_llm:
            degraded.append("the LLM's claims are switched off in this run's configuration; the claims are mmdx's own")
        else:
            _progress(config, "answering", detail="the LLM states its claims; each is checked against the tool outputs")
            messages = self.messages(prompts.claims_request(facts, entries, sorted(claimable(facts)), state.get("question")))
            schema = claims_schema(facts, self.config.max_claims)
            parsed, err, evs = self.ask(case.case_id, "answer", messages, schema, ClaimSet, self.config.answer_max_tokens)
            events += evs
            if parsed is not None:
                accepted, problems = check_claims(parsed.claims, facts)
                if problems:
                    rejected += problems
                    retry = messages + [{"role": "assistant", "content": parsed.model_dump_json()},
                                        {"role": "user", "content": "Those claims were refused: " + "; ".join(problems)
                                         + ". Give claims that match the tool outputs exactly."}]
                    parsed, err, evs = self.ask(case.case_id, "answer", retry, schema, ClaimSet, self.config.answer_max_tokens)
                    events += evs
                    if parsed is not None:
                        accepted, problems = check_claims(parsed.claims, facts)
                        rejected += problems
                if parsed is not None and not problems:
                    claims, source = accepted, "llm"
                elif parsed is not None:
                    degraded.append(f"the LLM's claims were refused by the check ({'; '.join(problems)}); "
                                    "the claims shown are mmdx's own, from the tool outputs")
            if parsed is None:
                degraded.append(f"LLM claims unavailable ({err}); the claims shown are mmdx's own, from the tool outputs")
        if claims is None:
            claims = template_claims(facts)
        sentences = render_claims(claims, facts)
        check = check_prose(" ".join(sentences), facts) if sentences else None
        if check is not None and not check.ok:  # mmdx's own sentences failing mmdx's own check is a bug: say so, show none
            log.error("case %s: rendered claims failed the prose check: %s", case.case_id, check.problems)
            degraded.append("the rationale is withheld: mmdx's own sentences failed its grounding check "
                            f"({'; '.join(check.problems)}); the differential above is the tools' figures")
            sentences, check = [], None
        rationale = compose(sentences, entries, state.get("vitals"), state.get("abstain"))
        grounding = GroundingReport(ok=True, claims=tuple(claims), rejected=tuple(rejected),
                                    checked_clauses=len(check.clauses) if check else 0)
        outputs = list(state.get("results", {}).values())
        dx = Diagnosis(
            case_id=case.case_id, differential=tuple(entries), imaging_findings=tuple(state.get("imaging", [])),
            missing=tuple(state.get("missing", [])), abstained=state.get("abstain") is not None,
            abstention_reason=state.get("abstain"), urgent_review=bool(state.get("vitals") and state["vitals"].red_flags),
            vitals=state.get("vitals"), input_warnings=tuple(agg.input_warnings(outputs)), rationale=rationale,
            rationale_source=source, grounding=grounding, plan=tuple(state.get("plan", [])),
            overrides=tuple(state.get("overrides", [])),
            tool_failures=tuple(f"{n}: {f.kind}" for n, f in state.get("failures", {}).items()),
            degraded=tuple(state.get("degraded", [])) + tuple(degraded), llm_model=getattr(self.llm, "model_id", "?"),
        )
        if self.audit is not None:
            content = ({"case": case.model_dump(mode="json", exclude={"base_dir"}), "rationale": rationale}
                       if getattr(self.audit, "include_content", False) else {})
            self.audit.append("diagnosis", case.case_id, input_digest=case.inputs_digest(), abstained=dx.abstained,
                              urgent_review=dx.urgent_review, top=(entries[0].diagnosis if entries else None),
                              rationale_source=source, rationale_digest=text_digest(rationale), **content)
        _progress(config, "done")
        return {"diagnosis": dx, "degraded": degraded, "events": events}

    def _build(self, what_if: bool):
        from langgraph.graph import END, START, StateGraph

        g = StateGraph(AgentState)
        g.add_node("intake", self._intake)
        g.add_node("triage", self._triage)
        g.add_node("execute", self._execute)
        g.add_node("aggregate", self._aggregate)
        g.add_node("answer", self._answer)
        g.add_edge(START, "intake")
        g.add_edge("intake", "triage")
        if what_if:
            g.add_edge("triage", "execute")
            g.add_edge("execute", "aggregate")
        else:
            g.add_node("plan", self._plan)
            g.add_node("guard", self._guard)
            g.add_node("reflect", self._reflect)
            g.add_edge("triage", "plan")
            g.add_edge("plan", "guard")
            g.add_edge("guard", "execute")
            g.add_edge("execute", "reflect")
            g.add_conditional_edges("reflect", self._after_reflect, {"guard": "guard", "aggregate": "aggregate"})
        g.add_edge("aggregate", "answer")
        g.add_edge("answer", END)
        return g.compile()

    def _config(self, progress: Progress | None) -> dict:
        return {"recursion_limit": 25, "configurable": {"progress": progress}}

    def run(self, case: PatientCase, question: str | None = None, progress: Progress | None = None) -> AgentState:
        """The whole final state (diagnosis, plan, results, events): benchmarks and the chat use it."""
        return self.graph.invoke({"case": case, "question": question}, self._config(progress))

    def diagnose(self, case: PatientCase, question: str | None = None) -> Diagnosis:
        return self.run(case, question)["diagnosis"]
