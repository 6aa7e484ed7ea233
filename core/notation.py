"""Clinical notation as clinicians write it, read into mmdx's vocabulary.

One entry of a case's `measurements` ({"variable", "value", "unit", "specimen", "time"}) as a person
or a system wrote it becomes either a measurement of a modelled variable or an other result that no
model reads, which the case keeps (never drops) and the answer lists:

    {"variable": "Pulse_Oximetry", "value": 94, "unit": "%"}             -> spo2 94 %
    {"variable": "BP", "value": "145/95", "unit": "mm Hg"}              -> systolic_bp 145, diastolic_bp 95
    {"variable": "Temperature", "value": "101.3 °F"}                    -> temperature 38.5 degC
    {"variable": "urine pH", "value": 6.0}                              -> other result (urine pH is not arterial pH)
    {"variable": "glucose", "value": 40, "unit": "mg/dL", "specimen": "CSF"} -> other result (CSF glucose)
    {"variable": "WBC", "value": "elevated"}                            -> other result (qualitative)
    {"variable": "creatine kinase", "value": 2400, "unit": "U/L"}       -> other result (no model input)
    {"variable": "pH", "value": 7.31, "specimen": "blood"}              -> AmbiguousSpecimen (arterial or venous?)

Names: case and separators are ignored, aliases come from core/vocabulary.py, and a specimen word at
the start or end of a name ("urine pH", "glucose, CSF", "ABG pCO2", "serum sodium") is read as the
specimen. Numbers: "12,000" is twelve thousand (US grouping), "38,5" is 38.5 (decimal comma); a
number then a unit in one string ("38.5 °C") is split. Values with "<" or ">" (below or above a
reportable range) are kept as other results, as written: they are not a number a model may read.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from mmdx.core.errors import AmbiguousSpecimen, FieldValueError
from mmdx.core.vocabulary import (BLOOD, BLOOD_PRESSURE_NAMES, BY_LOINC, GENERIC, KNOWN_TESTS, TESTS_BY_LOINC, VARIABLES,
                                  KnownTest, Specimen, VariableSpec, canonical_variable, known_test, name_key)

S = Specimen
SPECIMEN_WORDS: dict[str, Specimen] = {
    **dict.fromkeys(["blood", "whole_blood", "wb", "bld"], S.blood),
    **dict.fromkeys(["serum", "ser", "serum_plasma", "ser_plas", "ser_plasma", "s_p"], S.serum),
    **dict.fromkeys(["plasma", "plas"], S.plasma),
    **dict.fromkeys(["arterial", "arterial_blood", "abg", "art", "bld_art", "arterial_blood_gas"], S.arterial_blood),
    **dict.fromkeys(["venous", "venous_blood", "vbg", "ven", "bld_v", "bldv", "venous_blood_gas", "mixed_venous"],
                    S.venous_blood),
    **dict.fromkeys(["capillary", "capillary_blood", "fingerstick", "finger_stick", "poc", "point_of_care", "cbg", "bldc",
                     "glucometer"], S.capillary_blood),
    **dict.fromkeys(["urine", "ur", "ua", "urinalysis", "dipstick", "urine_dipstick", "urine_dip", "urin"], S.urine),
    **dict.fromkeys(["csf", "cerebrospinal_fluid", "spinal_fluid", "lp"], S.csf),
    **dict.fromkeys(["pleural", "pleural_fluid"], S.pleural_fluid),
    **dict.fromkeys(["peritoneal", "peritoneal_fluid", "ascites", "ascitic_fluid", "ascitic"], S.peritoneal_fluid),
    **dict.fromkeys(["synovial", "synovial_fluid", "joint_fluid"], S.synovial_fluid),
    **dict.fromkeys(["sputum"], S.sputum),
    **dict.fromkeys(["stool", "feces", "faeces", "fecal", "faecal"], S.stool),
    **dict.fromkeys(["fluid", "body_fluid"], S.body_fluid),
}
# a variable measured in another specimen is another test: its name and LOINC, where mmdx knows it
_PREFIX = {S.urine: "urine", S.csf: "csf", S.venous_blood: "venous"}

# variables whose value means one thing without a unit (a heart rate of 112 is per minute); any other
# needs its unit: glucose 5.5 could be mmol/L or (impossibly low) mg/dL
UNIT_OPTIONAL = frozenset({"heart_rate", "respiratory_rate", "spo2", "ph", "urine_nitrite", "urine_leukocyte_esterase"})

_NUMBER = re.compile(
    r"^\s*(?P<cmp><=|>=|≤|≥|<|>|less than|greater than)?\s*"
    r"(?P<num>[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+,\d{1,2}|\d+,\d{4,}|\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)"
    r"\s*(?P<rest>.*?)\s*$", re.I)
_BP = re.compile(r"^\s*(\d{2,3}(?:\.\d+)?)\s*/\s*(\d{2,3}(?:\.\d+)?)\s*(.*?)\s*$")


@dataclass(frozen=True)
class NameReading:
    variable: str | None  # a modelled variable, or None
    test: KnownTest | None  # a recognised test without a model input
    specimen: Specimen | None  # a specimen named inside the name


def parse_specimen(word: str) -> Specimen:
    """A specimen from its usual spellings ("serum", "ABG", "CSF", "urine", "fingerstick"...)."""
    key = name_key(word)
    if key in SPECIMEN_WORDS:
        return SPECIMEN_WORDS[key]
    try:
        return Specimen(key)
    except ValueError:
        raise FieldValueError(f"unknown specimen {word!r}; known: {', '.join(s.value for s in Specimen)}",
                              field="specimen") from None


def read_name(name: str) -> NameReading:
    """What a test name names: a variable, a test mmdx knows without a model input, and a specimen."""
    whole_var, whole_test = canonical_variable(name), known_test(name)
    if whole_var or whole_test:
        return NameReading(whole_var, whole_test, whole_test.specimen if whole_test and whole_test.key.startswith(
            ("urine_", "csf_", "venous_")) else None)
    parts = name_key(name).split("_")
    for n in (3, 2, 1):  # a specimen word (of up to three parts) first or last
        if len(parts) <= n:
            continue
        for spec_words, rest in ((parts[:n], parts[n:]), (parts[-n:], parts[:-n])):
            specimen = SPECIMEN_WORDS.get("_".join(spec_words))
            if specimen is None:
                continue
            base = "_".join(rest)
            var = canonical_variable(base)
            test = KNOWN_TESTS.get(f"{_PREFIX[specimen]}_{var}") if var and specimen in _PREFIX else None
            return NameReading(var, test or known_test(base), specimen)
    return NameReading(None, None, None)


def parse_number(text: str) -> tuple[str | None, float, str] | None:
    """(comparator, number, the rest of the text) for "12,000/mm3", "38,5 °C", "<0.01 ng/mL"; None
    when the text does not start with a number. A finite number or a FieldValueError."""
    m = _NUMBER.match(text)
    if not m:
        return None
    raw = m.group("num")
    if re.fullmatch(r"[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?:[eE][-+]?\d+)?", raw):
        raw = raw.replace(",", "")  # 12,000: thousands
    else:
        raw = raw.replace(",", ".")  # 38,5: decimal comma
    value = float(raw)
    if not math.isfinite(value):
        raise FieldValueError(f"{text!r} is not a finite number", field="value")
    cmp = m.group("cmp")
    return (cmp.lower() if cmp else None), value, m.group("rest")


def split_blood_pressure(value, unit) -> tuple[float, float, str] | None:
    """(systolic, diastolic, unit) from "145/95", "145/95 mmHg"; None when `value` is not that."""
    if not isinstance(value, str):
        return None
    m = _BP.match(value)
    if not m:
        return None
    written_unit = m.group(3)
    if written_unit and unit and written_unit.strip() != str(unit).strip():
        raise FieldValueError(f"blood pressure {value!r} names unit {written_unit!r} but the unit field says {unit!r}", field="unit")
    return float(m.group(1)), float(m.group(2)), (written_unit or unit or "mmHg")


@dataclass(frozen=True)
class Reading:
    """One entry read: `measurement` (a dict for core.case.Measurement) or `other` (for OtherResult)."""

    measurement: dict | None = None
    other: dict | None = None


def _other(entry: dict, name: str, why: str, specimen: Specimen | None, code: str | None, text: str | None = None,
           value: float | None = None, unit: str | None = None) -> Reading:
    out = {"name": name, "why": why}
    if specimen is not None:
        out["specimen"] = specimen.value
    if code:
        out["code"] = code
    if text is not None:
        out["text"] = text
    if value is not None:
        out["value"] = value
    if unit:
        out["unit"] = unit
    if entry.get("time") is not None:
        out["time"] = entry["time"]
    return Reading(other=out)


def _specimen_fits(spec: VariableSpec, specimen: Specimen) -> bool:
    return specimen in spec.specimens


def read_entry(entry: dict) -> list[Reading]:
    """Read one measurement entry as written (see the module docstring). Blood pressure gives two
    readings; everything else one. Raises FieldValueError / AmbiguousSpecimen naming the field."""
    name = entry["variable"]
    if not name.strip():
        raise FieldValueError("empty variable name", field="variable")
    if entry.get("specimen") is not None and not isinstance(entry["specimen"], str):
        raise FieldValueError(f"specimen must be a word such as serum, urine or CSF, got {type(entry['specimen']).__name__}",
                              field="specimen")
    value, unit = entry.get("value"), entry.get("unit")
    code = entry.get("code")
    if isinstance(code, str) and code in BY_LOINC and not canonical_variable(name):
        name = BY_LOINC[code]
    key = name_key(name)
    if key in BLOOD_PRESSURE_NAMES or (isinstance(value, str) and _BP.match(value) and
                                        canonical_variable(name) in ("systolic_bp", "diastolic_bp")):
        bp = split_blood_pressure(value, unit)
        if bp is None:
            raise FieldValueError(f"blood pressure {value!r}: write it as systolic/diastolic, e.g. 145/95", field="value")
        sbp, dbp, u = bp
        base = {k: v for k, v in entry.items() if k not in ("variable", "value", "unit", "code")}
        return [Reading(measurement={**base, "variable": "systolic_bp", "value": sbp, "unit": u}),
                Reading(measurement={**base, "variable": "diastolic_bp", "value": dbp, "unit": u})]
    reading = read_name(name)
    given = entry.get("specimen")
    explicit = parse_specimen(given) if isinstance(given, str) else None
    if reading.specimen and explicit and reading.specimen != explicit and not (
            reading.specimen in BLOOD and explicit in BLOOD and reading.specimen not in GENERIC and explicit not in GENERIC):
        raise AmbiguousSpecimen(f"{name!r} names specimen {reading.specimen.value} but specimen says {explicit.value}")
    specimen = explicit or reading.specimen
    test_code = (reading.test.loinc[0] if reading.test and reading.test.loinc else None) or \
        (code if isinstance(code, str) and code in TESTS_BY_LOINC else None)
    if reading.variable is None:
        why = "no model input for this test" if reading.test or test_code else "no mmdx variable by this name"
        return [_reading_other(entry, name, why, specimen or (reading.test.specimen if reading.test else None), test_code)]
    spec = VARIABLES[reading.variable]
    if specimen is not None and not _specimen_fits(spec, specimen):
        if not spec.specimens:
            raise FieldValueError(f"{spec.name} is a vital sign and has no specimen (got {specimen.value})", field="specimen")
        if specimen in GENERIC and any(s in spec.specimens for s in GENERIC[specimen]) or specimen is S.body_fluid:
            options = " or ".join(s.value for s in GENERIC.get(specimen, ())) or "a named fluid"
            raise AmbiguousSpecimen(f"{name} in {specimen.value}: which specimen? write specimen {options}; "
                                    f"mmdx's {spec.name} is {spec.default_specimen.value}")
        if specimen is S.urine and spec.name == "wbc" and _ordinal(value, VARIABLES["urine_leukocyte_esterase"]) is not None:
            spec = VARIABLES["urine_leukocyte_esterase"]  # dipstick "Leukocytes: 2+" is leukocyte esterase
        else:
            why = f"{specimen.value} {spec.name} is not mmdx's {spec.name} ({spec.default_specimen.value}); no model reads it"
            variant = KNOWN_TESTS.get(f"{_PREFIX.get(specimen)}_{spec.name}")
            return [_reading_other(entry, name, why, specimen, test_code or (variant.loinc[0] if variant else None))]
    out = {k: v for k, v in entry.items() if k != "code"}
    out["variable"] = spec.name
    if specimen is not None:
        out["specimen"] = specimen.value
    if isinstance(value, str):
        code_value = _ordinal(value, spec)
        if code_value is not None:
            out["value"], out["unit"] = code_value, spec.unit
            return [Reading(measurement=out)]
        parsed = parse_number(value) if value.strip() else None
        if not value.strip() or value.strip().lower() in ("nan", "inf", "-inf", "infinity", "null", "none"):
            raise FieldValueError(f"{spec.name} value {value!r} is not a number", field="value")
        if parsed is None:
            return [_reading_other(entry, name, "qualitative result; no model reads it", specimen, test_code)]
        cmp, number, rest = parsed
        if cmp is not None:
            return [_reading_other(entry, name, "value beyond the reportable range, kept as written; no model reads it",
                                   specimen, test_code)]
        if rest and unit and rest.strip() != str(unit).strip():
            raise FieldValueError(f"value {value!r} names unit {rest!r} but the unit field says {unit!r}", field="unit")
        out["value"] = number
        if rest:
            out["unit"] = rest
    if out.get("unit") is None:
        if spec.name not in UNIT_OPTIONAL:
            raise FieldValueError(f"{spec.name} needs a unit ({spec.unit} or another that converts); without one the "
                                  "value could mean several things", field="unit")
        out["unit"] = spec.unit
    return [Reading(measurement=out)]


def _ordinal(value, spec: VariableSpec) -> float | None:
    if not spec.ordinal or not isinstance(value, str):
        return None
    return spec.ordinal.get(" ".join(value.strip().lower().split()))


def _reading_other(entry: dict, name: str, why: str, specimen: Specimen | None, code: str | None) -> Reading:
    value, unit = entry.get("value"), entry.get("unit")
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise FieldValueError(f"value of {name!r} must be a number or text, got {type(value).__name__}", field="value")
    if isinstance(value, str):
        if not value.strip():
            raise FieldValueError(f"value of {name!r} is empty", field="value")
        return _other(entry, name, why, specimen, code, text=value.strip(), unit=unit if isinstance(unit, str) else None)
    if not math.isfinite(value):
        raise FieldValueError(f"value of {name!r} must be a finite number, got {value}", field="value")
    return _other(entry, name, why, specimen, code, value=float(value), unit=unit if isinstance(unit, str) else None)
