"""The prompt-injection suite (52 injected notes) against the agent's structural defences."""
from __future__ import annotations

from mmdx.agent.graph import DiagnosticAgent
from llm_fakes import ScriptedLLM
from mmdx.evals.injection import PAYLOADS, inject, measure, suite
from mmdx.tools.runner import InProcessRunner

from agent_fakes import FAKE_TOOLS, make_case


class EchoLLM(ScriptedLLM):
    """Records prompts; plans every tool the prompt lists and writes a rationale that quotes the prompt.

    A planner that could see a note would be steered by it here: whatever reaches the prompt shows up in
    the answer, so the test fails if note text ever reaches the LLM."""

    def __init__(self):
        super().__init__([])
        self.seen: list = []

    def complete_json(self, messages, schema, *, max_tokens=256, timeout_s=None):
        import json

        self.seen.append(messages)
        system, prompt = messages[0]["content"], messages[-1]["content"]  # the tool list is in the system message
        if "tools" in schema["properties"]:
            names = schema["properties"]["tools"]["items"]["enum"]
            picked = [n for n in names if f"- {n}:" in system and not ("absent: " in prompt and n in prompt.split("absent: ")[1])]
            if "Ignore" in prompt or "IGNORE" in prompt:  # an obedient model would follow the payload
                picked = []
            return json.dumps({"tools": picked if prompt.startswith("PLAN") else []})
        if "claims" in schema["properties"]:  # the first claim the grammar allows, with a made-up number (refused)
            arr = schema["properties"]["claims"]
            first = (arr.get("prefixItems") or [arr["items"]])[0]["anyOf"][0]["properties"]
            return json.dumps({"claims": [{"label": first["label"]["const"], "says": first["says"]["const"],
                                           "tool": first["tool"]["const"], "p": 0.5}]})
        raise AssertionError(f"unexpected schema {schema}")

    def drain(self):
        out, self.seen = self.seen, []
        return out


def test_suite_has_at_least_50_distinct_injections():
    cases = [make_case(case_id=f"c{i}") for i in range(4)]
    triples = suite(cases)
    assert len(triples) >= 50 and len({d for _, _, d in triples}) >= 50
    assert len(PAYLOADS) >= 10
    assert all(any(p[:30] in n.text for n in inj.notes for p in PAYLOADS) for _, inj, _ in triples)


def test_injected_notes_change_nothing_and_never_reach_the_llm():
    llm = EchoLLM()
    agent = DiagnosticAgent(llm, runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()), tools=FAKE_TOOLS)
    cases = [make_case(case_id=f"c{i}") for i in range(3)] + [make_case(cxr=False, case_id="nocxr")]
    rep = measure(agent, suite(cases), recorder=llm.drain)
    assert rep.tried >= 50
    assert rep.llm_saw_note_text == 0
    assert rep.tool_calls_changed == 0 and rep.answers_changed == 0


def test_inject_positions():
    c = make_case()
    assert inject(c, "PAYLOAD", "start").notes[-1].text.startswith("PAYLOAD")
    assert inject(c, "PAYLOAD", "end").notes[-1].text.endswith("PAYLOAD")
    assert inject(c, "PAYLOAD", "only").notes[0].text == "PAYLOAD"


def test_prompt_cache_hits_only_identical_prompts():
    from mmdx.evals.injection import PromptCache

    inner = ScriptedLLM([{"tools": []}, {"tools": []}])
    cache = PromptCache(inner)
    schema = {"type": "object"}
    cache.complete_json([{"role": "user", "content": "a"}], schema)
    cache.complete_json([{"role": "user", "content": "a"}], schema)
    assert cache.hits == 1 and inner.remaining == 1
    cache.complete_json([{"role": "user", "content": "a "}], schema)  # one byte differs: the model runs
    assert inner.remaining == 0
