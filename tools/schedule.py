"""Run a set of tools on one case in dependency order, through any runner, without running an
encoder twice.

    results = run_with_dependencies(runner, case, ["labs", "fused"], previous={})

A tool that `depends_on` others (the fused model reads the encoders' tokens) runs after them. The
encoders it needs run too, even when not asked for, wherever the case has their input (their outputs
come back as well, and count as evidence); they are asked `with_encoding=True` so the same forward
pass yields the tokens. Outputs already in `previous` that carry an encoding are reused, not
recomputed. Every result is a ClassifierOutput or a ToolFailure, as from the runner.
"""
from __future__ import annotations

from mmdx.core import registry
from mmdx.core.case import PatientCase
from mmdx.core.tool import CaseInput, ClassifierOutput, FusedInput, can_run
from mmdx.tools.runner import ToolResult, ToolRunner


def _deps(name: str) -> tuple[str, ...]:
    try:
        return tuple(getattr(registry.tool_class(name), "depends_on", ()))
    except Exception:  # unknown tool: the runner reports it as a typed failure
        return ()


def wants_encoding(name: str, case: PatientCase) -> bool:
    """Whether `name` should return its tokens: some registered tool that can run on the case reads them."""
    for other in registry.names():
        cls = registry.tool_class(other)
        if name in getattr(cls, "depends_on", ()) and can_run(cls, case):
            return True
    return False


def run_with_dependencies(runner: ToolRunner, case: PatientCase, names: list[str], previous: dict | None = None,
                          timeout_s: float | None = None) -> dict[str, ToolResult]:
    previous = dict(previous or {})
    dependents = [n for n in names if _deps(n)]
    # an encoder is asked for on a dependent's behalf only when its input is present: on a case without
    # a film the fused model reads the other tokens, and no "cxr failed (modality_absent)" is reported
    # for a tool nobody asked for (one named in `names` still runs, and fails typed, as asked)
    needed = [d for n in dependents for d in _deps(n) if d in registry.names() and can_run(registry.tool_class(d), case)]
    first = list(dict.fromkeys([n for n in names if not _deps(n)] + needed))
    reuse = {n for n in first if isinstance(previous.get(n), ClassifierOutput) and previous[n].encoding is not None}
    first_run = [n for n in first if n not in reuse and (n in names or n not in previous)]
    out: dict[str, ToolResult] = {}
    if first_run:
        reqs = [(n, CaseInput(case=case, with_encoding=wants_encoding(n, case))) for n in first_run]
        for n, r in zip(first_run, runner.run(reqs, timeout_s=timeout_s)):
            out[n] = r
    done = {**previous, **out}
    if dependents:
        reqs = []
        for n in dependents:
            upstream = {d: done[d] for d in _deps(n) if isinstance(done.get(d), ClassifierOutput)}
            reqs.append((n, FusedInput(case=case, upstream=upstream)))
        for n, r in zip(dependents, runner.run(reqs, timeout_s=timeout_s)):
            out[n] = r
    return out
