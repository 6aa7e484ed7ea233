"""`mmdx bench agent` on fakes: the per-stage split and percentiles are computed from the run's own
events (no time is asserted; the figures are the benchmark's, not the test's); tool choice is scored
against a relevance that "propose everything" does not satisfy by construction; baselines sit beside
the agent's top-1."""
from __future__ import annotations

from mmdx.agent.graph import DiagnosticAgent
from mmdx.agent.scope import vital_signs
from mmdx.core.case import CaseLabels
from mmdx.evals.agent_bench import _pct, bench
from mmdx.evals.relevance import answer, relevant_tools, tool_table
from mmdx.tools.runner import InProcessRunner

from agent_fakes import FAKE_TOOLS, FakeFused, FakeNotes, make_case
from llm_fakes import ScriptedLLM

PLAN = {"tools": ["cxr", "labs", "notes"]}
CLAIMS = {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7}]}


class CopdNotes(FakeNotes):
    """Fake notes tool that disagrees with the labs."""
    probs = {"copd_exacerbation": 0.9}


SPLIT_TOOLS = {**FAKE_TOOLS, "notes": CopdNotes}


def _agent(llm, tools=FAKE_TOOLS):
    return DiagnosticAgent(llm, runner=InProcessRunner(tool_factory=lambda n: tools[n]()), tools=tools)


def test_bench_reports_stages_percentiles_and_tool_choice():
    llm = ScriptedLLM([PLAN, CLAIMS] * 4)
    agent = _agent(llm)
    result = bench(agent, [make_case(case_id=f"c{i}") for i in range(3)])
    s, rows = result["summary"], result["cases"]
    assert s["cases"] == 3 and s["schema_valid_rate"] == 1.0 and s["llm_claims_accepted"] == 3
    assert s["p50_wall_s"] <= s["p90_wall_s"] and all(r["to_numbers_s"] <= r["wall_s"] for r in rows)
    assert all(r["llm_s"] == round(r["llm_plan_s"] + r["llm_reflect_s"] + r["llm_answer_s"], 3) for r in rows)
    assert {"load_avg_1m_before", "cpu_cores", "median_llm_answer_s", "median_cached_tokens"} <= set(s)
    assert llm.remaining == 0  # one warm-up case and three measured, two LLM calls each


def test_relevance_is_not_every_runnable_tool():
    """Failed before: every runnable tool counted as relevant, so a plan naming every tool scored
    precision and recall 1.0. Here labs and notes agree: neither alone changes the answer, and the
    X-ray model gives findings, not the differential, so no tool is relevant."""
    case = make_case()
    table = tool_table(InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()), case, names=["cxr", "labs", "notes"])
    assert relevant_tools(table) == set()
    llm = ScriptedLLM([PLAN, CLAIMS] * 2)
    s = bench(_agent(llm), [case])["summary"]
    assert s["proposed_tools"] == 3 and s["relevant_tools"] == 0
    assert s["tool_precision"] == 0.0 and s["tool_recall"] is None


def test_relevance_when_modalities_disagree():
    """The notes model says COPD, the labs pneumonia: together nothing reaches its threshold (abstain);
    without the notes the labs' pneumonia stands, without the labs the notes' COPD does. Both matter;
    the X-ray model does not, so a plan of all three has precision 2/3."""
    case = make_case()
    runner = InProcessRunner(tool_factory=lambda n: SPLIT_TOOLS[n]())
    table = tool_table(runner, case, names=["cxr", "labs", "notes"])
    full = answer(table.outputs(table.results), vital_signs(case))
    assert full.abstained and full.top == "copd_exacerbation"
    assert relevant_tools(table) == {"labs", "notes"}
    llm = ScriptedLLM([PLAN] * 2)  # abstentions need no claims
    s = bench(_agent(llm, SPLIT_TOOLS), [case])["summary"]
    assert (s["tool_precision"], s["tool_recall"]) == (0.6667, 1.0)
    assert s["every_tool_precision"] == 0.6667


def test_baselines_beside_the_agent():
    """Failed before: top-1 had no baseline. The majority class and each single tool are scored on the
    same cases through the same rules (an abstention is no top-1)."""
    llm = ScriptedLLM([PLAN] * 3)
    cases = [make_case(case_id=f"c{i}") for i in range(2)]
    cases = [c.model_copy(update={"labels": CaseLabels(diagnoses=("copd_exacerbation",))}) for c in cases]
    s = bench(_agent(llm, SPLIT_TOOLS), cases)["summary"]
    top1 = s["top1"]
    assert top1["agent"] == "0/2"  # the agent abstains on both
    assert top1["notes alone"] == "2/2" and top1["labs alone"] == "0/2"
    assert any(k.startswith("majority class") for k in top1)


def test_percentiles():
    assert _pct([1, 2, 3, 4], 0.5) == 2.5 and _pct([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == 9.1 and _pct([7], 0.9) == 7


def test_an_encoder_that_could_not_run_is_not_relevant():
    """Failed before: on a case without a radiograph the fused model's run asked for the X-ray encoder
    too (a dependency), which failed with modality_absent; leaving that failure out also dropped the
    fused model, so the answer changed and the X-ray tool counted as relevant (2 of the 28 relevant
    tools of the shipped bench). Now the dependency is not asked for where its input is absent; and a
    tool that failed is never relevant, nor does leaving out an encoder whose modality is absent
    touch the fused model (the table below holds such a failure, as an explicit request gives)."""
    tools = {**FAKE_TOOLS, "fused": FakeFused}
    case = make_case(cxr=False)
    runner = InProcessRunner(tool_factory=lambda n: tools[n]())
    table = tool_table(runner, case, names=["labs", "notes", "fused"])
    assert sorted(table.results) == ["fused", "labs", "notes"]  # the film's encoder was not asked for
    assert relevant_tools(table) == {"fused", "labs", "notes"}
    asked = tool_table(runner, case, names=["cxr", "labs", "notes", "fused"])  # named: it runs, and fails typed
    assert getattr(asked.results["cxr"], "kind", None) == "modality_absent"
    assert answer(asked.outputs(asked.results), vital_signs(case)).top == "copd_exacerbation"
    assert relevant_tools(asked) == {"fused", "labs", "notes"}
