"""The chat web page end to end in Debian's headless Chromium (Playwright drives it; no browser download)."""
from __future__ import annotations

import shutil
import socket
import threading
import time

import pytest

from mmdx.agent.chat import ChatSession
from mmdx.agent.graph import DiagnosticAgent
from llm_fakes import ScriptedLLM
from mmdx.agent.web import create_app
from mmdx.tools.runner import InProcessRunner

from agent_fakes import FAKE_TOOLS, make_case

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (scripts/test installs it)")]

PLAN = {"calls": [{"tool": "cxr", "reason": "image present"}, {"tool": "labs", "reason": "labs"}, {"tool": "notes", "reason": "notes"}]}
RAT = {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7}]}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    import uvicorn

    llm = ScriptedLLM([PLAN, RAT, "Heart failure has probability 0.10 from the labs model, below its threshold."])
    agent = DiagnosticAgent(llm, runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()), tools=FAKE_TOOLS)
    session = ChatSession(agent, tmp_path / "chat.sqlite")
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(session, tmp_path / "uploads"), host="127.0.0.1", port=port, log_level="warning"))
    t = threading.Thread(target=srv.run, daemon=True)
    t.start()
    for _ in range(100):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", session
    srv.should_exit = True
    t.join(timeout=10)
    session.close()


def test_chat_page_in_headless_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    url, session = server
    case_file = tmp_path / "case.json"
    case_file.write_text(make_case(case_id="web1").to_json())
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        page = browser.new_page()
        page.goto(url + "/?thread=webtest")
        page.set_input_files("#case_file", str(case_file))
        page.fill("#message", "diagnose")
        page.click("#send")
        page.wait_for_selector(".msg.assistant", timeout=30_000)
        reply = page.locator(".msg.assistant").last.inner_text()
        assert "pneumonia" in reply and "SYNTHETIC" in reply
        assert "cxr [llm] image present" in page.locator("#plan").inner_text()  # visible tool trace
        page.fill("#message", "why not heart failure?")
        page.click("#send")
        page.wait_for_function("document.querySelectorAll('.msg.assistant').length >= 2", timeout=30_000)
        assert "0.10" in page.locator(".msg.assistant").last.inner_text()
        page.screenshot(path=str(tmp_path / "chat.png"))
        # reload: the conversation comes back from SQLite
        page.goto(url + "/?thread=webtest")
        page.wait_for_function("document.querySelectorAll('.msg').length >= 4", timeout=30_000)
        browser.close()
    shutil.copy(tmp_path / "chat.png", "/tmp/mmdx-chat.png")
