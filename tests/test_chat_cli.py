"""`mmdx chat` in the terminal: the real command loop, with a scripted LLM and fake tools behind it."""
from __future__ import annotations

import builtins

from mmdx.agent import cli
from mmdx.agent.graph import DiagnosticAgent
from llm_fakes import ScriptedLLM
from mmdx.tools.runner import InProcessRunner

from agent_fakes import FAKE_TOOLS, make_case

PLAN = {"tools": ["labs", "notes"]}
RAT = {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7}]}


def _run_chat(monkeypatch, tmp_path, lines, script):
    agent = DiagnosticAgent(ScriptedLLM(script), runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()), tools=FAKE_TOOLS)
    monkeypatch.setattr(cli, "build_agent", lambda args: agent)
    feed = iter(lines)

    def fake_input(prompt=""):
        try:
            return next(feed)
        except StopIteration:
            raise EOFError from None

    monkeypatch.setattr(builtins, "input", fake_input)
    return cli.chat_main(["--db", str(tmp_path / "chat.sqlite"), "--thread", "t1", "--audit-log", ""])


def test_terminal_chat_attach_diagnose_follow_up_and_resume(monkeypatch, tmp_path, capsys):
    case_file = make_case(cxr=False).save(tmp_path / "case.json")
    labs = tmp_path / "labs.csv"
    labs.write_text("time,variable,value,unit\n2024-03-01T09:00,lactate,2.9,mmol/L\n")
    rc = _run_chat(monkeypatch, tmp_path, [f"/case {case_file}", f"/labs {labs}", "diagnose", "why not heart failure?", "/quit"],
                   [PLAN, RAT, {"intent": "explain", "modality": "none", "labels": ["heart_failure"]}])
    out = capsys.readouterr().out
    assert rc == 0 and "most likely pneumonia" in out and "Heart failure: unlikely" in out and "labs model: 0.10" in out
    # progress while the agent runs, one line per stage, the numbers before the answer
    lines = out.splitlines()
    stages = [ln.split("]")[0].strip(" [") for ln in lines if ln.startswith("  [")]
    assert stages[:5] == ["triage", "planning", "tools", "differential", "answering"]
    assert any("numbers ready: pneumonia 0.65" in ln for ln in lines)
    assert lines.index(next(ln for ln in lines if "numbers ready" in ln)) < lines.index(next(ln for ln in lines if "most likely pneumonia" in ln))
    assert "thread t1 saved" in out
    # a new process resumes the thread: earlier turns are printed back
    rc = _run_chat(monkeypatch, tmp_path, ["/history", "/quit"], [])
    out = capsys.readouterr().out
    assert "(4 earlier messages)" in out and "why not heart failure?" in out


def test_terminal_chat_bad_attachment_keeps_the_session(monkeypatch, tmp_path, capsys):
    rc = _run_chat(monkeypatch, tmp_path, ["/labs /no/such/file.csv", "/new abc male", "/quit"], [])
    out = capsys.readouterr().out
    assert rc == 0 and out.count("could not attach") == 2


def test_ray_pool_sizes_parse_and_unknown_tools_stop_before_the_llm_loads(monkeypatch, tmp_path, capsys):
    import argparse

    import pytest

    assert cli.parse_pools("cxr=4, notes=2") == {"cxr": 4, "notes": 2} and cli.parse_pools("") == {}
    for bad in ("cxr", "cxr=0", "cxr=two", "=3"):
        with pytest.raises(argparse.ArgumentTypeError):
            cli.parse_pools(bad)
    monkeypatch.setattr("mmdx.agent.llm.load_llm", lambda cfg: pytest.fail("the LLM loaded before the pools were checked"))
    case_file = make_case().save(tmp_path / "case.json")
    with pytest.raises(SystemExit) as e:
        cli.diagnose_main(["--case", str(case_file), "--runner", "ray", "--ray-pools", "cxr=2,xray=1", "--audit-log", ""])
    assert "unknown tool(s) xray" in str(e.value.code)
    monkeypatch.setenv("MMDX_RAY_POOLS", "cxr=two")
    with pytest.raises(SystemExit) as e:  # a bad value from the environment is argparse's clean error too
        cli.diagnose_main(["--case", str(case_file), "--audit-log", ""])
    assert e.value.code == 2 and "cxr=4,notes=2" in capsys.readouterr().err
