"""Unit conversion to each variable's canonical unit, with pint.

    to_canonical("temperature", 101.3, "°F")  -> 38.5
    to_canonical("platelets", 250000, "/mm3") -> 250.0   (10^3/uL)

A unit arrives as clinicians and systems write it: `°C`, `mm Hg`, `/mm3`, `x10^9/L`, `/μL` (Greek
mu) or `/µL` (micro sign), `K/uL`, `mEq/L`, UCUM codes from FHIR (`Cel`, `mm[Hg]`, `10*3/uL`,
`{beats}/min`, `[iU]/L`). `unit_expression` rewrites those spellings into pint's grammar (a short,
explicit table); pint then does the arithmetic. Conversions across dimensions use the variable's
facts in core/vocabulary.py: molar mass (mg/dL <-> mmol/L), valence (mEq <-> mmol). HbA1c in IFCC
mmol/mol is converted by the NGSP master equation, D-dimer in DDU by FEU = 2 x DDU (approximate,
assay-dependent; the original value and unit are kept in the case).

Each (variable, unit) pair is resolved once into an affine map (scale, offset), so converting a
series costs a multiply-add per value. An unknown unit raises `UnknownUnit` naming the accepted ones.
`VARIABLES`, `VariableSpec` and `canonical_variable` are re-exported from core/vocabulary.py, where
the vocabulary is written.
"""
from __future__ import annotations

import math
import re
from functools import lru_cache

from mmdx.core.errors import FieldValueError
from mmdx.core.vocabulary import VARIABLES, VariableSpec, canonical_variable  # noqa: F401 (re-exported)

__all__ = ["VARIABLES", "VariableSpec", "canonical_variable", "to_canonical", "unit_expression", "UnknownUnit", "EXAMPLE_UNITS"]


class UnknownUnit(FieldValueError):
    """A unit that is not one of the variable's (or not a unit at all)."""

    def __init__(self, message: str):
        super().__init__(message, field="unit")


# Spellings accepted for each variable beside the canonical one: shown in error messages, and
# tests/test_notation.py checks that every one of them converts.
EXAMPLE_UNITS: dict[str, tuple[str, ...]] = {
    "heart_rate": ("/min", "beats/min", "{beats}/min", "min-1"),
    "systolic_bp": ("mm Hg", "mm[Hg]", "kPa"),
    "diastolic_bp": ("mm Hg", "mm[Hg]", "kPa"),
    "respiratory_rate": ("breaths/min", "bpm", "{breaths}/min", "insp/min"),
    "temperature": ("°C", "°F", "degF", "C", "F", "Cel", "[degF]"),
    "spo2": ("fraction",),
    "weight": ("lb", "lbs", "g", "[lb_av]"),
    "glucose": ("mmol/L", "mg/dl"),
    "creatinine": ("umol/L", "µmol/L", "μmol/L"),
    "bun": ("mmol/L",),
    "sodium": ("mEq/L",), "potassium": ("mEq/L",), "chloride": ("mEq/L",), "bicarbonate": ("mEq/L",),
    "calcium": ("mmol/L", "mEq/L"),
    "albumin": ("g/L",),
    "bilirubin": ("umol/L", "µmol/L"),
    "alt": ("IU/L", "[iU]/L", "ukat/L"), "ast": ("IU/L", "[iU]/L", "ukat/L"),
    "lactate": ("mg/dL",),
    "crp": ("mg/dL",),
    "procalcitonin": ("ug/L", "µg/L"),
    "bnp": ("ng/L",), "nt_probnp": ("ng/L",),
    "troponin": ("ng/L", "pg/mL"),
    "hba1c": ("mmol/mol",),
    "ph": ("", "[pH]", "units"),
    "pco2": ("kPa", "mm Hg"), "po2": ("kPa", "mm Hg"),
    "wbc": ("10^9/L", "x10^9/L", "10*3/uL", "K/uL", "/uL", "/mm3", "/μL", "/µL", "cells/mm3"),
    "hemoglobin": ("g/L", "mmol/L"),
    "hematocrit": ("fraction", "L/L"),
    "platelets": ("10^9/L", "K/uL", "/uL", "/mm3", "/µL", "lakh/mm3"),
    "neutrophils": ("fraction",),
    "d_dimer": ("ng/mL FEU", "mg/L FEU", "ng/mL DDU"),
    "urine_nitrite": ("",), "urine_leukocyte_esterase": ("",),
}

_SUPERSCRIPT = str.maketrans("⁰¹²³⁴⁵⁶⁷⁸⁹⁻", "0123456789-")
# whole spellings (after the micro sign is folded to u and spaces are collapsed) -> pint expression
_WHOLE: dict[str, str] = {
    "%": "percent", "pct": "percent", "percent": "percent", "fraction": "", "ratio": "", "l/l": "",
    "bpm": "1/min", "/min": "1/min", "min-1": "1/min", "min^-1": "1/min", "per min": "1/min", "per minute": "1/min",
    "beats/min": "1/min", "beats per minute": "1/min", "b/min": "1/min", "breaths/min": "1/min", "br/min": "1/min",
    "breaths per minute": "1/min", "insp/min": "1/min",
    "mmhg": "mmHg", "mm hg": "mmHg", "mm[hg]": "mmHg", "torr": "mmHg",
    "k/ul": "1e3/uL", "k/mm3": "1e3/mm^3", "thou/ul": "1e3/uL", "thou/mm3": "1e3/mm^3", "thou/cumm": "1e3/mm^3",
    "x1000/ul": "1e3/uL", "m/ul": "1e6/uL", "mil/ul": "1e6/uL",
    "lakh/mm3": "1e5/mm^3", "lakhs/mm3": "1e5/mm^3", "lakh/cumm": "1e5/mm^3", "lakhs/cumm": "1e5/mm^3",
    "lb": "lb", "lbs": "lb", "pound": "lb", "pounds": "lb", "[lb_av]": "lb", "kgs": "kg", "kilograms": "kg",
    "iu/l": "IU/L", "u/l": "U/L", "[iu]/l": "IU/L", "units/l": "U/L", "mu/ml": "U/L",
    "meq/l": "mEq/L", "mmol/l": "mmol/L", "mg/dl": "mg/dL", "g/dl": "g/dL", "gm/dl": "g/dL", "gms/dl": "g/dL",
    "g/l": "g/L", "mg/l": "mg/L", "ng/ml": "ng/mL", "pg/ml": "pg/mL", "ng/l": "ng/L", "ug/l": "ug/L", "ug/ml": "ug/mL",
    "umol/l": "umol/L", "mmol/mol": "mmol/mol",
}
_TEMPERATURE = {"c": "degC", "cel": "degC", "celsius": "degC", "centigrade": "degC", "degc": "degC",
                "f": "degF", "[degf]": "degF", "fahrenheit": "degF", "degf": "degF", "k": "kelvin", "kelvin": "kelvin"}
_PH = {"", "ph", "[ph]", "units", "unit", "pH"}


@lru_cache(maxsize=1)
def registry():
    """The pint registry, with the units of clinical chemistry it lacks."""
    import pint

    ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
    ureg.define("international_unit = enzyme_unit = IU")  # for enzyme activity IU/L = U/L
    ureg.define("equivalent = [charge_equivalent] = Eq")  # mEq: mmol x valence (see _bridges)
    return ureg


def unit_expression(unit: str, variable: str | None = None) -> tuple[str, float]:
    """(pint expression, extra factor) for a unit as written. The factor is 2 for D-dimer in DDU."""
    s = re.sub(r"10([⁰¹²³⁴⁵⁶⁷⁸⁹⁻]+)", lambda m: "10^" + m.group(1).translate(_SUPERSCRIPT), unit).translate(_SUPERSCRIPT)
    s = " ".join(s.replace("µ", "u").replace("μ", "u").replace("mcg", "ug").split())
    s = re.sub(r"\s*/\s*", "/", s)
    factor = 1.0
    qual = re.search(r"\s*\b(FEU|DDU)\b\s*$", s, flags=re.I)
    if qual:
        s = s[: qual.start()]
        factor = 2.0 if qual.group(1).upper() == "DDU" else 1.0
    if s in ("G/L", "T/L"):  # giga, tera per litre (cell counts): case matters, g/L is grams
        return {"G/L": "1e9/L", "T/L": "1e12/L"}[s], factor
    low = s.lower()
    if variable == "temperature":
        t = re.sub(r"^(?:°|º|˚|deg(?:ree)?s?\.?)\s*", "", low).replace(" ", "")
        if t in _TEMPERATURE:
            return _TEMPERATURE[t], factor
    if variable == "ph" and low in {u.lower() for u in _PH}:
        return "", factor
    if low in _WHOLE:
        return _WHOLE[low], factor
    s = re.sub(r"\{[^}]*\}", "", s)  # UCUM annotations: {beats}/min, {cells}/uL
    s = re.sub(r"\b(?:cells?|counts?)\b", "", s, flags=re.I).strip()
    s = s.replace("[iU]", "IU").replace("[IU]", "IU").replace("mm[Hg]", "mmHg")
    s = re.sub(r"^[x×X*]\s*(?=10)", "", s)  # x10^9/L
    s = re.sub(r"^10\s*(?:\*\*|\*|\^|e|E)\s*(-?\d+)", r"10^\1", s)  # UCUM 10*3, 10e9 -> 10^3
    s = re.sub(r"\b(?:cu\.?\s?mm|cmm|c\.mm\.?|mm3|mm\^3)\b", "mm^3", s)
    s = re.sub(r"\b(?:cu\.?\s?cm|cm3|cc)\b", "mL", s)
    s = re.sub(r"\b(?:gms?|grams?)\b", "g", s)
    s = re.sub(r"(?<![A-Za-z])meq\b", "mEq", s, flags=re.I)
    if s.startswith("/"):
        s = "1" + s
    low = s.lower()
    return _WHOLE.get(low, s), factor


def _canonical_expression(spec: VariableSpec) -> str:
    return {"bpm": "1/min", "/min": "1/min", "%": "percent", "10^3/uL": "10^3/uL", "ug/mL FEU": "ug/mL",
            "pH": "", "{pos}": "", "{grade}": ""}.get(spec.unit, spec.unit)


def _accepted(spec: VariableSpec) -> str:
    return ", ".join(dict.fromkeys([spec.unit, *EXAMPLE_UNITS.get(spec.name, ())]))


@lru_cache(maxsize=4096)
def _affine(variable: str, unit: str) -> tuple[float, float]:
    """(scale, offset) with canonical = value * scale + offset, for `unit` as written."""
    spec = VARIABLES[variable]
    if variable == "hba1c" and unit.strip().lower().replace(" ", "") in ("mmol/mol", "mmol/molhb"):
        return 1 / 10.929, 2.15  # NGSP % = IFCC mmol/mol / 10.929 + 2.15
    expr, factor = unit_expression(unit, variable)
    if spec.unit in ("pH", "{pos}", "{grade}"):  # dimensionless codes: only "no unit" spellings
        if expr == "" and factor == 1.0:
            return 1.0, 0.0
        raise UnknownUnit(f"unknown unit {unit!r} for {variable}; accepted: {_accepted(spec)}")
    if len(expr) > 40 or not re.fullmatch(r"[A-Za-z0-9 /^*.()_%-]*", expr):  # pint parses Python tokens: only unit text
        raise UnknownUnit(f"unknown unit {unit!r} for {variable}; accepted: {_accepted(spec)}")
    import tokenize

    import pint

    ureg = registry()
    try:
        if expr in ("degC", "degF", "kelvin"):
            target = ureg.Quantity(0.0, _canonical_expression(spec)).units
            zero = ureg.Quantity(0.0, expr).to(target).magnitude
            one = ureg.Quantity(1.0, expr).to(target).magnitude
            return (one - zero) * factor, zero
        q = ureg.parse_expression(expr or "1") * factor  # a Quantity: magnitude carries 10^3 etc.
        t = ureg.parse_expression(_canonical_expression(spec) or "1")
        for cand in _bridges(ureg, spec, 1.0 * q):
            if cand.dimensionality == t.dimensionality:
                scale = float((cand / t).to("dimensionless").magnitude)
                if not math.isfinite(scale) or scale == 0:  # "1e999/L": a number, not a unit
                    break
                return scale, 0.0
    except (pint.errors.PintError, AttributeError, TypeError, ValueError, SyntaxError, KeyError, AssertionError,
            tokenize.TokenError, ZeroDivisionError, OverflowError, IndexError) as e:
        raise UnknownUnit(f"unknown unit {unit!r} for {variable}; accepted: {_accepted(spec)}") from e
    raise UnknownUnit(f"unit {unit!r} does not measure {variable} ({spec.unit}); accepted: {_accepted(spec)}")


def _bridges(ureg, spec: VariableSpec, q):
    """`q`, and `q` carried across mass/substance/charge-equivalent by the variable's facts."""
    yield q
    per_eq = ureg.Quantity(spec.valence, "Eq/mol") if spec.valence else None
    mm = ureg.Quantity(spec.molar_mass, "g/mol") if spec.molar_mass else None
    if per_eq is not None:
        yield q / per_eq
        if mm is not None:
            yield q / per_eq * mm
    if mm is not None:
        yield q * mm
        yield q / mm
        if per_eq is not None:
            yield q / mm * per_eq


def to_canonical(variable: str, value: float, unit: str) -> float:
    """`value` in `unit` converted to the canonical unit of `variable` (12 significant digits).

    Raises UnknownUnit (a ValueError naming the field `unit` and the accepted units)."""
    spec = VARIABLES[variable]
    if unit.strip() == spec.unit:
        return float(value)
    scale, offset = _affine(variable, unit)
    return float(f"{value * scale + offset:.12g}")
