"""The patient case: the one input type every tool, the agent and the workflows share.

A `PatientCase` holds any subset of modalities: a chest X-ray (a file reference, never pixels),
an irregular long-format series of labs and vitals, clinical notes, demographics. It is frozen and
round-trips through JSON. Values arrive in any accepted unit and are stored in the canonical unit of
`core/units.py`, keeping what arrived (`original_value`, `original_unit`) so nothing is lost.
"""
from __future__ import annotations

import hashlib
import json
import math
from datetime import datetime
from enum import Enum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mmdx.core.errors import CaseValidationError
from mmdx.core.labels import DIAGNOSES, IMAGING_FINDINGS
from mmdx.core.units import VARIABLES, canonical_variable, to_canonical

SCHEMA_VERSION = 1
MAX_NOTE_CHARS = 200_000  # longer notes are rejected, not truncated silently
MAX_MEASUREMENTS = 100_000


class Modality(str, Enum):
    cxr = "cxr"
    labs = "labs"  # labs and vital signs, one irregular series
    notes = "notes"


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Demographics(_Frozen):
    age: float = Field(ge=0, le=120, allow_inf_nan=False, description="Age in years.")
    sex: Literal["female", "male", "other", "unknown"] = "unknown"


class ChestXray(_Frozen):
    """A reference to a chest radiograph file (PNG, JPEG or DICOM). Relative paths resolve against
    the directory of the case file."""

    path: str = Field(min_length=1)
    view: Literal["PA", "AP", "LATERAL", "UNKNOWN"] = "UNKNOWN"
    format: Literal["png", "jpeg", "dicom"] | None = None  # inferred from the suffix when absent
    acquired_at: datetime | None = None
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-f]{64}$")
    metadata: dict[str, str] = Field(default_factory=dict)  # e.g. {"synthetic": "true", "source": ...}

    @model_validator(mode="after")
    def _infer_format(self):
        if self.format is None:
            suffix = Path(self.path).suffix.lower()
            fmt = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".dcm": "dicom", ".dicom": "dicom"}.get(suffix)
            if fmt is None:
                raise ValueError(f"cannot infer image format from {self.path!r}; set format to png, jpeg or dicom")
            object.__setattr__(self, "format", fmt)
        return self


class Measurement(_Frozen):
    """One lab or vital-sign value at one time. Stored in the canonical unit."""

    time: datetime
    variable: str
    value: float = Field(allow_inf_nan=False)
    unit: str
    original_value: float | None = Field(default=None, allow_inf_nan=False)
    original_unit: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _canonicalise(cls, data):
        if not isinstance(data, dict):
            return data
        data = dict(data)
        name = data.get("variable")
        if not isinstance(name, str):
            return data  # the field validator reports the type error
        canon = canonical_variable(name)
        if canon is None:
            raise ValueError(f"unknown variable {name!r}; known: {', '.join(sorted(VARIABLES))}")
        data["variable"] = canon
        value, unit = data.get("value"), data.get("unit")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(unit, str):
            if not math.isfinite(value):
                raise ValueError(f"{canon} value must be a finite number, got {value}")
            spec = VARIABLES[canon]
            if unit.strip() != spec.unit:
                data.setdefault("original_value", value)
                data.setdefault("original_unit", unit)
                data["value"] = to_canonical(canon, value, unit)
                data["unit"] = spec.unit
        return data

    @model_validator(mode="after")
    def _plausible(self):
        spec = VARIABLES[self.variable]
        if self.unit != spec.unit:
            raise ValueError(f"unit {self.unit!r} is not canonical for {self.variable} ({spec.unit})")
        if not (spec.lo <= self.value <= spec.hi):
            shown = f"{self.original_value} {self.original_unit} -> " if self.original_unit else ""
            raise ValueError(
                f"impossible value for {self.variable}: {shown}{self.value:g} {spec.unit} "
                f"(possible range {spec.lo:g}-{spec.hi:g} {spec.unit}; wrong unit?)"
            )
        return self


class Note(_Frozen):
    time: datetime | None = None
    kind: str = Field(default="clinical_note", min_length=1, max_length=64)  # chief_complaint, subjective, radiology_report...
    text: str = Field(max_length=MAX_NOTE_CHARS)

    @field_validator("text")
    @classmethod
    def _not_empty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("note text is empty")
        return v


class CaseLabels(_Frozen):
    """Ground truth, when known. Never shown to a model as input."""

    diagnoses: tuple[str, ...] = ()
    findings: tuple[str, ...] = ()
    source: str = ""  # where the labels come from, e.g. "clinosim ground truth (synthetic)"
    noisy: bool = False  # True when the label is known to be a simulated misdiagnosis

    @field_validator("diagnoses")
    @classmethod
    def _known_dx(cls, v):
        bad = [d for d in v if d not in DIAGNOSES]
        if bad:
            raise ValueError(f"unknown diagnoses {bad}; known: {list(DIAGNOSES)}")
        return v

    @field_validator("findings")
    @classmethod
    def _known_findings(cls, v):
        bad = [d for d in v if d not in IMAGING_FINDINGS]
        if bad:
            raise ValueError(f"unknown findings {bad}; known: {list(IMAGING_FINDINGS)}")
        return v


class PatientCase(_Frozen):
    schema_version: int = SCHEMA_VERSION
    case_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9._:-]+$")
    demographics: Demographics
    cxr: ChestXray | None = None
    measurements: tuple[Measurement, ...] = Field(default=(), max_length=MAX_MEASUREMENTS)
    notes: tuple[Note, ...] = ()
    labels: CaseLabels | None = None
    origin: str = ""  # provenance: "synthetic: clinosim 0.6.5 seed 7", "user upload", ...
    base_dir: str | None = Field(default=None, exclude=True)  # where relative image paths resolve

    @model_validator(mode="after")
    def _times(self):
        times = [m.time for m in self.measurements]
        if times and max(times) - min(times) > (datetime(2000, 1, 1) - datetime(1990, 1, 1)):
            raise ValueError("measurement times span more than 10 years; check the timestamps")
        return self

    @property
    def modalities(self) -> frozenset[Modality]:
        present = set()
        if self.cxr is not None:
            present.add(Modality.cxr)
        if self.measurements:
            present.add(Modality.labs)
        if self.notes:
            present.add(Modality.notes)
        return frozenset(present)

    def image_path(self) -> Path | None:
        if self.cxr is None:
            return None
        p = Path(self.cxr.path)
        if not p.is_absolute() and self.base_dir:
            p = Path(self.base_dir) / p
        return p

    def without(self, *modalities: Modality | str) -> "PatientCase":
        """A copy with the named modalities removed (for 'what if the X-ray were missing?')."""
        drop = {Modality(m) for m in modalities}
        update = {}
        if Modality.cxr in drop:
            update["cxr"] = None
        if Modality.labs in drop:
            update["measurements"] = ()
        if Modality.notes in drop:
            update["notes"] = ()
        return self.model_copy(update=update)

    def inputs_digest(self) -> str:
        """sha256 over the model inputs (labels excluded): what audit logs record instead of content."""
        payload = self.model_dump(mode="json", exclude={"labels", "base_dir"})
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    # ---- JSON round trip
    def to_json(self) -> str:
        return self.model_dump_json(indent=2, exclude={"base_dir"})

    @classmethod
    def from_json(cls, text: str | bytes, base_dir: str | Path | None = None) -> "PatientCase":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise CaseValidationError([("<file>", f"not valid JSON: {e}")]) from e
        return cls.from_dict(data, base_dir=base_dir)

    @classmethod
    def from_dict(cls, data, base_dir: str | Path | None = None) -> "PatientCase":
        if not isinstance(data, dict):
            raise CaseValidationError([("<case>", f"expected a JSON object, got {type(data).__name__}")])
        if base_dir is not None:
            data = {**data, "base_dir": str(base_dir)}
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            raise CaseValidationError.from_pydantic(e) from e

    @classmethod
    def load(cls, path: str | Path) -> "PatientCase":
        path = Path(path)
        try:
            raw = path.read_bytes()
        except OSError as e:
            raise CaseValidationError([("<file>", f"cannot read {path}: {e.strerror}")]) from e
        return cls.from_json(raw, base_dir=path.parent.resolve())

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)  # atomic: a killed process never leaves half a case
        return path
