"""The patient case: the one input type every tool, the agent and the workflows share.

A `PatientCase` holds any subset of modalities: a chest X-ray (a file reference, never pixels),
an irregular long-format series of labs and vitals, clinical notes, demographics. It is frozen and
round-trips through JSON. Values arrive in any accepted unit and are stored in the canonical unit of
`core/units.py`, keeping what arrived (`original_value`, `original_unit`) so nothing is lost.

Why one file of ~400 lines: it is the case boundary, the schema with the validators that guard it
(units, plausible values, image digests, loading from files); a reader checking what a case may hold
finds all of it here. Units and notation parsing are already their own modules.
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

from mmdx.core.errors import CaseValidationError, FieldValueError
from mmdx.core.labels import DIAGNOSES, IMAGING_FINDINGS
from mmdx.core.notation import parse_specimen, read_entry
from mmdx.core.units import VARIABLES, to_canonical
from mmdx.core.vocabulary import Specimen

SCHEMA_VERSION = 2  # 2: measurements carry a specimen; other_results
KNOWN_SCHEMA_VERSIONS = (1, 2)  # files of each load; an older mmdx cannot read a newer file
MAX_NOTE_CHARS = 200_000  # longer notes are rejected, not truncated silently
MAX_MEASUREMENTS = 100_000


class Modality(str, Enum):
    cxr = "cxr"
    labs = "labs"  # labs and vital signs, one irregular series
    notes = "notes"


# The PatientCase field that holds each modality (what `without` clears, what a probe swaps).
MODALITY_FIELD: dict[Modality, str] = {Modality.cxr: "cxr", Modality.labs: "measurements", Modality.notes: "notes"}


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
    """One lab or vital-sign value of a modelled variable at one time, in the canonical unit, with its
    specimen (the variable's default when none is written; None for vital signs).

    Built from notation as written (core/notation.py): aliases, units (core/units.py), specimen
    words, ordinal dipstick grades. A test no model reads is not a Measurement: `PatientCase.from_dict`
    keeps it as an `OtherResult`; built directly, it is a FieldValueError naming the field."""

    time: datetime
    variable: str
    value: float = Field(allow_inf_nan=False)
    unit: str
    specimen: Specimen | None = None
    original_value: float | None = Field(default=None, allow_inf_nan=False)
    original_unit: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _canonicalise(cls, data):
        if not isinstance(data, dict) or not isinstance(data.get("variable"), str):
            return data  # the field validators report the type error
        spec = VARIABLES.get(data["variable"])
        if not _already_canonical(data):  # the common case (canonical name, unit, specimen) skips the notation reader
            readings = read_entry(data)
            if len(readings) > 1:
                raise FieldValueError(f"{data['variable']} holds two values; a case splits it into systolic_bp and "
                                      "diastolic_bp (PatientCase.from_dict)", field="value")
            if readings[0].other is not None:
                other = readings[0].other
                raise FieldValueError(f"{data['variable']!r} is not a measurement of a modelled variable "
                                      f"({other['why']}); a case keeps it under other_results",
                                      field="variable" if "variable" in other["why"] or "test" in other["why"] else
                                      "specimen" if other.get("specimen") else "value")
            data = readings[0].measurement
            spec = VARIABLES[data["variable"]]
        value, unit = data.get("value"), data.get("unit")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and isinstance(unit, str):
            if not math.isfinite(value):
                raise FieldValueError(f"{spec.name} value must be a finite number, got {value}", field="value")
            if unit.strip() != spec.unit:
                data.setdefault("original_value", value)
                data.setdefault("original_unit", unit)
                data["value"] = to_canonical(spec.name, value, unit)
                data["unit"] = spec.unit
        if data.get("specimen") is None and spec.default_specimen is not None:
            data["specimen"] = spec.default_specimen.value
        return data

    @model_validator(mode="after")
    def _plausible(self):
        spec = VARIABLES[self.variable]
        if self.unit != spec.unit:
            raise FieldValueError(f"unit {self.unit!r} is not canonical for {self.variable} ({spec.unit})", field="unit")
        if self.specimen is not None and self.specimen not in spec.specimens:
            raise FieldValueError(f"{self.specimen.value} is not a specimen of {self.variable} "
                                  f"({', '.join(s.value for s in spec.specimens) or 'a vital sign: none'})", field="specimen")
        if not (spec.lo <= self.value <= spec.hi):
            shown = f"{self.original_value} {self.original_unit} -> " if self.original_unit else ""
            raise FieldValueError(
                f"impossible value for {self.variable}: {shown}{self.value:g} {spec.unit} "
                f"(possible range {spec.lo:g}-{spec.hi:g} {spec.unit}; wrong unit?)", field="value")
        return self


class OtherResult(_Frozen):
    """A result no model reads: a qualitative one ("WBC elevated", "within normal limits"), one beyond
    the reportable range ("<0.01"), one from another specimen (urine pH, CSF glucose) or a test with
    no model input (creatine kinase, spirometry, urine specific gravity). Kept as written, listed in
    the answer as present, not read by any model."""

    name: str = Field(min_length=1, max_length=200)  # as written
    value: float | None = Field(default=None, allow_inf_nan=False)
    text: str | None = Field(default=None, min_length=1, max_length=2000)  # a result in words, as written
    unit: str | None = Field(default=None, max_length=64)
    specimen: Specimen | None = None
    time: datetime | None = None
    code: str | None = Field(default=None, max_length=64)  # LOINC, when known
    why: str = ""  # why no model reads it

    @field_validator("specimen", mode="before")
    @classmethod
    def _specimen_word(cls, v):
        return parse_specimen(v) if isinstance(v, str) else v

    @model_validator(mode="after")
    def _has_result(self):
        if self.value is None and self.text is None:
            raise FieldValueError(f"result {self.name!r} has neither a value nor a text", field="value")
        return self

    def describe(self) -> str:
        shown = self.text if self.text is not None else f"{self.value:g}"
        unit = f" {self.unit}" if self.unit and not (self.text and self.unit in self.text) else ""
        return f"{self.name} {shown}{unit}".strip()


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
    other_results: tuple[OtherResult, ...] = Field(default=(), max_length=MAX_MEASUREMENTS)  # read by no model, kept
    notes: tuple[Note, ...] = ()
    labels: CaseLabels | None = None
    origin: str = ""  # provenance: "synthetic: clinosim 0.6.5 seed 7", "user upload", ...
    base_dir: str | None = Field(default=None, exclude=True)  # where relative image paths resolve

    @field_validator("schema_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v not in KNOWN_SCHEMA_VERSIONS:
            raise ValueError(f"schema_version {v} is not one this mmdx reads ({', '.join(map(str, KNOWN_SCHEMA_VERSIONS))})"
                             + ("; a newer mmdx wrote it" if v > SCHEMA_VERSION else ""))
        return v

    @model_validator(mode="after")
    def _times(self):
        times = [m.time for m in self.measurements]
        if len({t.tzinfo is None for t in times}) > 1:
            raise ValueError("measurement times mix times with and without a time zone; give every time a zone or none")
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

    def not_read(self) -> str | None:
        """The line the answer shows for the other results: present, not read by any model."""
        if not self.other_results:
            return None
        return "present, not read by any model: " + "; ".join(r.describe() for r in self.other_results)

    def image_path(self) -> Path | None:
        if self.cxr is None:
            return None
        p = Path(self.cxr.path)
        if not p.is_absolute() and self.base_dir:
            p = Path(self.base_dir) / p
        return p

    def image_sha256(self) -> str | None:
        """sha256 of the X-ray file's bytes (None without an X-ray or when the file cannot be read)."""
        path = self.image_path()
        if path is None:
            return None
        try:
            return _file_sha256(path)
        except OSError:
            return None

    def verify_image(self) -> None:
        """When the case records the image's sha256, the file must have it: a CaseValidationError
        naming the file otherwise. A missing file is the tools' to report (CorruptInput)."""
        if self.cxr is None or self.cxr.sha256 is None:
            return
        actual = self.image_sha256()
        if actual is not None and actual != self.cxr.sha256:
            raise CaseValidationError([("cxr.sha256", f"{self.image_path()} has sha256 {actual[:16]}..., the case records "
                                                      f"{self.cxr.sha256[:16]}...: the image file changed or is another file")])

    def without(self, *modalities: Modality | str) -> "PatientCase":
        """A copy with the named modalities removed (for 'what if the X-ray were missing?')."""
        drop = {Modality(m) for m in modalities}
        return self.model_copy(update={MODALITY_FIELD[m]: None if m is Modality.cxr else () for m in drop})

    def inputs_digest(self) -> str:
        """sha256 over the model inputs (labels excluded): what audit logs record instead of content.
        The X-ray enters by its bytes, not its path: the same image under another name has the same
        digest, another image under the same name does not."""
        payload = self.model_dump(mode="json", exclude={"labels", "base_dir"})
        if self.cxr is not None:
            digest = self.image_sha256()
            payload["cxr"] = {**payload["cxr"], "path": None,
                              "image_sha256": digest or f"unreadable: {self.image_path()}"}
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
        """The case boundary: a case as written (JSON) -> a validated case, or a CaseValidationError
        whose fields name the input (`measurements.3.specimen`). Measurements are read as clinicians
        write them (core/notation.py): blood pressure "145/95" becomes two measurements, and results
        no model reads move to `other_results`, never dropped. A recorded image sha256 is checked."""
        if not isinstance(data, dict):
            raise CaseValidationError([("<case>", f"expected a JSON object, got {type(data).__name__}")])
        data = dict(data)
        if base_dir is not None:
            data["base_dir"] = str(base_dir)
        origin_index = None
        if isinstance(data.get("measurements"), list):
            data, origin_index = _route_measurements(data)
        try:
            case = cls.model_validate(data)
        except ValidationError as e:
            err = CaseValidationError.from_pydantic(e)
            if origin_index is not None:
                err = CaseValidationError([(_origin_field(f, origin_index), m) for f, m in err.problems])
            raise err from e
        case.verify_image()
        return case

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


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _already_canonical(entry: dict) -> bool:
    """A canonical variable with a number in its canonical unit and a specimen of its own (or none)."""
    spec = VARIABLES.get(entry.get("variable"))
    value, specimen = entry.get("value"), entry.get("specimen")
    return (spec is not None and entry.get("unit") == spec.unit and isinstance(value, (int, float))
            and not isinstance(value, bool) and (specimen is None or specimen in spec.specimens))


def _route_measurements(data: dict) -> tuple[dict, list[int]]:
    """`data` with its measurements read as written: (new data, the input index of each measurement)."""
    measurements, origin, others, problems = [], [], [], []
    for i, entry in enumerate(data["measurements"]):
        if not isinstance(entry, dict) or not isinstance(entry.get("variable"), str) or _already_canonical(entry):
            measurements.append(entry)  # pydantic reports the type error
            origin.append(i)
            continue
        try:
            readings = read_entry(entry)
        except FieldValueError as e:
            problems.append((f"measurements.{i}" + (f".{e.field}" if e.field else ""), str(e)))
            continue
        for r in readings:
            if r.other is not None:
                others.append(r.other)
            else:
                measurements.append(r.measurement)
                origin.append(i)
    if problems:
        raise CaseValidationError(problems)
    existing = data.get("other_results")
    data = {**data, "measurements": measurements}
    if others and (existing is None or isinstance(existing, (list, tuple))):  # junk there: pydantic reports it
        data["other_results"] = [*(existing or ()), *others]
    return data, origin


def _origin_field(field: str, origin: list[int]) -> str:
    parts = field.split(".")
    if len(parts) > 1 and parts[0] == "measurements" and parts[1].isdigit() and int(parts[1]) < len(origin):
        parts[1] = str(origin[int(parts[1])])
    return ".".join(parts)
