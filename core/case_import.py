"""A flat CSV or a FHIR Observation bundle of vitals and labs -> a PatientCase (`mmdx case import`).

CSV, long: one row per result, columns time, variable, value, unit and optionally specimen
(`variable` may be any name or alias; `value` may be "145/95", "elevated", "101.3 °F").
CSV, wide: a time column (time, datetime, date, timestamp, charttime) and one column per test; a
header may carry its unit, "Temp (°F)", "WBC [x10^9/L]". Demographics come from --age/--sex.

FHIR (R4 JSON): a Bundle (or a lone Observation, or a list of them). Each Observation's LOINC code
names its variable where mmdx models one (core/vocabulary.py); its text or display otherwise.
valueQuantity (UCUM `code`, else `unit`), valueString, valueCodeableConcept and components (blood
pressure panels) are read; the time is effectiveDateTime, effectivePeriod.start or issued. A
Patient resource gives sex and, with birthDate, the age at the first observation.

Everything goes through `PatientCase.from_dict`, so notation is read exactly as in a case file, and
whatever no model reads is kept in `other_results`. `import_case` returns the case and one line per
unmapped column or code, naming it and why.
"""
from __future__ import annotations

import csv
import io
import json
import re
from datetime import date, datetime
from pathlib import Path

from mmdx.core.case import PatientCase
from mmdx.core.errors import CaseValidationError

_TIME_COLUMNS = ("time", "datetime", "date_time", "date", "timestamp", "charttime", "effective", "effective_time")
_HEADER_UNIT = re.compile(r"^(?P<name>.*?)\s*[\(\[](?P<unit>[^\)\]]*)[\)\]]\s*$")


def import_case(path: str | Path, *, case_id: str | None = None, age: float | None = None, sex: str | None = None,
                fmt: str | None = None) -> tuple[PatientCase, list[str]]:
    """(case, unmapped) from a CSV or FHIR JSON file. CaseValidationError names what is wrong."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise CaseValidationError([("<file>", f"cannot read {path}: {e}")]) from e
    fmt = fmt or ("fhir" if path.suffix.lower() == ".json" else "csv")
    if fmt == "fhir":
        entries, demo, fhir_id = _from_fhir(raw, path)
    else:
        entries, demo, fhir_id = _from_csv(raw, path), {}, None
    if age is not None:
        demo["age"] = age
    if sex is not None:
        demo["sex"] = sex
    if "age" not in demo:
        raise CaseValidationError([("demographics.age", "the file gives no age: pass --age (years)")])
    cid = case_id or fhir_id or re.sub(r"[^A-Za-z0-9._:-]", "_", path.stem) or "imported"
    data = {"case_id": cid, "demographics": demo, "measurements": entries, "origin": f"imported from {path.name} ({fmt})"}
    case = PatientCase.from_dict(data, base_dir=path.parent.resolve())
    unmapped = list(dict.fromkeys(
        f"{r.name}" + (f" (LOINC {r.code})" if r.code else "") + f": {r.why}" for r in case.other_results))
    return case, unmapped


# ---- CSV

def _from_csv(raw: str, path: Path) -> list[dict]:
    try:
        rows = list(csv.reader(io.StringIO(raw)))
    except csv.Error as e:
        raise CaseValidationError([(f"{path.name}", f"not a readable CSV: {e}")]) from e
    if not rows or not any(rows[0]):
        raise CaseValidationError([(f"{path.name}", "empty CSV")])
    header = [h.strip() for h in rows[0]]
    low = [h.lower().replace(" ", "_") for h in header]
    entries = []
    if "variable" in low and "value" in low:  # long
        idx = {name: low.index(name) for name in ("time", "variable", "value", "unit", "specimen") if name in low}
        if "time" not in idx:
            raise CaseValidationError([(f"{path.name}:line 1", f"no time column; columns: {header}")])
        for line, row in enumerate(rows[1:], 2):
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise CaseValidationError([(f"{path.name}:line {line}", f"{len(row)} cells, header has {len(header)}")])
            e = {"time": row[idx["time"]].strip(), "variable": row[idx["variable"]].strip(), "value": _cell(row[idx["value"]])}
            for opt in ("unit", "specimen"):
                if opt in idx and row[idx[opt]].strip():
                    e[opt] = row[idx[opt]].strip()
            entries.append(e)
        return entries
    time_col = next((i for i, h in enumerate(low) if h in _TIME_COLUMNS), None)
    if time_col is None:
        raise CaseValidationError([(f"{path.name}:line 1", "need columns time,variable,value[,unit] (long) or a time "
                                                            f"column and one column per test (wide); columns: {header}")])
    columns = []
    for i, h in enumerate(header):
        if i == time_col or not h:
            continue
        m = _HEADER_UNIT.match(h)
        columns.append((i, m.group("name") if m else h, m.group("unit").strip() if m else None))
    for line, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise CaseValidationError([(f"{path.name}:line {line}", f"{len(row)} cells, header has {len(header)}")])
        for i, name, unit in columns:
            if row[i].strip():
                e = {"time": row[time_col].strip(), "variable": name, "value": _cell(row[i])}
                if unit:
                    e["unit"] = unit
                entries.append(e)
    return entries


def _cell(text: str):
    """A CSV cell as a number when it is one plainly, else the text (read later as notation)."""
    t = text.strip()
    try:
        return float(t) if re.fullmatch(r"[-+]?\d+(?:\.\d+)?", t) else t
    except ValueError:
        return t


# ---- FHIR

def _from_fhir(raw: str, path: Path) -> tuple[list[dict], dict, str | None]:
    try:
        doc = json.loads(raw)
    except json.JSONDecodeError as e:
        raise CaseValidationError([(path.name, f"not valid JSON: {e}")]) from e
    if isinstance(doc, list):
        resources = doc
    elif isinstance(doc, dict) and doc.get("resourceType") == "Bundle":
        resources = [e.get("resource") for e in doc.get("entry", []) if isinstance(e, dict)]
    elif isinstance(doc, dict) and doc.get("resourceType") == "Observation":
        resources = [doc]
    else:
        raise CaseValidationError([(path.name, "expected a FHIR Bundle, an Observation or a list of Observations")])
    observations = [r for r in resources if isinstance(r, dict) and r.get("resourceType") == "Observation"]
    if not observations:
        raise CaseValidationError([(path.name, "no Observation resources")])
    entries = []
    for k, obs in enumerate(observations):
        entries += _observation(obs, f"{path.name}:Observation[{k}]")
    demo, patient_id = {}, None
    patient = next((r for r in resources if isinstance(r, dict) and r.get("resourceType") == "Patient"), None)
    if patient:
        patient_id = re.sub(r"[^A-Za-z0-9._:-]", "_", f"fhir:{patient['id']}") if patient.get("id") else None
        gender = str(patient.get("gender", "unknown"))
        demo["sex"] = gender if gender in ("female", "male", "other") else "unknown"
        birth = patient.get("birthDate")
        times = [e["time"] for e in entries if isinstance(e.get("time"), str)]
        if birth and times:
            try:
                born, first = date.fromisoformat(birth[:10]), datetime.fromisoformat(min(times).replace("Z", "+00:00")).date()
                demo["age"] = round((first - born).days / 365.25, 1)
            except ValueError as e:
                raise CaseValidationError([("Patient.birthDate", f"{birth!r}: {e}")]) from e
    return entries, demo, patient_id


def _code(concept) -> tuple[str | None, str]:
    """(LOINC code, a name) of a CodeableConcept."""
    if not isinstance(concept, dict):
        return None, ""
    codings = [c for c in concept.get("coding", []) if isinstance(c, dict)]
    loinc = next((c.get("code") for c in codings if "loinc" in str(c.get("system", "")).lower()), None)
    name = concept.get("text") or next((c.get("display") for c in codings if c.get("display")), None) or loinc or ""
    return loinc, str(name)


def _value(item: dict):
    """(value, unit) of an Observation or component, or (None, None)."""
    q = item.get("valueQuantity")
    if isinstance(q, dict) and q.get("value") is not None:
        comparator = q.get("comparator")
        unit = q.get("code") or q.get("unit")
        value = q["value"]
        return (f"{comparator}{value}" if comparator else value), unit
    if isinstance(item.get("valueString"), str):
        return item["valueString"], None
    concept = item.get("valueCodeableConcept")
    if isinstance(concept, dict):
        return _code(concept)[1] or None, None
    for key in ("valueInteger", "valueBoolean"):
        if key in item:
            return (str(item[key]).lower() if key == "valueBoolean" else item[key]), None
    return None, None


def _observation(obs: dict, where: str) -> list[dict]:
    loinc, name = _code(obs.get("code"))
    time = obs.get("effectiveDateTime") or (obs.get("effectivePeriod") or {}).get("start") or obs.get("issued")
    if not time:
        raise CaseValidationError([(where, f"{name or loinc}: no effectiveDateTime, effectivePeriod or issued time")])
    base = {"time": time}
    specimen = (obs.get("specimen") or {}).get("display") if isinstance(obs.get("specimen"), dict) else None
    if specimen:
        base["specimen"] = specimen
    out = []
    value, unit = _value(obs)
    if value is not None:
        e = {**base, "variable": name or loinc, "value": value}
        if loinc:
            e["code"] = loinc
        if unit:
            e["unit"] = unit
        out.append(e)
    for comp in obs.get("component", []) or []:
        c_loinc, c_name = _code(comp.get("code"))
        c_value, c_unit = _value(comp)
        if c_value is None:
            continue
        e = {**base, "variable": c_name or c_loinc, "value": c_value}
        if c_loinc:
            e["code"] = c_loinc
        if c_unit:
            e["unit"] = c_unit
        out.append(e)
    if not out:
        raise CaseValidationError([(where, f"{name or loinc}: no value (valueQuantity, valueString, "
                                           "valueCodeableConcept or components)")])
    return out
