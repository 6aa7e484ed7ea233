"""The evaluation report opens in Debian's headless Chromium with its plots: every figure kind the
run's steps call for is there and every image decodes (naturalWidth > 0)."""
from __future__ import annotations

import shutil

import pytest

from mmdx.evals.workflow_run import run_workflow

from test_workflows import ReadingNotes, SchemaLLM, _cases, _fake_runner, _wf

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="Debian chromium not installed (scripts/test installs it)")]


def test_report_renders_with_its_plots_in_headless_chromium(tmp_path):
    from playwright.sync_api import sync_playwright

    data = _cases(tmp_path / "data")
    steps = [{"name": "tools", "kind": "tools", "tools": ["labs", "notes"]},
             {"name": "missing", "kind": "missingness", "tools": ["labs", "notes"], "patterns": ["all", "no_notes"]},
             {"name": "probes", "kind": "probes", "tools": ["notes"], "probes": ["swapped_notes"]},
             {"name": "routing", "kind": "routing", "agent": {"llm": "fake", "sample": 3},
              "policies": ["llm_scheduler", "every_tool", "escalation", "oracle"]}]
    wf = _wf(data, steps, calibration_split="val")
    llm = SchemaLLM()
    run_workflow(wf, tmp_path / "run", inner_runner=_fake_runner({"notes": ReadingNotes}), llm_factory=lambda s: llm,
                 progress=False)
    report = tmp_path / "run" / "report.html"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"])
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(report.as_uri())
        page.wait_for_function("Array.from(document.images).every(i => i.complete)", timeout=30_000)
        kinds = page.eval_on_selector_all("figure.plot", "els => els.map(e => e.dataset.plot)")
        widths = page.eval_on_selector_all("figure.plot img", "els => els.map(e => e.naturalWidth)")
        assert {"roc", "calibration", "latency", "missingness", "probes", "routing"} <= set(kinds), kinds
        assert widths and all(w > 100 for w in widths), widths
        assert "synthetic" in page.locator(".banner").inner_text()
        assert page.locator("h2").count() == 4
        page.screenshot(path=str(tmp_path / "report.png"), full_page=True)
        browser.close()
    shutil.copy(tmp_path / "report.png", "/tmp/mmdx-eval-report.png")
