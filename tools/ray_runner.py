"""The tool runner over Ray actors: the same `run(requests) -> results` as `InProcessRunner`, served by
pools of long-lived actors that load their model once and batch requests from every caller.

    from mmdx.tools.ray_runner import RayRunner
    runner = RayRunner(pool_sizes={"cxr": 2})          # or address="10.0.0.5:6379" to join a cluster
    results = runner.run([("cxr", CaseInput(case=c)) for c in cases], timeout_s=30)
    runner.close()

Each tool lives in a pool of named actors (namespace "mmdx"). An actor is an asyncio actor: calls
from any number of cases, threads or drivers go on one queue, and a batching loop takes up to
`max_batch_size` inputs (waiting at most `max_wait_ms` for callers coming back, see
`collect_batch`) through ONE forward pass in a worker thread, so the queue keeps filling while the
model runs. A staged tool (`prepare` + `infer`, as the modality tools are) is pipelined: the next
calls are decoded in other threads while the model runs, and go to it the moment it is free. In
one driver, concurrent `run()` calls to an actor are merged into fewer remote calls first
(`_Coalescer`).

Faults come back typed, never as a hang: per-case input errors are the tool's own `ToolFailure`s; an
actor that dies is restarted by Ray and the calls it held are retried alone (one input per call, so
a poison input cannot take its neighbours down twice) up to `max_retries` times, then reported as
`kind="actor_died"` with `retried=n`; a call still unanswered at the deadline is cancelled and
reported as `kind="timeout"`.
"""
from __future__ import annotations

import asyncio
import inspect
import itertools
import logging
import os
import queue
import socket
import threading
import time
from collections import defaultdict, deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Sequence

from mmdx.core import registry
from mmdx.core.errors import ToolInputError
from mmdx.core.tool import CaseInput
from mmdx.tools.runner import ToolFailure, ToolResult, failure_from

log = logging.getLogger(__name__)

NAMESPACE = "mmdx"
ADDRESS_ENV = "MMDX_RAY_ADDRESS"  # a cluster to join when `address` is not given
_ACTOR_PREFIX = "mmdx-tool"  # actor names: mmdx-tool/<tool>/<index>/<host>/<pid>/<runner>
_PROBE_EVERY_S = 0.1  # how often to ask a restarting actor whether it is back
_runner_ids = itertools.count()


class _ToolServer:
    """One Ray actor serving one tool: loads it once, batches every concurrent call into one forward pass.

    A staged tool (`prepare` + `infer`, see core.tool.StagedTool) is served as a pipeline: calls are
    prepared (decoded, resized, tokenised) in `prepare_threads` threads as they arrive, while the
    model runs the previous batch in the compute thread; the next batch goes to the model the moment
    it is free. Other tools run `batch` whole in the compute thread.
    """

    def __init__(self, tool_name: str, tool_factory: Callable | None, max_batch_size: int, max_wait_ms: float,
                 torch_threads: int, prepare_threads: int | None = None, pipeline: bool = True):
        import ray
        import torch

        self._device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        if self._device == "cpu":
            torch.set_num_threads(torch_threads)  # fractional CPUs: one intra-op thread, or actors fight
        self._name = tool_name
        self._tool = _build_tool(tool_name, tool_factory, self._device)
        self._staged = (pipeline and callable(getattr(self._tool, "prepare", None))
                        and callable(getattr(self._tool, "infer", None)))
        self._max_batch = max(1, int(max_batch_size))
        self._max_wait_s = max(0.0, max_wait_ms / 1000.0)
        self._compute = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mmdx-{tool_name}")
        # decoding feeds the model: on a GPU one thread cannot keep up with batched forward passes
        if prepare_threads is None:
            prepare_threads = 1 if self._device == "cpu" else min(4, os.cpu_count() or 1)
        self._prepare_threads = max(1, int(prepare_threads))
        self._preparers = ThreadPoolExecutor(max_workers=self._prepare_threads,
                                             thread_name_prefix=f"mmdx-{tool_name}-prep")
        self._queue: _CallQueue | None = None
        self._loop_task: asyncio.Task | None = None
        self._batch_sizes: list[int] = []
        self._calls = 0  # remote run() calls received (coalesced client calls count once)
        self._busy_s = 0.0  # seconds the model spent on batches (tool.infer, or tool.batch for other tools)
        self._prepare_s = 0.0  # seconds spent in tool.prepare, over all prepare threads
        self._expect = 1  # calls the next batch waits for (at most max_wait_ms): the last batch's count

    async def ready(self) -> dict:
        """Where this actor runs: tool, device, the GPUs Ray gave it, pid, host, and whether it pipelines."""
        info = {"tool": self._name, "device": self._device, "pid": os.getpid(), "host": socket.gethostname(),
                "pipelined": self._staged, "prepare_threads": self._prepare_threads if self._staged else 0}
        if self._device == "cuda":
            import ray
            import torch

            info.update(gpu_ids=[str(g) for g in ray.get_gpu_ids()], gpu_name=torch.cuda.get_device_name(),
                        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
        return info

    async def stats(self) -> dict:
        return {"batch_sizes": list(self._batch_sizes), "calls": self._calls, "busy_s": round(self._busy_s, 4),
                "prepare_s": round(self._prepare_s, 4)}

    async def run(self, inputs: list[CaseInput], isolate: bool = False, gathered: bool = False) -> list[ToolResult]:
        """Results for `inputs`, in order. `isolate` runs each input in a batch of its own (retries).
        `gathered`: the caller already waited for its callers (a RayRunner's coalescer), so an idle
        model does not hold this call waiting for others."""
        loop = asyncio.get_running_loop()
        self._calls += 1
        if isolate:
            return [(await loop.run_in_executor(self._compute, self._run_batch, [inp]))[0] for inp in inputs]
        if self._queue is None:
            self._queue = _CallQueue()
            self._loop_task = asyncio.create_task(self._batch_loop())
        futures = [loop.create_future() for _ in inputs]
        items = list(zip(inputs, futures))
        for k in range(0, len(items), self._max_batch):  # a call larger than a batch goes in parts
            self._queue.put(items[k:k + self._max_batch], wait=not gathered)
        return list(await asyncio.gather(*futures))

    async def _batch_loop(self) -> None:
        assert self._queue is not None
        model_run: asyncio.Future | None = None  # the batch on the model now
        while True:
            prepared: list[asyncio.Future] = []  # per taken call: its prepare, started as it is taken
            calls = await collect_batch(self._queue, self._max_batch, self._max_wait_s, self._expect,
                                        busy=model_run, on_take=lambda call: prepared.append(self._start_prepare(call)),
                                        split_when_idle=self._staged)
            self._expect = len(calls)
            parts = await asyncio.gather(*prepared)
            items = [(inp, fut, prep) for call, part in zip(calls, parts) for (inp, fut), prep in zip(call, part)
                     if not fut.done()]  # callers that gave up meanwhile are dropped
            if model_run is not None:
                await model_run  # one batch on the model at a time, in order
                model_run = None
            if items:
                self._batch_sizes.append(len(items))
                model_run = asyncio.ensure_future(self._infer(items))

    def _start_prepare(self, call: list) -> "asyncio.Future":
        """Prepare one call's inputs in the prepare threads, split over them; per input: item or failure."""
        loop = asyncio.get_running_loop()
        inputs = [inp for inp, _ in call]
        if not self._staged:
            fut = loop.create_future()
            fut.set_result(inputs)  # nothing to prepare: `batch` does it all
            return fut
        size = -(-len(inputs) // min(self._prepare_threads, len(inputs)))
        chunks = [inputs[k:k + size] for k in range(0, len(inputs), size)]

        async def gather() -> list:
            done = await asyncio.gather(*(loop.run_in_executor(self._preparers, self._prepare, c) for c in chunks))
            return [x for part in done for x in part]

        return asyncio.ensure_future(gather())

    def _prepare(self, inputs: list[CaseInput]) -> list:
        t0 = time.perf_counter()
        try:
            out = self._tool.prepare(inputs)
            if len(out) != len(inputs):
                raise RuntimeError(f"{self._name}.prepare returned {len(out)} items for {len(inputs)} inputs")
            return out
        except Exception as e:  # noqa: BLE001 - a tool bug fails these inputs, not the actor
            log.exception("tool %s prepare raised", self._name)
            return [ToolFailure(tool=self._name, case_id=i.case.case_id, kind="tool_error",
                                message=f"{type(e).__name__}: {e}") for i in inputs]
        finally:
            self._prepare_s += time.perf_counter() - t0

    async def _infer(self, items: list) -> None:
        """Run one batch on the model (compute thread) and answer its callers."""
        loop = asyncio.get_running_loop()
        todo = [(inp, fut, prep) for inp, fut, prep in items if not isinstance(prep, ToolFailure)]
        for _, fut, prep in items:
            if isinstance(prep, ToolFailure) and not fut.done():
                fut.set_result(prep)
        if not todo:
            return
        try:
            if self._staged:
                outs = await loop.run_in_executor(self._compute, self._run_staged, [i for i, _, _ in todo],
                                                  [p for _, _, p in todo])
            else:
                outs = await loop.run_in_executor(self._compute, self._run_batch, [i for i, _, _ in todo])
        except Exception as e:  # noqa: BLE001 - reported to each caller; the loop must survive
            outs = [ToolFailure(tool=self._name, case_id=inp.case.case_id, kind="tool_error",
                                message=f"{type(e).__name__}: {e}") for inp, _, _ in todo]
        for (_, fut, _), out in zip(todo, outs):
            if not fut.done():
                fut.set_result(out)

    def _run_staged(self, inputs: list[CaseInput], prepared: list) -> list[ToolResult]:
        return self._checked(inputs, lambda: self._tool.infer(inputs, prepared), "infer")

    def _run_batch(self, inputs: list[CaseInput]) -> list[ToolResult]:
        tool = self._tool
        return self._checked(inputs, lambda: tool.batch(inputs) if hasattr(tool, "batch")
                             else [_call_one(tool, i) for i in inputs], "batch")

    def _checked(self, inputs: list[CaseInput], run: Callable[[], list], what: str) -> list[ToolResult]:
        """`run()`'s outputs for `inputs`, timed; a tool bug or a wrong count becomes typed failures."""
        t0 = time.perf_counter()
        try:
            outs = run()
        except Exception as e:  # a tool bug must not sink the other requests in the batch's run()
            log.exception("tool %s raised", self._name)
            return [ToolFailure(tool=self._name, case_id=i.case.case_id, kind="tool_error",
                                message=f"{type(e).__name__}: {e}") for i in inputs]
        finally:
            self._busy_s += time.perf_counter() - t0
        if len(outs) != len(inputs):
            return [ToolFailure(tool=self._name, case_id=i.case.case_id, kind="tool_error",
                                message=f"{self._name}.{what} returned {len(outs)} results for {len(inputs)} inputs")
                    for i in inputs]
        return [failure_from(self._name, i.case.case_id, o) if isinstance(o, ToolInputError) else o
                for i, o in zip(inputs, outs)]


class _CallQueue:
    """The actor's queue of waiting calls (each a list of (input, future)), with a peek at the head."""

    def __init__(self):
        self._calls: deque[tuple[list, bool]] = deque()  # (call, wait)
        self._event = asyncio.Event()

    def put(self, call: list, wait: bool = True) -> None:
        """Queue a call; `wait=False`: a batch it starts does not wait for more callers."""
        self._calls.append((call, wait))
        self._event.set()

    def head(self) -> list | None:
        return self._calls[0][0] if self._calls else None

    def queued_inputs(self) -> int:
        return sum(len(call) for call, _ in self._calls)

    def pop(self) -> tuple[list, bool]:
        return self._calls.popleft()

    async def wait(self, timeout_s: float | None = None) -> bool:
        """Whether a call is queued, waiting for one at most `timeout_s` (None: forever)."""
        loop = asyncio.get_running_loop()
        deadline = None if timeout_s is None else loop.time() + timeout_s
        while not self._calls:
            self._event.clear()
            left = None if deadline is None else deadline - loop.time()
            if left is not None and left <= 0:
                return False
            try:
                await asyncio.wait_for(self._event.wait(), left)
            except asyncio.TimeoutError:
                return bool(self._calls)
        return True


async def collect_batch(queue: _CallQueue, max_batch: int, max_wait_s: float, expect: int,
                        busy: "asyncio.Future | None" = None, on_take: Callable[[list], None] | None = None,
                        split_when_idle: bool = False) -> list[list]:
    """The calls of the next batch: wait for a first call, take every queued call that fits in
    `max_batch` inputs (calling `on_take(call)` as each is taken, e.g. to start preparing it), and
    keep taking while the model is `busy` with the previous batch; once it is free, wait (at most
    `max_wait_s` from the first call) only while fewer than `expect` calls are in hand, and only
    for calls queued with `wait=True` (a RayRunner's calls are not: its coalescer already waited
    for its callers, and holding one of its calls for the next would merge the two calls it keeps
    alternating on the model).

    `split_when_idle` (a pipelined actor): a model that is idle when the calls are taken takes the
    first half of what is queued, and the rest waits to be prepared while that half runs. Taking it
    all would put every closed-loop caller in one batch, and the model would then idle through
    their round trip and the next decoding, batch after batch.

    `expect` is how many calls the previous batch held. In steady state their callers come back,
    so waiting for more only idles the model, and waiting for fewer splits one wave of callers into
    small batches. If fewer come back, the deadline ends the wait and the next expectation drops to
    what arrived. Never waits longer than a fixed max_wait would.
    """
    loop = asyncio.get_running_loop()
    await queue.wait()
    calls: list[list] = []
    n = 0
    waitable = True
    deadline = loop.time() + max_wait_s
    expect = max(1, expect)
    idle_share = max_batch
    if split_when_idle and (busy is None or busy.done()):
        idle_share = -(-queue.queued_inputs() // 2)
    while n < max_batch:
        head = queue.head()
        if head is not None:
            if calls and (n + len(head) > max_batch or n >= idle_share):
                break  # the next batch's
            call, wait = queue.pop()
            calls.append(call)
            waitable = waitable and wait
            n += len(head)
            if on_take is not None:
                on_take(calls[-1])
            continue
        if busy is not None and not busy.done():  # the model is busy: gather until it is free
            waiter = asyncio.ensure_future(queue.wait())
            await asyncio.wait({waiter, busy}, return_when=asyncio.FIRST_COMPLETED)
            if not waiter.done():
                waiter.cancel()
            continue
        if len(calls) >= expect or not waitable:
            break
        left = deadline - loop.time()
        if left <= 0 or not await queue.wait(left):
            break
    return calls


def _call_one(tool, inp: CaseInput):
    try:
        return tool(inp)
    except ToolInputError as e:
        return e


def _build_tool(name: str, tool_factory: Callable | None, device: str):
    """Build tool `name` on `device`: with `tool_factory(name[, device=])`, else from the registry."""
    if tool_factory is None:
        from mmdx import tools  # fills the registry in this worker

        cls = registry.tool_class(name)
        if "device" in inspect.signature(cls).parameters:
            return cls(device=device)
        return tools.get(name)
    try:
        accepts_device = "device" in inspect.signature(tool_factory).parameters
    except (TypeError, ValueError):
        accepts_device = False
    return tool_factory(name, device=device) if accepts_device else tool_factory(name)


@dataclass
class _Call:
    tool: str
    idxs: list[int]  # positions in the request list
    attempt: int  # 0 = first try
    actor: int  # index in the tool's pool
    probe: bool = False  # a `ready()` call asking whether a restarted actor is back
    offset: int = 0  # where this call's results start in the remote call's result list (coalesced calls)
    shared: bool = False  # the remote call also carries other run() calls' inputs: never cancel it
    ticket: "_Ticket | None" = None  # the coalesced call this is part of (None: retries and probes)
    # retries waiting their turn on this actor, (request index, attempt): sent one at a time, so an
    # input that kills its actor again takes only itself down
    chain: list[tuple[int, int]] = field(default_factory=list)


class _Ticket:
    """Inputs waiting in a coalesced call: `ref` is set once the call is sent."""

    def __init__(self, owner: "_Coalescer"):
        self.owner = owner
        self.inputs: list[CaseInput] = []
        self.members = 0
        self.sent = threading.Event()
        self.ref = None
        self.error: BaseException | None = None
        self.returned = False  # the coalescer has counted this call's return
        self._outs: list | None = None
        self._outs_lock = threading.Lock()

    def outputs(self, get: Callable[[], list]) -> list:
        """The call's results, fetched and deserialised once for all its members (`get` raises as ray.get)."""
        with self._outs_lock:
            if self._outs is None:
                self._outs = get()
            return self._outs


class _Coalescer:
    """Merges concurrent run() calls to one actor into fewer remote calls.

    At most `limit` calls are in flight to the actor (one computing, one queued behind it, so the
    actor never idles on a round trip); inputs submitted meanwhile wait in one open call. Many
    client threads then cost the actor about one Ray call per batch instead of one per request,
    which raised unbatched Ray serving on 2 cores from 75 to 96 req/s.

    When the actor is idle a call goes at once. While it has work, the open call waits until it
    holds its share of the callers: the inputs of the call that just came back (its callers are
    about to return with their next request) plus those still in flight and waiting, divided over
    the `limit` slots; or until the actor runs dry. Sending at the first free slot instead split 8
    closed-loop clients into calls of 1 and 7 (mean batch 3.5, many forward passes of one); this
    settles on 4 and 4.
    """

    def __init__(self, actor, flusher: "queue.SimpleQueue", limit: int = 2):
        self._actor = actor
        self._flusher = flusher
        self._limit = max(1, limit)
        self._lock = threading.Lock()
        self._in_flight = 0
        self._open: _Ticket | None = None
        self._in_flight_inputs = 0
        self._expect = 1  # inputs the open call waits for while the actor has work

    def submit(self, inputs: list[CaseInput]) -> tuple[_Ticket, int]:
        """A ticket for `inputs` and their offset in its call (sent now, or when it is due)."""
        with self._lock:
            if self._open is None:
                self._open = _Ticket(self)
            ticket = self._open
            offset = len(ticket.inputs)
            ticket.inputs += inputs
            ticket.members += 1
            self._send_if_due()
        return ticket, offset

    def _send_if_due(self) -> None:  # under self._lock
        ticket = self._open
        if ticket is None or self._in_flight >= self._limit:
            return
        if self._in_flight == 0 or len(ticket.inputs) >= self._expect:
            self._open = None
            self._send(ticket)

    def _send(self, ticket: _Ticket) -> None:  # under self._lock
        try:
            ticket.ref = self._actor.run.remote(ticket.inputs, gathered=True)
            self._in_flight += 1
            self._in_flight_inputs += len(ticket.inputs)
            # a member's ray.get usually sees the answer first (and calls returned); this is the backstop
            ticket.ref.future().add_done_callback(lambda _f: self._flusher.put(ticket))
        except Exception as e:  # noqa: BLE001 - reported to every member of the ticket
            ticket.error = e
        ticket.sent.set()

    def returned(self, ticket: _Ticket) -> None:
        """An in-flight call came back (answer or error): send the open call if it is now due.
        Counted once per call, by whichever sees it first: a member's ray.get, or Ray's callback
        (which can come a few ms later; meanwhile the members are back with their next requests)."""
        with self._lock:
            if ticket.returned or ticket.ref is None:
                return
            ticket.returned = True
            n_inputs = len(ticket.inputs)
            self._in_flight -= 1
            self._in_flight_inputs -= n_inputs
            callers = n_inputs + self._in_flight_inputs + (len(self._open.inputs) if self._open else 0)
            self._expect = max(1, -(-callers // self._limit))
            self._send_if_due()


class RayRunner:
    """Runs tools on pools of Ray actors, one pool per tool, with dynamic batching inside each actor.

    `tool_names`: the tools this runner serves (default: every registered tool); other names come
    back as `unknown_tool`. `pool_sizes`: actors per tool (default 1). `num_gpus_per_actor`: None
    asks for a share of the cluster's GPUs when it has any (the tool then runs on cuda), else 0.
    `address` (or $MMDX_RAY_ADDRESS) joins a running cluster; otherwise a Ray already initialised
    in this process is used, or a local one is started. `tool_factory(name[, device=])` builds the
    tools inside the actors (it must pickle); the default builds them from the registry.
    Actors start lazily, on a tool's first request; `warmup()` starts them all and waits.
    `pipeline` (default on) overlaps a staged tool's `prepare` of the next call with the model's
    run of the current batch, in `prepare_threads` threads per actor (default: 1 on CPU, up to 4 on
    a GPU); off, each batch runs `tool.batch` whole.
    """

    def __init__(self, tool_names: Sequence[str] | None = None, pool_sizes: dict[str, int] | None = None,
                 max_batch_size: int = 32, max_wait_ms: float = 5, num_cpus_per_actor: float = 0.25,
                 num_gpus_per_actor: float | None = None, address: str | None = None,
                 request_timeout_s: float = 60, max_retries: int = 2, tool_factory: Callable | None = None,
                 torch_threads: int = 1, prepare_threads: int | None = None, pipeline: bool = True):
        import ray

        self._ray = ray
        if tool_names is None:
            from mmdx import tools  # noqa: F401 - fills the registry

            tool_names = registry.names()
        self.tool_names = tuple(tool_names)
        self._pool_sizes = {n: max(1, int((pool_sizes or {}).get(n, 1))) for n in self.tool_names}
        self._max_batch_size = max_batch_size
        self._max_wait_ms = max_wait_ms
        self._num_cpus = num_cpus_per_actor
        self._timeout_s = request_timeout_s
        self._max_retries = max(0, int(max_retries))
        self._factory = tool_factory
        self._torch_threads = torch_threads
        self._prepare_threads = prepare_threads
        self._pipeline = pipeline
        self._started_ray = ensure_ray(address)
        self._num_gpus = self._gpu_share() if num_gpus_per_actor is None else float(num_gpus_per_actor)
        self._id = f"{socket.gethostname()}/{os.getpid()}/{next(_runner_ids)}"  # names: prefix/tool/i/host/pid/n
        self._pools: dict[str, list] = {}
        self._coalescers: dict[str, list[_Coalescer]] = {}  # parallel to _pools
        self._flush_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._flusher = threading.Thread(target=self._flush_loop, name="mmdx-ray-coalesce", daemon=True)
        self._flusher.start()
        self._next_actor: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._closed = False
        _kill_orphans(ray)

    # -- public interface ------------------------------------------------------------------------

    def run(self, requests: Sequence[tuple[str, CaseInput]], timeout_s: float | None = None) -> list[ToolResult]:
        if self._closed:
            raise RuntimeError("RayRunner is closed")
        ray = self._ray
        timeout = self._timeout_s if timeout_s is None else timeout_s
        deadline = time.monotonic() + timeout
        results: list[ToolResult | None] = [None] * len(requests)
        by_tool: dict[str, list[int]] = defaultdict(list)
        for idx, (name, inp) in enumerate(requests):
            if name in self._pool_sizes:
                by_tool[name].append(idx)
            else:
                results[idx] = ToolFailure(
                    tool=name, case_id=inp.case.case_id, kind="unknown_tool", field="tool",
                    message=f"unknown tool {name!r}; known: {', '.join(sorted(self._pool_sizes)) or 'none'}")

        pending: dict = {}  # ObjectRef -> _Call
        tickets: list[tuple[_Ticket, _Call]] = []
        for name, idxs in by_tool.items():
            pool = self._pool(name)
            coalescers = self._coalescers[name]
            start = self._take_actor(name, len(pool))
            n_chunks = min(len(pool), len(idxs))
            size = -(-len(idxs) // n_chunks)
            for k in range(n_chunks):
                chunk = idxs[k * size:(k + 1) * size]
                if chunk:
                    a = (start + k) % len(pool)
                    ticket, offset = coalescers[a].submit([requests[i][1] for i in chunk])
                    tickets.append((ticket, _Call(name, chunk, 0, a, offset=offset, ticket=ticket)))
        for ticket, call in tickets:  # wait (to the deadline) for coalesced calls to be sent
            if not ticket.sent.wait(timeout=max(0.0, deadline - time.monotonic())):
                for i in call.idxs:
                    results[i] = ToolFailure(tool=call.tool, case_id=requests[i][1].case.case_id, kind="timeout",
                                             message=f"{call.tool} did not answer within {timeout:g}s")
            elif ticket.error is not None:
                for i in call.idxs:
                    results[i] = ToolFailure(tool=call.tool, case_id=requests[i][1].case.case_id, kind="tool_error",
                                             message=f"could not send to {call.tool}: {ticket.error}")
            else:
                call.shared = ticket.members > 1
                pending[ticket.ref] = call

        delayed: list[tuple[float, _Call]] = []  # probes of restarting actors, due at a time
        while pending or delayed:
            now = time.monotonic()
            left = deadline - now
            if left <= 0:
                break
            for item in [d for d in delayed if d[0] <= now]:
                delayed.remove(item)
                call = item[1]
                pending[self._pool(call.tool)[call.actor].ready.remote()] = call
            wait_s = min([left] + [due - now for due, _ in delayed])
            if not pending:
                time.sleep(max(0.0, wait_s))
                continue
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=max(0.0, wait_s))
            for ref in ready:
                call = pending.pop(ref)
                if call.ticket is not None:  # the actor has answered: its coalescer may send the next call
                    call.ticket.owner.returned(call.ticket)
                try:
                    fetch = lambda: ray.get(ref, timeout=max(1.0, left))  # noqa: E731
                    outs = call.ticket.outputs(fetch) if call.ticket is not None else fetch()
                except ray.exceptions.RayActorError as e:
                    if call.probe and isinstance(e, ray.exceptions.ActorUnavailableError):
                        delayed.append((time.monotonic() + _PROBE_EVERY_S, call))  # still restarting
                    else:
                        self._on_actor_error(call, e, requests, results, pending)
                    continue
                except ray.exceptions.RayError as e:  # e.g. a result that failed to unpickle
                    log.error("tool %s call failed: %s", call.tool, e)
                    mine = [ToolFailure(tool=call.tool, case_id=requests[i][1].case.case_id, kind="tool_error",
                                        message=f"{type(e).__name__}: {e}", retried=call.attempt)
                            for i in call.idxs]
                else:  # this run()'s slice of a (possibly coalesced) call; a probe answers a dict, no results
                    mine = outs[call.offset:call.offset + len(call.idxs)] if call.idxs else []
                for i, out in zip(call.idxs, mine):
                    results[i] = out
                self._send_next(call, requests, pending)

        for ref, call in pending.items():
            if not call.shared:  # a shared call still answers other run() calls
                ray.cancel(ref)
        for call in list(pending.values()) + [c for _, c in delayed]:  # past the deadline
            for i, attempt in [(i, call.attempt) for i in call.idxs] + call.chain:
                results[i] = ToolFailure(tool=call.tool, case_id=requests[i][1].case.case_id, kind="timeout",
                                         message=f"{call.tool} did not answer within {timeout:g}s", retried=attempt)
        return results  # type: ignore[return-value]

    def warmup(self, timeout_s: float | None = None) -> dict[str, list[dict]]:
        """Start every pool and wait until each actor has loaded its tool; returns where each runs."""
        refs = {n: [a.ready.remote() for a in self._pool(n)] for n in self.tool_names}
        t = self._timeout_s if timeout_s is None else timeout_s
        return {n: self._ray.get(r, timeout=t) for n, r in refs.items()}

    def actor_stats(self, timeout_s: float = 10) -> dict[str, dict]:
        """Per started pool, over its actors: the size of every batch on the model (actor by actor,
        concatenated), the remote `run` calls received, the seconds the model spent on batches
        (`busy_s`), and the seconds spent preparing inputs, summed over prepare threads (`prepare_s`)."""
        with self._lock:
            pools = dict(self._pools)
        out: dict[str, dict] = {}
        for name, pool in pools.items():
            stats = self._ray.get([a.stats.remote() for a in pool], timeout=timeout_s)
            out[name] = {"batch_sizes": [b for st in stats for b in st["batch_sizes"]],
                         "calls": sum(st["calls"] for st in stats), "busy_s": sum(st["busy_s"] for st in stats),
                         "prepare_s": sum(st["prepare_s"] for st in stats)}
        return out

    def batch_sizes(self, timeout_s: float = 10) -> dict[str, list[int]]:
        """The size of every `tool.batch` call each started pool has made, actor by actor, concatenated."""
        return {name: st["batch_sizes"] for name, st in self.actor_stats(timeout_s).items()}

    @property
    def gpu_share(self) -> float:
        """The GPUs each actor asks Ray for (a fraction where several share one; 0 on CPU)."""
        return self._num_gpus

    def kill_actor(self, tool: str, index: int = 0) -> None:
        """Kill one of `tool`'s actors the way a crash would (Ray restarts it): fault injection for
        checks and drills. Calls it held are retried or fail typed, as for any actor death."""
        self._ray.kill(self._pool(tool)[index], no_restart=False)

    def actor_names(self) -> dict[str, list[str]]:
        return {n: [self._actor_name(n, i) for i in range(len(p))] for n, p in self._pools.items()}

    def close(self) -> None:
        """Kill this runner's actors; shut Ray down if this runner started it."""
        if self._closed:
            return
        self._closed = True
        self._flush_queue.put(None)
        with self._lock:
            pools, self._pools = self._pools, {}
            self._coalescers = {}
        for pool in pools.values():
            for actor in pool:
                try:
                    self._ray.kill(actor, no_restart=True)
                except Exception as e:  # noqa: BLE001 - already gone
                    log.debug("kill: %s", e)
        if self._started_ray:
            self._ray.shutdown()

    def __enter__(self) -> "RayRunner":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- internals -------------------------------------------------------------------------------

    def _send_next(self, call: _Call, requests, pending) -> None:
        """Send the head of `call.chain` alone to the same actor; the rest waits behind it."""
        if call.chain:
            (i, attempt), rest = call.chain[0], call.chain[1:]
            actor = self._pool(call.tool)[call.actor]
            pending[actor.run.remote([requests[i][1]], isolate=True)] = _Call(call.tool, [i], attempt, call.actor,
                                                                              chain=rest)

    def _on_actor_error(self, call: _Call, err, requests, results, pending) -> None:
        """An actor died holding `call` (or, for a probe, will not come back): retry or report."""
        ray = self._ray
        init_failed = getattr(err, "actor_init_failed", False)
        gone = init_failed or (call.probe and not isinstance(err, ray.exceptions.ActorUnavailableError))
        if gone:  # no restart coming: fail what it held, rebuild the pool on the next request
            with self._lock:
                pool = self._pools.pop(call.tool, [])
                self._coalescers.pop(call.tool, None)
            for actor in pool:
                ray.kill(actor, no_restart=True)
            kind, what = ("tool_error", "failed to load") if init_failed else ("actor_died", "actor is gone")
            if init_failed:
                log.error("tool %s failed to start: %s", call.tool, err)
            for i, attempt in [(i, call.attempt) for i in call.idxs] + call.chain:
                results[i] = ToolFailure(tool=call.tool, case_id=requests[i][1].case.case_id, kind=kind,
                                         message=f"{call.tool} {what}: {_first_line(err)}", retried=attempt)
            return
        retry: list[tuple[int, int]] = []
        for i in call.idxs:
            if call.attempt >= self._max_retries:
                results[i] = ToolFailure(tool=call.tool, case_id=requests[i][1].case.case_id, kind="actor_died",
                                         message=f"the {call.tool} actor died while running this input "
                                                 f"({_first_line(err)})", retried=call.attempt)
            else:
                retry.append((i, call.attempt + 1))
        if retry:
            log.warning("tool %s actor %d died (%s); retrying %d input(s) one at a time", call.tool, call.actor,
                        _first_line(err), len(retry))
        pool = self._pool(call.tool)
        # inputs not yet run (the chain) keep their attempt and go first; each retry goes to the next actor
        by_actor: dict[int, list[tuple[int, int]]] = defaultdict(list)
        if call.chain:
            by_actor[call.actor] += call.chain
        for k, item in enumerate(retry):
            by_actor[(call.actor + 1 + k) % len(pool)].append(item)
        for a, chain in by_actor.items():  # probe first: a restarting actor refuses calls until it is back
            pending[pool[a].ready.remote()] = _Call(call.tool, [], 0, a, probe=True, chain=chain)

    def _flush_loop(self) -> None:
        """Sends coalesced calls when an in-flight call returns (Ray's callbacks must not call Ray)."""
        while True:
            ticket = self._flush_queue.get()
            if ticket is None:
                return
            try:
                ticket.owner.returned(ticket)
            except Exception:  # noqa: BLE001 - the loop must outlive one bad send
                log.exception("coalesced send failed")

    def _actor_name(self, tool: str, i: int) -> str:
        return f"{_ACTOR_PREFIX}/{tool}/{i}/{self._id}"

    def _pool(self, name: str) -> list:
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                remote = self._ray.remote(_ToolServer)
                pool = [
                    remote.options(
                        name=self._actor_name(name, i), namespace=NAMESPACE, lifetime="non_detached",
                        num_cpus=self._num_cpus, num_gpus=self._num_gpus,
                        max_restarts=-1, max_task_retries=0,  # we retry ourselves, counting, one input alone
                        max_concurrency=1000,
                    ).remote(name, self._factory, self._max_batch_size, self._max_wait_ms, self._torch_threads,
                             self._prepare_threads, self._pipeline)
                    for i in range(self._pool_sizes[name])
                ]
                self._pools[name] = pool
                self._coalescers[name] = [_Coalescer(a, self._flush_queue) for a in pool]
            return pool

    def _take_actor(self, name: str, n: int) -> int:
        with self._lock:
            i = self._next_actor[name]
            self._next_actor[name] = (i + 1) % n
            return i

    def _gpu_share(self) -> float:
        gpus = float(self._ray.cluster_resources().get("GPU", 0.0))
        if gpus <= 0:
            return 0.0
        n_actors = sum(self._pool_sizes.values()) or 1
        return min(1.0, gpus / n_actors)


def parse_pool_sizes(text: str) -> dict[str, int]:
    """'cxr=4,notes=2' -> {'cxr': 4, 'notes': 2} (actors per tool); '' -> {}. Raises ValueError."""
    pools: dict[str, int] = {}
    for part in filter(None, (x.strip() for x in (text or "").split(","))):
        name, sep, n = part.partition("=")
        if not sep or not name.strip() or not n.strip().isdigit() or int(n) < 1:
            raise ValueError(f"pool sizes look like cxr=4,notes=2 (a tool, '=', a count >= 1); got {part!r}")
        pools[name.strip()] = int(n)
    return pools


def unknown_pool_tools(pools: dict[str, int]) -> str | None:
    """A message naming the pools whose tool is not registered, or None."""
    from mmdx import tools  # noqa: F401 - fills the registry

    unknown = sorted(set(pools) - set(registry.names()))
    if unknown:
        return f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(registry.names())}"
    return None


def ensure_ray(address: str | None) -> bool:
    """Reuse this process's Ray, join `address` (or $MMDX_RAY_ADDRESS), or start a local one.

    Returns True when it started or joined Ray (the caller then owns `ray.shutdown()`)."""
    import ray

    address = address or os.environ.get(ADDRESS_ENV)
    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    if address:
        ray.init(address=address, namespace=NAMESPACE, log_to_driver=False)
    else:
        # "local": never join someone else's cluster on this machine by accident.
        ray.init(address="local", num_cpus=os.cpu_count() or 1, include_dashboard=False, namespace=NAMESPACE,
                 log_to_driver=False)
    return True


def _kill_orphans(ray) -> None:
    """Kill named mmdx actors left behind by a driver on this host that no longer runs."""
    host = socket.gethostname()
    try:
        named = ray.util.list_named_actors(all_namespaces=True)
    except Exception as e:  # noqa: BLE001 - best effort; a missing listing only means no cleanup
        log.debug("cannot list named actors: %s", e)
        return
    for entry in named:
        name, ns = entry.get("name", ""), entry.get("namespace")
        parts = name.split("/")  # prefix, tool, index, host, pid, runner counter
        if ns != NAMESPACE or len(parts) != 6 or parts[0] != _ACTOR_PREFIX:
            continue
        if parts[3] != host or not parts[4].isdigit() or _pid_alive(int(parts[4])):
            continue
        try:
            ray.kill(ray.get_actor(name, namespace=NAMESPACE), no_restart=True)
            log.info("killed orphaned actor %s", name)
        except Exception as e:  # noqa: BLE001 - it died meanwhile
            log.debug("orphan %s: %s", name, e)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _first_line(err) -> str:
    s = str(err).strip().splitlines()
    return s[0][:300] if s else type(err).__name__
