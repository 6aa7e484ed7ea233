"""Optional parts of mmdx and the pip extra that installs each (pyproject's optional-dependencies).

    serve = require("ray.serve", "serve")   # the module, or MissingExtra naming the extra

A module used only by an optional feature (the Ray runners, Ray Serve, training) imports its
dependency through `require`, so a missing one is one clear line, never a bare ModuleNotFoundError.
"""
from __future__ import annotations

import importlib
from types import ModuleType

from mmdx.core.errors import MmdxError

# pip extra -> what it is for (README "Quick start" and pyproject.toml say the same)
EXTRAS = {
    "ray": "running the tools in Ray actors (--runner ray)",
    "serve": "running the tools on Ray Serve deployments (--runner serve)",
    "train": "training the models (mmdx train)",
    "dev": "the test suite (./scripts/test installs it)",
}


# top-level module -> the extra that installs it, for code that imports it directly (models/train.py)
MODULES = {"ray": "ray", "accelerate": "train", "tqdm": "train"}


class MissingExtra(MmdxError, ImportError):
    """An optional dependency is not installed; the message names the pip extra that installs it."""


def require(module: str, extra: str) -> ModuleType:
    """`module`, imported; raises MissingExtra naming `extra` when it (or one of its own
    dependencies) is not installed."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as e:
        raise MissingExtra(missing_message(e.name or module, extra)) from e


def missing_message(module: str, extra: str) -> str:
    return (f"{module} is not installed; it is needed for {EXTRAS[extra]}: "
            f"pip install 'mmdx[{extra}]' (in a checkout: ./scripts/setup --extras {extra})")


def extra_for(err: ModuleNotFoundError) -> str | None:
    """The extra that installs the module `err` did not find, if it is an optional one."""
    return MODULES.get((err.name or "").split(".")[0])
