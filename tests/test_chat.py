"""Chat over the agent: turns, follow-ups, what-if, persistence across processes (SQLite)."""
from __future__ import annotations

from mmdx.agent.chat import ChatSession
from mmdx.agent.graph import DiagnosticAgent
from llm_fakes import ScriptedLLM
from mmdx.tools.runner import InProcessRunner

from agent_fakes import FAKE_TOOLS, make_case

PLAN_ALL = {"calls": [{"tool": "cxr", "reason": "image"}, {"tool": "labs", "reason": "labs"}, {"tool": "notes", "reason": "notes"}]}
RAT = {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7}]}


def session(tmp_path, script):
    llm = ScriptedLLM(script)
    agent = DiagnosticAgent(llm, runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()), tools=FAKE_TOOLS)
    return ChatSession(agent, tmp_path / "chat.sqlite"), llm


def test_turns_follow_up_and_what_if(tmp_path):
    s, llm = session(tmp_path, [PLAN_ALL, RAT,
                                "Heart failure is unlikely: 0.10 from the labs model.",
                                {"calls": [{"tool": "labs", "reason": "l"}, {"tool": "notes", "reason": "n"}]}, RAT])
    case = make_case()
    r1 = s.send("t1", "diagnose", attach={"case_json": case.to_json(), "case_dir": str(tmp_path)})
    assert "pneumonia" in r1 and "SYNTHETIC" in r1
    streamed = []
    r2 = s.send("t1", "why not heart failure?", on_token=streamed.append)
    assert "Heart failure is unlikely" in r2 and streamed  # shown once checked
    r3 = s.send("t1", "what if the X-ray were missing?")
    assert r3.startswith("Without the cxr") and "stays pneumonia" in r3
    # the explanation prompt carried the stored facts, not the note text
    explain = [c for c in llm.calls if c["kind"] == "stream"][0]
    assert "Cough and fever" not in explain["messages"][-1]["content"]
    assert "0.1" in explain["messages"][-1]["content"]
    s.close()


def test_refused_explanation_is_never_shown(tmp_path):
    s, _ = session(tmp_path, [PLAN_ALL, RAT, "It could also be a pneumothorax."])
    s.send("t", "diagnose", attach={"case_json": make_case().to_json()})
    streamed = []
    r = s.send("t", "anything else?", on_token=streamed.append)
    assert "pneumothorax" not in r.lower() and "pneumothorax" not in "".join(streamed).lower()
    assert "Pneumonia is likely: 0.65" in r  # the grounded answer instead


def test_thread_resumes_in_a_new_process(tmp_path):
    s, _ = session(tmp_path, [PLAN_ALL, RAT])
    s.send("keep", "diagnose", attach={"case_json": make_case().to_json()})
    s.close()
    s2, llm2 = session(tmp_path, ["Heart failure has probability 0.10 from the labs model."])
    r = s2.send("keep", "why not heart failure?")  # no re-diagnosis: the stored one is used
    assert "0.10" in r
    hist = s2.history("keep")
    assert [m["role"] for m in hist["messages"]] == ["user", "assistant", "user", "assistant"]
    assert hist["diagnosis"]["differential"][0]["diagnosis"] == "pneumonia"


def test_bad_upload_is_a_clear_message(tmp_path):
    s, _ = session(tmp_path, [])
    r = s.send("x", "diagnose", attach={"labs_csv": "time,variable,value,unit\n2024-01-01T00:00,glucose,abc,mg/dL\n", "age": 50})
    assert "labs_csv.row2.value" in r
    r = s.send("y", "hello")
    assert "Attach a case file" in r
