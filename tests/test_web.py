"""A whole consultation on the web page in Debian's headless Chromium (Playwright drives it; no
browser download): a demo case uploaded with its X-ray, the answer with its evidence, a question,
the explanation, a what-if, and the conversation back after a reload."""
from __future__ import annotations

import shutil
import socket
import threading
import time
from pathlib import Path

import pytest

from mmdx.agent.chat import ChatSession
from mmdx.agent.graph import DiagnosticAgent
from mmdx.agent.web import create_app
from mmdx.tools.runner import InProcessRunner

from agent_fakes import FAKE_TOOLS
from llm_fakes import ScriptedLLM

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (scripts/test installs it)")]

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"
CASE = DEMO / "cases" / "ed1-000011.json"  # a synthetic pneumonia case naming ../images/<id>.png
IMAGE = DEMO / "images" / CASE.with_suffix(".png").name
PLAN = {"tools": ["cxr", "labs", "notes"]}
CLAIMS = {"claims": [{"label": "pneumonia", "says": "likely", "tool": "labs", "p": 0.7},
                     {"label": "consolidation", "says": "likely", "tool": "cxr", "p": 0.81}]}
WHY_NOT_HF = {"intent": "explain", "modality": "none", "labels": ["heart_failure"]}
WITHOUT_XRAY = {"intent": "what_if", "modality": "cxr", "labels": []}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    import uvicorn

    llm = ScriptedLLM([PLAN, CLAIMS, WHY_NOT_HF, WITHOUT_XRAY])
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
    yield f"http://127.0.0.1:{port}", llm
    srv.should_exit = True
    t.join(timeout=10)
    session.close()


def _send(page, message: str, n_assistant: int) -> str:
    page.fill("#message", message)
    page.click("#send")
    page.wait_for_function(f"document.querySelectorAll('.msg.assistant').length >= {n_assistant}", timeout=30_000)
    page.wait_for_function("!document.getElementById('send').disabled", timeout=30_000)
    return page.locator(".msg.assistant").last.inner_text()


def test_a_whole_consultation_in_headless_chromium(server, tmp_path):
    from playwright.sync_api import sync_playwright

    url, llm = server
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url + "/")
        page.wait_for_function("localStorage.getItem('mmdx-thread') !== null")
        # 1. the case file with its image, as `mmdx data demo` writes them
        page.set_input_files("#case_file", str(CASE))
        page.set_input_files("#image", str(IMAGE))
        reply = _send(page, "", 1)
        assert "most likely pneumonia" in reply and "SYNTHETIC" in reply
        stages = page.eval_on_selector_all("#progress li", "els => els.map(e => e.dataset.stage)")
        assert stages[:3] == ["triage", "planning", "tools"] and "differential" in stages  # progress, numbers first
        # the evidence view: the X-ray itself, bars against thresholds, series plots, claims with their evidence
        page.wait_for_function("document.querySelector('#xray-img') && document.querySelector('#xray-img').naturalWidth > 0", timeout=10_000)
        assert page.locator(".bar-row").count() == 7 and page.locator(".bar-row .thr").count() == 7
        assert page.locator(".bar-row.likely").first.get_attribute("data-label") == "pneumonia"
        assert page.locator(".spark svg path").count() >= 3
        claim = page.locator(".claim").first.inner_text()
        assert "pneumonia is likely" in claim and "labs: pneumonia 0.70 (threshold 0.50, positive; fake-labs)" in claim
        assert "The chest X-ray model finds consolidation (0.81, threshold 0.50)." in page.locator("#rationale").inner_text()
        assert "cxr [llm] chosen by the LLM planner" in page.locator("#plan").inner_text()
        assert str(tmp_path) not in page.content()
        # 2. a question, answered from the stored tool outputs
        reply = _send(page, "why not heart failure?", 2)
        assert reply.startswith("Heart failure: unlikely") and "labs model: 0.10" in reply
        # 3. a what-if: only the tools that read the X-ray rerun, the others still count
        reply = _send(page, "what if the X-ray were missing?", 3)
        assert reply.startswith("Without the cxr:") and "tools reused (they do not read the cxr): labs, notes" in reply
        assert "what if: no cxr" in page.locator("#plan").inner_text()
        page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)
        # 4. reload: the conversation comes back from SQLite, for this browser's thread only
        page.reload()
        page.wait_for_function("document.querySelectorAll('.msg').length >= 6", timeout=30_000)
        mine = page.evaluate("localStorage.getItem('mmdx-thread')")
        other = browser.new_context().new_page()  # another browser: its own thread, none of this one's turns
        other.goto(url + "/")
        other.wait_for_function("localStorage.getItem('mmdx-thread') !== null")
        other.wait_for_function("document.querySelector('#differential .warn') !== null")
        assert other.evaluate("localStorage.getItem('mmdx-thread')") != mine and other.locator(".msg").count() == 0
        browser.close()
    assert llm.remaining == 0
    shutil.copy(tmp_path / "chat.png", "/tmp/mmdx-chat.png")
