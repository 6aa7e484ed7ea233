"""The hand-built RayRunner's own parts, against real Ray where they need it: call coalescing in the
driver, the pipelined actor, the batching policy and the coalescer on their own (no Ray), and the
serving benchmark. The fault behaviour it shares with the Serve runner is in
test_distributed_runners.py; the tools are those of serving_tools.py.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path

import pytest

pytest.importorskip("torch")
ray = pytest.importorskip("ray")

from serving_tools import (StagedFactory, StagedTinyLabsTool, TinyFactory, assert_same, batch_sizes,  # noqa: E402
                           make_case, run_clients, ship_by_value)

from mmdx.core.tool import CaseInput, ClassifierOutput  # noqa: E402
from mmdx.tools.ray_runner import RayRunner  # noqa: E402
from mmdx.tools.runner import InProcessRunner, ToolFailure  # noqa: E402

ship_by_value()
pytestmark = pytest.mark.ray


@pytest.fixture
def record_dir(tmp_path) -> Path:
    return tmp_path


@pytest.fixture
def runner(ray_session, record_dir):
    r = RayRunner(tool_names=["tiny_labs"], tool_factory=TinyFactory(str(record_dir)), max_wait_ms=20,
                  request_timeout_s=60, max_retries=2)
    yield r
    r.close()


def test_concurrent_clients_are_batched_together(runner, record_dir):
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
    # each client got its own answers back, though calls were merged
    assert [r.case_id for r in flat] == [f"case-{100 + t * per_thread + k}" for t in range(n_threads) for k in range(per_thread)]
    assert runner.actor_stats()["tiny_labs"]["calls"] < n_threads * per_thread  # concurrent run() calls were coalesced
    sizes = batch_sizes(record_dir)
    assert sum(sizes) == n_threads * per_thread  # every request went through exactly one batch call
    assert max(sizes) > 1, sizes  # requests from different clients shared a forward pass
    assert len(sizes) < n_threads * per_thread
    assert sorted(runner.batch_sizes()["tiny_labs"]) == sorted(sizes)


@pytest.mark.slow
def test_bench_serving_cli_runs_on_small_data(ray_session, tmp_path):
    from mmdx.evals.cli import bench_main

    out = tmp_path / "bench.json"
    assert bench_main(["serving", "--requests", "8", "--clients", "2", "--max-batch-size", "4",
                       "--fanout-reps", "1", "--rounds", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["modes"]) == {"a_inprocess_sequential", "b_inprocess_batched", "b_inprocess_pipelined",
                                    "c_ray_unbatched", "d_ray_batched", "d_ray_unpipelined", "e_serve_batched",
                                    "b_same_batch"}
    assert all(p["pipelined"] for p in report["placement"]["d_ray_batched"])
    assert not any(p["pipelined"] for p in report["placement"]["d_ray_unpipelined"])
    assert len(report["rounds"]) == 2
    assert all(m["ok"] == m["requests"] == 8 for m in report["modes"].values())
    assert report["modes"]["c_ray_unbatched"]["max_batch"] == 1
    d = report["modes"]["d_ray_batched"]
    assert 0 < d["actor_busy_fraction"] <= 1 and d["actor_ms_per_request"] > 0 and d["remote_calls"] >= 1
    assert {"d_over_b", "d_over_a", "b_over_a", "d_over_c", "d_over_b_same_batch", "d_over_b_pipelined",
            "d_unpipelined_over_b", "e_over_d", "e_over_b"} <= set(report["ratios"])
    e = report["modes"]["e_serve_batched"]
    assert 0 < e["actor_busy_fraction"] <= 1 and e["remote_calls"] >= 8  # Serve: one request per call
    assert report["model"]  # says which model was measured
    assert set(report["fanout_ray"]["single_ms"]) in ({"cxr", "labs", "notes"}, {"cxr_tiny", "cxr_small", "cxr_deep"})


def test_staged_tool_is_pipelined_prepare_overlaps_the_model(ray_session, record_dir):
    """A staged tool's next call is prepared while the model runs the previous batch; answers equal
    the tool's own `batch`, input errors stay typed, and a bug in prepare fails only its inputs."""
    runner = RayRunner(tool_names=["staged"], tool_factory=StagedFactory(str(record_dir)), max_wait_ms=5,
                       request_timeout_s=60)
    try:
        assert runner.warmup()["staged"][0]["pipelined"] is True
        n_threads, per_thread = 3, 3
        results: dict[int, list] = {}

        def client(t: int) -> None:
            out = []
            for k in range(per_thread):
                out += runner.run([("staged", CaseInput(case=make_case(10 * t + k, with_labs=(t, k) != (1, 1))))])
            results[t] = out

        run_clients(client, n_threads, timeout_s=120)
        got = [r for t in range(n_threads) for r in results[t]]
        local = StagedTinyLabsTool(str(record_dir / "local"))
        (record_dir / "local").mkdir()
        for t in range(n_threads):
            for k in range(per_thread):
                inp = CaseInput(case=make_case(10 * t + k, with_labs=(t, k) != (1, 1)))
                (want,) = InProcessRunner(tool_factory=lambda _n: local).run([("staged", inp)])
                assert_same(got[t * per_thread + k], want)
        assert isinstance(got[per_thread + 1], ToolFailure) and got[per_thread + 1].kind == "modality_absent"

        stages = [json.loads(x) for x in (record_dir / "stages.jsonl").read_text().splitlines()]
        infers = [s for s in stages if s["stage"] == "infer"]
        prepares = [s for s in stages if s["stage"] == "prepare"]
        assert sum(s["n"] for s in infers) == sum(s["n"] for s in prepares) == n_threads * per_thread
        # some call was prepared while the model was running another batch: the stages overlapped
        assert any(i["t0"] < p["t0"] < i["t1"] for p in prepares for i in infers), stages

        (record_dir / "prepare-bug-case-99").touch()
        bad, good = runner.run([("staged", CaseInput(case=make_case(99)))]), runner.run([("staged", CaseInput(case=make_case(98)))])
        assert isinstance(bad[0], ToolFailure) and bad[0].kind == "tool_error" and "a bug in prepare" in bad[0].message
        assert isinstance(good[0], ClassifierOutput)
    finally:
        runner.close()


# ---- the batching policy, without Ray ----------------------------------------------------------

def _collect(queued: list[int], expect: int, max_batch: int = 32, max_wait_s: float = 60.0,
             late: list[tuple[float, int]] = (), wait: bool = True, split_when_idle: bool = False) -> list[int]:
    """Sizes of the calls collect_batch takes from a queue holding calls of `queued` sizes, with
    calls (delay, size) arriving `late`."""
    import asyncio

    from mmdx.tools.serving.batching import CallQueue, collect_batch

    async def go():
        q = CallQueue()
        for n in queued:
            q.put(list(range(n)), wait=wait)
        for delay, n in late:
            asyncio.get_running_loop().call_later(delay, q.put, list(range(100, 100 + n)))
        # the guard: a policy that waited out max_wait_s (60 s) would trip it
        calls = await asyncio.wait_for(collect_batch(q, max_batch, max_wait_s, expect, split_when_idle=split_when_idle),
                                       timeout=20)
        return [len(c) for c in calls]

    return asyncio.run(go())


def test_batch_takes_what_is_queued_and_waits_for_as_many_calls_as_last_time():
    assert _collect([1] * 8, expect=8) == [1] * 8
    # more queued than expected: all taken (the expectation grows with the load), up to max_batch inputs
    assert _collect([1] * 40, expect=8) == [1] * 32
    # fewer calls queued than expected: waits for the callers coming back, then stops at once
    assert _collect([1] * 3, expect=5, late=[(0.05, 1), (0.1, 1)]) == [1] * 5
    # a driver's coalesced call of 4 is one call: it does not wait for the driver's next call, which
    # is meant to run while this one's callers make their round trip
    assert _collect([4], expect=1, late=[(0.05, 4)]) == [4]
    # a call that does not fit stays queued whole, for the next batch
    assert _collect([20, 20], expect=1) == [20]
    # a coalescing driver's call (wait=False) is not held for the next one, whatever the expectation
    assert _collect([4], expect=3, late=[(0.05, 4)], wait=False) == [4]


def test_a_pipelined_idle_model_takes_half_the_queue_and_leaves_the_rest_to_be_prepared_meanwhile():
    assert _collect([4, 4], expect=2, wait=False, split_when_idle=True) == [4]
    assert _collect([1] * 32, expect=1, wait=False, split_when_idle=True) == [1] * 16
    assert _collect([3, 1, 1, 1], expect=1, wait=False, split_when_idle=True) == [3]
    assert _collect([5], expect=1, wait=False, split_when_idle=True) == [5]
    assert _collect([4, 4], expect=2, wait=False) == [4, 4]  # unpipelined: one batch, as before


def test_batch_wait_is_bounded_by_max_wait_when_callers_do_not_come_back():
    assert _collect([1, 1], expect=8, max_wait_s=0.2) == [1, 1]
    assert _collect([1], expect=8, max_wait_s=0.2, late=[(0.05, 1), (5.0, 1)]) == [1, 1]


class _FakeRef:
    def __init__(self):
        from concurrent.futures import Future

        self.fut = Future()

    def future(self):
        return self.fut


class _FakeActor:
    """Records the calls a coalescer sends; the test answers them by hand."""

    def __init__(self):
        self.sent: list[tuple[list, _FakeRef]] = []
        actor = self

        class _Method:
            def remote(self, inputs, **_kw):
                ref = _FakeRef()
                actor.sent.append((list(inputs), ref))
                return ref

        self.run = _Method()


def _coalescer(limit: int = 2):
    import queue

    from mmdx.tools.serving.coalesce import Coalescer

    actor, flusher = _FakeActor(), queue.SimpleQueue()
    return Coalescer(actor, flusher, limit=limit), actor, flusher


def _answer(coalescer, flusher, ticket) -> None:
    """The actor answers `ticket`: Ray's callback fires and the runner's flusher thread passes it on."""
    ticket.ref.fut.set_result([])
    item = flusher.get(timeout=5)
    item.owner.returned(item)


def test_coalescer_sends_at_once_to_an_idle_actor_and_holds_calls_past_the_limit():
    c, actor, flusher = _coalescer(limit=2)
    t1, off1 = c.submit(["a"])
    assert t1.sent.is_set() and off1 == 0 and [s[0] for s in actor.sent] == [["a"]]
    t2, _ = c.submit(["b"])  # one in flight: its share of the 2 callers is 1, so it goes too
    assert t2.sent.is_set() and len(actor.sent) == 2
    t3, off3 = c.submit(["c"])  # the limit: waits
    t4, off4 = c.submit(["d", "e"])
    assert t3 is t4 and not t3.sent.is_set() and (off3, off4) == (0, 1)
    _answer(c, flusher, t1)
    assert t3.sent.is_set() and actor.sent[-1][0] == ["c", "d", "e"] and t3.members == 2


def test_coalescer_waits_for_the_returning_callers_share_then_alternates():
    c, actor, flusher = _coalescer(limit=2)
    first, _ = c.submit(list("abcd"))
    second, _ = c.submit(list("efgh"))
    assert len(actor.sent) == 2
    _answer(c, flusher, first)  # 4 callers are coming back; 4 more are in flight: a share of 4
    tickets = [c.submit([x])[0] for x in "ABC"]
    assert len(actor.sent) == 2 and not tickets[0].sent.is_set()  # 3 of 4: the actor has work, so wait
    c.submit(["D"])
    assert actor.sent[-1][0] == list("ABCD")  # the 4th completes the share: sent while `second` computes
    _answer(c, flusher, second)
    t, _ = c.submit(["E"])
    assert not t.sent.is_set()  # `ABCD` is still computing: E waits for its group
    _answer(c, flusher, tickets[0])  # the actor ran dry: whatever waits goes, whatever its size
    assert t.sent.is_set() and actor.sent[-1][0] == ["E"]


def test_coalescer_counts_a_return_once():
    c, actor, flusher = _coalescer(limit=1)
    t1, _ = c.submit(["a"])
    t2, _ = c.submit(["b"])
    t1.ref.fut.set_result([])
    c.returned(t1)  # a member's ray.get saw the answer first
    assert t2.sent.is_set()
    t3, _ = c.submit(["c"])
    flusher.get(timeout=5).owner.returned(t1)  # Ray's callback, late: must not free a second slot
    assert not t3.sent.is_set()
