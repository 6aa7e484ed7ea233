"""Build any registered tool on weights kept under one folder (your own training runs, or tests).

    runner = RayRunner(tool_factory=WeightsFactory("runs/w"))   # runs/w/cxr, runs/w/labs, runs/w/fused...

Picklable, so it travels to Ray actors. A tool whose folder is missing under the root falls back to the
shipped weights only when `fallback` is set; otherwise loading fails with a WeightsError naming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class WeightsFactory:
    root: str
    fallback: bool = False

    def __call__(self, name: str, device: str = "cpu"):
        from mmdx import tools  # noqa: F401 - fills the registry (also in a Ray worker)
        from mmdx.core import registry

        cls = registry.tool_class(name)
        folder = Path(self.root) / name
        if not folder.is_dir() and self.fallback:
            return cls(device=device)
        return cls(folder, device=device)
