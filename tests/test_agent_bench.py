"""`mmdx bench agent` on fakes: the per-stage split and percentiles are computed from the run's own
events (no time is asserted; the figures are the benchmark's, not the test's)."""
from __future__ import annotations

from mmdx.agent.graph import DiagnosticAgent
from mmdx.evals.agent_bench import _pct, bench
from mmdx.tools.runner import InProcessRunner

from agent_fakes import FAKE_TOOLS, make_case
from llm_fakes import ScriptedLLM

PLAN = {"tools": ["cxr", "labs", "notes"]}
CLAIMS = {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7}]}


def test_bench_reports_stages_percentiles_and_tool_choice():
    llm = ScriptedLLM([PLAN, CLAIMS] * 4)
    agent = DiagnosticAgent(llm, runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()), tools=FAKE_TOOLS)
    result = bench(agent, [make_case(case_id=f"c{i}") for i in range(3)])
    s, rows = result["summary"], result["cases"]
    assert s["cases"] == 3 and s["schema_valid_rate"] == 1.0 and s["tool_recall"] == 1.0 and s["llm_claims_accepted"] == 3
    assert s["p50_wall_s"] <= s["p90_wall_s"] and all(r["to_numbers_s"] <= r["wall_s"] for r in rows)
    assert all(r["llm_s"] == round(r["llm_plan_s"] + r["llm_reflect_s"] + r["llm_answer_s"], 3) for r in rows)
    assert {"load_avg_1m_before", "cpu_cores", "median_llm_answer_s", "median_cached_tokens"} <= set(s)
    assert llm.remaining == 0  # one warm-up case and three measured, two LLM calls each


def test_percentiles():
    assert _pct([1, 2, 3, 4], 0.5) == 2.5 and _pct([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.9) == 9.1 and _pct([7], 0.9) == 7
