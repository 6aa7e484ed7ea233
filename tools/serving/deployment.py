"""One tool as a Ray Serve deployment (for serve_runner.py): each replica loads the tool once and
batches concurrent requests with `@serve.batch`.

A request is a list of inputs (a `run()` call's share for this replica); `@serve.batch` counts
inputs, not requests (`batch_size_fn`), so a batch never holds more than `max_batch_size` inputs.
With `max_concurrent_batches=2` (`PipelinedToolDeployment`, used unless `pipeline=False`) Serve
hands the replica a second batch while the first is on the model: it is prepared (decoded)
meanwhile, and the compute thread of the `ToolHost` runs the forward passes one at a time, in
order. That is this runner's pipeline; the hand-built actor gets the same overlap from its own
batching loop.
"""
from __future__ import annotations

import os
from typing import Callable

from mmdx.core.extras import require
from mmdx.core.tool import CaseInput
from mmdx.tools.runner import ToolResult
from mmdx.tools.serving.worker import ToolHost

serve = require("ray.serve", "serve")


def _n_inputs(calls: list[list[CaseInput]]) -> int:
    return sum(len(c) for c in calls)


class ToolDeployment:
    """A replica of one tool's deployment. The batching limits are set per deployment in `__init__`."""

    def __init__(self, tool_name: str, tool_factory: Callable | None, max_batch_size: int, max_wait_ms: float,
                 torch_threads: int = 1, prepare_threads: int | None = None, pipeline: bool = True):
        self._host = ToolHost(tool_name, tool_factory, torch_threads, prepare_threads, pipeline)
        self.run_batch.set_max_batch_size(max(1, int(max_batch_size)))
        self.run_batch.set_batch_wait_timeout_s(max(0.0, max_wait_ms / 1000.0))
        self._calls = 0  # requests received (run and run_alone)

    async def run(self, inputs: list[CaseInput]) -> list[ToolResult]:
        """Typed results for `inputs`, batched with every other request to this replica."""
        self._calls += 1
        return await self.run_batch(inputs)

    # The decorator's size and wait are placeholders: __init__ sets this deployment's own.
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005, max_concurrent_batches=1, batch_size_fn=_n_inputs)
    async def run_batch(self, calls: list[list[CaseInput]]) -> list[list[ToolResult]]:
        return await self._answer(calls)

    async def _answer(self, calls: list[list[CaseInput]]) -> list[list[ToolResult]]:
        """One batch: every call's inputs prepared, then one forward pass; each call's share back."""
        flat = [inp for call in calls for inp in call]
        outs = await self._host.infer(flat, await self._host.prepare(flat))
        answers, k = [], 0
        for call in calls:
            answers.append(outs[k:k + len(call)])
            k += len(call)
        return answers

    async def run_alone(self, inputs: list[CaseInput]) -> list[ToolResult]:
        """Each input in a batch of its own, outside the batch queue: retries after a replica died."""
        self._calls += 1
        return await self._host.run_alone(inputs)

    async def ready(self) -> dict:
        """Where this replica runs (tool, device, GPUs, pid, host, pipelined)."""
        return self._host.info()

    async def stats(self) -> dict:
        return self._host.stats() | {"calls": self._calls, "pid": os.getpid()}


class PipelinedToolDeployment(ToolDeployment):
    """ToolDeployment with two batches in flight: the next is prepared while the model runs this one."""

    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.005, max_concurrent_batches=2, batch_size_fn=_n_inputs)
    async def run_batch(self, calls: list[list[CaseInput]]) -> list[list[ToolResult]]:
        return await self._answer(calls)
