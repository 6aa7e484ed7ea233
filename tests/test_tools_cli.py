"""`mmdx tools list` and `mmdx tools run`, and the deprecated `mmdx tool`, through the real CLI
entry and the shipped tools on a packaged demo case."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from mmdx.cli import main

DEMO = Path(__file__).resolve().parents[1] / "data" / "demo"


def _labs_case(tmp_path) -> Path:
    shutil.copytree(DEMO, tmp_path / "demo")
    for f in sorted((tmp_path / "demo" / "cases").glob("*.json")):
        if json.loads(f.read_text()).get("measurements"):
            return f
    raise AssertionError("no demo case has labs")


def test_tools_run_and_the_old_spelling_give_the_same_output_the_old_one_warns(tmp_path, capsys):
    case = _labs_case(tmp_path)
    assert main(["tools", "run", "labs", "--case", str(case), "--json"]) == 0
    new = capsys.readouterr()
    assert main(["tool", "labs", "--case", str(case), "--json"]) == 0
    old = capsys.readouterr()
    assert json.loads(new.out) == json.loads(old.out)  # stdout: the same typed output, JSON only
    assert json.loads(new.out)["tool"] == "labs" and new.err == ""
    assert old.err.strip() == "mmdx tool is deprecated; use `mmdx tools run NAME --case FILE`"


def test_tools_run_reports_bad_input_typed(tmp_path, capsys):
    nolabs = tmp_path / "nolabs.json"
    nolabs.write_text(json.dumps({"case_id": "n", "demographics": {"age": 40}}))
    assert main(["tools", "run", "labs", "--case", str(nolabs), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "modality_absent"
    assert main(["tools", "run", "labs", "--case", str(nolabs)]) == 1
    assert "mmdx tools run labs: modality_absent" in capsys.readouterr().err


def test_tools_list_names_every_registered_tool(capsys):
    from mmdx import tools

    assert main(["tools", "list", "--json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == list(tools.registry())
