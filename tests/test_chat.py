"""Chat over the agent: intents from the LLM or slash commands, explanations from stored outputs,
what-ifs that rerun only what changes, compare, persistence across processes (SQLite), progress."""
from __future__ import annotations

from mmdx.agent.chat import ChatSession
from mmdx.agent.graph import DiagnosticAgent
from mmdx.agent.llm import LLMTimeout
from mmdx.tools.runner import InProcessRunner

from agent_fakes import FAKE_TOOLS, FakeLabs, FakeNotes, make_case
from llm_fakes import ScriptedLLM

PLAN_ALL = {"tools": ["cxr", "labs", "notes"]}
RAT = {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7}]}


def intent(kind, modality="none", labels=()):
    return {"intent": kind, "modality": modality, "labels": list(labels)}


def session(tmp_path, script):
    llm = ScriptedLLM(script)
    agent = DiagnosticAgent(llm, runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()), tools=FAKE_TOOLS)
    return ChatSession(agent, tmp_path / "chat.sqlite"), llm


def test_explanation_comes_from_the_stored_tool_outputs(tmp_path):
    s, llm = session(tmp_path, [PLAN_ALL, RAT, intent("explain", labels=["heart_failure"])])
    r1 = s.send("t1", "diagnose", attach={"case_json": make_case().to_json(), "case_dir": str(tmp_path)})
    assert "pneumonia" in r1 and "SYNTHETIC" in r1
    r2 = s.send("t1", "why not heart failure?")
    assert r2.startswith("Heart failure: unlikely, 0.06 against its threshold 0.50.")
    assert "labs model: 0.10 (its threshold 0.50, below its threshold)" in r2
    assert "X-ray findings that would support it: present: none; absent: pleural effusion 0.30" in r2
    # the intent call saw the question, never the note text; its schema is an enum of intents
    call = llm.calls[-1]
    assert call["schema"]["properties"]["intent"]["enum"] == ["explain", "what_if", "new_case", "compare", "general"]
    assert "why not heart failure?" in call["messages"][-1]["content"]
    assert all("Cough and fever" not in m["content"] for c in llm.calls for m in c["messages"])
    s.close()


def test_a_question_about_labs_is_not_a_what_if_and_diagnos_does_not_rerun(tmp_path):
    """Both were misrouted by the old regexes: 'no ... labs' reran without labs, 'diagnos' reran the agent."""
    s, llm = session(tmp_path, [PLAN_ALL, RAT, intent("explain", labels=["pneumonia"]), intent("explain")])
    s.send("t", "diagnose", attach={"case_json": make_case().to_json()})
    labs_calls = FakeLabs.calls
    r = s.send("t", "Why is there no pneumonia given the labs?")
    assert r.startswith("Pneumonia: likely, 0.65") and FakeLabs.calls == labs_calls
    r = s.send("t", "Which diagnosis is most likely, and why?")
    assert r.startswith("Pneumonia: likely") and llm.remaining == 0  # explained, not re-planned


def test_what_if_reruns_only_what_changes_and_the_other_tools_still_count(tmp_path):
    s, llm = session(tmp_path, [PLAN_ALL, RAT, intent("what_if", "labs"), intent("compare")])
    s.send("t", "diagnose", attach={"case_json": make_case().to_json()})
    before = (FakeLabs.calls, FakeNotes.calls)
    r = s.send("t", "what if there were no labs?")
    assert r.startswith("Without the labs:")
    assert "tools reused (they do not read the labs): cxr, notes; rerun: none." in r
    assert "the top diagnosis stays pneumonia" in r and "ABSTAINED" not in r  # the notes still count
    assert (FakeLabs.calls, FakeNotes.calls) == before  # nothing reran: no tool reads labs but labs
    r = s.send("t", "compare the two")
    assert r.startswith("full case vs without the labs:") and "pneumonia: 0.65 -> 0.60" in r
    assert [a for a in s.history("t")["answers"]] == ["full case", "without the labs"]


def test_slash_commands_need_no_llm(tmp_path):
    s, llm = session(tmp_path, [PLAN_ALL, RAT])
    s.send("t", "diagnose", attach={"case_json": make_case().to_json()})
    assert s.send("t", "/explain sepsis").startswith("Sepsis: unlikely")
    assert s.send("t", "/whatif cxr").startswith("Without the cxr:")
    assert s.send("t", "/whatif kidneys").startswith("say which input to drop")
    assert "unknown label" in s.send("t", "/explain gout")
    assert s.send("t", "/compare").startswith("full case vs without the cxr:")
    assert llm.remaining == 0


def test_an_llm_failure_on_the_intent_says_so_and_offers_commands(tmp_path):
    s, _ = session(tmp_path, [PLAN_ALL, RAT, LLMTimeout("slow"), LLMTimeout("slow")])
    s.send("t", "diagnose", attach={"case_json": make_case().to_json()})
    r = s.send("t", "and the heart?")
    assert "could not tell what the question asks for" in r and "/whatif" in r


def test_general_answer_is_shown_only_when_it_passes_the_check(tmp_path):
    s, _ = session(tmp_path, [PLAN_ALL, RAT, intent("general"), "Pneumonia is likely (0.65).",
                              intent("general"), "It could also be a pneumothorax; start antibiotics."])
    s.send("t", "diagnose", attach={"case_json": make_case().to_json()})
    assert s.send("t", "In a sentence?") == "Pneumonia is likely (0.65)."
    streamed = []
    r = s.send("t", "What else?", on_token=streamed.append)
    assert "pneumothorax" not in r.lower() and "antibiotics" not in "".join(streamed).lower()
    assert "goes beyond what this case's tools measured" in r and "Pneumonia is likely: 0.65" in r


def test_progress_events_arrive_while_the_agent_runs(tmp_path):
    s, _ = session(tmp_path, [PLAN_ALL, RAT])
    events = []
    s.send("t", "diagnose", attach={"case_json": make_case().to_json()}, on_event=events.append)
    stages = [e["stage"] for e in events if "stage" in e]
    assert stages == ["triage", "planning", "tools", "differential", "answering", "done"]
    diff = next(e for e in events if e.get("stage") == "differential")
    assert diff["differential"][0]["diagnosis"] == "pneumonia"  # the numbers come before the answer
    assert "token" in events[-1]


def test_thread_resumes_in_a_new_process(tmp_path):
    s, _ = session(tmp_path, [PLAN_ALL, RAT])
    s.send("keep", "diagnose", attach={"case_json": make_case().to_json()})
    s.close()
    s2, llm2 = session(tmp_path, [intent("explain", labels=["heart_failure"])])
    r = s2.send("keep", "why not heart failure?")  # no re-diagnosis: the stored outputs are used
    assert "labs model: 0.10" in r and llm2.remaining == 0
    hist = s2.history("keep")
    assert [m["role"] for m in hist["messages"]] == ["user", "assistant", "user", "assistant"]
    assert hist["diagnosis"]["differential"][0]["diagnosis"] == "pneumonia"
    assert hist["case"]["series"]["wbc"]["points"][0][1] == 14.2


def test_bad_upload_is_a_clear_message(tmp_path):
    s, _ = session(tmp_path, [])
    r = s.send("x", "diagnose", attach={"labs_csv": "time,variable,value,unit\n2024-01-01T00:00,glucose,abc,mg/dL\n", "age": 50})
    assert "labs_csv.row2.value" in r
    r = s.send("y", "hello")
    assert "Attach a case file" in r


def test_what_does_the_xray_show_says_present_or_absent_for_each_finding(tmp_path):
    """The old chat printed all six findings as present, with a bracketed warning under them."""
    s, _ = session(tmp_path, [PLAN_ALL, RAT, intent("explain", "cxr")])
    s.send("t", "diagnose", attach={"case_json": make_case().to_json()})
    r = s.send("t", "What does the X-ray show?")
    assert r.startswith("Consolidation: present on the chest X-ray model.")
    assert "Pleural effusion: absent on the chest X-ray model." in r and "Cardiomegaly: absent" in r
    assert "[" not in r  # nothing shown with a warning under it
