"""The tool protocol: what every modality tool is, to Python, to the CLI and to the LLM.

A tool is a class with a `name`, pydantic `Input` and `Output` models, the modalities it `requires`
and `__call__(Input) -> Output`. Its docstring is its description for the LLM, written once:
`describe(tool)` builds what the LLM sees from the docstring and the schemas. Tools raise
`ToolInputError` subclasses (core/errors.py) for bad input; every other exception is a bug.
"""
from __future__ import annotations

import inspect
from typing import ClassVar, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from mmdx.core.case import Modality, PatientCase


class CaseInput(BaseModel):
    """Input of the modality tools: the case, bound by the caller (the LLM never writes it)."""

    model_config = ConfigDict(frozen=True)
    case: PatientCase


class Provenance(BaseModel):
    """Where a result came from: enough to reproduce and audit it."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())
    model_id: str
    weights_sha256: str
    calibration: str = ""  # e.g. "per-label temperature scaling on the validation split"
    temperatures: tuple[float, ...] = ()  # per label, in the order of the output's scores
    training_data: str = ""  # e.g. "synthetic: clinosim cohort seed 7 (digest ...)"
    device: str = "cpu"


class LabelScore(BaseModel):
    model_config = ConfigDict(frozen=True)
    label: str
    probability: float = Field(ge=0, le=1)
    threshold: float = Field(ge=0, le=1)

    @property
    def positive(self) -> bool:
        return self.probability >= self.threshold


class ClassifierOutput(BaseModel):
    """The typed output of a classifier tool."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())
    tool: str
    case_id: str
    target: str  # "diagnoses" or "imaging_findings"
    scores: tuple[LabelScore, ...]
    embedding: tuple[float, ...] = ()  # pooled representation, the handle fusion consumes
    ood_score: float = 0.0  # 0 = like the training data; > 1 = unlike it (see the tool's docstring)
    ood_flag: bool = False
    provenance: Provenance
    notes: tuple[str, ...] = ()  # visible degradations ("3 lab values in unknown variables ignored")

    def probability(self, label: str) -> float:
        for s in self.scores:
            if s.label == label:
                return s.probability
        raise KeyError(label)

    def positives(self) -> list[LabelScore]:
        return sorted((s for s in self.scores if s.positive), key=lambda s: -s.probability)


@runtime_checkable
class Tool(Protocol):
    name: ClassVar[str]
    Input: ClassVar[type[BaseModel]]
    Output: ClassVar[type[BaseModel]]
    requires: ClassVar[frozenset[Modality]]

    def __call__(self, inp: BaseModel) -> BaseModel: ...


@runtime_checkable
class StagedTool(Protocol):
    """A tool whose `batch` is two stages a runner may overlap (optional; see tools.ray_runner).

    `prepare(inputs)` is per-input CPU work (decode, resize, tokenise): it returns one entry per
    input, the prepared item or the ToolInputError that stops it, and may run in several threads on
    parts of a batch. `infer(inputs, prepared)` runs the batched forward pass and returns what
    `batch(inputs)` would. `batch(inputs) == infer(inputs, prepare(inputs))`.
    """

    def prepare(self, inputs: list) -> list: ...

    def infer(self, inputs: list, prepared: list) -> list: ...


def partition_prepared(prepared: list) -> tuple[list, list[int]]:
    """For a StagedTool's `infer`: (results with each ToolInputError from `prepare` in place, else
    None; indices of the prepared items to run). The twin of `partition_runnable`."""
    from mmdx.core.errors import ToolInputError

    results = [p if isinstance(p, ToolInputError) else None for p in prepared]
    return results, [i for i, r in enumerate(results) if r is None]


def describe(tool: type | object) -> str:
    """The tool's description for the LLM: first paragraph of its docstring + what it requires."""
    cls = tool if isinstance(tool, type) else type(tool)
    doc = inspect.getdoc(cls) or ""
    first = doc.split("\n\n")[0].replace("\n", " ").strip()
    req = ", ".join(sorted(m.value for m in cls.requires)) or "nothing"
    return f"{first} Requires: {req}."


def check_requires(tool: type | object, case: PatientCase) -> None:
    """Raise ModalityAbsent when the case lacks what the tool needs."""
    from mmdx.core.errors import ModalityAbsent

    cls = tool if isinstance(tool, type) else type(tool)
    missing = sorted(m.value for m in cls.requires - case.modalities)
    if missing:
        raise ModalityAbsent(f"case {case.case_id} has no {', '.join(missing)}; {cls.name} cannot run", field=missing[0])


def partition_runnable(tool: type | object, inputs: list) -> tuple[list, list[int]]:
    """For a batch of CaseInputs: (results with a ModalityAbsent in place for each input the tool
    cannot take, else None; indices of the inputs to run). Every tool's `batch` starts this way."""
    from mmdx.core.errors import ToolInputError

    results: list = [None] * len(inputs)
    todo: list[int] = []
    for i, inp in enumerate(inputs):
        try:
            check_requires(tool, inp.case)
            todo.append(i)
        except ToolInputError as e:
            results[i] = e
    return results, todo
