"""The fault behaviour both distributed runners promise, against real Ray: the hand-built
`RayRunner` (actors) and `ServeRunner` (Ray Serve deployments) run the same tests, each with its
own actors or replicas, on the small real torch tool of serving_tools.py.

One Ray for the whole run (the `ray_session` fixture). "Actor" below means the hand-built runner's
actor or a Serve replica: Ray restarts the first, Serve replaces the second.
"""
from __future__ import annotations

import json
import threading
import time

import pytest

pytest.importorskip("torch")
ray = pytest.importorskip("ray")

from serving_tools import (StagedFactory, StagedTinyLabsTool, TinyFactory, assert_same, batch_sizes,  # noqa: E402
                           make_case, run_clients, ship_by_value)

from mmdx.core.tool import CaseInput, ClassifierOutput  # noqa: E402
from mmdx.tools.runner import InProcessRunner, ToolFailure  # noqa: E402

ship_by_value()
pytestmark = pytest.mark.ray


@pytest.fixture(params=["ray", "serve"])
def Runner(request, ray_session):
    """The runner class under test."""
    if request.param == "serve":
        pytest.importorskip("ray.serve", reason="Ray Serve is the [serve] extra")
        from mmdx.tools.serving.serve_runner import ServeRunner

        return ServeRunner
    from mmdx.tools.serving.ray_runner import RayRunner

    return RayRunner


@pytest.fixture
def record_dir(tmp_path):
    return tmp_path


@pytest.fixture
def runner(Runner, record_dir):
    r = Runner(tool_names=["tiny_labs"], tool_factory=TinyFactory(str(record_dir)), max_wait_ms=20,
               request_timeout_s=60, max_retries=2)
    yield r
    r.close()


def test_matches_in_process_runner_and_types_input_errors(runner, record_dir):
    cases = [make_case(i, with_labs=(i % 5 != 3)) for i in range(12)]
    requests = [("tiny_labs", CaseInput(case=c)) for c in cases]
    expected = InProcessRunner(tool_factory=TinyFactory(str(record_dir))).run(requests)
    got = runner.run(requests)
    assert len(got) == len(expected) == 12
    for a, b in zip(got, expected):
        assert_same(a, b)
    absent = [g for g in got if isinstance(g, ToolFailure)]
    assert [f.case_id for f in absent] == ["case-3", "case-8"]
    assert all(f.kind == "modality_absent" and f.tool == "tiny_labs" for f in absent)
    assert sum(isinstance(g, ClassifierOutput) for g in got) == 10


def test_unknown_tool_is_typed_and_does_not_disturb_others(runner):
    inp = CaseInput(case=make_case(1))
    got = runner.run([("made_up_tool", inp), ("tiny_labs", inp)])
    assert isinstance(got[0], ToolFailure) and got[0].kind == "unknown_tool" and got[0].field == "tool"
    assert isinstance(got[1], ClassifierOutput)


def test_actor_killed_mid_batch_is_restarted_and_requests_retried(runner, record_dir):
    cases = [make_case(i) for i in range(8)]
    (record_dir / "crash-case-5").touch()
    requests = [("tiny_labs", CaseInput(case=c)) for c in cases]
    got = runner.run(requests, timeout_s=90)
    assert not (record_dir / "crash-case-5").exists()  # the actor really died on it
    expected = InProcessRunner(tool_factory=TinyFactory(str(record_dir))).run(requests)
    for a, b in zip(got, expected):
        assert_same(a, b)
    # and the restarted actor keeps serving
    assert isinstance(runner.run([("tiny_labs", CaseInput(case=make_case(9)))])[0], ClassifierOutput)


def test_input_that_always_kills_its_actor_fails_typed_after_retries(Runner, record_dir):
    (record_dir / "always-crash-case-2").touch()
    with Runner(tool_names=["tiny_labs"], tool_factory=TinyFactory(str(record_dir)), max_retries=1,
                   request_timeout_s=90) as r:
        got = r.run([("tiny_labs", CaseInput(case=make_case(i))) for i in range(4)])
    assert isinstance(got[2], ToolFailure)
    assert got[2].kind == "actor_died" and got[2].retried == 1 and got[2].case_id == "case-2"
    # its neighbours were in the batch that died; retried alone, they complete
    assert all(isinstance(got[i], ClassifierOutput) for i in (0, 1, 3))


def test_slow_tool_times_out_without_hanging(runner, record_dir):
    runner.warmup()
    (record_dir / "slow-case-1").touch()
    got = runner.run([("tiny_labs", CaseInput(case=make_case(1))), ("made_up", CaseInput(case=make_case(2)))],
                     timeout_s=1.0)
    # the tool sleeps 30 s: had run() waited for it, this would be an output, not a timeout
    assert isinstance(got[0], ToolFailure) and got[0].kind == "timeout" and got[0].case_id == "case-1"
    assert got[1].kind == "unknown_tool"


def test_tool_that_fails_to_load_is_a_tool_error(Runner):
    def broken(name: str):
        raise RuntimeError("weights missing")

    with Runner(tool_names=["tiny_labs"], tool_factory=broken, request_timeout_s=60) as r:
        got = r.run([("tiny_labs", CaseInput(case=make_case(1)))])
    assert isinstance(got[0], ToolFailure) and got[0].kind == "tool_error"
    assert "failed to load" in got[0].message


def test_pipelined_actor_killed_on_the_model_while_the_next_call_is_prepared(Runner, record_dir):
    """Concurrent callers, a staged tool, the actor killed in `infer` while other calls are queued
    or being prepared: every request completes, with the answers the tool gives in-process."""
    StagedTinyLabsTool.INFER_S = 0.3
    runner = Runner(tool_names=["staged"], tool_factory=StagedFactory(str(record_dir)), max_wait_ms=5,
                       request_timeout_s=90, max_retries=2)
    try:
        runner.warmup()
        (record_dir / "crash-case-23").touch()
        results: dict[int, list] = {}

        def client(t: int) -> None:
            results[t] = [runner.run([("staged", CaseInput(case=make_case(10 * t + k)))])[0] for k in range(4)]

        run_clients(client, 4, timeout_s=180)
        assert not (record_dir / "crash-case-23").exists()  # the actor really died on it
        local = StagedTinyLabsTool(str(record_dir))
        for t in range(4):
            for k in range(4):
                (want,) = local.batch([CaseInput(case=make_case(10 * t + k))])
                assert_same(results[t][k], want)
    finally:
        runner.close()


def test_actor_killed_from_outside_mid_batch_all_requests_complete(Runner, record_dir):
    """`kill_actor` (a crash, as Ray sees it) while the model holds a batch: every request is
    answered, by the restarted actor, with what the tool gives in-process."""
    runner = Runner(tool_names=["staged"], tool_factory=StagedFactory(str(record_dir)), request_timeout_s=90)
    try:
        runner.warmup()
        requests = [("staged", CaseInput(case=make_case(i))) for i in range(6)]
        got: list = []
        th = threading.Thread(target=lambda: got.extend(runner.run(requests, timeout_s=90)))
        th.start()
        deadline = time.time() + 30
        while time.time() < deadline and not (record_dir / "stages.jsonl").exists():
            time.sleep(0.01)  # the first prepare has finished: the batch is on the model (0.3 s)
        time.sleep(0.05)
        runner.kill_actor("staged", 0)
        th.join(timeout=120)
        assert not th.is_alive() and len(got) == len(requests)
        local = StagedTinyLabsTool(str(record_dir))
        for (_, inp), out in zip(requests, got):
            assert_same(out, local.batch([inp])[0])
        stages = [json.loads(x) for x in (record_dir / "stages.jsonl").read_text().splitlines()]
        assert len({s["t0"] for s in stages if s["stage"] == "prepare"}) > 1  # the batch really ran again
    finally:
        runner.close()


def test_concurrent_clients_share_forward_passes(runner, record_dir):
    runner.warmup()
    n_threads, per_thread = 6, 8
    results: dict[int, list] = {}
    barrier = threading.Barrier(n_threads)

    def client(t: int) -> None:
        barrier.wait()
        out = []
        for k in range(per_thread):  # one request per call, as cases arriving one by one
            out += runner.run([("tiny_labs", CaseInput(case=make_case(100 + t * per_thread + k)))])
        results[t] = out

    run_clients(client, n_threads, timeout_s=120)
    flat = [r for t in range(n_threads) for r in results[t]]
    assert len(flat) == n_threads * per_thread and all(isinstance(r, ClassifierOutput) for r in flat)
    # each client got its own answers back, though they shared batches
    assert [r.case_id for r in flat] == [f"case-{100 + t * per_thread + k}" for t in range(n_threads) for k in range(per_thread)]
    sizes = batch_sizes(record_dir)
    assert sum(sizes) == n_threads * per_thread  # every request went through exactly one batch call
    assert max(sizes) > 1, sizes  # requests from different clients shared a forward pass
    assert sorted(runner.batch_sizes()["tiny_labs"]) == sorted(sizes)


def test_next_call_is_prepared_while_the_model_runs(Runner, record_dir):
    """A staged tool: a call that arrives while the model runs a batch is prepared meanwhile."""
    runner = Runner(tool_names=["staged"], tool_factory=StagedFactory(str(record_dir)), max_wait_ms=5,
                    request_timeout_s=60)
    try:
        assert runner.warmup()["staged"][0]["pipelined"] is True
        first: list = []
        th = threading.Thread(target=lambda: first.extend(runner.run([("staged", CaseInput(case=make_case(1)))])))
        th.start()
        deadline = time.time() + 30
        while time.time() < deadline and not (record_dir / "stages.jsonl").exists():
            time.sleep(0.005)  # the first call is prepared: its batch is on the model now (0.3 s)
        second = runner.run([("staged", CaseInput(case=make_case(2)))])
        th.join(timeout=60)
        local = StagedTinyLabsTool(str(record_dir / "local"))
        (record_dir / "local").mkdir()
        assert_same(first[0], local.batch([CaseInput(case=make_case(1))])[0])
        assert_same(second[0], local.batch([CaseInput(case=make_case(2))])[0])
        stages = [json.loads(x) for x in (record_dir / "stages.jsonl").read_text().splitlines()]
        (infer1,) = [s for s in stages if s["stage"] == "infer"][:1]
        prepare2 = [s for s in stages if s["stage"] == "prepare"][1]
        assert infer1["t0"] < prepare2["t0"] < infer1["t1"], stages  # prepared while the model ran
    finally:
        runner.close()


@pytest.mark.parametrize("name", ["inprocess", "ray", "serve"])
def test_open_runner_builds_the_runner_each_runner_option_names(name, ray_session):
    """`--runner NAME` on the agent's commands and `mmdx workflow score` goes through open_runner."""
    from mmdx.tools.serving.options import RUNNERS, open_runner

    if name == "serve":
        pytest.importorskip("ray.serve", reason="Ray Serve is the [serve] extra")
    want = {"inprocess": "InProcessRunner", "ray": "RayRunner", "serve": "ServeRunner"}[name]
    runner = open_runner(name, tool_names=["labs"], pool_sizes={"labs": 2}, timeout_s=5)
    try:
        assert type(runner).__name__ == want and name in RUNNERS
    finally:
        runner.close()
    with pytest.raises(ValueError, match="unknown runner"):
        open_runner("threads")
