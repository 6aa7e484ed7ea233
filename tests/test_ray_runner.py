"""RayRunner against real Ray actors and a small real torch tool defined here.

One Ray for the whole run (the `ray_session` fixture). Each test builds its own runner (its own
actors) and closes it. The tool records every batch it runs in a file, so batching is checked from
the tool's side, not from the runner's word; it can be told to os._exit or to sleep on marked inputs.
"""
from __future__ import annotations

import json
import os
import sys
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import ClassVar

import pytest

torch = pytest.importorskip("torch")
ray = pytest.importorskip("ray")

from mmdx.core.case import Demographics, Measurement, Modality, PatientCase  # noqa: E402
from mmdx.core.errors import ToolInputError  # noqa: E402
from mmdx.core.labels import DIAGNOSES  # noqa: E402
from mmdx.core.tool import CaseInput, ClassifierOutput, LabelScore, Provenance, partition_prepared, partition_runnable  # noqa: E402
from mmdx.tools.ray_runner import RayRunner  # noqa: E402
from mmdx.tools.runner import InProcessRunner, ToolFailure  # noqa: E402

# Ray workers cannot import this test module by name: ship its classes by value.
ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.ray


class TinyLabsNet(torch.nn.Module):
    """Features of the lab series -> 2-layer MLP -> one logit per diagnosis."""

    def __init__(self, n_features: int = 4, hidden: int = 16):
        super().__init__()
        self.fc1 = torch.nn.Linear(n_features, hidden)
        self.fc2 = torch.nn.Linear(hidden, len(DIAGNOSES))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.tanh(self.fc1(x))  # (B, hidden)
        return self.fc2(h), h  # (B, L), (B, hidden)


class TinyLabsTool:
    """Test tool: a seeded MLP over four summary features of the labs series."""

    name: ClassVar[str] = "tiny_labs"
    requires: ClassVar[frozenset[Modality]] = frozenset({Modality.labs})

    def __init__(self, record_dir: str, device: str = "cpu"):
        torch.manual_seed(0)
        self.net = TinyLabsNet().eval().to(device)
        self.device = device
        self.record_dir = Path(record_dir)

    @staticmethod
    def features(case: PatientCase) -> list[float]:
        vals = [m.value for m in case.measurements]
        return [case.demographics.age / 100, len(vals) / 10, sum(vals) / len(vals) / 100, max(vals) / 100]

    def batch(self, inputs: list[CaseInput]) -> list[ClassifierOutput | ToolInputError]:
        with open(self.record_dir / "batches.jsonl", "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "size": len(inputs)}) + "\n")
        for inp in inputs:
            cid = inp.case.case_id
            flag = self.record_dir / f"crash-{cid}"
            if flag.exists():  # crash once: remove the flag first, then die without cleanup
                flag.unlink()
                os._exit(1)
            if (self.record_dir / f"always-crash-{cid}").exists():
                os._exit(1)
            if (self.record_dir / f"slow-{cid}").exists():
                time.sleep(30)
        results, todo = partition_runnable(self, inputs)
        self.classify(inputs, results, todo, [self.features(inputs[i].case) for i in todo])
        return results  # type: ignore[return-value]

    def classify(self, inputs: list[CaseInput], results: list, todo: list[int], rows: list[list[float]]) -> None:
        """Fill results[i] for i in `todo` from their feature rows: one forward pass."""
        if not todo:
            return
        x = torch.tensor(rows, dtype=torch.float32, device=self.device)
        with torch.no_grad():
            logits, emb = self.net(x)  # (B, L), (B, hidden)
        probs = torch.sigmoid(logits).cpu()
        prov = Provenance(model_id="tiny-labs-test", weights_sha256="0" * 64, device=self.device)
        for row, i in enumerate(todo):
            results[i] = ClassifierOutput(
                tool=self.name, case_id=inputs[i].case.case_id, target="diagnoses",
                scores=tuple(LabelScore(label=lab, probability=float(p), threshold=0.5)
                             for lab, p in zip(DIAGNOSES, probs[row])),
                embedding=tuple(float(v) for v in emb[row].cpu()), provenance=prov)


class StagedTinyLabsTool(TinyLabsTool):
    """TinyLabsTool in two stages (core.tool.StagedTool): `prepare` computes the features (slowly, as
    decoding an image would), `infer` runs the net (slowly, as a big model would). Both record when
    they ran, so a test can see the actor overlap them."""

    PREPARE_S, INFER_S = 0.05, 0.3

    def _record(self, stage: str, t0: float, n: int) -> None:
        with open(self.record_dir / "stages.jsonl", "a") as f:
            f.write(json.dumps({"stage": stage, "t0": t0, "t1": time.time(), "n": n}) + "\n")

    def prepare(self, inputs: list[CaseInput]) -> list:
        t0 = time.time()
        prepared, todo = partition_runnable(self, inputs)
        for i in todo:
            if (self.record_dir / f"prepare-bug-{inputs[i].case.case_id}").exists():
                raise RuntimeError("a bug in prepare")
            prepared[i] = self.features(inputs[i].case)
        time.sleep(self.PREPARE_S)
        self._record("prepare", t0, len(inputs))
        return prepared

    def infer(self, inputs: list[CaseInput], prepared: list) -> list:
        t0 = time.time()
        for inp in inputs:  # die on the model, mid-pipeline: the next call is being prepared meanwhile
            flag = self.record_dir / f"crash-{inp.case.case_id}"
            if flag.exists():
                flag.unlink()
                os._exit(1)
        results, todo = partition_prepared(prepared)
        self.classify(inputs, results, todo, [prepared[i] for i in todo])
        time.sleep(self.INFER_S)
        self._record("infer", t0, len(inputs))
        return results

    def batch(self, inputs: list[CaseInput]) -> list:
        return self.infer(inputs, self.prepare(inputs))


@dataclass
class StagedFactory:
    record_dir: str

    def __call__(self, name: str, device: str = "cpu") -> StagedTinyLabsTool:
        return StagedTinyLabsTool(self.record_dir, device=device)


@dataclass
class TinyFactory:
    """Picklable tool factory: builds TinyLabsTool under any of the names it is asked for."""

    record_dir: str

    def __call__(self, name: str, device: str = "cpu") -> TinyLabsTool:
        return TinyLabsTool(self.record_dir, device=device)


def make_case(i: int, with_labs: bool = True) -> PatientCase:
    t0 = datetime(2024, 3, 1, 8, 0)
    meas = tuple(
        Measurement(time=t0 + timedelta(hours=h), variable="heart_rate", value=60 + 7 * ((i + h) % 9), unit="/min")
        for h in range(1 + i % 4)
    ) if with_labs else ()
    return PatientCase(case_id=f"case-{i}", demographics=Demographics(age=20 + i % 70, sex="female"), measurements=meas)


def batch_sizes(record_dir: Path) -> list[int]:
    path = record_dir / "batches.jsonl"
    return [json.loads(line)["size"] for line in path.read_text().splitlines()] if path.exists() else []


def run_clients(client, n: int, timeout_s: float) -> None:
    """Run client(0..n-1) in n threads at once; fail if any is still running after `timeout_s`."""
    threads = [threading.Thread(target=client, args=(t,), daemon=True) for t in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=timeout_s)
    assert not any(th.is_alive() for th in threads), "a client hung"


def assert_same(a, b) -> None:
    """Same typed result; probabilities to float32 rounding (batch shapes may change kernels)."""
    assert type(a) is type(b), (a, b)
    if isinstance(a, ToolFailure):
        assert (a.tool, a.case_id, a.kind) == (b.tool, b.case_id, b.kind)
        return
    assert (a.tool, a.case_id, a.target) == (b.tool, b.case_id, b.target)
    assert [s.label for s in a.scores] == [s.label for s in b.scores]
    torch.testing.assert_close(torch.tensor([s.probability for s in a.scores]),
                               torch.tensor([s.probability for s in b.scores]), rtol=1e-5, atol=1e-6)


@pytest.fixture
def record_dir(tmp_path) -> Path:
    return tmp_path


@pytest.fixture
def runner(ray_session, record_dir):
    r = RayRunner(tool_names=["tiny_labs"], tool_factory=TinyFactory(str(record_dir)), max_wait_ms=20,
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


def test_input_that_always_kills_its_actor_fails_typed_after_retries(ray_session, record_dir):
    (record_dir / "always-crash-case-2").touch()
    with RayRunner(tool_names=["tiny_labs"], tool_factory=TinyFactory(str(record_dir)), max_retries=1,
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


def test_tool_that_fails_to_load_is_a_tool_error(ray_session):
    def broken(name: str):
        raise RuntimeError("weights missing")

    with RayRunner(tool_names=["tiny_labs"], tool_factory=broken, request_timeout_s=60) as r:
        got = r.run([("tiny_labs", CaseInput(case=make_case(1)))])
    assert isinstance(got[0], ToolFailure) and got[0].kind == "tool_error"
    assert "failed to load" in got[0].message


@pytest.mark.slow
def test_bench_serving_cli_runs_on_small_data(ray_session, tmp_path):
    from mmdx.evals.cli import bench_main

    out = tmp_path / "bench.json"
    assert bench_main(["serving", "--requests", "8", "--clients", "2", "--max-batch-size", "4",
                       "--fanout-reps", "1", "--rounds", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert set(report["modes"]) == {"a_inprocess_sequential", "b_inprocess_batched", "b_inprocess_pipelined",
                                    "c_ray_unbatched", "d_ray_batched", "d_ray_unpipelined", "b_same_batch"}
    assert all(p["pipelined"] for p in report["placement"]["d_ray_batched"])
    assert not any(p["pipelined"] for p in report["placement"]["d_ray_unpipelined"])
    assert len(report["rounds"]) == 2
    assert all(m["ok"] == m["requests"] == 8 for m in report["modes"].values())
    assert report["modes"]["c_ray_unbatched"]["max_batch"] == 1
    d = report["modes"]["d_ray_batched"]
    assert 0 < d["actor_busy_fraction"] <= 1 and d["actor_ms_per_request"] > 0 and d["remote_calls"] >= 1
    assert {"d_over_b", "d_over_a", "b_over_a", "d_over_c", "d_over_b_same_batch", "d_over_b_pipelined",
            "d_unpipelined_over_b"} <= set(report["ratios"])
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


def test_pipelined_actor_killed_on_the_model_while_the_next_call_is_prepared(ray_session, record_dir):
    """Concurrent callers, a staged tool, the actor killed in `infer` while other calls are queued
    or being prepared: every request completes, with the answers the tool gives in-process."""
    StagedTinyLabsTool.INFER_S = 0.3
    runner = RayRunner(tool_names=["staged"], tool_factory=StagedFactory(str(record_dir)), max_wait_ms=5,
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


def test_actor_killed_from_outside_mid_batch_all_requests_complete(ray_session, record_dir):
    """`kill_actor` (a crash, as Ray sees it) while the model holds a batch: every request is
    answered, by the restarted actor, with what the tool gives in-process."""
    runner = RayRunner(tool_names=["staged"], tool_factory=StagedFactory(str(record_dir)), request_timeout_s=90)
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
