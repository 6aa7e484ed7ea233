"""The measurement vocabulary: every lab and vital-sign variable mmdx models, its canonical unit,
possible range, specimen, LOINC codes and the names clinicians write it under; and the tests mmdx
recognises but no model reads (kept in a case as `other_results`).

Written once, here. The canonical names and units of `VARIABLES` are a contract: trained models
(their cards list the variable names), the cohort generator and every case file use them. Add
aliases freely; never rename a variable or change its canonical unit.

Specimen: blood-gas variables (`ph`, `pco2`, `po2`) are arterial; chemistry and haematology are
blood (serum, plasma, whole, venous or capillary blood); the dipstick variables are urine. A value
from another specimen (urine pH, CSF glucose, venous pH) is a different test: it is kept as an
other result, never read as the blood variable. Without a specimen a variable takes its default
(the first listed), which is what every existing case file means.

LOINC codes are the canonical key for import (FHIR Observation.code); a variable lists the codes
that mean it. Unit conversion is in `core/units.py` (pint); spellings of names and specimens are
parsed in `core/notation.py`. Molar masses are written as the conventional clinical factors they
come from (glucose 1 mmol/L = 18.016 mg/dL; creatinine 1 mg/dL = 88.42 umol/L; urea nitrogen
1 mg/dL = 0.357 mmol/L; calcium 1 mmol/L = 4.008 mg/dL; bilirubin 1 mg/dL = 17.1 umol/L; lactate
1 mmol/L = 9.01 mg/dL; haemoglobin 1 g/dL = 0.6206 mmol/L), so conversions match what labs print.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum


class Specimen(str, Enum):
    blood = "blood"  # whole blood, unspecified vessel
    serum = "serum"
    plasma = "plasma"
    arterial_blood = "arterial_blood"
    venous_blood = "venous_blood"
    capillary_blood = "capillary_blood"
    urine = "urine"
    csf = "csf"
    pleural_fluid = "pleural_fluid"
    peritoneal_fluid = "peritoneal_fluid"
    synovial_fluid = "synovial_fluid"
    sputum = "sputum"
    stool = "stool"
    body_fluid = "body_fluid"  # a fluid, unnamed


S = Specimen
BLOOD = (S.serum, S.plasma, S.blood, S.venous_blood, S.capillary_blood, S.arterial_blood)
WHOLE_BLOOD = (S.blood, S.venous_blood, S.capillary_blood, S.arterial_blood)
ARTERIAL = (S.arterial_blood,)
URINE = (S.urine,)
# a specimen word that does not say which of these a variable needs: refused, not guessed
GENERIC = {S.blood: (S.arterial_blood, S.venous_blood), S.body_fluid: ()}


@dataclass(frozen=True)
class VariableSpec:
    name: str  # canonical variable name used everywhere in mmdx
    unit: str  # canonical unit (the spelling stored in cases)
    lo: float  # lowest physiologically possible value, canonical unit
    hi: float  # highest physiologically possible value, canonical unit
    kind: str = "lab"  # "lab" or "vital"
    aliases: tuple[str, ...] = ()  # other names the variable arrives under (clinicians, simulator, MIMIC)
    loinc: tuple[str, ...] = ()  # LOINC codes that mean this variable (the first is the usual one)
    specimens: tuple[Specimen, ...] = ()  # accepted specimens, default first; () for vital signs
    molar_mass: float | None = None  # g/mol, to convert mass <-> substance concentration
    valence: int | None = None  # charge, to convert mEq <-> mmol
    ordinal: dict[str, float] = field(default_factory=dict)  # qualitative word -> code (dipstick grades)

    @property
    def default_specimen(self) -> Specimen | None:
        return self.specimens[0] if self.specimens else None


_NIT = {"negative": 0, "neg": 0, "not detected": 0, "absent": 0, "-": 0, "positive": 1, "pos": 1, "detected": 1,
        "present": 1, "+": 1}
_LE = {"negative": 0, "neg": 0, "not detected": 0, "-": 0, "trace": 1, "tr": 1, "small": 2, "1+": 2, "+": 2,
       "moderate": 3, "2+": 3, "++": 3, "large": 4, "3+": 4, "+++": 4}

# Ranges are wide on purpose: they catch impossible values (a typo, a wrong unit), not abnormal ones.
VARIABLES: dict[str, VariableSpec] = {s.name: s for s in [
    # ---- vital signs
    VariableSpec("heart_rate", "bpm", 10, 300, "vital", ("hr", "pulse", "pulse_rate", "heartrate"), ("8867-4",)),
    VariableSpec("systolic_bp", "mmHg", 30, 300, "vital", ("sbp", "systolic", "systolic_blood_pressure", "bp_systolic",
                                                           "nibp_systolic"), ("8480-6",)),
    VariableSpec("diastolic_bp", "mmHg", 10, 200, "vital", ("dbp", "diastolic", "diastolic_blood_pressure", "bp_diastolic",
                                                            "nibp_diastolic"), ("8462-4",)),
    VariableSpec("respiratory_rate", "/min", 2, 80, "vital", ("rr", "resp_rate", "respirations", "respiration", "resp",
                                                              "respiratory", "breathing_rate"), ("9279-1",)),
    VariableSpec("temperature", "degC", 25, 45, "vital", ("temp", "body_temperature", "t", "tmax", "temperature_body"),
                 ("8310-5", "8331-1", "8332-9", "8328-7")),
    VariableSpec("spo2", "%", 30, 100, "vital", ("o2_saturation", "oxygen_saturation", "sao2", "so2", "pulse_oximetry",
                                                 "pulse_ox", "o2_sat", "o2sat", "sat", "sats", "spo2_pulse_ox"),
                 ("59408-5", "2708-6", "20564-1", "59417-6")),
    VariableSpec("weight", "kg", 0.3, 400, "vital", ("weight_kg", "body_weight", "wt"), ("29463-7", "3141-9")),
    # ---- chemistry
    VariableSpec("glucose", "mg/dL", 5, 2500, "lab", ("blood_glucose", "glu", "bg", "blood_sugar", "glucose_level"),
                 ("2345-7", "2339-0", "41653-7"), BLOOD, molar_mass=180.16),
    VariableSpec("creatinine", "mg/dL", 0.05, 30, "lab", ("cr", "creat", "scr"), ("2160-0", "38483-4"), BLOOD,
                 molar_mass=10000 / 88.42),
    VariableSpec("bun", "mg/dL", 0.5, 300, "lab", ("urea_nitrogen", "blood_urea_nitrogen"), ("3094-0", "6299-2"), BLOOD,
                 molar_mass=10 / 0.357),  # as nitrogen: 1 mg/dL urea nitrogen = 0.357 mmol/L urea
    VariableSpec("sodium", "mmol/L", 90, 200, "lab", ("na",), ("2951-2", "2947-0"), BLOOD, valence=1),
    VariableSpec("potassium", "mmol/L", 1, 12, "lab", ("k",), ("2823-3", "6298-4"), BLOOD, valence=1),
    VariableSpec("chloride", "mmol/L", 50, 160, "lab", ("cl",), ("2075-0", "2069-3"), BLOOD, valence=1),
    VariableSpec("bicarbonate", "mmol/L", 2, 60, "lab", ("hco3", "co2", "total_co2", "tco2", "bicarb"),
                 ("1963-8", "2028-9", "1959-6"), BLOOD, valence=1),
    VariableSpec("calcium", "mg/dL", 2, 20, "lab", ("ca", "total_calcium", "calcium_total"), ("17861-6", "2000-8"), BLOOD,
                 molar_mass=40.08, valence=2),
    VariableSpec("albumin", "g/dL", 0.5, 7, "lab", ("alb",), ("1751-7",), BLOOD),
    VariableSpec("bilirubin", "mg/dL", 0.0, 60, "lab", ("total_bilirubin", "tbil", "bilirubin_total", "t_bili"), ("1975-2",),
                 BLOOD, molar_mass=10000 / 17.1),
    VariableSpec("alt", "U/L", 0, 20000, "lab", ("sgpt", "alanine_aminotransferase", "alat", "alanine_transaminase"),
                 ("1742-6",), BLOOD),
    VariableSpec("ast", "U/L", 0, 20000, "lab", ("sgot", "aspartate_aminotransferase", "asat", "aspartate_transaminase"),
                 ("1920-8",), BLOOD),
    VariableSpec("lactate", "mmol/L", 0.1, 30, "lab", ("lactic_acid", "lac"), ("2524-7", "32693-4"), BLOOD, molar_mass=90.1),
    VariableSpec("crp", "mg/L", 0, 700, "lab", ("c_reactive_protein",), ("1988-5",), BLOOD),
    VariableSpec("procalcitonin", "ng/mL", 0, 1000, "lab", ("pct",), ("33959-8",), BLOOD),
    VariableSpec("bnp", "pg/mL", 0, 50000, "lab", ("b_type_natriuretic_peptide", "brain_natriuretic_peptide"),
                 ("30934-4", "42637-9"), BLOOD),
    VariableSpec("nt_probnp", "pg/mL", 0, 100000, "lab", ("ntprobnp", "nt_pro_bnp"), ("33762-6",), BLOOD),
    VariableSpec("troponin", "ng/mL", 0, 1000, "lab", ("troponin_i", "troponin_t", "hs_troponin", "trop", "tni", "tnt",
                                                     "hs_tni", "hs_tnt", "hs_troponin_i", "hs_troponin_t", "ctni", "ctnt"),
                 ("10839-9", "6598-7", "89579-7", "67151-1"), BLOOD),
    VariableSpec("hba1c", "%", 2, 25, "lab", ("a1c", "hemoglobin_a1c", "haemoglobin_a1c", "hgba1c", "glycated_hemoglobin"),
                 ("4548-4", "17856-6"), WHOLE_BLOOD),
    # ---- blood gas (arterial)
    VariableSpec("ph", "pH", 6.5, 8.0, "lab", ("arterial_ph",), ("2744-1",), ARTERIAL),
    VariableSpec("pco2", "mmHg", 5, 200, "lab", ("paco2",), ("2019-8",), ARTERIAL),
    VariableSpec("po2", "mmHg", 5, 700, "lab", ("pao2",), ("2703-7",), ARTERIAL),
    # ---- haematology
    VariableSpec("wbc", "10^3/uL", 0, 500, "lab", ("white_blood_cells", "leukocytes", "white_blood_cell_count", "white_cell_count",
                                                   "wcc", "leukocyte_count", "leucocytes", "leucocyte_count", "wbc_count",
                                                   "total_leukocyte_count", "white_count", "white_blood_count"),
                 ("6690-2", "26464-8"), WHOLE_BLOOD),
    VariableSpec("hemoglobin", "g/dL", 1, 25, "lab", ("hgb", "hb", "haemoglobin"), ("718-7",), WHOLE_BLOOD,
                 molar_mass=10000 / 0.6206),  # per haem monomer: 1 g/dL = 0.6206 mmol/L
    VariableSpec("hematocrit", "%", 5, 80, "lab", ("hct", "haematocrit", "pcv", "packed_cell_volume"), ("4544-3", "20570-8"),
                 WHOLE_BLOOD),
    VariableSpec("platelets", "10^3/uL", 0, 3000, "lab", ("plt", "platelet_count", "platelet", "plts", "thrombocytes",
                                                          "thrombocyte_count"), ("777-3", "26515-7"), WHOLE_BLOOD),
    VariableSpec("neutrophils", "%", 0, 100, "lab", ("neutrophil_pct", "neutrophils_percent", "neutrophil_percent", "neut_pct"),
                 ("770-8",), WHOLE_BLOOD),
    VariableSpec("d_dimer", "ug/mL FEU", 0, 100, "lab", ("ddimer", "d_dimers"), ("48065-7", "48066-5"), BLOOD),
    # ---- urinalysis (dipstick), specimen urine; ordinal codes, not concentrations
    VariableSpec("urine_nitrite", "{pos}", 0, 1, "lab", ("nitrite", "ua_nitrite", "urine_nitrites", "nitrites"), ("5802-4",),
                 URINE, ordinal=_NIT),  # 0 negative, 1 positive
    VariableSpec("urine_leukocyte_esterase", "{grade}", 0, 4, "lab", ("leukocyte_esterase", "ua_leukocyte_esterase", "ua_le",
                                                                      "leuk_esterase", "leucocyte_esterase"), ("5799-2",),
                 URINE, ordinal=_LE),  # 0 neg, 1 trace, 2 1+, 3 2+, 4 3+
]}

# Names that carry both blood pressures, "145/95".
BLOOD_PRESSURE_NAMES = frozenset({"bp", "blood_pressure", "nibp", "abp", "arterial_blood_pressure", "arterial_pressure",
                                  "non_invasive_blood_pressure", "sbp_dbp", "blood_pressure_systolic_diastolic"})
BLOOD_PRESSURE_LOINC = ("85354-9", "55284-4", "35094-2")  # FHIR puts the two values in components


@dataclass(frozen=True)
class KnownTest:
    """A test mmdx recognises (a display name, LOINC) but no model reads."""

    key: str
    display: str
    loinc: tuple[str, ...] = ()
    specimen: Specimen | None = None
    aliases: tuple[str, ...] = ()


# Tests mmdx has no variable for: named and coded when they arrive, kept in the case, read by no model.
KNOWN_TESTS: dict[str, KnownTest] = {t.key: t for t in [
    KnownTest("creatine_kinase", "creatine kinase", ("2157-6",), S.serum, ("ck", "cpk", "creatine_phosphokinase", "total_ck")),
    KnownTest("ck_mb", "CK-MB", ("13969-1",), S.serum, ("ckmb",)),
    KnownTest("urine_ph", "urine pH", ("5803-2",), S.urine),
    KnownTest("urine_specific_gravity", "urine specific gravity", ("5811-5", "2965-2"), S.urine, ("sg", "specific_gravity")),
    KnownTest("urine_protein", "urine protein", ("5804-0",), S.urine),
    KnownTest("urine_glucose", "urine glucose", ("5792-7",), S.urine),
    KnownTest("urine_ketones", "urine ketones", ("5797-6",), S.urine),
    KnownTest("urine_blood", "urine blood", ("5794-3",), S.urine),
    KnownTest("csf_glucose", "CSF glucose", ("2342-4",), S.csf),
    KnownTest("csf_protein", "CSF protein", ("2880-3",), S.csf),
    KnownTest("venous_ph", "venous pH", ("2746-6",), S.venous_blood, ("vbg_ph",)),
    KnownTest("venous_pco2", "venous pCO2", ("2021-4",), S.venous_blood, ("pvco2",)),
    KnownTest("fev1", "FEV1", ("20150-9",), None, ("forced_expiratory_volume_in_1_second",)),
    KnownTest("fvc", "FVC", ("19868-9",), None, ("forced_vital_capacity",)),
    KnownTest("fev1_fvc", "FEV1/FVC", ("19926-5",), None, ("fev1/fvc", "fev1_fvc_ratio")),
    KnownTest("lipase", "lipase", ("3040-3",), S.serum),
    KnownTest("amylase", "amylase", ("1798-8",), S.serum),
    KnownTest("ldh", "lactate dehydrogenase", ("2532-0",), S.serum, ("lactate_dehydrogenase", "ld")),
    KnownTest("alp", "alkaline phosphatase", ("6768-6",), S.serum, ("alkaline_phosphatase", "alk_phos")),
    KnownTest("ggt", "gamma-glutamyl transferase", ("2324-2",), S.serum, ("gamma_gt", "gamma_glutamyl_transferase")),
    KnownTest("magnesium", "magnesium", ("19123-9", "2601-3"), S.serum, ("mg_level",)),
    KnownTest("phosphate", "phosphate", ("2777-1",), S.serum, ("phosphorus", "phos")),
    KnownTest("inr", "INR", ("6301-6",), S.plasma, ("pt_inr",)),
    KnownTest("pt", "prothrombin time", ("5902-2",), S.plasma, ("prothrombin_time",)),
    KnownTest("aptt", "aPTT", ("3173-2", "14979-9"), S.plasma, ("ptt", "activated_partial_thromboplastin_time")),
    KnownTest("fibrinogen", "fibrinogen", ("3255-7",), S.plasma),
    KnownTest("esr", "erythrocyte sedimentation rate", ("4537-7", "30341-2"), S.blood, ("sed_rate",)),
    KnownTest("ferritin", "ferritin", ("2276-4",), S.serum),
    KnownTest("tsh", "TSH", ("3016-3",), S.serum, ("thyroid_stimulating_hormone",)),
    KnownTest("total_protein", "total protein", ("2885-2",), S.serum, ("tp",)),
    KnownTest("absolute_neutrophil_count", "absolute neutrophil count", ("751-8",), S.blood, ("anc",)),
    KnownTest("egfr", "eGFR", ("33914-3", "62238-1", "98979-8"), None, ("gfr", "estimated_gfr")),
]}


def name_key(name: str) -> str:
    """A name as a lookup key: lower case, every run of non-alphanumerics one underscore."""
    return re.sub(r"[^0-9a-z]+", "_", name.strip().lower()).strip("_")


_ALIASES: dict[str, str] = {}
for _spec in VARIABLES.values():
    for _a in (_spec.name, *_spec.aliases):
        assert name_key(_a) not in _ALIASES, f"alias {_a} twice"
        _ALIASES[name_key(_a)] = _spec.name
_TEST_ALIASES: dict[str, str] = {}
for _t in KNOWN_TESTS.values():
    for _a in (_t.key, *_t.aliases):
        assert name_key(_a) not in _ALIASES, f"{_a} is both a variable alias and a test without a model"
        _TEST_ALIASES[name_key(_a)] = _t.key
BY_LOINC: dict[str, str] = {c: s.name for s in VARIABLES.values() for c in s.loinc}
TESTS_BY_LOINC: dict[str, str] = {c: t.key for t in KNOWN_TESTS.values() for c in t.loinc}


def canonical_variable(name: str) -> str | None:
    """The canonical variable for `name` or one of its aliases (case and separators ignored), else None.

    Names only: "urine pH" is not `ph` (see core/notation.read_name for specimen words in names)."""
    return _ALIASES.get(name_key(name))


def known_test(name: str) -> KnownTest | None:
    """The test without a model input that `name` names, if mmdx knows it."""
    key = _TEST_ALIASES.get(name_key(name))
    return KNOWN_TESTS[key] if key else None
