"""A registry of tools by name. Tools register themselves (mmdx.tools fills it on import); lower
layers never import higher ones, so core only holds the mapping and the lookup."""
from __future__ import annotations

from typing import Callable

from mmdx.core.errors import UnknownTool

_FACTORIES: dict[str, Callable[[], object]] = {}
_CLASSES: dict[str, type] = {}


def register(cls: type, factory: Callable[[], object] | None = None) -> type:
    """Register a tool class under `cls.name`; `factory` builds an instance (default: `cls()`)."""
    _CLASSES[cls.name] = cls
    _FACTORIES[cls.name] = factory or cls
    return cls


def tool_class(name: str) -> type:
    try:
        return _CLASSES[name]
    except KeyError:
        raise UnknownTool(f"unknown tool {name!r}; known: {', '.join(sorted(_CLASSES)) or 'none'}", field="tool") from None


def build(name: str) -> object:
    tool_class(name)
    return _FACTORIES[name]()


def names() -> list[str]:
    return sorted(_CLASSES)
