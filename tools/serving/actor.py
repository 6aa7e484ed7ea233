"""One Ray actor serving one tool for the hand-built runner (ray_runner.py): calls from any number
of cases, threads or drivers go on one queue, and a batching loop (batching.py) sends them through
the model together.

The actor is an asyncio actor over a `ToolHost` (worker.py). The loop takes up to `max_batch_size`
inputs (waiting at most `max_wait_ms` for callers coming back) and, for a staged tool, prepares the
calls as it takes them, while the model still runs the previous batch; the next batch goes to the
model the moment it is free.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Callable

from mmdx.core.tool import CaseInput
from mmdx.tools.runner import ToolResult, failures
from mmdx.tools.serving.batching import CallQueue, collect_batch
from mmdx.tools.serving.worker import ToolHost

log = logging.getLogger(__name__)


class ToolServer:
    """One Ray actor serving one tool: loads it once, batches every concurrent call into one forward pass."""

    def __init__(self, tool_name: str, tool_factory: Callable | None, max_batch_size: int, max_wait_ms: float,
                 torch_threads: int, prepare_threads: int | None = None, pipeline: bool = True):
        self._host = ToolHost(tool_name, tool_factory, torch_threads, prepare_threads, pipeline)
        self._max_batch = max(1, int(max_batch_size))
        self._max_wait_s = max(0.0, max_wait_ms / 1000.0)
        self._queue: CallQueue | None = None
        self._loop_task: asyncio.Task | None = None
        self._calls = 0  # remote run() calls received (coalesced client calls count once)
        self._expect = 1  # calls the next batch waits for (at most max_wait_ms): the last batch's count

    async def ready(self) -> dict:
        """Where this actor runs: tool, device, the GPUs Ray gave it, pid, host, and whether it pipelines."""
        return self._host.info()

    async def stats(self) -> dict:
        return self._host.stats() | {"calls": self._calls}

    async def run(self, inputs: list[CaseInput], isolate: bool = False, gathered: bool = False) -> list[ToolResult]:
        """Results for `inputs`, in order. `isolate` runs each input in a batch of its own (retries).
        `gathered`: the caller already waited for its callers (a RayRunner's coalescer), so an idle
        model does not hold this call waiting for others."""
        self._calls += 1
        if isolate:
            return await self._host.run_alone(inputs)
        if self._queue is None:
            self._queue = CallQueue()
            self._loop_task = asyncio.create_task(self._batch_loop())
        loop = asyncio.get_running_loop()
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
            calls = await collect_batch(
                self._queue, self._max_batch, self._max_wait_s, self._expect, busy=model_run,
                on_take=lambda call: prepared.append(asyncio.ensure_future(self._host.prepare([i for i, _ in call]))),
                split_when_idle=self._host.staged)
            self._expect = len(calls)
            parts = await asyncio.gather(*prepared)
            items = [(inp, fut, prep) for call, part in zip(calls, parts) for (inp, fut), prep in zip(call, part)
                     if not fut.done()]  # callers that gave up meanwhile are dropped
            if model_run is not None:
                await model_run  # one batch on the model at a time, in order
                model_run = None
            if items:
                model_run = asyncio.ensure_future(self._infer(items))

    async def _infer(self, items: list) -> None:
        """Run one batch on the model and answer its callers."""
        inputs = [inp for inp, _, _ in items]
        try:
            outs = await self._host.infer(inputs, [prep for _, _, prep in items])
        except Exception as e:  # noqa: BLE001 - reported to each caller; the batch loop must survive
            log.exception("tool %s batch failed", self._host.name)
            outs = failures(self._host.name, inputs, "tool_error", f"{type(e).__name__}: {e}")
        for (_, fut, _), out in zip(items, outs):
            if not fut.done():
                fut.set_result(out)
