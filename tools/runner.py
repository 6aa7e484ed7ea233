"""The tool runner: the one way the agent, the workflows and Python callers run tools.

`run(requests)` takes (tool name, CaseInput) pairs and returns, in order, a `ClassifierOutput` or a
`ToolFailure` for each: input errors (absent modality, corrupt image...), unknown tools, crashes
and timeouts all come back as typed failures the graph can reason about, so one bad tool never
sinks a case. Calls to different tools run in parallel; calls to one tool are grouped into one
batched forward pass. `InProcessRunner` is the single-process runner (tests, single calls);
`mmdx.tools.serving` holds the same interface over Ray: the hand-built actor runner (`RayRunner`)
and one on Ray Serve deployments (`ServeRunner`). `run_batch` is how every runner calls a tool.
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor, TimeoutError as FutureTimeout
from typing import Callable, Literal, Protocol, Sequence

from pydantic import BaseModel, ConfigDict

from mmdx.core import registry
from mmdx.core.errors import ToolInputError
from mmdx.core.tool import CaseInput, ClassifierOutput

log = logging.getLogger(__name__)

FailureKind = Literal["modality_absent", "corrupt_input", "invalid_input", "unsupported_language", "unknown_tool", "tool_error", "timeout", "actor_died"]


class ToolFailure(BaseModel):
    """A tool call that produced no output, and why. Goes back to the LLM and into the answer."""

    model_config = ConfigDict(frozen=True)
    tool: str
    case_id: str
    kind: FailureKind
    message: str
    field: str | None = None
    retried: int = 0


ToolResult = ClassifierOutput | ToolFailure


class ToolRunner(Protocol):
    def run(self, requests: Sequence[tuple[str, CaseInput]], timeout_s: float | None = None) -> list[ToolResult]: ...

    def close(self) -> None: ...


def failure_from(tool: str, case_id: str, err: ToolInputError) -> ToolFailure:
    return ToolFailure(tool=tool, case_id=case_id, kind=err.kind, message=str(err), field=err.field)


class InProcessRunner:
    """Runs tools in this process: one thread per tool, one batched forward pass per tool.

    `tool_factory(name)` builds a tool (default: the shared instances from the registry); tests pass
    fakes. A tool that raises something other than ToolInputError is a bug in that tool: it is
    logged with its traceback and reported as `tool_error`, so the rest of the case still runs.
    """

    def __init__(self, tool_factory: Callable[[str], object] | None = None, timeout_s: float = 120.0):
        self._factory = tool_factory or _shared_tool
        self._timeout_s = timeout_s
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="mmdx-tool")
        self.last_latency_s: dict[str, float] = {}

    def _run_tool(self, name: str, inputs: list[CaseInput]) -> list[ToolResult]:
        t0 = time.perf_counter()
        try:
            tool = self._factory(name)
        except ToolInputError as e:
            return [failure_from(name, i.case.case_id, e) for i in inputs]
        try:
            return run_batch(name, tool, inputs)
        finally:
            self.last_latency_s[name] = time.perf_counter() - t0

    def run(self, requests: Sequence[tuple[str, CaseInput]], timeout_s: float | None = None) -> list[ToolResult]:
        timeout = self._timeout_s if timeout_s is None else timeout_s
        by_tool: dict[str, list[int]] = defaultdict(list)
        for idx, (name, _) in enumerate(requests):
            by_tool[name].append(idx)
        futures = {name: self._pool.submit(self._run_tool, name, [requests[i][1] for i in idxs]) for name, idxs in by_tool.items()}
        results: list[ToolResult | None] = [None] * len(requests)
        deadline = time.monotonic() + timeout
        for name, fut in futures.items():
            idxs = by_tool[name]
            try:
                outs = fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                outs = [ToolFailure(tool=name, case_id=requests[i][1].case.case_id, kind="timeout",
                                    message=f"{name} did not answer within {timeout:.0f}s") for i in idxs]
            for i, o in zip(idxs, outs):
                results[i] = o
        return results  # type: ignore[return-value]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def failures(tool: str, inputs: Sequence[CaseInput], kind: FailureKind, message: str, retried: int = 0) -> list[ToolFailure]:
    """The same failure for each of `inputs`."""
    return [ToolFailure(tool=tool, case_id=i.case.case_id, kind=kind, message=message, retried=retried) for i in inputs]


def guarded(name: str, inputs: Sequence[CaseInput], run: Callable[[], list], what: str = "batch") -> list:
    """`run()`'s outputs for `inputs`, one per input. An exception (a tool returns per-case
    ToolInputErrors, it does not raise them from `batch`) is a bug in tool `name`: it is logged with
    its traceback and every input gets a `tool_error` failure, as does a wrong number of outputs, so
    one tool's bug never sinks the rest of a case."""
    try:
        outs = run()
    except Exception as e:  # noqa: BLE001 - a tool bug fails these inputs; it is logged, not hidden
        log.exception("tool %s raised", name)
        return failures(name, inputs, "tool_error", f"{type(e).__name__}: {e}")
    if len(outs) != len(inputs):
        return failures(name, inputs, "tool_error", f"{name}.{what} returned {len(outs)} results for {len(inputs)} inputs")
    return list(outs)


def typed(name: str, inputs: Sequence[CaseInput], outs: list) -> list[ToolResult]:
    """Outputs with each ToolInputError (per-case bad input) turned into its ToolFailure."""
    return [failure_from(name, i.case.case_id, o) if isinstance(o, ToolInputError) else o for i, o in zip(inputs, outs)]


def run_batch(name: str, tool, inputs: Sequence[CaseInput]) -> list[ToolResult]:
    """Tool `name` on `inputs` as typed results, in order: `tool.batch` when it has one (one
    forward pass), else one call per input. Never raises for a tool's fault (see `guarded`). Every
    runner calls tools through this."""
    def call_each() -> list:
        outs: list = []
        for inp in inputs:
            try:
                outs.append(tool(inp))
            except ToolInputError as e:
                outs.append(e)
        return outs

    return typed(name, inputs, guarded(name, inputs, lambda: tool.batch(list(inputs)) if hasattr(tool, "batch") else call_each()))


def _shared_tool(name: str):
    from mmdx import tools  # fills the registry

    return tools.get(name) if name in registry.names() else registry.build(name)
