"""Canonical units for every lab and vital-sign variable mmdx understands, with conversions.

One table, written once. Each variable has a canonical unit, the other units it may arrive in
(with a conversion to canonical), and the range of values that are physiologically possible in
canonical units. A value outside that range is an impossible value (a typo, a wrong unit), not an
outlier: it is rejected with a typed error rather than silently clipped or dropped.

Conversion factors: glucose 1 mmol/L = 18.016 mg/dL; creatinine 1 mg/dL = 88.42 umol/L;
urea nitrogen (BUN) 1 mg/dL = 0.357 mmol/L urea; haemoglobin 1 g/dL = 10 g/L = 0.6206 mmol/L;
temperature F = C * 9/5 + 32; lactate 1 mmol/L = 9.01 mg/dL.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class VariableSpec:
    name: str  # canonical variable name used everywhere in mmdx
    unit: str  # canonical unit
    lo: float  # lowest physiologically possible value, canonical unit
    hi: float  # highest physiologically possible value, canonical unit
    kind: str = "lab"  # "lab" or "vital"
    # other unit -> function(value in that unit) -> value in canonical unit
    conversions: dict[str, Callable[[float], float]] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()  # other names the variable arrives under (simulator, MIMIC labels)


def _scale(f: float) -> Callable[[float], float]:
    return lambda v: v * f


# Ranges are wide on purpose: they catch impossible values, not abnormal ones.
VARIABLES: dict[str, VariableSpec] = {
    s.name: s
    for s in [
        # ---- vital signs
        VariableSpec("heart_rate", "bpm", 10, 300, "vital", {"/min": _scale(1), "beats/min": _scale(1)}, ("hr", "pulse")),
        VariableSpec("systolic_bp", "mmHg", 30, 300, "vital", {"kPa": _scale(7.50062)}, ("sbp",)),
        VariableSpec("diastolic_bp", "mmHg", 10, 200, "vital", {"kPa": _scale(7.50062)}, ("dbp",)),
        VariableSpec("respiratory_rate", "/min", 2, 80, "vital", {"breaths/min": _scale(1), "bpm": _scale(1)}, ("rr", "resp_rate")),
        VariableSpec("temperature", "degC", 25, 45, "vital", {"degF": lambda f: (f - 32) * 5 / 9, "C": _scale(1), "F": lambda f: (f - 32) * 5 / 9}, ("temp", "body_temperature")),
        VariableSpec("spo2", "%", 30, 100, "vital", {"fraction": _scale(100)}, ("o2_saturation", "oxygen_saturation", "sao2")),
        VariableSpec("weight", "kg", 0.3, 400, "vital", {"lb": _scale(0.453592), "g": _scale(0.001)}, ("weight_kg",)),
        # ---- chemistry
        VariableSpec("glucose", "mg/dL", 5, 2500, "lab", {"mmol/L": _scale(18.016)}, ("blood_glucose", "glu")),
        VariableSpec("creatinine", "mg/dL", 0.05, 30, "lab", {"umol/L": _scale(1 / 88.42), "µmol/L": _scale(1 / 88.42)}, ("cr", "creat")),
        VariableSpec("bun", "mg/dL", 0.5, 300, "lab", {"mmol/L": _scale(1 / 0.357)}, ("urea_nitrogen", "blood_urea_nitrogen")),
        VariableSpec("sodium", "mmol/L", 90, 200, "lab", {"mEq/L": _scale(1)}, ("na",)),
        VariableSpec("potassium", "mmol/L", 1, 12, "lab", {"mEq/L": _scale(1)}, ("k",)),
        VariableSpec("chloride", "mmol/L", 50, 160, "lab", {"mEq/L": _scale(1)}, ("cl",)),
        VariableSpec("bicarbonate", "mmol/L", 2, 60, "lab", {"mEq/L": _scale(1)}, ("hco3", "co2", "total_co2")),
        VariableSpec("calcium", "mg/dL", 2, 20, "lab", {"mmol/L": _scale(4.008)}, ("ca",)),
        VariableSpec("albumin", "g/dL", 0.5, 7, "lab", {"g/L": _scale(0.1)}, ("alb",)),
        VariableSpec("bilirubin", "mg/dL", 0.0, 60, "lab", {"umol/L": _scale(1 / 17.1), "µmol/L": _scale(1 / 17.1)}, ("total_bilirubin", "tbil")),
        VariableSpec("alt", "U/L", 0, 20000, "lab", {"IU/L": _scale(1)}, ("sgpt",)),
        VariableSpec("ast", "U/L", 0, 20000, "lab", {"IU/L": _scale(1)}, ("sgot",)),
        VariableSpec("lactate", "mmol/L", 0.1, 30, "lab", {"mg/dL": _scale(1 / 9.01)}, ("lactic_acid",)),
        VariableSpec("crp", "mg/L", 0, 700, "lab", {"mg/dL": _scale(10)}, ("c_reactive_protein",)),
        VariableSpec("procalcitonin", "ng/mL", 0, 1000, "lab", {"ug/L": _scale(1), "µg/L": _scale(1)}, ("pct",)),
        VariableSpec("bnp", "pg/mL", 0, 50000, "lab", {"ng/L": _scale(1)}, ("b_type_natriuretic_peptide",)),
        VariableSpec("nt_probnp", "pg/mL", 0, 100000, "lab", {"ng/L": _scale(1)}, ("ntprobnp",)),
        VariableSpec("troponin", "ng/mL", 0, 1000, "lab", {"ng/L": _scale(0.001), "pg/mL": _scale(0.001)}, ("troponin_i", "troponin_t", "hs_troponin")),
        VariableSpec("hba1c", "%", 2, 25, "lab", {"mmol/mol": lambda v: v / 10.929 + 2.15}, ("a1c", "hemoglobin_a1c")),
        # ---- blood gas
        VariableSpec("ph", "pH", 6.5, 8.0, "lab", {}, ("arterial_ph",)),
        VariableSpec("pco2", "mmHg", 5, 200, "lab", {"kPa": _scale(7.50062)}, ("paco2",)),
        VariableSpec("po2", "mmHg", 5, 700, "lab", {"kPa": _scale(7.50062)}, ("pao2",)),
        # ---- haematology
        VariableSpec("wbc", "10^3/uL", 0, 500, "lab", {"10^9/L": _scale(1), "/uL": _scale(0.001), "K/uL": _scale(1)}, ("white_blood_cells", "leukocytes")),
        VariableSpec("hemoglobin", "g/dL", 1, 25, "lab", {"g/L": _scale(0.1), "mmol/L": _scale(1 / 0.6206)}, ("hgb", "hb")),
        VariableSpec("hematocrit", "%", 5, 80, "lab", {"fraction": _scale(100)}, ("hct",)),
        VariableSpec("platelets", "10^3/uL", 0, 3000, "lab", {"10^9/L": _scale(1), "K/uL": _scale(1)}, ("plt", "platelet_count")),
        VariableSpec("neutrophils", "%", 0, 100, "lab", {}, ("neutrophil_pct",)),
        VariableSpec("d_dimer", "ug/mL FEU", 0, 100, "lab", {"ng/mL FEU": _scale(0.001), "mg/L FEU": _scale(1)}, ("ddimer",)),
        # ---- urinalysis (dipstick), specimen urine; ordinal codes, not concentrations
        VariableSpec("urine_nitrite", "{pos}", 0, 1, "lab", {}, ("nitrite", "ua_nitrite", "urine_nitrites")),  # 0 negative, 1 positive
        VariableSpec("urine_leukocyte_esterase", "{grade}", 0, 4, "lab", {}, ("leukocyte_esterase", "ua_leukocyte_esterase", "ua_le")),  # 0 neg, 1 trace, 2 1+, 3 2+, 4 3+
    ]
}

_ALIASES: dict[str, str] = {}
for _spec in VARIABLES.values():
    _ALIASES[_spec.name] = _spec.name
    for _a in _spec.aliases:
        _ALIASES[_a] = _spec.name


def canonical_variable(name: str) -> str | None:
    """The canonical name for `name` (case and separators ignored), or None when unknown."""
    key = name.strip().lower().replace(" ", "_").replace("-", "_")
    return _ALIASES.get(key)


def to_canonical(variable: str, value: float, unit: str) -> float:
    """Convert `value` in `unit` to the canonical unit of `variable`.

    Raises ValueError with a message naming the accepted units when the unit is unknown.
    """
    spec = VARIABLES[variable]
    u = unit.strip()
    if u == spec.unit:
        return float(value)
    if u in spec.conversions:
        return float(spec.conversions[u](value))
    accepted = ", ".join([spec.unit, *spec.conversions])
    raise ValueError(f"unknown unit {unit!r} for {variable}; accepted: {accepted}")
