"""The evaluation workflow resumes after a kill: finished cases are kept, the rest run once."""
from __future__ import annotations

import sqlite3

import pytest

from mmdx.agent.graph import DiagnosticAgent
from mmdx.agent.llm import LLMTimeout
from llm_fakes import ScriptedLLM
from mmdx.evals.eval_run import report, run
from mmdx.tools.runner import InProcessRunner

from agent_fakes import FAKE_TOOLS, make_case


class Killed(BaseException):
    pass


def _agent(n_cases):
    # the LLM always times out: the agent degrades to the classifiers (fast and deterministic)
    llm = ScriptedLLM([LLMTimeout("t")] * (4 * n_cases))
    return DiagnosticAgent(llm, runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()), tools=FAKE_TOOLS)


def test_eval_run_resumes_after_kill(tmp_path):
    files = []
    for i in range(5):
        c = make_case(case_id=f"e{i}").model_copy(update={"labels": None})
        files.append(c.save(tmp_path / "cases" / f"e{i}.json"))
    db = tmp_path / "evals.sqlite"

    def die_after_two(cid, seen=[]):
        seen.append(cid)
        if len(seen) == 2:
            raise Killed  # like SIGKILL between cases: what was committed stays

    with pytest.raises(Killed):
        run(_agent(5), files, db, "r1", on_case=die_after_two)
    counts = run(_agent(5), files, db, "r1")
    assert counts == {"done_before": 2, "ran": 3, "total": 5}
    rows = sqlite3.connect(db).execute("SELECT case_id FROM results WHERE run_id='r1' ORDER BY case_id").fetchall()
    assert [r[0] for r in rows] == [f"e{i}" for i in range(5)]
    rep = report(db, "r1")
    assert rep["cases"] == 5 and rep["degraded"] == 5  # every answer says the LLM part is missing
