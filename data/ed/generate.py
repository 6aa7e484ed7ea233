"""Sample emergency-department presentations from the parameters (data/ed/parameters.py).

    presentations(seed, population, start, end) -> list[Presentation]   (deterministic for a seed)

One presentation is what the clinician has before deciding to admit: who the patient is, the
complaint, symptoms, history and examination findings, vital signs, the tests the complaint
prompted with their results, and a chest radiograph if one was taken. It is drawn in this order:

1. the latent condition(s): a primary one from PREVALENCE, sometimes a co-occurring one (SECONDARY);
2. age and sex, the complaint group and its duration, from the primary condition;
3. binary findings (symptoms, history, signs): P(finding | conditions) is the noisy-OR of the
   conditions' rows, drawn through a Gaussian copula so each marginal is exact while findings share
   a per-case "burden" (some presentations are florid, some atypical and nearly silent);
4. physiology: every vital sign and lab value is drawn (normal or log-normal per condition, shifted
   by age and history, centred so the marginals hold), loading on a per-case severity that is
   correlated with the finding burden. Values exist whether or not a test is ordered;
5. orders and timing from the complaint group and age only: vitals at triage (re-checked 0-2 times
   at random), the core blood panel, complaint-driven extras (BNP, troponin, arterial gas, D-dimer,
   lactate, procalcitonin, urinalysis), a second troponin for chest pain and a repeat lactate when
   the first is high (a clinician's reaction to a value, so missingness there is informative, as in
   real records);
6. the chest radiograph decision (complaint group) and its findings (conditions, age, smoking);
7. the recorded label: the conditions' diagnoses, replaced by a plausible confusion in
   LABEL_ERROR_P of cases (marked noisy).

Every draw comes from an RNG seeded by (seed, case index, stream), so a case never changes when
another is added, and two builds with the same arguments are identical.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
from scipy.special import ndtri

from mmdx.core.labels import DIAGNOSES
from mmdx.data.ed import parameters as P

IDX = {c: i for i, c in enumerate(P.CONDITIONS)}
BINARY_GROUPS = {"symptom": P.SYMPTOMS, "history": P.HISTORY, "sign": P.SIGNS}
GENERATOR_VERSION = "mmdx-ed 1"
VISITS_PER_PERSON_YEAR = 0.3  # ED presentations in scope per person and year (one per patient)


@dataclass
class Measured:
    hours: float  # since triage
    variable: str  # canonical name (core/units.py)
    value: float  # canonical unit
    unit: str


@dataclass
class Presentation:
    seed: int
    index: int
    arrival: datetime
    conditions: tuple[str, ...]  # primary first
    age: float
    sex: str
    complaint: str  # complaint group (parameters.COMPLAINT_GROUPS)
    days: float  # symptom duration
    findings: dict[str, bool]  # every symptom, history item and sign
    severity: float  # standard normal: how sick, for physiology
    physiology: dict[str, float]  # every vital and lab value, measured or not (canonical units)
    urine: tuple[int, int]  # (nitrite 0/1, leukocyte esterase grade 0-4)
    ordered: tuple[str, ...]  # "bloods" and the extra tests
    measurements: list[Measured]
    cxr_taken: bool
    cxr_findings: tuple[str, ...]  # IMAGING_FINDINGS subset; ("no_finding",) when none
    cxr_hours: float
    true_diagnoses: tuple[str, ...]
    recorded_diagnoses: tuple[str, ...]
    noisy: bool
    atypical: bool = False  # presented like nonspecific malaise
    mild: bool = False  # biochemically quiet
    extras: dict = field(default_factory=dict)

    @property
    def case_id(self) -> str:
        return f"ed{self.seed}-{self.index:06d}"

    @property
    def primary(self) -> str:
        return self.conditions[0]


def _characteristic() -> dict[str, frozenset[str]]:
    """Condition -> its characteristic symptoms and signs (see parameters.CHARACTERISTIC_LOADING)."""
    out = {}
    for c in P.CONDITIONS:
        keep = set()
        for table in (P.SYMPTOMS, P.SIGNS):
            for name, row in table.items():
                others = [v for k, v in zip(P.CONDITIONS, row) if k != c]
                if row[IDX[c]] >= 0.1 and row[IDX[c]] >= 2 * float(np.median(others)):
                    keep.add(name)
        out[c] = frozenset(keep)
    return out


CHARACTERISTIC = _characteristic()


def case_rng(seed: int, index: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), int(index), int(stream)])


def diagnoses_of(conditions) -> tuple[str, ...]:
    found = {c for c in conditions if c in DIAGNOSES}
    return tuple(d for d in DIAGNOSES if d in found) or ("no_acute_finding",)


def _choice(rng: np.random.Generator, table: dict[str, float]) -> str:
    keys = list(table)
    p = np.array([table[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def _noisy_or(row: tuple[float, ...], conditions) -> float:
    q = 1.0
    for c in conditions:
        q *= 1.0 - row[IDX[c]]
    return 1.0 - q


def _reference_spread(var: str, kind: str, params) -> tuple[float, float]:
    """Centre and spread of a variable in chest-wall pain (a healthy-physiology reference)."""
    m, s = params[IDX["chest_wall_pain"]]
    return (math.log(m), s) if kind == "log" else (m, s)


def _dominant(var: str, kind: str, params, conditions) -> str:
    """For several conditions: the one whose distribution of `var` is furthest from healthy."""
    if len(conditions) == 1:
        return conditions[0]
    ref, spread = _reference_spread(var, kind, params)

    def dist(c):
        m = params[IDX[c]][0]
        return abs((math.log(m) if kind == "log" else m) - ref) / spread

    return max(conditions, key=dist)


def sample_presentation(seed: int, index: int, arrival: datetime) -> Presentation:
    rng = case_rng(seed, index, 0)
    primary = _choice(rng, P.PREVALENCE)
    conditions = [primary]
    for prim, sec, p in P.SECONDARY:
        if prim == primary and rng.random() < p:
            conditions.append(sec)
            break  # one secondary at most (the sepsis sources are exclusive)
    conditions = tuple(conditions)
    disease = primary in DIAGNOSES
    atypical = bool(rng.random() < P.ATYPICAL_P) and disease
    mild = bool(rng.random() < P.MILD_P) and disease

    # ---- who, what, how long
    mean_age, sd_age, p_female = P.DEMOGRAPHICS[primary]
    age = float(rng.normal(mean_age, sd_age))
    while not 18 <= age <= 100:  # truncated normal: redraw (no pile-up at the bounds)
        age = float(rng.normal(mean_age, sd_age))
    age = round(age)
    sex = "female" if rng.random() < p_female else "male"
    complaint_from = conditions[1] if len(conditions) > 1 and rng.random() < 0.5 else primary
    complaint = _choice(rng, P.COMPLAINT["nonspecific_malaise" if atypical else complaint_from])
    med_days, sig_days = P.SYMPTOM_DAYS[primary]
    days = float(np.clip(med_days * math.exp(sig_days * rng.normal()), 0.1, 30))

    # ---- findings through a Gaussian copula: an expression latent w (correlated with severity s)
    s = float(rng.normal())
    r = P.SEVERITY_FINDINGS_CORRELATION
    w = r * s + math.sqrt(1 - r * r) * float(rng.normal())
    findings: dict[str, bool] = {}
    for group, table in BINARY_GROUPS.items():
        for name, row in table.items():
            p = _noisy_or(row, conditions)
            if atypical and group != "history":
                p += P.ATYPICAL_WEIGHT * (row[IDX["nonspecific_malaise"]] - p)
            if name in P.FEMALE_ONLY and sex != "female":
                p = 0.0
            if group == "history":  # the patient's, not the episode's: independent of the expression
                latent = float(rng.normal())
            else:
                rho = P.CHARACTERISTIC_LOADING if any(name in CHARACTERISTIC[c] for c in conditions) else P.BURDEN_LOADING
                latent = math.sqrt(rho) * w + math.sqrt(1 - rho) * float(rng.normal())
            findings[name] = bool(latent > ndtri(1 - p))  # P = p exactly; p = 0 never, p = 1 always

    # ---- physiology
    phys: dict[str, float] = {}
    load = P.SEVERITY_LOADING
    shrink = P.MILD_SHRINK if mild else 0.0
    for var, params in P.VITALS.items():
        c = _dominant(var, "lin", params, conditions)
        mu, sd = params[IDX[c]]
        mu += shrink * (params[IDX["chest_wall_pain"]][0] - mu)
        z = math.sqrt(load) * P.SEVERITY_DIRECTION[var] * s + math.sqrt(1 - load) * float(rng.normal())
        lo, hi = P.VITAL_RANGES[var]
        phys[var] = float(np.clip(mu + sd * z, lo, hi))
    phys["diastolic_bp"] = float(np.clip(0.55 * phys["systolic_bp"] + 8 + rng.normal(0, 7), 30, 130))
    shifts = _lab_shifts(findings, age, conditions)
    for var, (kind, params) in P.LABS.items():
        c = _dominant(var, kind, params, conditions)
        centre, spread = params[IDX[c]]
        ref, k = params[IDX["chest_wall_pain"]][0], (0.0 if var in P.MILD_EXEMPT else shrink)
        centre = math.exp(math.log(centre) + k * (math.log(ref) - math.log(centre))) if kind == "log" \
            else centre + k * (ref - centre)
        z = math.sqrt(load) * P.SEVERITY_DIRECTION.get(var, 0) * s + math.sqrt(1 - load) * float(rng.normal())
        if kind == "log":
            v = math.exp(math.log(centre) + spread * z + shifts.get(var, 0.0))
        else:
            v = centre + spread * z + shifts.get(var, 0.0)
        lo, hi = P.LAB_RANGES[var]
        phys[var] = float(np.clip(v, lo, hi))
    urea_ratio = 14.0 * math.exp(0.25 * rng.normal()) * (1.3 if "gastroenteritis" in conditions else 1.0)
    phys["bun"] = float(np.clip(phys["creatinine"] * urea_ratio, 3, 150))
    p_nit = _noisy_or(P.URINE_NITRITE, conditions) + (0.05 if age >= 70 else 0.0)
    nitrite = int(rng.random() < p_nit)
    p_le = _noisy_or(P.URINE_LE, conditions)
    le = int(rng.choice([2, 3, 4], p=[0.35, 0.4, 0.25])) if rng.random() < p_le else int(rng.choice([0, 1], p=[0.75, 0.25]))

    # ---- orders and timing: complaint group and age only
    orng = case_rng(seed, index, 1)
    ordered = ["bloods"] if orng.random() < P.BLOODS_P else []
    for test, base in P.ORDER_BASE.items():
        p = base + P.ORDER_BOOST[complaint].get(test, 0.0) + (P.ORDER_AGE_BONUS.get(test, 0.0) if age >= 65 else 0.0)
        if orng.random() < min(1.0, p):
            ordered.append(test)
    measurements = _measure(orng, phys, (nitrite, le), ordered, complaint)

    # ---- chest radiograph
    xrng = case_rng(seed, index, 2)
    cxr_taken = bool(xrng.random() < P.XRAY_P[complaint])
    cxr_findings = _cxr_findings(xrng, conditions, age, findings) if cxr_taken else ()
    cxr_hours = float(xrng.uniform(0.3, 2.0))

    # ---- labels: truth, and what the chart records
    truth = diagnoses_of(conditions)
    lrng = case_rng(seed, index, 3)
    recorded, noisy = truth, False
    if lrng.random() < P.LABEL_ERROR_P:
        wrong = _choice(lrng, dict(P.LABEL_CONFUSION[primary]))
        rest = [c for c in conditions[1:]]
        recorded = diagnoses_of([wrong, *rest] if wrong != "no_acute_finding" else rest)
        noisy = recorded != truth
    return Presentation(
        seed=seed, index=index, arrival=arrival, conditions=conditions, age=float(age), sex=sex, complaint=complaint,
        days=days, findings=findings, severity=s, physiology=phys, urine=(nitrite, le), ordered=tuple(ordered),
        measurements=measurements, cxr_taken=cxr_taken, cxr_findings=cxr_findings, cxr_hours=cxr_hours,
        true_diagnoses=truth, recorded_diagnoses=recorded, noisy=noisy, atypical=atypical, mild=mild,
    )


def _lab_shifts(findings: dict[str, bool], age: float, conditions) -> dict[str, float]:
    """Patient-level shifts, centred within the primary condition so the marginals stay as tabled."""
    primary = conditions[0]
    shifts: dict[str, float] = {}
    for var, cause, effect in P.LAB_EFFECTS:
        if cause == "age_per_decade":
            x = (age - P.DEMOGRAPHICS[primary][0]) / 10.0
        else:
            x = float(findings[cause]) - P.HISTORY[cause][IDX[primary]]
        shifts[var] = shifts.get(var, 0.0) + effect * x
    return shifts


def _measure(rng: np.random.Generator, phys: dict[str, float], urine: tuple[int, int], ordered: list[str],
             complaint: str) -> list[Measured]:
    vitals = ("heart_rate", "systolic_bp", "diastolic_bp", "respiratory_rate", "temperature", "spo2")
    units = {"heart_rate": "bpm", "systolic_bp": "mmHg", "diastolic_bp": "mmHg", "respiratory_rate": "/min",
             "temperature": "degC", "spo2": "%"}
    out = [Measured(0.0, v, _round(v, phys[v]), units[v]) for v in vitals]
    t = 0.0
    for p in P.REPEAT_VITALS:  # re-checks: how many does not depend on the patient
        if rng.random() >= p:
            break
        t += float(rng.uniform(1.0, 2.5))
        for v in vitals:
            sd = {"heart_rate": 6, "systolic_bp": 8, "diastolic_bp": 6, "respiratory_rate": 2, "temperature": 0.3, "spo2": 1.2}[v]
            lo, hi = P.VITAL_RANGES.get(v, (30, 130))
            out.append(Measured(t, v, _round(v, float(np.clip(phys[v] + rng.normal(0, sd), lo, hi))), units[v]))
    tb = float(rng.uniform(0.3, 1.2))
    lab_units = {"wbc": "10^3/uL", "hemoglobin": "g/dL", "platelets": "10^3/uL", "sodium": "mmol/L", "potassium": "mmol/L",
                 "creatinine": "mg/dL", "bun": "mg/dL", "glucose": "mg/dL", "bicarbonate": "mmol/L", "crp": "mg/L",
                 "bnp": "pg/mL", "troponin": "ng/mL", "d_dimer": "ug/mL FEU", "lactate": "mmol/L", "procalcitonin": "ng/mL",
                 "ph": "pH", "pco2": "mmHg"}
    if "bloods" in ordered:
        for v in ("wbc", "hemoglobin", "platelets", "sodium", "potassium", "creatinine", "bun", "glucose", "bicarbonate", "crp"):
            out.append(Measured(tb, v, _round(v, phys[v]), lab_units[v]))
    for test in ordered:
        if test in ("bnp", "troponin", "d_dimer", "lactate", "procalcitonin"):
            out.append(Measured(tb, test, _round(test, phys[test]), lab_units[test]))
        elif test == "abg":
            out += [Measured(tb, "ph", _round("ph", phys["ph"]), "pH"), Measured(tb, "pco2", _round("pco2", phys["pco2"]), "mmHg")]
        elif test == "urinalysis":
            tu = float(rng.uniform(0.5, 2.0))
            out += [Measured(tu, "urine_nitrite", float(urine[0]), "{pos}"),
                    Measured(tu, "urine_leukocyte_esterase", float(urine[1]), "{grade}")]
    if "troponin" in ordered and complaint == "chest_pain" and rng.random() < P.REPEAT_TROPONIN_CHEST_PAIN:
        out.append(Measured(tb + 3.0, "troponin", _round("troponin", phys["troponin"] * math.exp(rng.normal(0, 0.15))), "ng/mL"))
    if "lactate" in ordered and rng.random() < P.REPEAT_LACTATE[0 if phys["lactate"] >= 2.0 else 1]:
        out.append(Measured(tb + 2.0, "lactate", _round("lactate", phys["lactate"] * math.exp(rng.normal(-0.1, 0.2))), "mmol/L"))
    return sorted(out, key=lambda m: (m.hours, m.variable))


_DECIMALS = {"temperature": 1, "ph": 2, "creatinine": 2, "potassium": 1, "wbc": 1, "hemoglobin": 1, "crp": 1, "lactate": 1,
             "procalcitonin": 2, "troponin": 3, "d_dimer": 2, "bilirubin": 1}


def _round(var: str, v: float) -> float:
    return round(v, _DECIMALS.get(var, 0))


def _cxr_findings(rng: np.random.Generator, conditions, age: float, findings: dict[str, bool]) -> tuple[str, ...]:
    from mmdx.core.labels import IMAGING_FINDINGS

    found = set()
    for name, row in P.CXR_FINDINGS.items():
        p = _noisy_or(row, conditions)
        if name == "cardiomegaly" and "heart_failure" not in conditions:
            p0, p1, a0, a1 = P.CARDIOMEGALY_AGE
            p = p0 + (p1 - p0) * min(max((age - a0) / (a1 - a0), 0.0), 1.0)
        if name == "hyperinflation" and findings["smoker"] and "copd_exacerbation" not in conditions:
            p = 1 - (1 - p) * (1 - P.HYPERINFLATION_SMOKER)
        if rng.random() < p:
            found.add(name)
    return tuple(f for f in IMAGING_FINDINGS if f in found) or ("no_finding",)


def arrivals(seed: int, population: int, start: datetime, end: datetime) -> list[datetime]:
    """Arrival times of the catchment population's presentations: Binomial(population, P(visit)),
    uniform over the period, with more arrivals by day than at night."""
    rng = np.random.default_rng([int(seed), 0x0ED])
    years = max((end - start).total_seconds(), 0) / (365.25 * 86400)
    n = int(rng.binomial(population, 1 - math.exp(-VISITS_PER_PERSON_YEAR * years)))
    days = max(int((end - start).total_seconds() // 86400), 1)
    hour_w = np.array([2, 1.5, 1, 1, 1, 1.5, 2.5, 4, 5.5, 6.5, 7, 7, 7, 6.5, 6.5, 6.5, 6.5, 6.5, 6, 5.5, 5, 4, 3.5, 2.5])
    out = []
    for _ in range(n):
        d = int(rng.integers(days))
        h = int(rng.choice(24, p=hour_w / hour_w.sum()))
        out.append(start + timedelta(days=d, hours=h, minutes=int(rng.integers(60))))
    return sorted(out)


def presentations(seed: int, population: int, start: datetime, end: datetime) -> list[Presentation]:
    return [sample_presentation(seed, i, t) for i, t in enumerate(arrivals(seed, population, start, end))]
