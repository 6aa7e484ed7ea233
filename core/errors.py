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
        """One problem per pydantic error; a `FieldValueError` raised in a model validator adds the
        field it names to the location (`measurements.3` -> `measurements.3.specimen`)."""
        problems = []
        for e in exc.errors():
            parts = [str(p) for p in e.get("loc", ())]
            err = (e.get("ctx") or {}).get("error")
            msg = e.get("msg", "invalid")
            if isinstance(err, FieldValueError):
                if err.field and (not parts or parts[-1] != err.field):
                    parts.append(err.field)
                msg = str(err)
            problems.append((".".join(parts) or "<case>", msg))
        return cls(problems)


class FieldValueError(ValueError):
    """A bad value inside a pydantic model, naming the field it is in (for a validator that sees
    the whole record, where pydantic would only know the record)."""

    def __init__(self, message: str, field: str | None = None):
        self.field = field
        super().__init__(message)


class AmbiguousSpecimen(FieldValueError):
    """A result whose specimen cannot be told (blood pH: arterial or venous?) or contradicts itself
    ("urine pH" with specimen arterial blood). Refused, never guessed."""

    def __init__(self, message: str):
        super().__init__(message, field="specimen")


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


class UnsupportedLanguage(ToolInputError):
    """A note in a language the note model was not trained to read (it reads English). Not the same
    as text addressed to an AI: nothing is wrong with the note, the model cannot read it."""

    kind = "unsupported_language"


class UnknownTool(ToolInputError):
    """A tool name that is not in the registry (for example one the LLM made up)."""

    kind = "unknown_tool"


class WeightsError(MmdxError):
    """Model weights are missing or do not match their recorded digest."""


class DatasetLayoutError(MmdxError):
    """A dataset folder that is not in the layout a command needs (for training: cases/{train,val,test}/)."""
