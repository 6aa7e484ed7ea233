"""The agent with the real packaged LLM (marked: slow, llm). Run: scripts/test -m "llm"."""
from __future__ import annotations

import pytest

from mmdx.agent.graph import DiagnosticAgent
from mmdx.agent.llm import LLMConfig, load_llm
from mmdx.evals.injection import measure, suite
from mmdx.tools.runner import InProcessRunner

from agent_fakes import FAKE_TOOLS, make_case

pytestmark = [pytest.mark.slow, pytest.mark.llm]


@pytest.fixture(scope="module")
def llm():
    return load_llm(LLMConfig(backend="llamacpp", model="qwen2.5-coder-0.5b", n_threads=2))


def test_real_llm_plans_valid_calls_and_grounded_answer(llm):
    agent = DiagnosticAgent(llm, runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()), tools=FAKE_TOOLS)
    final = agent.run(make_case(cxr=False))
    dx = final["diagnosis"]
    llm_events = [e for e in final["events"] if "schema_valid" in e]
    assert llm_events and all(e["schema_valid"] for e in llm_events)
    assert dx.grounding.ok  # whatever the model wrote, what is shown is grounded
    assert {p.tool for p in dx.plan} <= {"labs", "notes"}  # the guard never lets the absent cxr run
    assert dx.differential[0].diagnosis == "pneumonia"  # numbers come from the tools, not the LLM


def test_real_llm_injection_subset(llm):
    agent = DiagnosticAgent(llm, runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()), tools=FAKE_TOOLS)
    rep = measure(agent, suite([make_case()], n=6))
    assert rep.tried == 6 and rep.llm_saw_note_text == 0 and rep.answers_changed == 0


@pytest.fixture(scope="module")
def llm15():
    return load_llm(LLMConfig(model="qwen2.5-coder-1.5b", n_threads=1))


@pytest.mark.parametrize("message,intent,modality", [
    ("Why is there no pneumonia given the labs?", "explain", None),  # the old regex reran without labs
    ("Which diagnosis is most likely, and why?", "explain", None),  # the old regex reran the agent ('diagnos')
    ("What if there were no labs?", "what_if", "labs"),
    ("What would the answer be without the chest X-ray?", "what_if", "cxr"),
    ("Compare the two answers.", "compare", None),
])
def test_real_llm_decides_the_chat_intent(llm15, message, intent, modality):
    """The default model reads what a message asks for under the intent schema."""
    import json

    from mmdx.agent.intent import Intent, intent_request, intent_schema

    agent = DiagnosticAgent(llm15, runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()), tools=FAKE_TOOLS)
    raw = llm15.complete_json(agent.messages(intent_request(message, ["cxr", "labs", "notes"], "pneumonia")), intent_schema(),
                              max_tokens=48)
    got = Intent.model_validate(json.loads(raw))
    assert got.intent == intent, raw
    if modality:
        assert got.modality == modality, raw
