"""The command line for scripts: with --json stdout is JSON only (errors too, non-zero exit);
`case validate` opens the image and checks schema_version; a closed pipe ends quietly; `mmdx --help`
lists every command and subcommand. And the audit trail's inputs: the image by its bytes."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from mmdx.cli import COMMANDS, SUBCOMMANDS, main
from mmdx.core.case import PatientCase
from mmdx.core.errors import CaseValidationError

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "data" / "demo"
WITH_CXR = DEMO / "cases" / "ed1-000050.json"


def _copy_demo(tmp_path) -> Path:
    shutil.copytree(DEMO, tmp_path / "demo")
    return tmp_path / "demo" / "cases" / WITH_CXR.name


def test_help_lists_every_command_and_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in COMMANDS:
        assert f"  {cmd} " in out
    for cmd, subs in SUBCOMMANDS.items():
        for sub in subs:
            assert f"{cmd} {sub}" in out
    for needle in ("bench agent", "bench gpu", "eval injection", "data split", "case import"):
        assert needle in out
    from mmdx.evals.cli import BENCHES, DELEGATED_BENCHES, EVALS

    assert set(SUBCOMMANDS["bench"]) == set(BENCHES) | set(DELEGATED_BENCHES)
    assert set(SUBCOMMANDS["eval"]) == set(EVALS)


@pytest.mark.parametrize("cmd", sorted(SUBCOMMANDS))
def test_help_lists_every_subcommand_a_command_dispatches(cmd, capsys):
    # the other direction: `mmdx data audit` was dispatched and in the README but not in `mmdx --help`
    try:
        main([cmd, "--help"])
    except SystemExit:
        pass
    usage = capsys.readouterr().out.split("\n\n")[0]
    groups = [set(g.split(",")) for g in re.findall(r"\{([\w,-]+)\}", usage)]
    assert set(SUBCOMMANDS[cmd]) in groups, (cmd, groups)


@pytest.mark.parametrize("cmd,sub", [(c, s) for c, subs in SUBCOMMANDS.items() for s in subs
                                     if (c, s) not in {("bench", "gpu"), ("bench", "agent"), ("eval", "injection"),
                                                       ("eval", "run"), ("bench", "serving")}])
def test_each_listed_subcommand_is_dispatched(cmd, sub, capsys):
    try:
        code = main([cmd, sub, "--help"])
    except SystemExit as e:
        code = e.code
    assert code == 0, (cmd, sub)
    assert "usage" in capsys.readouterr().out.lower()


def test_case_validate_opens_the_image_and_checks_the_version(tmp_path, capsys):
    case_file = _copy_demo(tmp_path)
    assert main(["case", "validate", str(case_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["ok"]
    image = case_file.parent.parent / "images" / (case_file.stem + ".png")
    image.write_bytes(b"\x89PNG\r\n\x1a\nnot really")  # exists, does not decode
    data = json.loads(case_file.read_text())
    data["cxr"].pop("sha256", None)
    case_file.write_text(json.dumps(data))
    assert main(["case", "validate", str(case_file), "--json"]) == 1
    (row,) = json.loads(capsys.readouterr().out)
    assert row["problems"][0]["field"] == "cxr.path" and "unreadable image" in row["problems"][0]["message"]
    image.unlink()
    assert main(["case", "validate", str(case_file)]) == 1
    assert "image file not found" in capsys.readouterr().out
    data["schema_version"] = 99
    case_file.write_text(json.dumps(data))
    assert main(["case", "validate", str(case_file), "--json", "--no-image-check"]) == 1
    (row,) = json.loads(capsys.readouterr().out)
    assert row["problems"][0]["field"] == "schema_version" and "99" in row["problems"][0]["message"]


def test_tool_json_errors_are_json_on_stdout(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"case_id": "b", "demographics": {"age": 400}}))
    assert main(["tool", "labs", "--case", str(bad), "--json"]) == 1
    out = capsys.readouterr().out
    err = json.loads(out)
    assert err["error"] == "invalid_case" and err["problems"][0]["field"] == "demographics.age"
    nocase = tmp_path / "nolabs.json"
    nocase.write_text(json.dumps({"case_id": "n", "demographics": {"age": 40}}))
    assert main(["tool", "labs", "--case", str(nocase), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "modality_absent"


def test_diagnose_and_demo_json_stdout_is_json_only(tmp_path, capsys, monkeypatch):
    sys.path.insert(0, str(Path(__file__).parent))
    from agent_fakes import FAKE_TOOLS
    from mmdx.agent import cli as agent_cli
    from mmdx.agent.graph import DiagnosticAgent
    from llm_fakes import ScriptedLLM
    from mmdx.tools.runner import InProcessRunner

    def fake_agent(args):
        plan = {"calls": [{"tool": "labs", "reason": "labs"}]}
        return DiagnosticAgent(ScriptedLLM([plan, {"calls": []}, {"rationale": "Pneumonia is most likely (0.70) from the labs model."}] * 8),
                               runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()), tools=FAKE_TOOLS)

    monkeypatch.setattr(agent_cli, "build_agent", fake_agent)
    monkeypatch.setenv("MMDX_HOME", str(tmp_path / "home"))
    assert main(["demo", "--json"]) == 0
    out = capsys.readouterr()
    answers = json.loads(out.out)  # the whole of stdout
    assert isinstance(answers, list) and answers[0]["case_id"] and "loading the LLM" in out.err
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert main(["diagnose", "--case", str(bad), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"] == "invalid_case"


def test_a_closed_pipe_ends_quietly(tmp_path):
    exe = Path(sys.executable).parent / "mmdx"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    files = [str(WITH_CXR)] * 400  # more output than a pipe buffer holds
    p = subprocess.Popen([str(exe), "case", "validate", "--json", "--no-image-check", *files], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, env=env)
    p.stdout.read(10)
    p.stdout.close()  # the reader goes away, as `| head` does
    err = p.stderr.read().decode()
    assert p.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err, err


# ---- the audit trail's inputs

def test_inputs_digest_hashes_the_image_bytes_not_the_path(tmp_path):
    case_file = _copy_demo(tmp_path)
    case = PatientCase.load(case_file)
    image = case.image_path()
    moved = tmp_path / "elsewhere.png"
    shutil.copy(image, moved)
    same_bytes = case.model_copy(update={"cxr": case.cxr.model_copy(update={"path": str(moved)})})
    assert same_bytes.inputs_digest() == case.inputs_digest()
    other = bytearray(image.read_bytes())
    other[-20] ^= 0xFF
    moved.write_bytes(bytes(other))
    assert same_bytes.inputs_digest() != case.inputs_digest()


def test_a_recorded_sha256_is_checked_on_load(tmp_path):
    case_file = _copy_demo(tmp_path)
    data = json.loads(case_file.read_text())
    case = PatientCase.load(case_file)
    data["cxr"]["sha256"] = case.image_sha256()
    case_file.write_text(json.dumps(data))
    assert PatientCase.load(case_file).cxr.sha256 == case.image_sha256()
    image = case.image_path()
    image.write_bytes(image.read_bytes() + b"\0")
    with pytest.raises(CaseValidationError) as e:
        PatientCase.load(case_file)
    assert e.value.problems[0][0] == "cxr.sha256" and str(image) in e.value.problems[0][1]
