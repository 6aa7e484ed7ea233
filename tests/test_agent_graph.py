"""The agent graph with a scripted LLM and fake tools: plan -> guard -> execute -> reflect -> answer."""
from __future__ import annotations

import io

import pytest

from mmdx.agent.cli import _print_trace
from mmdx.agent.graph import AgentConfig, DiagnosticAgent
from mmdx.agent.llm import LLMTimeout
from llm_fakes import ScriptedLLM
from mmdx.core.audit import AuditLog, verify
from mmdx.tools.runner import InProcessRunner

from agent_fakes import FAKE_TOOLS, CrashingNotes, FakeFused, FakeStudentLabs, make_case


def agent_with(script, tools=FAKE_TOOLS, audit=None):
    llm = ScriptedLLM(script)
    runner = InProcessRunner(tool_factory=lambda n: tools[n]())
    return DiagnosticAgent(llm, runner=runner, tools=tools, audit=audit), llm


PLAN_ALL = {"tools": ["cxr", "labs", "notes"]}
NO_MORE = {"tools": []}
GOOD = {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7},
                   {"label": "consolidation", "says": "likely", "tool": "cxr", "p": 0.81}]}


def test_full_slice_ranks_from_tools_and_links_evidence():
    agent, llm = agent_with([PLAN_ALL, GOOD])  # reflect skipped: nothing left to run
    dx = agent.diagnose(make_case())
    assert dx.rationale_source == "llm" and dx.grounding.ok
    assert [c.label for c in dx.grounding.claims] == ["pneumonia", "consolidation"]  # the answer as data
    assert "Pneumonia is likely: 0.65, threshold 0.50 (labs model 0.70)." in dx.rationale
    top = dx.differential[0]
    assert top.diagnosis == "pneumonia"
    assert top.probability == pytest.approx((0.7 + 0.6) / 2)
    tools = {e.tool for e in top.evidence}
    assert tools == {"labs", "notes", "cxr"}  # cxr's consolidation supports pneumonia
    assert not dx.abstained
    assert llm.remaining == 0
    # the planner never sees note text (prompt-injection surface)
    assert all("Cough and fever" not in m["content"] for c in llm.calls for m in c["messages"])


def test_guard_drops_absent_and_dedups():  # an unknown tool cannot pass the enum; the guard's check is a backstop
    plan = {"tools": ["cxr", "labs", "labs"]}
    labs_only = {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7}]}
    agent, llm = agent_with([plan, NO_MORE, labs_only])
    dx = agent.diagnose(make_case(cxr=False))
    assert dx.rationale_source == "llm" and llm.remaining == 0
    actions = {(o.action, o.tool) for o in dx.overrides}
    assert ("dropped", "cxr") in actions and ("deduplicated", "labs") in actions
    assert [p.tool for p in dx.plan] == ["labs"]
    # notes were present but not chosen: reflect offered them, the LLM declined; the answer says so
    assert any(m.modality == "notes" and "not examined" in m.handling for m in dx.missing)
    assert any(m.modality == "cxr" and "no cxr" in m.handling for m in dx.missing)


def test_reflect_can_add_a_tool():
    plan = {"tools": ["labs"]}
    more = {"tools": ["notes"]}
    agent, llm = agent_with([plan, more, {"claims": [{"label": "pneumonia", "says": "likely", "tool": "notes", "p": 0.6}]}])
    dx = agent.diagnose(make_case(cxr=False))
    assert [(p.tool, p.source) for p in dx.plan] == [("labs", "llm"), ("notes", "reflect")]


def test_reflect_is_not_asked_when_nothing_left_could_change_the_numbers():
    """Failed before: once the fused model had run, the reflect step still asked the LLM about the
    students (distilled from that same model, whose numbers the differential never takes while the
    fused output is there). On the routing run the LLM asked for every one of them, every time: 14 s
    of LLM per case for nothing. Now the reflect step is skipped, and the skip is recorded."""
    tools = {**FAKE_TOOLS, "fused": FakeFused, "student_labs": FakeStudentLabs}
    claims = {"claims": [{"label": "copd_exacerbation", "says": "likely", "tool": "fused", "p": 0.9}]}
    agent, llm = agent_with([PLAN_ALL, claims], tools=tools)
    final = agent.run(make_case())
    assert llm.remaining == 0 and len(llm.calls) == 2  # plan and answer, no reflect
    assert [p.tool for p in final["diagnosis"].plan] == ["cxr", "labs", "notes", "fused"]
    skipped = [e for e in final["events"] if e["step"] == "reflect_skipped"]
    assert skipped and "student_labs" in skipped[0]["why"]
    trace = io.StringIO()
    _print_trace(final, file=trace)  # the terminal's --trace shows the skip (it had no LLM latency to print)
    assert "reflect skipped: fused ran" in trace.getvalue()
    # without a fused model the student can carry the labs' number: reflect offers it
    no_fused = {**FAKE_TOOLS, "student_labs": FakeStudentLabs}
    labs_claim = {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7}]}
    agent, llm = agent_with([{"tools": ["labs", "notes"]}, {"tools": ["student_labs"]}, labs_claim], tools=no_fused)
    final = agent.run(make_case(cxr=False))
    assert ("student_labs", "reflect") in [(p.tool, p.source) for p in final["diagnosis"].plan] and llm.remaining == 0


def test_llm_failure_degrades_to_classifiers():
    agent, llm = agent_with([LLMTimeout("t"), "not json", LLMTimeout("t"), LLMTimeout("t")])
    dx = agent.diagnose(make_case())
    assert {p.tool for p in dx.plan} == {"cxr", "labs", "notes"}  # fallback ran every available tool
    assert all(p.source == "fallback" for p in dx.plan)
    assert dx.rationale_source == "template"
    assert any("planner unavailable" in d for d in dx.degraded)
    assert any("LLM claims unavailable" in d for d in dx.degraded)
    assert dx.differential[0].diagnosis == "pneumonia"


class GrammarIgnoringLLM(ScriptedLLM):
    """A server that does not honour the schema: its text is returned unchecked."""

    def complete_json(self, messages, schema, *, max_tokens=256, timeout_s=None):
        return self._next("complete_json", messages, schema)


def test_refused_claims_are_retried_then_replaced_and_never_shown():
    """The grammar leaves no wrong claim to make; a server that ignores it is caught by the check."""
    bad = {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.95}]}  # misquoted number
    llm = GrammarIgnoringLLM([PLAN_ALL, bad, bad])
    agent = DiagnosticAgent(llm, runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()), tools=FAKE_TOOLS)
    dx = agent.diagnose(make_case())
    assert dx.rationale_source == "template"
    assert "0.95" not in dx.rationale
    assert any("refused by the check" in d for d in dx.degraded)
    assert any("cites 0.95 for pneumonia from the labs model, which gave 0.70" in r for r in dx.grounding.rejected)
    retry = llm.calls[-1]["messages"][-1]["content"]
    assert "cites 0.95 for pneumonia" in retry  # the LLM is told why


def test_the_grammar_allows_only_the_verdicts_the_outputs_give():
    """'Heart failure is likely' cannot even be generated: the schema pairs each label with its verdict,
    the tools that score it and their numbers, and starts with the supported diagnosis."""
    import jsonschema

    agent, llm = agent_with([PLAN_ALL, GOOD])
    agent.diagnose(make_case())
    schema = llm.calls[-1]["schema"]
    for bad in ({"label": "heart_failure", "says": "likely", "tool": "labs", "p": 0.1},
                {"label": "pneumonia", "says": "likely", "tool": "cxr", "p": 0.7},
                {"label": "sepsis", "says": "unlikely", "tool": "labs", "p": 0.53},  # the LLM never types a number
                {"label": "pneumothorax", "says": "unlikely", "tool": "cxr", "p": 0.1}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({"claims": [GOOD["claims"][0], bad]}, schema)
    with pytest.raises(jsonschema.ValidationError):  # the supported diagnosis comes first
        jsonschema.validate({"claims": [{"label": "sepsis", "says": "unlikely", "tool": "labs", "p": 0.35}]}, schema)
    jsonschema.validate({"claims": [GOOD["claims"][0], {"label": "sepsis", "says": "unlikely", "tool": "labs", "p": 0.35}]}, schema)


def test_true_negations_pass_as_claims():
    ok = {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7},
                     {"label": "heart_failure", "says": "unlikely", "tool": "labs", "p": 0.1},
                     {"label": "effusion", "says": "unlikely", "tool": "cxr", "p": 0.3}]}
    agent, _ = agent_with([PLAN_ALL, ok])
    agent.config.max_claims = 3
    dx = agent.diagnose(make_case())
    assert dx.rationale_source == "llm", dx.grounding
    assert "The chest X-ray model finds no pleural effusion (0.30, below its threshold of 0.50)." in dx.rationale


def test_crashing_tool_is_reported_not_fatal():
    tools = {**FAKE_TOOLS, "notes": CrashingNotes}
    agent, _ = agent_with([PLAN_ALL, GOOD], tools=tools)
    dx = agent.diagnose(make_case())
    assert any(f.startswith("notes: tool_error") for f in dx.tool_failures)
    assert dx.differential[0].probability == pytest.approx(0.7)  # labs alone


def test_only_imaging_abstains_on_diagnosis():
    agent, llm = agent_with([{"tools": ["cxr"]}])
    dx = agent.diagnose(make_case(labs=False, notes=False))
    assert dx.abstained and "no diagnosis model" in dx.abstention_reason
    assert llm.remaining == 0 and "The chest X-ray model finds consolidation (0.81" in dx.rationale  # mmdx's own claims
    assert any(f.label == "consolidation" and f.positive for f in dx.imaging_findings)


def test_audit_log_records_every_decision(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    agent, _ = agent_with([PLAN_ALL, GOOD], audit=log)
    agent.diagnose(make_case(note_text="SECRET patient words"))
    text = (tmp_path / "audit.jsonl").read_text()
    assert "SECRET" not in text  # digests, not note text
    kinds = [__import__("json").loads(l)["kind"] for l in text.splitlines()]
    assert kinds.count("tool_call") == 3 and "llm_decision" in kinds and kinds[-1] == "diagnosis"
    assert verify(tmp_path / "audit.jsonl")[0]


def test_rationale_favouring_a_below_threshold_diagnosis_is_rejected():
    # seen with the real 1.5B model: it "prioritised" a diagnosis at p=0.002
    bad = {"claims": [{"label": "copd_exacerbation", "says": "likely", "tool": "notes", "p": 0.2}]}
    agent, _ = agent_with([PLAN_ALL, bad, bad])
    dx = agent.diagnose(make_case())
    assert dx.rationale_source == "template" and "copd" in " ".join(dx.degraded).lower()
    ok = {"claims": [{"label": "pneumonia", "says": "likely", "tool": "notes", "p": 0.6},
                     {"label": "copd_exacerbation", "says": "unlikely", "tool": "notes", "p": 0.2}]}
    agent, _ = agent_with([PLAN_ALL, ok])
    assert agent.diagnose(make_case()).rationale_source == "llm"


def test_rationale_by_llm_off_is_visible():
    agent, llm = agent_with([PLAN_ALL])
    agent.config.rationale_by_llm = False
    dx = agent.diagnose(make_case())
    assert dx.rationale_source == "template" and any("switched off" in d for d in dx.degraded) and llm.remaining == 0


def test_claims_mmdx_makes_itself_always_pass_its_checks():
    from hypothesis import given, settings, strategies as st

    from mmdx.agent import aggregate as agg
    from mmdx.agent.claims import check_claims, render_claims, template_claims
    from mmdx.agent.facts import Facts
    from mmdx.agent.prose_check import check_prose
    from mmdx.core.labels import DIAGNOSES, IMAGING_FINDINGS
    from mmdx.core.tool import ClassifierOutput, LabelScore, Provenance

    prov = Provenance(model_id="m", weights_sha256="0" * 64)
    probs = st.floats(0, 1)

    @settings(max_examples=200, deadline=None)
    @given(st.lists(probs, min_size=len(DIAGNOSES), max_size=len(DIAGNOSES)),
           st.lists(probs, min_size=len(DIAGNOSES), max_size=len(DIAGNOSES)),
           st.lists(probs, min_size=len(IMAGING_FINDINGS), max_size=len(IMAGING_FINDINGS)), probs, st.booleans())
    def check(dx_p, dx_q, img_p, thr, with_img):
        outs = [ClassifierOutput(tool="labs", case_id="c", target="diagnoses", provenance=prov,
                                 scores=tuple(LabelScore(label=l, probability=p, threshold=thr) for l, p in zip(DIAGNOSES, dx_p))),
                ClassifierOutput(tool="notes", case_id="c", target="diagnoses", provenance=prov,
                                 scores=tuple(LabelScore(label=l, probability=p, threshold=0.5) for l, p in zip(DIAGNOSES, dx_q)))]
        if with_img:
            outs.append(ClassifierOutput(tool="cxr", case_id="c", target="imaging_findings", provenance=prov,
                                         scores=tuple(LabelScore(label=l, probability=p, threshold=0.5) for l, p in zip(IMAGING_FINDINGS, img_p))))
        entries, _ = agg.differential(outs)
        facts = Facts.build(entries, outs)
        claims = template_claims(facts)
        assert check_claims(claims, facts)[1] == []
        text = " ".join(render_claims(claims, facts))
        report = check_prose(text, facts)
        assert report.ok or not claims, (text, report.problems)

    check()


def test_no_node_mutates_the_state_in_place():
    """Every node gets a deep copy of the state it would see and must leave it as it was: updates go
    through the graph's reducers."""
    import copy

    script = [PLAN_ALL, {"tools": ["notes"]}, GOOD] * 3
    agent, _ = agent_with(script)
    case = make_case(cxr=False)
    states = [dict(s) for s in agent.graph.stream({"case": case, "question": "why?"}, {"recursion_limit": 25}, stream_mode="values")]
    nodes = {"intake": agent._intake, "triage": agent._triage, "plan": agent._plan, "guard": agent._guard,
             "execute": agent._execute, "reflect": agent._reflect, "aggregate": agent._aggregate, "answer": agent._answer}
    order = ["intake", "triage", "plan", "guard", "execute", "reflect", "aggregate", "answer"]
    agent.llm = ScriptedLLM(script)
    seen = 0
    for before, name in zip(states, order):
        fn = nodes[name]
        state = copy.deepcopy(before)
        kwargs = {"config": {}} if "config" in fn.__code__.co_varnames[:fn.__code__.co_argcount] else {}
        fn(state, **kwargs)
        assert state == before, f"node {name} changed its input state in place"
        seen += 1
    assert seen == len(order)


def test_audit_content_only_when_opted_in(tmp_path):
    log = AuditLog(tmp_path / "optin.jsonl", include_content=True)
    agent, _ = agent_with([PLAN_ALL, GOOD], audit=log)
    agent.diagnose(make_case(note_text="SECRET patient words"))
    text = (tmp_path / "optin.jsonl").read_text()
    assert "SECRET patient words" in text and verify(tmp_path / "optin.jsonl")[0]


def test_what_a_tool_could_not_read_is_listed_in_the_answer():
    from agent_fakes import FakeNotes

    class ScreeningNotes(FakeNotes):
        def batch(self, inputs):
            return [o.model_copy(update={"notes": ("1 span(s) of the note set aside before the notes classifier read it",)})
                    for o in super().batch(inputs)]

    agent, _ = agent_with([PLAN_ALL, GOOD], tools={**FAKE_TOOLS, "notes": ScreeningNotes})
    dx = agent.diagnose(make_case())
    assert "notes: 1 span(s) of the note set aside before the notes classifier read it" in dx.degraded
    assert not any(d.startswith(("labs:", "cxr:")) for d in dx.degraded)  # tools with nothing to say add nothing
