"""The conversation: one LangGraph thread per chat, persisted in SQLite (WAL mode).

A turn takes the user's text plus optional attachments (a case file, an image, a labs CSV, a pasted
note) and answers in one of three ways:
- no diagnosis yet, or "diagnose": run the diagnostic agent on the case;
- "what if the X-ray / labs / notes were missing?": rerun without that modality and compare;
- any other question ("why not heart failure?"): the LLM explains from the stored diagnosis and tool
  outputs only (streamed), and the grounding check marks any claim no tool supports.
Every turn is a checkpoint: a killed process resumes the thread with all earlier turns.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import operator
import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, TypedDict

from mmdx.core.case import Modality, PatientCase
from mmdx.core.db import connect_durable
from mmdx.core.errors import CaseValidationError, MmdxError
from mmdx.core.labels import DIAGNOSES, HUMAN_NAMES
from mmdx.agent.diagnosis import Diagnosis
from mmdx.agent.facts import Facts
from mmdx.agent.prose_check import check_prose

log = logging.getLogger(__name__)

_WHAT_IF = re.compile(r"\b(what if|without|were missing|was missing|were absent|remove|drop|no)\b.*\b(x-?ray|cxr|image|imaging|labs?|vitals?|notes?)\b", re.I)
_MODALITY_WORDS = {"x-ray": Modality.cxr, "xray": Modality.cxr, "cxr": Modality.cxr, "image": Modality.cxr, "imaging": Modality.cxr,
                   "lab": Modality.labs, "labs": Modality.labs, "vital": Modality.labs, "vitals": Modality.labs,
                   "note": Modality.notes, "notes": Modality.notes}


class ChatState(TypedDict, total=False):
    messages: Annotated[list[dict], operator.add]  # {"role", "content", "time"}; appended, never rewritten
    case_json: str | None
    case_dir: str | None
    diagnosis_json: str | None
    trace: Annotated[list[dict], operator.add]  # tool trace per turn, for the web page
    # inputs of the current turn (cleared by the node)
    attach: dict | None


def labs_from_csv(text: str) -> list[dict]:
    """A labs CSV with columns time, variable, value, unit -> measurement dicts (validated by the case)."""
    rows = list(csv.DictReader(io.StringIO(text)))
    need = {"time", "variable", "value", "unit"}
    if not rows or not need <= set(rows[0]):
        raise CaseValidationError([("labs_csv", f"expected columns {sorted(need)}")])
    out = []
    for i, r in enumerate(rows):
        try:
            out.append({"time": r["time"], "variable": r["variable"], "value": float(r["value"]), "unit": r["unit"]})
        except ValueError:
            raise CaseValidationError([(f"labs_csv.row{i + 2}.value", f"not a number: {r['value']!r}")]) from None
    return out


def apply_attachments(case_json: str | None, case_dir: str | None, attach: dict) -> tuple[PatientCase, str | None]:
    """Build the turn's case from the stored one and the attachments. Raises CaseValidationError."""
    if attach.get("case_json"):
        case_dir = attach.get("case_dir") or case_dir
        base = json.loads(attach["case_json"])
    elif case_json:
        base = json.loads(case_json)
    else:
        if attach.get("age") is None:
            raise CaseValidationError([("demographics.age", "attach a case file, or give the patient's age (and sex) to start a new case")])
        base = {"case_id": attach.get("case_id") or "chat-" + datetime.now(timezone.utc).strftime("%Y%m%d%H%M%S"),
                "demographics": {"age": attach["age"], "sex": attach.get("sex") or "unknown"}, "origin": "chat upload"}
    if attach.get("image_path"):
        base["cxr"] = {"path": str(attach["image_path"]), "view": attach.get("view", "UNKNOWN")}
    if attach.get("labs_csv"):
        base["measurements"] = list(base.get("measurements", [])) + labs_from_csv(attach["labs_csv"])
    if attach.get("note"):
        base["notes"] = list(base.get("notes", [])) + [{"kind": "pasted_note", "text": attach["note"]}]
    case = PatientCase.from_dict(base, base_dir=case_dir)
    return case, case_dir


def _dx_facts(dx: Diagnosis) -> dict:
    return {
        "differential": [{"diagnosis": HUMAN_NAMES[e.diagnosis], "probability": e.probability, "threshold": e.threshold,
                          "evidence": [f"{ev.tool}: {HUMAN_NAMES.get(ev.label, ev.label)} {ev.probability:.2f}" for ev in e.evidence]}
                         for e in dx.differential],
        "imaging": [f"{HUMAN_NAMES[e.label]} {e.probability:.2f}{' positive' if e.positive else ''}" for e in dx.imaging_findings],
        "missing": [f"{m.modality}: {m.handling}" for m in dx.missing],
        "abstained": dx.abstention_reason,
        "degraded": list(dx.degraded),
    }


def compare(before: Diagnosis, after: Diagnosis, dropped: Modality) -> str:
    b = {e.diagnosis: e.probability for e in before.differential}
    a = {e.diagnosis: e.probability for e in after.differential}
    lines = [f"Without the {dropped.value}:"]
    top_b = before.top().diagnosis if before.top() else None
    top_a = after.top().diagnosis if after.top() else None
    if after.abstained:
        lines.append(f"  the agent would abstain ({after.abstention_reason}).")
    elif top_a != top_b:
        lines.append(f"  the top diagnosis changes from {HUMAN_NAMES.get(top_b, top_b)} to {HUMAN_NAMES.get(top_a, top_a)}.")
    else:
        lines.append(f"  the top diagnosis stays {HUMAN_NAMES.get(top_a, top_a)}.")
    for d in DIAGNOSES:
        if d in b or d in a:
            pb, pa = b.get(d), a.get(d)
            if pb is not None and pa is not None and abs(pb - pa) >= 0.05:
                lines.append(f"  {HUMAN_NAMES[d]}: {pb:.2f} -> {pa:.2f}")
    return "\n".join(lines)


class ChatSession:
    """A persistent chat over the diagnostic agent. `agent` is a DiagnosticAgent (its llm explains)."""

    def __init__(self, agent, db_path: str | Path):
        from langgraph.checkpoint.sqlite import SqliteSaver
        from langgraph.graph import END, START, StateGraph

        self.agent = agent
        self.db_path = Path(db_path)
        self._conn = connect_durable(self.db_path, check_same_thread=False)
        self.checkpointer = SqliteSaver(self._conn)
        g = StateGraph(ChatState)
        g.add_node("respond", self._respond)
        g.add_edge(START, "respond")
        g.add_edge("respond", END)
        self.graph = g.compile(checkpointer=self.checkpointer)

    def close(self) -> None:
        self._conn.close()

    # ---- the one node
    def _respond(self, state: ChatState) -> dict:
        from langgraph.config import get_stream_writer

        write = get_stream_writer()
        user = state["messages"][-1]["content"] if state.get("messages") else ""
        attach = state.get("attach") or {}
        update: dict[str, Any] = {"attach": None}
        case = None
        try:
            if attach or state.get("case_json"):
                case, case_dir = apply_attachments(state.get("case_json"), state.get("case_dir"), attach)
                update["case_json"], update["case_dir"] = case.model_dump_json(exclude={"base_dir"}), case_dir
        except CaseValidationError as e:
            return {**update, "messages": [self._msg("assistant", "I could not use that input:\n" + "\n".join(f"  {f}: {m}" for f, m in e.problems))]}
        if case is None:
            return {**update, "messages": [self._msg("assistant", "Attach a case file (or an image, labs CSV or note with the patient's age) to start.")]}

        dx_json = None if attach else state.get("diagnosis_json")
        what_if = _WHAT_IF.search(user or "")
        if dx_json is None or re.search(r"\b(diagnos|run|assess)", user or "", re.I):
            write({"status": "running the diagnostic agent"})
            final = self.agent.run(case, question=user or None)
            dx: Diagnosis = final["diagnosis"]
            text = dx.summary()
            write({"token": text})
            return {**update, "diagnosis_json": dx.model_dump_json(), "messages": [self._msg("assistant", text)],
                    "trace": [self._trace(final)]}
        dx = Diagnosis.model_validate_json(dx_json)
        if what_if:
            word = what_if.group(2).lower()  # the last modality word of the question
            modality = _MODALITY_WORDS[word]
            if modality not in case.modalities:
                text = f"The case has no {word} to remove; it has: {', '.join(sorted(m.value for m in case.modalities))}."
                write({"token": text})
                return {**update, "messages": [self._msg("assistant", text)]}
            write({"status": f"rerunning without {modality.value}"})
            final = self.agent.run(case.without(modality), question=user)
            text = compare(dx, final["diagnosis"], modality) + "\n\n" + final["diagnosis"].summary()
            write({"token": text})
            return {**update, "messages": [self._msg("assistant", text)], "trace": [self._trace(final)]}
        # an explanatory follow-up: the LLM answers from the stored facts only, and its text is shown
        # only when every clause passes the prose check; otherwise the stored, grounded answer is
        messages = [
            {"role": "system", "content": "You explain a diagnostic result to a clinician. Use only the facts given (tool outputs with "
                                          "probabilities). Say plainly when the facts do not answer the question. 2-5 sentences."},
            {"role": "user", "content": "Facts (JSON): " + json.dumps(_dx_facts(dx)) + "\n\nQuestion: " + user},
        ]
        write({"status": "the language model is answering; its text is checked before it is shown"})
        try:
            text = "".join(self.agent.llm.stream(messages, max_tokens=220)).strip()
            report = check_prose(text, Facts.from_diagnosis(dx))
            if not report.ok:
                log.info("explanation refused by the prose check: %s", report.problems)
                text = "The stored, checked answer (the language model's text did not pass the check and is not shown):\n" + dx.rationale
        except MmdxError as e:
            text = f"(the language model is unavailable: {e}) The stored result:\n{dx.summary()}"
        write({"token": text})
        return {**update, "messages": [self._msg("assistant", text)]}

    @staticmethod
    def _msg(role: str, content: str) -> dict:
        return {"role": role, "content": content, "time": datetime.now(timezone.utc).isoformat()}

    @staticmethod
    def _trace(final: dict) -> dict:
        dx = final["diagnosis"]
        return {"case_id": dx.case_id, "plan": [p.model_dump() for p in dx.plan], "overrides": [o.model_dump() for o in dx.overrides],
                "failures": list(dx.tool_failures), "events": final.get("events", []), "degraded": list(dx.degraded)}

    # ---- public API
    def send(self, thread_id: str, text: str, attach: dict | None = None, on_token: Callable[[str], None] | None = None) -> str:
        """One turn; returns the assistant's reply. `on_token` receives streamed text."""
        config = {"configurable": {"thread_id": thread_id}}
        reply = None
        inp = {"messages": [self._msg("user", text)], "attach": attach or None}
        for mode, chunk in self.graph.stream(inp, config, stream_mode=["custom", "values"]):
            if mode == "custom" and on_token and "token" in chunk:
                on_token(chunk["token"])
            elif mode == "values":
                msgs = chunk.get("messages", [])
                if msgs and msgs[-1]["role"] == "assistant":
                    reply = msgs[-1]["content"]
        return reply or ""

    def history(self, thread_id: str) -> dict:
        snap = self.graph.get_state({"configurable": {"thread_id": thread_id}})
        v = snap.values or {}
        return {"messages": v.get("messages", []), "trace": v.get("trace", []),
                "diagnosis": json.loads(v["diagnosis_json"]) if v.get("diagnosis_json") else None,
                "has_case": bool(v.get("case_json"))}
