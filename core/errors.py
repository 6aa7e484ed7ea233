"""Typed errors shared by every layer.

Bad input from a user or the LLM becomes one of these, with the offending field named; a bug raises
whatever it raises. Nothing here is swallowed into a dict.
"""
from __future__ import annotations


class MmdxError(Exception):
    """Base of every error mmdx raises on purpose."""


class CaseValidationError(MmdxError):
    """A patient case (or part of one) failed validation.

    `problems` holds (field, message) pairs: the field is a dotted path such as
    `measurements.3.unit`, so a user can find the offending value.
    """

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {m}" for f, m in problems))

    @classmethod
    def from_pydantic(cls, exc) -> "CaseValidationError":
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e.get("loc", ())) or "<case>"
            problems.append((loc, e.get("msg", "invalid")))
        return cls(problems)


class ToolInputError(MmdxError):
    """A tool cannot run on this input. The agent sends these back to the LLM as a message."""

    kind = "invalid_input"

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(message)


class ModalityAbsent(ToolInputError):
    """The case lacks the modality the tool needs: the tool refuses rather than guesses."""

    kind = "modality_absent"


class CorruptInput(ToolInputError):
    """The modality is present but unreadable (corrupt image, NaN series, empty note)."""

    kind = "corrupt_input"


class UnknownTool(ToolInputError):
    """A tool name that is not in the registry (for example one the LLM made up)."""

    kind = "unknown_tool"


class WeightsError(MmdxError):
    """Model weights are missing or do not match their recorded digest."""
