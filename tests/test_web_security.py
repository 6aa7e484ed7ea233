"""`mmdx serve` keeps patients apart: confined uploads, unguessable threads readable only with their
token, size limits, no server paths, an access token off localhost, and sessions that do not block
each other (the agent runs off the event loop)."""
from __future__ import annotations

import json
import shutil
import socket
import threading
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from mmdx.agent import web
from mmdx.agent.chat import ChatSession
from mmdx.agent.graph import DiagnosticAgent
from mmdx.tools.runner import InProcessRunner

from agent_fakes import FAKE_TOOLS, FakeLabs, make_case
from llm_fakes import ScriptedLLM

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
PNEUMONIA = DEMO / "cases" / "ed1-000011.json"  # names ../images/<same>.png
PLAN = {"tools": ["cxr", "labs", "notes"]}
RAT = {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7}]}


class SchemaLLM(ScriptedLLM):
    """Answers by schema, in any order (two sessions interleave): plan every tool, claim pneumonia."""

    def __init__(self):
        super().__init__([])

    def complete_json(self, messages, schema, *, max_tokens=256, timeout_s=None):
        props = schema["properties"]
        if "calls" in props:
            names = props["calls"]["items"]["properties"]["tool"]["enum"]
            return json.dumps({"calls": [{"tool": n, "reason": "r"} for n in names]})
        return json.dumps(RAT)


def make_app(tmp_path, llm=None, tools=FAKE_TOOLS, **kw):
    agent = DiagnosticAgent(llm or SchemaLLM(), runner=InProcessRunner(tool_factory=lambda n: tools[n]()), tools=tools)
    session = ChatSession(agent, tmp_path / "data" / "chat.sqlite")
    return web.create_app(session, tmp_path / "uploads", **kw), session


def thread(client) -> tuple[str, dict]:
    j = client.post("/api/threads").json()
    return j["thread_id"], {"X-Thread-Token": j["thread_token"]}


def turn(client, tid, headers, message="/diagnose", files=None, data=None):
    r = client.post(f"/api/threads/{tid}/turns", headers=headers, data={"message": message, **(data or {})}, files=files or {})
    if r.headers["content-type"].startswith("application/x-ndjson"):
        lines = [json.loads(x) for x in r.text.splitlines() if x.strip()]
        return r, lines, next((x["reply"] for x in lines if "reply" in x), None)
    return r, [], r.json().get("reply")


def test_thread_ids_are_unguessable_and_a_foreign_thread_is_unreadable(tmp_path):
    app, _ = make_app(tmp_path)
    with TestClient(app) as c:
        a, ha = thread(c)
        b, hb = thread(c)
        assert len(a) >= 22 and a != b  # 128 random bits, made by the server
        r, _, reply = turn(c, a, ha, files={"case_file": ("case.json", make_case(cxr=False, case_id="secret-a").to_json().encode())})
        assert "pneumonia" in reply
        assert c.get(f"/api/threads/{a}", headers=ha).json()["diagnosis"]["case_id"] == "secret-a"
        for headers in ({}, hb, {"X-Thread-Token": "guess"}):
            r = c.get(f"/api/threads/{a}", headers=headers)
            assert r.status_code == 404 and "secret-a" not in r.text
            assert c.post(f"/api/threads/{a}/turns", headers=headers, data={"message": "x"}).status_code == 404
            assert c.get(f"/api/threads/{a}/image", headers=headers).status_code == 404
            assert c.delete(f"/api/threads/{a}", headers=headers).status_code == 404
        assert c.get("/api/threads/ward3", headers=ha).status_code == 404  # user-chosen ids do not exist


def test_image_paths_cannot_leave_the_thread_folder(tmp_path):
    app, _ = make_app(tmp_path)
    png = (DEMO / "images" / PNEUMONIA.with_suffix(".png").name).read_bytes()
    with TestClient(app) as c:
        a, ha = thread(c)
        turn(c, a, ha, files={"case_file": ("case.json", PNEUMONIA.read_bytes()), "image": ("xray.png", png)})
        b, hb = thread(c)
        stolen = tmp_path / "uploads" / a / "xray.png"
        assert stolen.exists()
        for path, why in ((f"../{a}/xray.png", "'..' is refused"), (str(stolen), "absolute paths are refused"),
                          ("/etc/passwd.png", "absolute paths are refused"), ("sub/../../x.png", "'..' is refused"),
                          ("missing.png", "was not uploaded")):
            case = json.loads(PNEUMONIA.read_text())
            case["cxr"]["path"] = path
            r, _, reply = turn(c, b, hb, files={"case_file": ("case.json", json.dumps(case).encode())})
            assert reply.startswith("I could not use that input:") and "cxr.path" in reply and why in reply, reply
            assert str(tmp_path) not in reply
        h = c.get(f"/api/threads/{b}", headers=hb).json()
        assert h["case"] is None and c.get(f"/api/threads/{b}/image", headers=hb).status_code == 404


def test_a_demo_case_uploads_with_its_image_and_no_server_path_is_shown(tmp_path):
    app, _ = make_app(tmp_path)
    png = (DEMO / "images" / PNEUMONIA.with_suffix(".png").name).read_bytes()
    with TestClient(app) as c:
        a, ha = thread(c)
        r, events, reply = turn(c, a, ha, files={"case_file": (PNEUMONIA.name, PNEUMONIA.read_bytes()),
                                                 "image": (PNEUMONIA.with_suffix(".png").name, png)})
        assert "image file not found" not in reply and "most likely" in reply
        assert [e["stage"] for e in events if "stage" in e][:3] == ["triage", "planning", "tools"]
        img = c.get(f"/api/threads/{a}/image", headers=ha)
        assert img.status_code == 200 and img.content[:8] == b"\x89PNG\r\n\x1a\n"
        everything = r.text + c.get(f"/api/threads/{a}", headers=ha).text
        assert str(tmp_path) not in everything and str(tmp_path.resolve()) not in everything
        # a case naming an image that was not sent: the error names the case's path, not the server's
        b, hb = thread(c)
        _, _, reply = turn(c, b, hb, files={"case_file": (PNEUMONIA.name, PNEUMONIA.read_bytes())})
        assert "'..' is refused" in reply and str(tmp_path) not in reply


def test_oversized_uploads_are_refused_before_they_are_read(tmp_path):
    limits = web.Limits(request_bytes=200_000, image_bytes=50_000, case_bytes=20_000)
    app, _ = make_app(tmp_path, limits=limits)
    with TestClient(app) as c:
        a, ha = thread(c)
        r, _, _ = turn(c, a, ha, files={"case_file": ("c.json", make_case().to_json().encode()), "image": ("x.png", b"\0" * 50_001)})
        assert r.status_code == 413 and "the image is larger" in r.json()["error"]
        r, _, _ = turn(c, a, ha, files={"image": ("x.png", b"\0" * 300_000)})
        assert r.status_code == 413 and "the upload is larger" in r.json()["error"]
        r, _, _ = turn(c, a, ha, files={"case_file": ("c.json", b" " * 20_001)})
        assert r.status_code == 413
        assert not (tmp_path / "uploads" / a).exists() or not any((tmp_path / "uploads" / a).iterdir())


def test_access_token_required_off_localhost(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("MMDX_HOME", str(tmp_path / "home"))
    monkeypatch.delenv(web.TOKEN_ENV, raising=False)
    built = []
    monkeypatch.setattr("mmdx.agent.cli.build_agent", lambda args: built.append(1) or pytest.fail("the agent loaded"))
    assert web.main(["--host", "0.0.0.0", "--audit-log", ""]) == 2
    assert "refusing to listen on 0.0.0.0 without an access token" in capsys.readouterr().err and not built
    # with a token: it starts, and prints the URL with the token, as notebook servers do
    import uvicorn

    ran = {}
    monkeypatch.setattr("mmdx.agent.cli.build_agent", lambda args: DiagnosticAgent(SchemaLLM(), tools=FAKE_TOOLS,
                        runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]())))
    monkeypatch.setattr(uvicorn, "run", lambda app, host, port, **kw: ran.update(app=app, host=host))
    assert web.main(["--host", "0.0.0.0", "--token", "s3cret-token", "--db", str(tmp_path / "c.sqlite"), "--audit-log", ""]) == 0
    assert "http://0.0.0.0:8765/?token=s3cret-token" in capsys.readouterr().out
    with TestClient(ran["app"]) as c:
        assert c.post("/api/threads").status_code == 401
        assert c.get("/").status_code == 401
        assert c.post("/api/threads", headers={"Authorization": "Bearer s3cret-token"}).status_code == 200
        r = c.get("/?token=s3cret-token", follow_redirects=False)
        assert r.status_code == 303 and "mmdx_access=s3cret-token" in r.headers["set-cookie"] and "HttpOnly" in r.headers["set-cookie"]
        c.cookies.clear()
        assert c.get("/?token=wrong").status_code == 401


def test_deleting_a_thread_removes_its_conversation_and_uploads(tmp_path):
    app, session = make_app(tmp_path)
    with TestClient(app) as c:
        a, ha = thread(c)
        turn(c, a, ha, files={"case_file": ("case.json", make_case().to_json().encode()), "image": ("img.png", b"not really")})
        assert (tmp_path / "uploads" / a).exists()
        assert c.delete(f"/api/threads/{a}", headers=ha).status_code == 200
        assert not (tmp_path / "uploads" / a).exists() and session.history(a)["messages"] == []
        assert c.get(f"/api/threads/{a}", headers=ha).status_code == 404


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_sessions_do_not_block_each_other(tmp_path):
    """Thread A's turn waits inside a tool; thread B's whole turn completes meanwhile."""
    import httpx
    import uvicorn

    gate, entered = threading.Event(), threading.Event()

    class GatedLabs(FakeLabs):
        def batch(self, inputs):
            if inputs[0].case.case_id == "slow":
                entered.set()
                assert gate.wait(60), "never released"
            return super().batch(inputs)

    tools = {**FAKE_TOOLS, "labs": GatedLabs}
    app, session = make_app(tmp_path, tools=tools)
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    while not srv.started:
        time.sleep(0.02)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=60) as c:
            a, ha = thread(c)
            b, hb = thread(c)
            slow = {}

            def run_a():
                r = c.post(f"/api/threads/{a}/turns", headers=ha, data={"message": "/diagnose"},
                           files={"case_file": ("a.json", make_case(cxr=False, case_id="slow").to_json().encode())})
                slow["text"] = r.text

            ta = threading.Thread(target=run_a)
            ta.start()
            assert entered.wait(30)
            with httpx.Client(base_url=base, timeout=30) as c2:  # a second browser
                r = c2.post(f"/api/threads/{b}/turns", headers=hb, data={"message": "/diagnose"},
                            files={"case_file": ("b.json", make_case(cxr=False, case_id="fast").to_json().encode())})
                lines = [json.loads(x) for x in r.text.splitlines()]
                assert any("reply" in x and "Case fast" in x["reply"] for x in lines)
                assert not gate.is_set() and ta.is_alive()  # A is still inside its tool
            gate.set()
            ta.join(30)
            assert "Case slow" in slow["text"]
    finally:
        gate.set()
        srv.should_exit = True
        t.join(10)
        session.close()
