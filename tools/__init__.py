"""The modality tools: typed Python APIs and LLM tools at once.

    from mmdx import tools
    tools.registry()                         # {"cxr": CxrTool, "labs": LabsTool, "notes": NotesTool}
    out = tools.get("cxr")(CaseInput(case=case))
"""
from __future__ import annotations

from functools import lru_cache

from mmdx.core import registry as _registry
from mmdx.core.tool import CaseInput, ClassifierOutput, describe
from mmdx.tools.cxr import CxrTool
from mmdx.tools.fused import FusedTool, StudentCxrTool, StudentLabsTool, StudentNotesTool
from mmdx.tools.labs import LabsTool
from mmdx.tools.notes import NotesTool

for _cls in (CxrTool, LabsTool, NotesTool, FusedTool, StudentCxrTool, StudentLabsTool, StudentNotesTool):
    _registry.register(_cls)


def registry() -> dict[str, type]:
    """Every registered tool class by name."""
    return {n: _registry.tool_class(n) for n in _registry.names()}


@lru_cache(maxsize=None)
def get(name: str):
    """The shared instance of tool `name` (models load lazily, once). Unknown names raise UnknownTool."""
    return _registry.build(name)


__all__ = ["CaseInput", "ClassifierOutput", "CxrTool", "FusedTool", "LabsTool", "NotesTool", "StudentCxrTool",
           "StudentLabsTool", "StudentNotesTool", "describe", "get", "registry"]
