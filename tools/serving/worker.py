"""A tool inside a Ray worker (an actor of the hand-built runner, or a Serve replica): built once on
the worker's device, run in batches, every fault typed.

`ToolHost` is what both distributed runners serve. It runs a staged tool (`prepare` + `infer`, see
core.tool.StagedTool) as two stages a caller can overlap: `prepare` (decode, resize, tokenise) in
`prepare_threads` threads, `infer` (the batched forward pass) in one compute thread, so the next
batch is prepared while the model runs this one. Any other tool runs `batch` whole in the compute
thread. Every call answers typed results (tools/runner.py `guarded`): a tool bug fails its inputs,
never the worker.
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Callable

from mmdx.core import registry
from mmdx.core.tool import CaseInput
from mmdx.tools.runner import ToolFailure, ToolResult, guarded, run_batch, typed

log = logging.getLogger(__name__)


def build_tool(name: str, tool_factory: Callable | None, device: str):
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


class ToolHost:
    """Tool `name`, built once in this worker, with its two stages and what they cost.

    `device`: cuda when Ray gave this worker a GPU and torch sees one, else cpu (where torch keeps
    `torch_threads` intra-op threads: workers on fractional CPUs fight otherwise). `pipeline=False`
    runs even a staged tool's `batch` whole. `prepare_threads` default: 1 on CPU, up to 4 on a GPU
    (decoding feeds the model: on a GPU one thread cannot keep up with batched forward passes).
    """

    def __init__(self, name: str, tool_factory: Callable | None, torch_threads: int = 1,
                 prepare_threads: int | None = None, pipeline: bool = True):
        import ray
        import torch

        self.device = "cuda" if ray.get_gpu_ids() and torch.cuda.is_available() else "cpu"
        if self.device == "cpu":
            torch.set_num_threads(torch_threads)
        self.name = name
        self.tool = build_tool(name, tool_factory, self.device)
        self.staged = (pipeline and callable(getattr(self.tool, "prepare", None))
                       and callable(getattr(self.tool, "infer", None)))
        self._compute = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"mmdx-{name}")
        if prepare_threads is None:
            prepare_threads = 1 if self.device == "cpu" else min(4, os.cpu_count() or 1)
        self.prepare_threads = max(1, int(prepare_threads))
        self._preparers = ThreadPoolExecutor(max_workers=self.prepare_threads, thread_name_prefix=f"mmdx-{name}-prep")
        self.batch_sizes: list[int] = []  # every batch the model ran
        self.busy_s = 0.0  # seconds the model spent on batches (tool.infer, or tool.batch for other tools)
        self.prepare_s = 0.0  # seconds spent in tool.prepare, over all prepare threads

    def info(self) -> dict:
        """Where this worker runs: tool, device, the GPUs Ray gave it, pid, host, and whether it pipelines."""
        info = {"tool": self.name, "device": self.device, "pid": os.getpid(), "host": socket.gethostname(),
                "pipelined": self.staged, "prepare_threads": self.prepare_threads if self.staged else 0}
        if self.device == "cuda":
            import ray
            import torch

            info.update(gpu_ids=[str(g) for g in ray.get_gpu_ids()], gpu_name=torch.cuda.get_device_name(),
                        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"))
        return info

    def stats(self) -> dict:
        """Batches run, the model's and the prepare threads' seconds, and `cpu_s`: this worker
        process's CPU time so far, every thread (the tool's, and the runner's own machinery)."""
        return {"batch_sizes": list(self.batch_sizes), "busy_s": round(self.busy_s, 4), "prepare_s": round(self.prepare_s, 4),
                "cpu_s": round(time.process_time(), 4)}

    @staticmethod
    def merge_stats(stats: list[dict]) -> dict:
        """One tool's pool (actors or replicas) as one: every batch size, summed calls and seconds."""
        return {"batch_sizes": [b for st in stats for b in st["batch_sizes"]],
                **{k: sum(st[k] for st in stats) for k in ("calls", "busy_s", "prepare_s", "cpu_s")}}

    async def prepare(self, inputs: list[CaseInput]) -> list:
        """Per input: its prepared item, its ToolInputError, or a ToolFailure (a bug in `prepare`),
        split over the prepare threads. A tool that is not staged has nothing to prepare: the
        inputs come back as they are."""
        if not self.staged or not inputs:
            return list(inputs)
        loop = asyncio.get_running_loop()
        size = -(-len(inputs) // min(self.prepare_threads, len(inputs)))
        chunks = [inputs[k:k + size] for k in range(0, len(inputs), size)]
        done = await asyncio.gather(*(loop.run_in_executor(self._preparers, self._prepare, c) for c in chunks))
        return [x for part in done for x in part]

    def _prepare(self, inputs: list[CaseInput]) -> list:
        t0 = time.perf_counter()
        try:
            return guarded(self.name, inputs, lambda: self.tool.prepare(inputs), "prepare")
        finally:
            self.prepare_s += time.perf_counter() - t0

    async def infer(self, inputs: list[CaseInput], prepared: list) -> list[ToolResult]:
        """Typed results for `inputs` from their `prepare`d entries: one forward pass (in the compute
        thread) over those that prepared; a failure from `prepare` is answered as it is."""
        results: list = [p if isinstance(p, ToolFailure) else None for p in prepared]
        todo = [i for i, r in enumerate(results) if r is None]
        if todo:
            self.batch_sizes.append(len(todo))
            loop = asyncio.get_running_loop()
            outs = await loop.run_in_executor(self._compute, self._run, [inputs[i] for i in todo],
                                              [prepared[i] for i in todo])
            for i, out in zip(todo, outs):
                results[i] = out
        return results

    def _run(self, inputs: list[CaseInput], prepared: list) -> list[ToolResult]:
        t0 = time.perf_counter()
        try:
            if self.staged:
                return typed(self.name, inputs, guarded(self.name, inputs, lambda: self.tool.infer(inputs, prepared), "infer"))
            return run_batch(self.name, self.tool, inputs)
        finally:
            self.busy_s += time.perf_counter() - t0

    async def run_alone(self, inputs: list[CaseInput]) -> list[ToolResult]:
        """Each input in a batch of its own, one after the other: how a runner retries inputs whose
        batch killed the worker, so a poison input cannot take its neighbours down twice."""
        return [(await self.infer([inp], await self.prepare([inp])))[0] for inp in inputs]
