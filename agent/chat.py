"""The conversation: one LangGraph thread per chat, persisted in SQLite (WAL mode).

    START -> route -> diagnose | explain | what_if | compare | general | reply -> END

- route: builds the turn's case from the stored one and the attachments, then decides what the
  message asks for: a slash command, the agent when there is no answer yet or a new input arrived,
  otherwise a schema-constrained LLM call (agent/intent.py). No keyword matching.
- diagnose: the diagnostic agent on the case; the tool outputs are stored with the answer.
- explain: from the stored tool outputs (agent/explain.py), no LLM prose.
- what_if: `agent/what_if.py`: only the tools that read the dropped input rerun.
- compare: the answers of this thread side by side.
- general: the LLM's text, shown only when every clause passes the prose check.
Every node returns updates (messages, trace and answers grow through reducers). Every turn is a
checkpoint: a killed process resumes the thread with all earlier turns. Progress (stages, then the
reply) goes to the caller's `on_event` as it happens.
"""
from __future__ import annotations

import json
import logging
import operator
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Callable, TypedDict

from mmdx.core.case import PatientCase
from mmdx.core.db import connect_durable
from mmdx.core.errors import CaseValidationError, MmdxError
from mmdx.core.tool import ClassifierOutput
from mmdx.agent import explain as ex
from mmdx.agent.attachments import apply_attachments
from mmdx.agent.diagnosis import Diagnosis
from mmdx.agent.facts import Facts
from mmdx.agent.intent import SLASH_HELP, Intent, intent_request, intent_schema, parse_slash
from mmdx.agent.prose_check import check_prose
from mmdx.agent.what_if import rerun_without

log = logging.getLogger(__name__)


class ChatState(TypedDict, total=False):
    messages: Annotated[list[dict], operator.add]  # {"role", "content", "time"}; appended, never rewritten
    trace: Annotated[list[dict], operator.add]  # tool trace per agent run, for the web page
    answers: Annotated[list[dict], operator.add]  # {"name", "diagnosis"}: every answer of the thread, for compare
    case_json: str | None
    case_dir: str | None
    diagnosis_json: str | None  # the answer on the full case
    outputs_json: str | None  # that answer's tool outputs and failures
    diagnosed_digest: str | None  # inputs digest of the case that answer is about
    attach: dict | None  # inputs of the current turn (cleared by route)
    route: dict | None  # this turn's decision: {"to": node, "intent": {...}, "reply": text}


def _outputs_json(final: dict) -> str:
    return json.dumps({"results": {t: o.model_dump(mode="json") for t, o in final.get("results", {}).items()},
                       "failures": {t: f.model_dump(mode="json") for t, f in final.get("failures", {}).items()}})


def _outputs(state: ChatState) -> tuple[dict[str, ClassifierOutput], dict]:
    from mmdx.tools.runner import ToolFailure

    raw = json.loads(state.get("outputs_json") or "{}")
    return ({t: ClassifierOutput.model_validate(o) for t, o in raw.get("results", {}).items()},
            {t: ToolFailure.model_validate(f) for t, f in raw.get("failures", {}).items()})


class ChatSession:
    """A persistent chat over the diagnostic agent. `agent` is a DiagnosticAgent (its llm decides
    intents). `confine_uploads(thread_id)` (the web server's) names the folder a thread's image paths
    must stay in; None means paths resolve freely (the terminal, where the user owns the files)."""

    def __init__(self, agent, db_path: str | Path, confine_uploads: Callable[[str], Path] | None = None):
        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import END, START, StateGraph

        self.agent = agent
        self.db_path = Path(db_path)
        self.confine_uploads = confine_uploads
        self._conn = connect_durable(self.db_path, check_same_thread=False)
        self.checkpointer = SqliteSaver(self._conn)
        g = StateGraph(ChatState)
        nodes = {"route": self._route, "diagnose": self._diagnose, "explain": self._explain, "what_if": self._what_if,
                 "compare": self._compare, "general": self._general, "reply": self._reply}
        for name, fn in nodes.items():
            g.add_node(name, fn)
        g.add_edge(START, "route")
        g.add_conditional_edges("route", lambda s: s["route"]["to"], {n: n for n in nodes if n != "route"})
        for n in nodes:
            if n != "route":
                g.add_edge(n, END)
        self.graph = g.compile(checkpointer=self.checkpointer)

    def close(self) -> None:
        self._conn.close()

    # ---- helpers
    @staticmethod
    def _msg(role: str, content: str) -> dict:
        return {"role": role, "content": content, "time": datetime.now(timezone.utc).isoformat()}

    @staticmethod
    def _writer() -> Callable[[dict], None]:
        """This node's stream writer, taken once: the agent's own graph runs inside the node and
        its stage events must reach the chat's caller, not the inner graph's stream."""
        from langgraph.config import get_stream_writer

        return get_stream_writer()

    def _say(self, text: str, **more) -> dict:
        self._writer()({"token": text})
        return {"messages": [self._msg("assistant", text)], **more}

    @staticmethod
    def _trace(final: dict, kind: str) -> dict:
        dx = final["diagnosis"]
        return {"kind": kind, "case_id": dx.case_id, "plan": [p.model_dump() for p in dx.plan],
                "overrides": [o.model_dump() for o in dx.overrides], "failures": list(dx.tool_failures),
                "events": final.get("events", []), "degraded": list(dx.degraded)}

    def _case(self, state: ChatState) -> PatientCase:
        return PatientCase.from_json(state["case_json"], base_dir=state.get("case_dir"))

    # ---- route
    def _route(self, state: ChatState, config) -> dict:
        user = state["messages"][-1]["content"] if state.get("messages") else ""
        attach = state.get("attach") or {}
        update: dict[str, Any] = {"attach": None}
        thread = config["configurable"]["thread_id"]
        try:
            if attach or state.get("case_json"):
                confine = self.confine_uploads(thread) if self.confine_uploads and attach else None
                case, case_dir = apply_attachments(state.get("case_json"), state.get("case_dir"), attach, confine_to=confine)
                update["case_json"], update["case_dir"] = case.model_dump_json(exclude={"base_dir"}), case_dir
            else:
                return {**update, "route": {"to": "reply", "reply": "Attach a case file (or an image, labs CSV or note with the patient's age) to start."}}
        except CaseValidationError as e:
            return {**update, "route": {"to": "reply", "reply": "I could not use that input:\n" + "\n".join(f"  {f}: {m}" for f, m in e.problems)}}
        slash = parse_slash(user.strip())
        if isinstance(slash, str) and slash.startswith("!"):
            return {**update, "route": {"to": "reply", "reply": slash[1:]}}
        stale = case.inputs_digest() != state.get("diagnosed_digest")  # new inputs, or a turn killed before its answer
        if slash == "diagnose" or stale or not state.get("diagnosis_json"):
            return {**update, "route": {"to": "diagnose"}}
        if isinstance(slash, Intent):
            intent = slash
        else:
            self._writer()({"stage": "understanding", "detail": "the LLM reads what the question asks for"})
            dx = Diagnosis.model_validate_json(state["diagnosis_json"])
            parsed, err, _ = self.agent.ask(case.case_id, "intent", self.agent.messages(intent_request(
                user, sorted(m.value for m in case.modalities), dx.top().diagnosis if dx.top() else None)),
                intent_schema(), Intent, max_tokens=48)
            if parsed is None:
                return {**update, "route": {"to": "reply", "reply": f"I could not tell what the question asks for (the language model "
                                                                    f"failed: {err}). Try a command: {SLASH_HELP}"}}
            intent = parsed
        if intent.intent == "new_case":
            return {**update, "route": {"to": "reply", "reply": "To start a new case, attach its case file (or give an age and "
                                                                "uploads). To rerun this case, type /diagnose."}}
        return {**update, "route": {"to": intent.intent, "intent": intent.model_dump()}}

    def _reply(self, state: ChatState) -> dict:
        return self._say(state["route"]["reply"])

    # ---- answers
    def _diagnose(self, state: ChatState) -> dict:
        case = self._case(state)
        user = state["messages"][-1]["content"]
        question = None if user.strip().lower() in ("", "diagnose", "/diagnose") else user
        final = self.agent.run(case, question=question, progress=self._writer())
        dx: Diagnosis = final["diagnosis"]
        return self._say(dx.summary(), diagnosis_json=dx.model_dump_json(), outputs_json=_outputs_json(final),
                         diagnosed_digest=case.inputs_digest(),
                         trace=[self._trace(final, "diagnose")], answers=[{"name": "full case", "diagnosis": dx.model_dump_json()}])

    def _explain(self, state: ChatState) -> dict:
        dx = Diagnosis.model_validate_json(state["diagnosis_json"])
        results, _ = _outputs(state)
        intent = Intent.model_validate(state["route"]["intent"])
        labels = intent.labels
        if not labels and intent.modality == "cxr":
            labels = [f.label for f in dx.imaging_findings]
        return self._say(ex.explain(labels, dx, results))

    def _what_if(self, state: ChatState) -> dict:
        intent = Intent.model_validate(state["route"]["intent"])
        case = self._case(state)
        dropped = intent.dropped()
        if dropped is None or dropped not in case.modalities:
            have = ", ".join(sorted(m.value for m in case.modalities))
            return self._say(f"Which input should I leave out? The case has: {have} (for example /whatif {have.split(', ')[0]}).")
        before = Diagnosis.model_validate_json(state["diagnosis_json"])
        results, failures = _outputs(state)
        write = self._writer()
        write({"stage": "what_if", "detail": f"rerunning the tools that read the {dropped.value}"})
        final = rerun_without(self.agent, case, dropped, results, failures, progress=write)
        after: Diagnosis = final["diagnosis"]
        reused = sorted(p.tool for p in after.plan if p.source == "reused")
        rerun = sorted(p.tool for p in after.plan if p.source == "what_if")
        text = ex.what_if_summary(before, after, dropped.value, reused, rerun) + "\n\n" + after.summary()
        return self._say(text, trace=[self._trace(final, f"what if: no {dropped.value}")],
                         answers=[{"name": f"without the {dropped.value}", "diagnosis": after.model_dump_json()}])

    def _compare(self, state: ChatState) -> dict:
        answers = [(a["name"], Diagnosis.model_validate_json(a["diagnosis"])) for a in state.get("answers", [])]
        return self._say(ex.compare(answers))

    def _general(self, state: ChatState) -> dict:
        user = state["messages"][-1]["content"].removeprefix("/ask").strip()
        dx = Diagnosis.model_validate_json(state["diagnosis_json"])
        facts = Facts.from_diagnosis(dx)
        messages = self.agent.messages("Facts (the tools' outputs for this case): " + json.dumps(
            {e.diagnosis: [round(e.probability, 2), round(e.threshold, 2)] for e in dx.differential}) + "\nQuestion: " + user
            + "\nAnswer in 1-3 short sentences using only these facts, each naming a diagnosis with its probability.")
        self._writer()({"stage": "answering", "detail": "the language model answers; its text is checked before it is shown"})
        try:
            text = "".join(self.agent.llm.stream(messages, max_tokens=120)).strip()
        except MmdxError as e:
            return self._say(f"The language model is unavailable ({e}). The stored answer:\n{dx.summary()}")
        report = check_prose(text, facts)
        if report.ok:
            return self._say(text)
        log.info("general answer refused by the prose check: %s", report.problems)
        return self._say("That question goes beyond what this case's tools measured, so I will not answer it in my own words "
                         f"(the draft did not pass the check). I can answer: {SLASH_HELP}.\n\nThe checked answer:\n{dx.rationale}")

    # ---- public API
    def send(self, thread_id: str, text: str, attach: dict | None = None, on_token: Callable[[str], None] | None = None,
             on_event: Callable[[dict], None] | None = None) -> str:
        """One turn; returns the assistant's reply. `on_event` gets every stage and reply event as it
        happens, `on_token` the reply text."""
        config = {"configurable": {"thread_id": thread_id}}
        reply = None
        inp = {"messages": [self._msg("user", text)], "attach": attach or None}
        for mode, chunk in self.graph.stream(inp, config, stream_mode=["custom", "values"]):
            if mode == "custom":
                if on_event:
                    on_event(chunk)
                if on_token and "token" in chunk:
                    on_token(chunk["token"])
            elif mode == "values":
                msgs = chunk.get("messages", [])
                if msgs and msgs[-1]["role"] == "assistant":
                    reply = msgs[-1]["content"]
        return reply or ""

    def history(self, thread_id: str) -> dict:
        snap = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        v = snap.values or {}
        case = PatientCase.from_json(v["case_json"]) if v.get("case_json") else None
        results, _ = _outputs(v)
        return {"messages": v.get("messages", []), "trace": v.get("trace", []),
                "diagnosis": json.loads(v["diagnosis_json"]) if v.get("diagnosis_json") else None,
                "has_case": case is not None, "case": case_view(case) if case else None,
                "outputs": {t: {"target": o.target, "ood_flag": o.ood_flag, "model_id": o.provenance.model_id,
                                "scores": [{"label": s.label, "probability": s.probability, "threshold": s.threshold} for s in o.scores]}
                            for t, o in results.items()},
                "answers": [a["name"] for a in v.get("answers", [])]}

    def delete_thread(self, thread_id: str) -> None:
        """Remove every checkpoint of the thread (its whole conversation) from the database."""
        self.checkpointer.delete_thread(thread_id)

    def image_path(self, thread_id: str) -> Path | None:
        snap = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        v = snap.values or {}
        if not v.get("case_json"):
            return None
        return PatientCase.from_json(v["case_json"], base_dir=v.get("case_dir")).image_path()


def case_view(case: PatientCase) -> dict:
    """What the page shows of a case: demographics, inputs present, each lab/vital as a time series."""
    series: dict[str, dict] = {}
    for m in sorted(case.measurements, key=lambda m: m.time):
        s = series.setdefault(m.variable, {"unit": m.unit, "points": []})
        s["points"].append([m.time.isoformat(), m.value])
    return {"case_id": case.case_id, "age": case.demographics.age, "sex": case.demographics.sex,
            "modalities": sorted(x.value for x in case.modalities), "has_image": case.cxr is not None,
            "view": case.cxr.view if case.cxr else None, "notes": len(case.notes), "series": series}
