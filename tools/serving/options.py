"""Choosing a runner from the command line: `--runner inprocess|ray|serve` and `--ray-pools`.

    runner = open_runner("ray", tool_names=["cxr", "labs"], address=None, pool_sizes={"cxr": 2})

`open_runner` is the one place the runner names are turned into runners; `mmdx diagnose/demo/chat/
serve` (agent/cli.py) and `mmdx workflow score` call it. Only the runner asked for is imported, so
`--runner inprocess` needs neither Ray nor Ray Serve installed.
"""
from __future__ import annotations

from typing import Sequence

from mmdx.core import registry

RUNNERS = ("inprocess", "ray", "serve")  # in-process threads; hand-built Ray actors; Ray Serve deployments


def parse_pool_sizes(text: str) -> dict[str, int]:
    """'cxr=4,notes=2' -> {'cxr': 4, 'notes': 2} (actors or replicas per tool); '' -> {}. Raises ValueError."""
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


def open_runner(runner: str, tool_names: Sequence[str] | None = None, address: str | None = None,
                pool_sizes: dict[str, int] | None = None, timeout_s: float | None = None):
    """The runner named `runner` (one of RUNNERS) for `tool_names` (default: every registered tool).
    `address` and `pool_sizes` apply to the Ray runners; `timeout_s` is the default per-call timeout
    (None: the runner's own default). The caller closes it."""
    timeout = {} if timeout_s is None else {"timeout_s": timeout_s}
    if runner == "inprocess":
        from mmdx.tools.runner import InProcessRunner

        return InProcessRunner(**timeout)
    ray_timeout = {} if timeout_s is None else {"request_timeout_s": timeout_s}
    if runner == "ray":
        from mmdx.tools.serving.ray_runner import RayRunner

        return RayRunner(tool_names=tool_names, address=address, pool_sizes=pool_sizes, **ray_timeout)
    if runner == "serve":
        from mmdx.tools.serving.serve_runner import ServeRunner

        return ServeRunner(tool_names=tool_names, address=address, pool_sizes=pool_sizes, **ray_timeout)
    raise ValueError(f"unknown runner {runner!r}; known: {', '.join(RUNNERS)}")
