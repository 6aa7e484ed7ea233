"""The hand-built tool runner over Ray actors: the same `run(requests) -> results` as
`InProcessRunner`, served by pools of long-lived actors that load their model once and batch
requests from every caller.

    from mmdx.tools.ray_runner import RayRunner
    runner = RayRunner(pool_sizes={"cxr": 2})          # or address="10.0.0.5:6379" to join a cluster
    results = runner.run([("cxr", CaseInput(case=c)) for c in cases], timeout_s=30)
    runner.close()

Each tool lives in a pool of named actors (namespace "mmdx"; actor.py), which batch the calls
they receive (batching.py). In one driver, concurrent `run()` calls to an actor are merged into
fewer remote calls first (coalesce.py). This file sends the calls and handles faults.

Faults come back typed, never as a hang: per-case input errors are the tool's own `ToolFailure`s; an
actor that dies is restarted by Ray and the calls it held are retried alone (one input per call, so
a poison input cannot take its neighbours down twice) up to `max_retries` times, then reported as
`actor_died` with `retried=n`; a call still unanswered at the deadline is cancelled and reported as
`timeout`. While an actor restarts, the runner probes it (`ready()`) every 0.1 s before resending.
"""
from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, Sequence

from mmdx.core import registry
from mmdx.core.extras import require
from mmdx.core.tool import CaseInput
from mmdx.tools.runner import ToolFailure, ToolResult
from mmdx.tools.serving.actor import ToolServer
from mmdx.tools.serving.cluster import (ACTOR_PREFIX, NAMESPACE, driver_id, ensure_ray, first_line, gpu_share,
                                        kill_orphan_actors)
from mmdx.tools.serving.coalesce import Coalescer, Ticket
from mmdx.tools.serving.worker import ToolHost

log = logging.getLogger(__name__)

_PROBE_EVERY_S = 0.1  # how often to ask a restarting actor whether it is back
_runner_ids = itertools.count()


@dataclass
class _Call:
    tool: str
    idxs: list[int]  # positions in the request list
    attempt: int  # 0 = first try
    actor: int  # index in the tool's pool
    probe: bool = False  # a `ready()` call asking whether a restarted actor is back
    offset: int = 0  # where this call's results start in the remote call's result list (coalesced calls)
    shared: bool = False  # the remote call also carries other run() calls' inputs: never cancel it
    ticket: "Ticket | None" = None  # the coalesced call this is part of (None: retries and probes)
    # retries waiting their turn on this actor, (request index, attempt): sent one at a time, so an
    # input that kills its actor again takes only itself down
    chain: list[tuple[int, int]] = field(default_factory=list)


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
        ray = require("ray", "ray")

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
        self._num_gpus = (gpu_share(ray, sum(self._pool_sizes.values())) if num_gpus_per_actor is None
                          else float(num_gpus_per_actor))
        self._id = driver_id(next(_runner_ids))  # actor names: prefix/tool/i/host/pid/n
        self._pools: dict[str, list] = {}
        self._coalescers: dict[str, list[Coalescer]] = {}  # parallel to _pools
        self._flush_queue: queue.SimpleQueue = queue.SimpleQueue()
        self._flusher = threading.Thread(target=self._flush_loop, name="mmdx-ray-coalesce", daemon=True)
        self._flusher.start()
        self._next_actor: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self._closed = False
        kill_orphan_actors(ray)

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
        tickets: list[tuple[Ticket, _Call]] = []
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
        (`busy_s`), the seconds spent preparing inputs, summed over prepare threads (`prepare_s`), and
        the actors' processes' CPU seconds so far (`cpu_s`)."""
        with self._lock:
            pools = dict(self._pools)
        out: dict[str, dict] = {}
        for name, pool in pools.items():
            stats = self._ray.get([a.stats.remote() for a in pool], timeout=timeout_s)
            out[name] = ToolHost.merge_stats(stats)
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
            failure, what = ("tool_error", "failed to load") if init_failed else ("actor_died", "actor is gone")
            if init_failed:
                log.error("tool %s failed to start: %s", call.tool, err)
            for i, attempt in [(i, call.attempt) for i in call.idxs] + call.chain:
                results[i] = ToolFailure(tool=call.tool, case_id=requests[i][1].case.case_id, kind=failure,
                                         message=f"{call.tool} {what}: {first_line(err)}", retried=attempt)
            return
        retry: list[tuple[int, int]] = []
        for i in call.idxs:
            if call.attempt >= self._max_retries:
                results[i] = ToolFailure(tool=call.tool, case_id=requests[i][1].case.case_id, kind="actor_died",
                                         message=f"the {call.tool} actor died while running this input "
                                                 f"({first_line(err)})", retried=call.attempt)
            else:
                retry.append((i, call.attempt + 1))
        if retry:
            log.warning("tool %s actor %d died (%s); retrying %d input(s) one at a time", call.tool, call.actor,
                        first_line(err), len(retry))
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
        return f"{ACTOR_PREFIX}/{tool}/{i}/{self._id}"

    def _pool(self, name: str) -> list:
        with self._lock:
            pool = self._pools.get(name)
            if pool is None:
                remote = self._ray.remote(ToolServer)
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
                self._coalescers[name] = [Coalescer(a, self._flush_queue) for a in pool]
            return pool

    def _take_actor(self, name: str, n: int) -> int:
        with self._lock:
            i = self._next_actor[name]
            self._next_actor[name] = (i + 1) % n
            return i
