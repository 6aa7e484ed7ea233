"""`mmdx workflow score`: cases through the tool runner into results.jsonl (the one results schema);
resumable; bad files stored, not fatal.

Fast tests use the fake tools of agent_fakes (the real models are tested in test_tools); one test
runs the same scoring through real Ray actors and checks it stores what the in-process runner does.
"""
from __future__ import annotations

import json
import sys

import pytest

import agent_fakes
from agent_fakes import FAKE_TOOLS, make_case
from mmdx.core.tool import ClassifierOutput
from mmdx.tools.runner import InProcessRunner
from mmdx.workflows import score as wf


class _Fakes:
    """Picklable tool factory over the fake tools (for Ray actors too)."""

    def __call__(self, name: str):
        return FAKE_TOOLS[name]()


def _folder(tmp_path, n=7):
    d = tmp_path / "cases"
    d.mkdir()
    for i in range(n):
        make_case(cxr=i % 3 != 0, labs=i % 4 != 1, notes=True, case_id=f"c{i:02d}").save(d / f"c{i:02d}.json")
    (d / "broken.json").write_text('{"case_id": "x", "demographics": ')  # a truncated file
    return sorted(d.glob("*.json"))


def _rows(out):
    """(source, tool, case_id, ok, failure kind, message or stored output) per stored (file, tool)."""
    rows = []
    for line in (out / "results.jsonl").read_text().splitlines():
        rec = json.loads(line)
        r = rec["results"][rec["step"]]
        rows.append((rec["key"], rec["step"], rec["case_id"], int(r["ok"]), r["failure_kind"],
                     json.dumps(r["extra"].get("output") or {"message": r["failure"]}, sort_keys=True)))
    return sorted(rows)


def test_every_case_and_tool_is_stored_typed_and_a_broken_file_does_not_stop_the_run(tmp_path):
    files = _folder(tmp_path)
    db = tmp_path / "run"
    counts = wf.score(files, InProcessRunner(tool_factory=_Fakes()), db, ["cxr", "labs", "notes"], chunk=3)
    rows = _rows(db)
    assert counts == {"cases": 8, "scored": 7 * 3 - 3 - 2, "failed": 3 + 2 + 1, "skipped": 0}
    broken = [r for r in rows if r[0].endswith("broken.json")]
    assert len(broken) == 1 and broken[0][1] == wf.ANY_TOOL and broken[0][4] == "invalid_input"
    assert "not valid JSON" in json.loads(broken[0][5])["message"]
    absent = {(r[2], r[1]) for r in rows if r[4] == "modality_absent"}
    assert absent == {("c00", "cxr"), ("c03", "cxr"), ("c06", "cxr"), ("c01", "labs"), ("c05", "labs")}
    outs = wf.load_outputs(db, "labs")
    assert set(outs) == {f"c{i:02d}" for i in range(7)} - {"c01", "c05"}
    assert all(isinstance(o, ClassifierOutput) and o.probability("pneumonia") == 0.7 for o in outs.values())
    s = wf.summary(db)
    assert s["case_files"] == 8 and s["unreadable_case_files"] == 1
    assert s["tools"]["cxr"] == {"ok": 4, "failed": {"modality_absent": 3}}


def test_a_killed_run_resumes_without_rescoring_or_duplicates(tmp_path):
    files = _folder(tmp_path)
    db = tmp_path / "run"

    class Killed(Exception):
        pass

    def die_after_first_chunk(done, total):
        raise Killed

    with pytest.raises(Killed):
        wf.score(files, InProcessRunner(tool_factory=_Fakes()), db, ["cxr", "labs", "notes"], chunk=3,
                 concurrency=1, on_chunk=die_after_first_chunk)
    first = _rows(db)
    assert len({r[0] for r in first}) == 3  # the first chunk was committed before the "kill"
    agent_fakes.FakeLabs.calls = 0
    counts = wf.score(files, InProcessRunner(tool_factory=_Fakes()), db, ["cxr", "labs", "notes"], chunk=3)
    # chunk 1 held broken.json (sorted first), c00 and c01: 9 (file, tool) pairs done; c02..c06 are left
    assert counts["skipped"] == 9 and counts["scored"] + counts["failed"] == 5 * 3
    assert agent_fakes.FakeLabs.calls == 2  # the two remaining chunks, not the first again
    rows = _rows(db)
    assert len(rows) == 7 * 3 + 1 and set(first) <= set(rows)
    # a third call finds nothing left to do
    again = wf.score(files, InProcessRunner(tool_factory=_Fakes()), db, ["cxr", "labs", "notes"])
    assert again == {"cases": 8, "scored": 0, "failed": 0, "skipped": 24}


def test_cli_refuses_unknown_tools_missing_folders_and_bad_pools(tmp_path, capsys):
    files = _folder(tmp_path, n=3)
    db = tmp_path / "run"
    assert wf.main(["score", "--cases", str(files[0].parent), "--out", str(db), "--tools", "cxr,xray"]) == 2
    assert "unknown tool(s) xray" in capsys.readouterr().err
    assert wf.main(["score", "--cases", str(tmp_path / "nowhere"), "--out", str(db)]) == 2
    assert "no case files" in capsys.readouterr().err
    assert wf.main(["summary", str(tmp_path / "nope")]) == 2
    assert wf.main(["score", "--cases", str(files[0].parent), "--out", str(db), "--runner", "ray",
                    "--ray-pools", "cxr=two"]) == 2
    assert "cxr=4,notes=2" in capsys.readouterr().err


def test_cli_scores_the_demo_cases_with_the_shipped_models(tmp_path, capsys):
    from mmdx.data.demo_cases import copy_demo

    copy_demo(tmp_path / "demo")
    folder = tmp_path / "demo" / "cases"
    n = len(list(folder.glob("*.json")))
    db = tmp_path / "run"
    assert wf.main(["score", "--cases", str(folder), "--out", str(db)]) == 0
    s = wf.summary(db)
    assert s["case_files"] == n and s["unreadable_case_files"] == 0
    for tool in ("cxr", "labs", "notes"):  # each tool scored the demo cases that have its modality
        t = s["tools"][tool]
        assert t["ok"] >= 1 and t["ok"] + sum(t["failed"].values()) == n
        assert set(t["failed"]) <= {"modality_absent"}, t
    out = next(iter(wf.load_outputs(db, "labs").values()))
    assert out.provenance.model_id.startswith("mmdx-labs") and len(out.embedding) > 8


@pytest.mark.ray
@pytest.mark.parametrize("runner_name", ["ray", "serve"])
def test_scoring_through_ray_actors_stores_what_the_in_process_runner_does(ray_session, tmp_path, runner_name):
    ray_session.cloudpickle.register_pickle_by_value(agent_fakes)
    ray_session.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    if runner_name == "serve":
        pytest.importorskip("ray.serve", reason="Ray Serve is the [serve] extra")
        from mmdx.tools.serving.serve_runner import ServeRunner as Runner
    else:
        from mmdx.tools.ray_runner import RayRunner as Runner

    files = _folder(tmp_path)
    runner = Runner(tool_names=["cxr", "labs", "notes"], tool_factory=_Fakes(), request_timeout_s=240)  # actor start-up on a busy 2-core machine
    try:
        wf.score(files, runner, tmp_path / "ray", ["cxr", "labs", "notes"], chunk=2, concurrency=2)
        assert sum(st["calls"] for st in runner.actor_stats().values()) >= 3  # it really went through the actors
    finally:
        runner.close()
    wf.score(files, InProcessRunner(tool_factory=_Fakes()), tmp_path / "local", ["cxr", "labs", "notes"])
    assert _rows(tmp_path / "ray") == _rows(tmp_path / "local")
