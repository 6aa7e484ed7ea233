"""Kill the chat process mid-turn (SIGKILL): on restart the thread resumes with every earlier turn."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

SCRIPT = textwrap.dedent('''
    import sys, time
    sys.path.insert(0, {tests!r})
    from agent_fakes import FAKE_TOOLS, FakeLabs, make_case
    from mmdx.agent.chat import ChatSession
    from mmdx.agent.graph import DiagnosticAgent
    from llm_fakes import ScriptedLLM
    from mmdx.tools.runner import InProcessRunner

    class SlowLabs(FakeLabs):
        def batch(self, inputs):
            open({flag!r}, "w").write("in tool")
            time.sleep(60)
            return super().batch(inputs)

    mode = sys.argv[1]
    tools = dict(FAKE_TOOLS, labs=SlowLabs) if mode == "slow" else FAKE_TOOLS
    plan = {{"tools": ["labs", "notes"]}}
    rat = {{"claims": [{{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7}}]}}
    llm = ScriptedLLM([plan, rat, plan, rat])
    agent = DiagnosticAgent(llm, runner=InProcessRunner(tool_factory=lambda n: tools[n]()), tools=tools)
    s = ChatSession(agent, {db!r})
    if mode == "first":
        print(s.send("k", "diagnose", attach={{"case_json": make_case(cxr=False).to_json()}})[:40])
    elif mode == "slow":
        s.send("k", "diagnose", attach={{"case_json": make_case(cxr=False, case_id="c2").to_json()}})
    else:
        h = s.history("k")
        print(len(h["messages"]), h["diagnosis"]["case_id"])
        print(s.send("k", "diagnose")[:40])
''')


def test_killed_mid_turn_resumes(tmp_path):
    tests = str(Path(__file__).parent)
    flag = tmp_path / "flag"
    script = tmp_path / "chat_proc.py"
    script.write_text(SCRIPT.format(tests=tests, flag=str(flag), db=str(tmp_path / "chat.sqlite")))
    env = dict(os.environ, OMP_NUM_THREADS="1")
    first = subprocess.run([sys.executable, str(script), "first"], capture_output=True, text=True, timeout=120, env=env)
    assert first.returncode == 0, first.stderr
    p = subprocess.Popen([sys.executable, str(script), "slow"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    for _ in range(600):
        if flag.exists():
            break
        time.sleep(0.1)
    assert flag.exists(), "the slow turn never reached its tool"
    p.send_signal(signal.SIGKILL)
    p.wait(timeout=30)
    after = subprocess.run([sys.executable, str(script), "resume"], capture_output=True, text=True, timeout=120, env=env)
    assert after.returncode == 0, after.stderr
    n_messages, case_id = after.stdout.splitlines()[0].split()
    # turn 1 (user + assistant) survived intact; the killed turn's user message was kept too
    assert int(n_messages) == 3 and case_id == "c1"
    assert "Case c" in after.stdout.splitlines()[1]
