"""The tool protocol: what every modality tool is, to Python, to the CLI and to the LLM.

A tool is a class with a `name`, pydantic `Input` and `Output` models, what it needs of a case and
`__call__(Input) -> Output`. Its docstring is its description for the LLM, written once:
`describe(tool)` builds what the LLM sees from the docstring and the schemas. Tools raise
`ToolInputError` subclasses (core/errors.py) for bad input; every other exception is a bug.

What a tool needs, declared as class variables:
- `requires`: modalities that must all be present (cxr needs the image);
- `accepts` + `min_modalities`: at least that many of those modalities present (the fused model:
  two or more of cxr, labs, notes); `requires_of` says both in words;
- `depends_on`: tools whose outputs it reads. A caller runs those first with `with_encoding=True`
  (their outputs then carry an `Encoding`, the tokens the fused model reads, computed in the same
  forward pass) and hands the outputs over in `FusedInput.upstream`, so no encoder runs twice.
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from mmdx.core.case import Modality, PatientCase


class CaseInput(BaseModel):
    """Input of the modality tools: the case, bound by the caller (the LLM never writes it)."""

    model_config = ConfigDict(frozen=True)
    case: PatientCase
    with_encoding: bool = False  # also return the encoder's tokens (for a tool that depends on this one)


@dataclass(frozen=True)
class Encoding:
    """A modality encoder's tokens for one case: what the fused model reads. Travels with the
    output in memory and through Ray; never serialised to JSON (large, and no use to a reader)."""

    tool: str
    weights_sha256: str
    tokens: np.ndarray  # (T, D) float16, the real tokens only


class Provenance(BaseModel):
    """Where a result came from: enough to reproduce and audit it."""

    model_config = ConfigDict(frozen=True, protected_namespaces=())
    model_id: str
    weights_sha256: str
    calibration: str = ""  # e.g. "per-label temperature scaling on the validation split"
    temperatures: tuple[float, ...] = ()  # per label, in the order of the output's scores
    training_data: str = ""  # e.g. "synthetic: clinosim cohort seed 7 (digest ...)"
    device: str = "cpu"
    test_macro_auroc: float | None = None  # measured on the model's test split (its card): how sources are chosen


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
    encoding: Any = Field(default=None, exclude=True, repr=False)  # Encoding, when the input asked for it

    def probability(self, label: str) -> float:
        for s in self.scores:
            if s.label == label:
                return s.probability
        raise KeyError(label)

    def positives(self) -> list[LabelScore]:
        return sorted((s for s in self.scores if s.positive), key=lambda s: -s.probability)


class FusedInput(BaseModel):
    """Input of a tool that reads other tools' outputs: the case and those outputs by tool name
    (each carrying its `Encoding`). A modality whose tool failed or did not run is simply absent."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)
    case: PatientCase
    upstream: dict[str, ClassifierOutput] = Field(default_factory=dict)


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
    return f"{first} Requires: {requires_of(cls)}."


def requires_of(tool: type | object) -> str:
    """What the tool needs, in words: "cxr", "labs", "2 or more of cxr, labs, notes"."""
    cls = tool if isinstance(tool, type) else type(tool)
    parts = [", ".join(sorted(m.value for m in cls.requires))] if cls.requires else []
    accepts, k = getattr(cls, "accepts", frozenset()), getattr(cls, "min_modalities", 0)
    if accepts and k:
        parts.append(f"{k} or more of {', '.join(sorted(m.value for m in accepts))}")
    return "; ".join(parts) or "nothing"


def can_run(tool: type | object, case: PatientCase) -> bool:
    cls = tool if isinstance(tool, type) else type(tool)
    accepts, k = getattr(cls, "accepts", frozenset()), getattr(cls, "min_modalities", 0)
    return cls.requires <= case.modalities and len(accepts & case.modalities) >= k


def check_requires(tool: type | object, case: PatientCase) -> None:
    """Raise ModalityAbsent when the case lacks what the tool needs."""
    from mmdx.core.errors import ModalityAbsent

    cls = tool if isinstance(tool, type) else type(tool)
    missing = sorted(m.value for m in cls.requires - case.modalities)
    if missing:
        raise ModalityAbsent(f"case {case.case_id} has no {', '.join(missing)}; {cls.name} cannot run", field=missing[0])
    if not can_run(cls, case):
        have = sorted(m.value for m in case.modalities) or ["none"]
        raise ModalityAbsent(f"case {case.case_id} has {', '.join(have)}; {cls.name} needs {requires_of(cls)}",
                             field="modalities")


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
