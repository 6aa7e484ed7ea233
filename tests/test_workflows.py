"""Evaluation workflows (evals/workflow_run.py): the shipped files validate, an unknown key is named,
a killed run resumes without redoing finished cases, a replay reproduces summary.json byte for byte
without loading a model or the LLM, the python seam, trust probes, routing, and flat memory.

Fast: fake tools with scripted scores (tests/agent_fakes.py) and a schema-following fake LLM; the
real tools run in the CLI test on a tiny built cohort.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmdx.core.case import CaseLabels
from mmdx.core.errors import ToolInputError
from mmdx.evals.workflow_run import run_workflow, sample_indices
from mmdx.evals.workflow_spec import WorkflowError, load_workflow, parse_workflow
from mmdx.tools.runner import InProcessRunner

from agent_fakes import FAKE_TOOLS, FakeNotes, make_case

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "workflows").glob("*.yaml"))


class Killed(BaseException):
    pass


class SchemaLLM:
    """Answers from the schema alone: the plan names every tool offered, the claims take the first
    tuple the grammar allows. Deterministic, like greedy decoding."""

    model_id = "schema-fake"

    def __init__(self):
        self.calls = 0

    def complete_json(self, messages, schema, **kw):
        self.calls += 1
        props = schema["properties"]
        if "tools" in props:
            return json.dumps({"tools": props["tools"]["items"]["enum"][:3]})
        arr = props["claims"]
        if arr.get("maxItems") == 0:
            return json.dumps({"claims": []})
        first = (arr.get("prefixItems") or [arr["items"]])[0]["anyOf"][0]["properties"]
        return json.dumps({"claims": [{k: v["const"] for k, v in first.items()}]})


class ReadingNotes(FakeNotes):
    """A notes tool that reads its input: COPD when the note says wheeze, else pneumonia."""

    def batch(self, inputs):
        outs = super().batch(inputs)
        for i, o in enumerate(outs):
            if not isinstance(o, Exception):
                wheeze = any("wheeze" in n.text.lower() for n in inputs[i].case.notes)
                probs = {"copd_exacerbation": 0.9} if wheeze else {"pneumonia": 0.9}
                scores = tuple(s.model_copy(update={"probability": probs.get(s.label, 0.02)}) for s in o.scores)
                outs[i] = o.model_copy(update={"scores": scores})
        return outs


def _cases(folder: Path, n: int = 8) -> Path:
    for split in ("test", "val"):
        for i in range(n):
            wheeze = i % 2 == 0
            c = make_case(case_id=f"{split}{i}", cxr=True,
                          note_text="Wheeze and cough." if wheeze else "Cough and fever for three days.")
            c = c.model_copy(update={"labels": CaseLabels(diagnoses=("copd_exacerbation",) if wheeze else ("pneumonia",))})
            c.save(folder / "cases" / split / f"{c.case_id}.json")
    return folder


def _wf(data: Path, steps: list[dict], **kw) -> object:
    return parse_workflow({"name": "t", "dataset": {"path": str(data)}, "split": "test", "steps": steps,
                           "metrics": {"bootstrap": 20}, **kw})


def _fake_runner(tools=None):
    tools = {**FAKE_TOOLS, **(tools or {})}

    def factory(name):
        if name not in tools:  # the fused model and the students: no fake here, a typed failure per case
            raise ToolInputError(f"no fake {name} in this test")
        return tools[name]()

    return InProcessRunner(tool_factory=factory)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_workflow_validates(path):
    wf = load_workflow(path)
    assert wf.name == path.stem and wf.steps


def test_the_shipped_set_is_complete():
    want = {"demo", "cohort", "fusion_ablation", "missing_modality", "routing", "calibration", "trust_probes",
            "reports_text", "injection"}
    assert want <= {p.stem for p in SHIPPED}


def test_unknown_keys_are_errors_that_name_them(tmp_path):
    bad = {"name": "x", "dataset": {"path": "d"}, "steps": [{"name": "a", "kind": "tools", "toolz": ["labs"], "tools": ["labs"]}]}
    with pytest.raises(WorkflowError, match=r"steps\.0\.tools\.toolz: unknown key"):
        parse_workflow(bad)
    with pytest.raises(WorkflowError, match=r"datset: unknown key"):
        parse_workflow({"name": "x", "datset": {}, "dataset": {"path": "d"}, "steps": [{"name": "a", "kind": "tools", "tools": ["l"]}]})
    with pytest.raises(WorkflowError, match="unknown step kind 'magic'"):
        parse_workflow({"name": "x", "dataset": {"path": "d"}, "steps": [{"name": "a", "kind": "magic"}]})
    (tmp_path / "w.yaml").write_text("name: [unclosed")
    with pytest.raises(WorkflowError, match="not YAML"):
        load_workflow(tmp_path / "w.yaml")


def test_a_killed_run_resumes_without_redoing_finished_cases(tmp_path):
    data = _cases(tmp_path / "data")
    wf = _wf(data, [{"name": "tools", "kind": "tools", "tools": ["labs", "notes"]}], calibration_split="val")
    seen = []

    def die_after_three(rec):
        seen.append(rec.key)
        if len(seen) == 3:
            raise Killed

    FAKE_TOOLS["labs"].calls = 0
    with pytest.raises(Killed):
        run_workflow(wf, tmp_path / "run", inner_runner=_fake_runner(), progress=False, on_record=die_after_three)
    first_calls = FAKE_TOOLS["labs"].calls
    with open(tmp_path / "run" / "results.jsonl", "a") as f:
        f.write('{"workflow": "t", "step": "tools", "ke')  # a torn line, as a SIGKILL mid-write leaves
    summary = run_workflow(wf, tmp_path / "run", inner_runner=_fake_runner(), progress=False)
    keys = [json.loads(line)["key"] for line in (tmp_path / "run" / "results.jsonl").read_text().splitlines()]
    assert sorted(keys) == sorted(set(keys)) and len(keys) == 16  # 8 test + 8 val, each once
    assert FAKE_TOOLS["labs"].calls - first_calls == 16 - 3  # the finished cases were not rerun
    res = summary["steps"]["tools"]["results"]
    assert res["labs"]["n_scored"] == 8 and res["notes"]["conformal"]["n_calibration"] == 8
    assert (tmp_path / "run" / "report.html").is_file()


def test_replay_reproduces_the_summary_byte_for_byte_without_models(tmp_path):
    data = _cases(tmp_path / "data")
    steps = [{"name": "agent", "kind": "agent", "agent": {"llm": "fake"}},
             {"name": "routing", "kind": "routing", "agent": {"llm": "fake", "sample": 4},
              "policies": ["llm_scheduler", "every_tool", "escalation", "oracle"]}]
    wf = _wf(data, steps)
    llm = SchemaLLM()
    run_workflow(wf, tmp_path / "run", inner_runner=_fake_runner({"notes": ReadingNotes}), llm_factory=lambda spec: llm,
                 progress=False)
    assert llm.calls > 0

    def no_llm(spec):
        raise AssertionError("a replay must not build an LLM")

    import mmdx.tools.runner as runner_mod

    orig = runner_mod.InProcessRunner.__init__
    runner_mod.InProcessRunner.__init__ = lambda *a, **k: (_ for _ in ()).throw(AssertionError("a replay must not build a runner"))
    try:
        run_workflow(wf, tmp_path / "replay", replay=tmp_path / "run", llm_factory=no_llm, progress=False)
    finally:
        runner_mod.InProcessRunner.__init__ = orig
    a = (tmp_path / "run" / "summary.json").read_bytes()
    assert a == (tmp_path / "replay" / "summary.json").read_bytes()
    s = json.loads(a)
    sel = s["steps"]["agent"]["tool_selection"]
    assert sel["proposed"] > 0 and sel["relevant"] > 0  # the fake plans cxr, labs, notes; notes decide here
    routing = s["steps"]["routing"]["llm_sample"]
    assert routing["n_cases"] == 4 and "llm_scheduler" in routing["policies"]
    assert routing["llm_scheduler"] is not None and routing["policies"]["llm_scheduler"]["mean_llm_ms"] > 0
    every = s["steps"]["routing"]["all_cases"]
    # failed before: the LLM's 4-case row was placed on the frontier of the 8-case view
    assert every["n_cases"] == 8 and "llm_scheduler" not in every["frontier_top1_vs_cost"]
    assert every["llm_scheduler"].startswith("run on 4 of these 8 cases only")
    pol = every["policies"]
    assert pol["oracle"]["top1"] >= max(p["top1"] or 0 for k, p in pol.items() if k != "oracle")


def test_trust_probes_name_the_tool_that_ignores_its_input(tmp_path):
    data = _cases(tmp_path / "data")
    wf = _wf(data, [{"name": "probes", "kind": "probes", "tools": ["labs", "notes"], "probes": ["swapped_notes", "shuffled_labs"]}])
    s = run_workflow(wf, tmp_path / "run", inner_runner=_fake_runner({"notes": ReadingNotes}), progress=False)
    block = s["steps"]["probes"]
    assert block["results"]["notes|swapped_notes"]["fails"] is False  # it followed the donor's note
    # the fake labs tool answers the same whatever the labs: its donors get the same answer, so no case
    # counts; a constant notes tool would be counted and fail:
    s2 = run_workflow(wf, tmp_path / "run2", inner_runner=_fake_runner({"notes": _ConfidentNotes}), progress=False)
    assert s2["steps"]["probes"]["results"]["notes|swapped_notes"]["counted"] == 0
    s3 = run_workflow(wf, tmp_path / "run3", inner_runner=_fake_runner({"notes": _Stubborn}), progress=False)
    assert "notes|swapped_notes" in s3["steps"]["probes"]["failing"]


class _ConfidentNotes(FakeNotes):
    """Always the same confident answer: with every donor also getting it, no case can count."""
    probs = {"pneumonia": 0.95}


class _Stubborn(ReadingNotes):
    """Reads the note of the case it was first shown, then keeps that answer for the same case id."""
    seen: dict = {}

    def batch(self, inputs):
        outs = super().batch(inputs)
        for i, o in enumerate(outs):
            if not isinstance(o, Exception):
                outs[i] = type(self).seen.setdefault(inputs[i].case.case_id, o)
        return outs


def test_python_step_is_the_seam_for_code_that_owns_its_loop(tmp_path):
    data = _cases(tmp_path / "data", n=2)
    wf = _wf(data, [{"name": "abl", "kind": "python", "entry": "test_workflows:fake_ablation",
                     "params": {"epochs": 2}, "rows_keys": ["rows", "unseen_rows"]}])
    s = run_workflow(wf, tmp_path / "run", progress=False)
    rows = s["steps"]["abl"]["rows"]
    assert [r["group"] for r in rows] == ["rows", "rows", "unseen_rows"] and rows[0]["epochs"] == 2
    assert (tmp_path / "run" / "abl" / "returned.json").is_file() and CALLS == [str(data.resolve())]
    run_workflow(wf, tmp_path / "run", progress=False)  # done: not called again
    assert len(CALLS) == 1
    bad = _wf(data, [{"name": "abl", "kind": "python", "entry": "no_such_module_xyz:run"}])
    with pytest.raises(WorkflowError, match="no_such_module_xyz"):
        run_workflow(bad, tmp_path / "run-bad", progress=False)


CALLS: list = []


def fake_ablation(cohort, out, epochs):
    CALLS.append(str(cohort))
    (Path(out) / "ablation.json").write_text("{}")
    return {"rows": [{"model": "irene + dropout", "pattern": "all present", "macro_auroc": 0.8, "epochs": epochs},
                     {"model": "late fusion", "pattern": "all present", "macro_auroc": 0.7, "epochs": epochs}],
            "unseen_rows": [{"model": "irene + dropout", "pattern": "all present", "macro_auroc": 0.75, "epochs": epochs}]}


def test_cases_stream_with_flat_memory(tmp_path):
    """Peak memory while reading every case of a split does not grow with the cases: only their paths
    are listed up front (a few hundred bytes each); each case (here ~12 kB of note) is read and dropped."""
    import tracemalloc

    from mmdx.evals.cases import CaseSource
    from mmdx.evals.workflow_spec import DatasetSpec

    def peak(n):
        folder = tmp_path / f"n{n}"
        base = make_case(note_text="word " * 2000)
        for i in range(n):
            base.model_copy(update={"case_id": f"c{i:05d}"}).save(folder / "cases" / "test" / f"c{i:05d}.json")
        src = CaseSource(DatasetSpec(path=str(folder)))
        tracemalloc.start()
        count = sum(1 for _ in src.iter_cases("test"))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert count == n
        return top, sum(p.stat().st_size for p in folder.rglob("*.json"))

    (small, _), (large, total) = peak(50), peak(400)
    assert large - small < 350 * 400, (small, large)  # 350 more paths, < 400 bytes each
    assert large < total / 20, (large, total)  # far below holding the cases


def test_sample_is_evenly_spread():
    assert sample_indices(10, 3) == {0, 3, 6} and sample_indices(5, None) == set(range(5)) and len(sample_indices(1174, 40)) == 40


def test_a_recalibrated_card_is_a_cache_miss(tmp_path):
    """Failed before: the tool cache keyed on the weights file's sha256 only, so a card recalibrated on
    the same weights (`mmdx train --recalibrate`: new temperatures, thresholds, OOD statistics) served
    the old calibrated probabilities from a previous run's cache."""
    from mmdx.evals.tool_cache import weights_digest

    card = json.loads((ROOT / "models" / "weights" / "labs" / "card.json").read_text())
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "card.json").write_text(json.dumps(card))
    before = weights_digest("labs", {"labs": str(tmp_path / "a")})
    assert before == weights_digest("labs", {"labs": str(tmp_path / "a")})  # stable
    card["temperatures"] = [t * 1.1 for t in card["temperatures"]]  # same weights_sha256
    (tmp_path / "a" / "card.json").write_text(json.dumps(card))
    assert weights_digest("labs", {"labs": str(tmp_path / "a")}) != before
    assert weights_digest("labs", {"labs": str(tmp_path / "none")}) != before  # missing card: 'missing'


def test_the_encodings_cache_key_covers_calibration():
    """Failed before: encoders_digest hashed the weights only, and the encodings carry each encoder's
    calibrated logits (the late-fusion baseline's inputs)."""
    from types import SimpleNamespace

    from mmdx.models.encodings import encoders_digest

    def enc(temps):
        return SimpleNamespace(card=SimpleNamespace(weights_sha256="abc", temperatures=temps, biases=[0.0, 0.0]))

    assert encoders_digest({"notes": enc([1.0, 1.0])}) == encoders_digest({"notes": enc([1.0, 1.0])})
    assert encoders_digest({"notes": enc([1.0, 1.0])}) != encoders_digest({"notes": enc([1.2, 1.0])})


def test_a_tool_that_answers_without_the_refused_input_did_not_keep_it():
    """Failed before: with a blank radiograph the cxr encoder refuses the image and the fused model runs
    on labs and notes, says so, and keeps its answer; the probe counted that as the fused model keeping
    a confident answer from a destroyed image (111/198: 'fails'). It read no image: a refusal."""
    from mmdx.evals.case_steps import probe_outcome
    from mmdx.workflows.results_log import NamedResult

    orig = NamedResult(scores={"pneumonia": 0.9, "sepsis": 0.1}, top="pneumonia")
    same = NamedResult(scores={"pneumonia": 0.92, "sepsis": 0.1}, top="pneumonia")
    failed = NamedResult(ok=False, failure_kind="corrupt_input")
    through_refusing_encoder = probe_outcome("fused", "cxr", True, orig, same, True, 0.8, None)
    assert through_refusing_encoder == {"refused": True, "counted": False, "kept_answer": False}
    assert probe_outcome("cxr", "cxr", True, orig, failed, True, 0.8, None) == {"refused": True, "counted": False, "kept_answer": False}
    # the encoder read the destroyed image: the fused model's unchanged confident answer is kept
    assert probe_outcome("fused", "cxr", True, orig, same, False, 0.8, None) == {"refused": False, "counted": True, "kept_answer": True}
    # a swap counts only when the donor gets another answer (another patient's radiograph too)
    assert probe_outcome("notes", "notes", True, orig, same, False, 0.8, "pneumonia", swap=True)["counted"] is False
    assert probe_outcome("notes", "notes", True, orig, same, False, 0.8, "sepsis", swap=True)["kept_answer"] is True
    assert probe_outcome("fused", "cxr", True, orig, same, False, 0.8, "pneumonia", swap=True)["counted"] is False
    assert probe_outcome("labs", "cxr", False, orig, same, True, 0.8, None) == {"refused": False, "counted": False, "kept_answer": False}
