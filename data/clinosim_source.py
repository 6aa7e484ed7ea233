"""The legacy cohort source: clinosim simulations turned into `PatientCase` files (`mmdx data build
--source clinosim`).

This was the default cohort until the realism audit (`mmdx data audit`) showed that models trained on
it learned how the simulator writes its records (which tests it orders per diagnosis, one note
template per encounter type) rather than clinical content; the default is now the literature-
calibrated ED generator (data/ed/). It is kept so the audit can be run on it side by side.

Why: mmdx needs labelled multimodal cases to train and evaluate on, fully offline. The clinosim
simulator (a PyPI package) generates a hospital's year of patients with ground-truth diagnoses, labs,
vitals and template clinical notes. This module

1. runs one simulator process per seed (at most `workers` at once) and caches each raw run under
   `out/raw/seed-<S>-pop-<N>/` behind a completion marker (params + clinosim version);
2. converts inpatient and emergency encounters into `PatientCase` JSON under
   `out/cases/<split>/<case_id>.json`, labelled from the simulator's ground truth mapped through
   ICD-10 to `core.labels.DIAGNOSES`;
3. keeps only what a clinician has at presentation as model input: demographics, labs and vitals of
   the first hours after arrival (`CohortConfig.first_hours`, 4; at most 2 values a variable), the
   first-day chief complaint / HPI / examination notes with every diagnosis name redacted (never
   SOAP notes, which only admitted patients have, nor assessment, plan, discharge or past-history
   text);
4. decides whether a chest X-ray was taken and its findings (the simulator writes no imaging report
   text, so findings are sampled from the diagnosis with realistic overlap), renders it with
   `data/cxr_render.py`, and saves the PNG under `out/images/`;
5. splits by patient (stable hash) into train/val/test and writes `out/manifest.json` with counts
   and a sha256 digest over every case file and image.

Everything is synthetic and is labelled as such. Building twice with the same seeds gives
byte-identical files: every random draw is seeded from (simulator seed, case id) and nothing records
the time of the build.

Why one file of ~680 lines: it is a kept legacy source, not grown further, and its five steps share
the raw-run layout and the seeded per-case draws; the only thing other sources could share, the
renderer, is already its own module.
"""
from __future__ import annotations

import csv
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
from pydantic import ValidationError

from mmdx.core.case import CaseLabels, ChestXray, Demographics, Measurement, Note, PatientCase
from mmdx.core.errors import MmdxError
from mmdx.core.labels import DIAGNOSES, IMAGING_FINDINGS, REDACTED, find_label_leaks, redact  # noqa: F401 (find_label_leaks re-exported)
from mmdx.core.units import canonical_variable
from mmdx.data.cohort import SPLITS, cohort_digest, iter_cases  # noqa: F401 (iter_cases re-exported for the tests)
from mmdx.data.ed.build import split_of  # noqa: F401 (one patient split for every source; re-exported)

log = logging.getLogger(__name__)

RAW_LAYOUT_VERSION = 1  # bump when the pruning of raw simulator output changes
CONVERSION_VERSION = 3  # 2: 4-h window, 2 values per variable, no SOAP notes; 3: atypical complaints; bump when the case conversion changes (recorded in the manifest)
LABEL_SOURCE = "clinosim ground truth (synthetic)"
MARKER = "_mmdx_complete.json"



class SimulationError(MmdxError):
    """The clinosim subprocess failed; the message names the seed and the log file."""


@dataclass
class CohortConfig:
    country: str = "US"  # clinosim --country; notes are English only for US
    encounter_types: tuple[str, ...] = ("inpatient", "emergency")  # outpatient visits are follow-ups
    # Presentation window. Admitted patients (all pneumonia, heart failure, sepsis in clinosim) get
    # hourly vitals and repeated labs, ED visits one set: with 24 h the NUMBER of measurements alone
    # gave AUROC 0.93-1.00 for those labels (measured on the seeds 1-3 build). A short window and a
    # cap per variable keep what the clinician sees at presentation and remove that shortcut.
    first_hours: float = 4.0  # labs/vitals after arrival kept as input (later values reflect admission/treatment)
    max_values_per_variable: int = 2  # the first values of each variable in the window
    # Atypical presentations: the simulator's chief complaints name the organ system ("dysuria",
    # "productive cough") so plainly that a TF-IDF model scored AUROC 0.999 on the notes. In this share
    # of cases the chief complaint is replaced by a nonspecific one drawn from a pool shared by all
    # labels, as happens with elderly and septic patients.
    atypical_complaint_p: float = 0.3
    lead_hours: float = 0.0  # results this long before admission still count (0: earlier ones belong to other visits)
    after_discharge_hours: float = 2.0  # results reported shortly after an ED discharge still count
    # P(chest X-ray taken): high for cardio-respiratory labels, lower otherwise, but close enough
    # that missingness alone does not give the label away.
    xray_p_cardiorespiratory: float = 0.85  # pneumonia, heart failure, COPD, asthma, sepsis
    xray_p_respiratory_complaint: float = 0.75  # other labels with a chest/fever complaint
    xray_p_other: float = 0.55  # everything else
    xray_p_ap: float = 0.3  # inpatients: share of portable AP films (ED: a third of that)
    image_size: int = 128  # rendered X-ray side in pixels
    split_fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)  # train/val/test by patient


# ---------------------------------------------------------------- labels: ICD-10 -> DIAGNOSES

# ICD-10 prefixes per label. Aspiration pneumonia (J69.0) counts as pneumonia besides J12-J18.
_ICD_PREFIXES: dict[str, tuple[str, ...]] = {
    "pneumonia": ("J12", "J13", "J14", "J15", "J16", "J17", "J18", "J69.0"),
    "heart_failure": ("I50",),
    "copd_exacerbation": ("J44",),
    "asthma_exacerbation": ("J45", "J46"),
    "urinary_tract_infection": ("N39.0", "N10", "N30", "N12"),
    "sepsis": ("A40", "A41", "R65.2"),
}
_ICD_RE = re.compile(r"^[A-Z][0-9][0-9A-Z](\.[0-9A-Z]{1,4})?$")
_SKIP_ICD_PREFIXES = ("Z37", "Z38", "O")  # births and deliveries: no diagnostic question


def icd_to_label(code: str) -> str | None:
    """The DIAGNOSES label of one ICD-10 code, or None when the code is none of ours."""
    c = code.strip().upper()
    for label, prefixes in _ICD_PREFIXES.items():
        if any(c.startswith(p) for p in prefixes):
            return label
    return None


def _clinosim_dir() -> Path:
    spec = importlib.util.find_spec("clinosim")
    if spec is None or not spec.submodule_search_locations:
        raise MmdxError("the clinosim package is not installed (pip install clinosim==0.6.5)")
    return Path(list(spec.submodule_search_locations)[0])


_ICD_CACHE: dict[str, str | None] = {}


def disease_icd(disease_id: str) -> str | None:
    """ICD-10 code of a clinosim ground-truth entry: the entry itself when it is a code, else the
    primary code in the simulator's reference data for that disease / ED condition."""
    if _ICD_RE.match(disease_id):
        return disease_id
    if disease_id in _ICD_CACHE:
        return _ICD_CACHE[disease_id]
    # A regex over the reference YAML: parsing those (large) files with PyYAML costs ~0.5 s each.
    root = _clinosim_dir() / "modules"
    code = None
    for sub, pattern in (
        ("disease/reference_data", r"^icd_codes:[ \t]*\n(?:[ \t]*#.*\n)*[ \t]+primary:[ \t]*[\"']?([A-Z][0-9A-Z.]+)"),
        ("encounter/reference_data", r"^icd10_code:[ \t]*[\"']?([A-Z][0-9A-Z.]+)"),
    ):
        p = root / sub / f"{disease_id}.yaml"
        if p.is_file():
            m = re.search(pattern, p.read_text(), re.MULTILINE)
            if m:
                code = m.group(1)
                break
    _ICD_CACHE[disease_id] = str(code) if code else None
    return _ICD_CACHE[disease_id]


def labels_for(ground_truth: Sequence[str]) -> tuple[str, ...] | None:
    """Map the simulator's ground-truth diseases to DIAGNOSES (multi-label, DIAGNOSES order).
    None means the encounter is not usable (a birth or delivery, or an unknown disease id)."""
    found = set()
    for d in ground_truth:
        code = disease_icd(d)
        if code is None:
            return None
        if code.upper().startswith(_SKIP_ICD_PREFIXES):
            return None
        lab = icd_to_label(code)
        if lab:
            found.add(lab)
    if not found:
        return ("no_acute_finding",)
    return tuple(d for d in DIAGNOSES if d in found)


# ---------------------------------------------------------------- redaction of label names
# One vocabulary (core/labels.SYNONYMS): `redact` and `find_label_leaks` live there.


def _has_content(text: str) -> bool:
    return bool(re.search(r"[A-Za-z0-9]", text.replace(REDACTED, "")))


# ---------------------------------------------------------------- simulation (one process per seed)


def clinosim_version() -> str:
    return importlib.metadata.version("clinosim")


def raw_dir_for(out: Path, seed: int, population: int) -> Path:
    return Path(out) / "raw" / f"seed-{seed}-pop-{population}"


def _raw_params(seed: int, population: int, start: str, end: str, country: str) -> dict:
    return {
        "seed": seed, "population": population, "start": start, "end": end, "country": country,
        "clinosim_version": clinosim_version(), "raw_layout_version": RAW_LAYOUT_VERSION,
    }


def raw_is_complete(raw: Path, params: dict) -> bool:
    """True when `raw` holds a finished simulation made with exactly `params`."""
    marker = raw / MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()) == params
    except json.JSONDecodeError:
        return False


_KEEP_CSV = ("encounters.csv", "diagnoses.csv", "lab_results.csv", "vital_signs.csv", "patients.csv")


def prune_raw(raw: Path, encounter_types: Sequence[str]) -> None:
    """Drop what conversion never reads (structural CIF, outpatient notes, other CSVs): a 2,000-person
    run shrinks from ~235 MB to a few MB."""
    csv_dir = raw / "csv"
    for p in csv_dir.iterdir():
        if p.name not in _KEEP_CSV:
            p.unlink()
    keep = set()
    with open(csv_dir / "encounters.csv", newline="") as f:
        for r in csv.DictReader(f):
            if r["encounter_type"] in encounter_types:
                keep.add(r["encounter_id"])
    cif = raw / "cif"
    shutil.rmtree(cif / "structural", ignore_errors=True)
    docs = cif / "narratives" / "template" / "documents"
    for d in docs.iterdir():
        if d.name not in keep:
            shutil.rmtree(d)


def _simulate_cmd(raw_tmp: Path, seed: int, population: int, start: str, end: str, country: str) -> list[str]:
    return [
        sys.executable, "-m", "clinosim.simulator.cli", "simulate", "--country", country,
        "--population", str(population), "--seed", str(seed), "--start", start, "--end", end,
        "--format", "csv", "cif", "-o", str(raw_tmp),
    ]


def run_simulations(out: Path, seeds: Sequence[int], population: int, start: str = "2024-01-01",
                    end: str = "2024-12-31", workers: int = 2, cfg: CohortConfig | None = None) -> list[Path]:
    """Simulate every seed not yet cached, at most `workers` subprocesses at once. Returns the raw
    directories in seed order. Raises SimulationError naming the seed when a run fails."""
    cfg = cfg or CohortConfig()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    pending: list[tuple[int, Path, dict]] = []
    dirs = []
    for s in seeds:
        raw = raw_dir_for(out, s, population)
        params = _raw_params(s, population, start, end, cfg.country)
        dirs.append(raw)
        if raw_is_complete(raw, params):
            log.info("seed %d: cached simulation at %s", s, raw)
        else:
            pending.append((s, raw, params))
    running: list[tuple[subprocess.Popen, int, Path, dict, Path, float, io.IOBase]] = []
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONHASHSEED": "0"}
    failures = []
    try:
        while pending or running:
            while pending and len(running) < workers:
                s, raw, params = pending.pop(0)
                tmp = raw.with_name(raw.name + ".partial")
                shutil.rmtree(tmp, ignore_errors=True)
                shutil.rmtree(raw, ignore_errors=True)
                tmp.mkdir(parents=True)
                logf = open(tmp.parent / f"{raw.name}.stdout.log", "wb")
                cmd = _simulate_cmd(tmp / "sim", s, population, start, end, cfg.country)
                log.info("seed %d: simulating population %d (%s)", s, population, " ".join(cmd[1:]))
                proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, env=env)
                running.append((proc, s, raw, params, tmp, time.monotonic(), logf))
            time.sleep(0.5)
            still = []
            for item in running:
                proc, s, raw, params, tmp, t0, logf = item
                if proc.poll() is None:
                    still.append(item)
                    continue
                logf.close()
                if proc.returncode != 0:
                    failures.append(f"seed {s}: clinosim exited {proc.returncode} (log {logf.name})")
                    continue
                sim = tmp / "sim"
                prune_raw(sim, cfg.encounter_types)
                sim.rename(raw)
                shutil.rmtree(tmp)
                (raw / MARKER).write_text(json.dumps(params, indent=2, sort_keys=True))
                log.info("seed %d: simulated in %.0f s", s, time.monotonic() - t0)
            running = still
    finally:  # interrupted (Ctrl-C, an error): stop the simulators this call started
        for proc, *_ in running:
            if proc.poll() is None:
                proc.terminate()
                proc.wait()
    if failures:
        raise SimulationError("; ".join(failures))
    return dirs


# ---------------------------------------------------------------- reading the raw simulation


def _dt(s: str) -> datetime | None:
    if not s:
        return None
    return datetime.fromisoformat(s)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# simulator lab name -> canonical variable, where units.py does not already know the name
_SIM_LAB_NAMES = {"T_Bil": "bilirubin"}
# simulator (UCUM-style) unit -> the unit spelling of units.py
_SIM_UNITS = {"10*3/uL": "10^3/uL", "mm[Hg]": "mmHg", "[pH]": "pH"}
_SIM_UNITS_BY_VAR = {("d_dimer", "ug/mL"): "ug/mL FEU"}  # the simulator reports D-dimer in FEU
# vital_signs.csv column -> (canonical variable, unit)
_VITAL_COLUMNS = {
    "temperature": ("temperature", "degC"), "heart_rate": ("heart_rate", "bpm"),
    "systolic_bp": ("systolic_bp", "mmHg"), "diastolic_bp": ("diastolic_bp", "mmHg"),
    "respiratory_rate": ("respiratory_rate", "/min"), "spo2": ("spo2", "%"),
}


def _load_measurements(csv_dir: Path, skipped_vars: Counter) -> dict[str, list[tuple[datetime, str, float, str]]]:
    by_patient: dict[str, list[tuple[datetime, str, float, str]]] = defaultdict(list)
    for r in _read_csv(csv_dir / "lab_results.csv"):
        name = r["lab_name"]
        var = _SIM_LAB_NAMES.get(name) or canonical_variable(name)
        if var is None:
            skipped_vars[name] += 1
            continue
        if not r["value"]:
            continue
        unit = _SIM_UNITS.get(r["unit"], r["unit"])
        unit = _SIM_UNITS_BY_VAR.get((var, unit), unit)
        by_patient[r["patient_id"]].append((_dt(r["result_datetime"]), var, float(r["value"]), unit))
    for r in _read_csv(csv_dir / "vital_signs.csv"):
        t = _dt(r["timestamp"])
        for col, (var, unit) in _VITAL_COLUMNS.items():
            if r.get(col):
                by_patient[r["patient_id"]].append((t, var, float(r[col]), unit))
    for rows in by_patient.values():
        rows.sort()
    return by_patient


_NOTE_SECTIONS = {  # section key -> Note.kind; nothing else is ever read from a document
    "chief_complaint": "chief_complaint",
    "hpi": "history_of_present_illness",
    "physical_examination": "physical_exam",
    "physical_exam": "physical_exam",
}
# SOAP "subjective"/"objective" notes exist only for admitted patients ("Hospital day 1 ..."), so they
# gave the label away; they are not read. Only the first note of each kind is kept (admitted patients
# have both an ED note and an H&P repeating the same sections).
# Documents whose sections are never read even if one is named like the above.
_EXCLUDED_SECTIONS = {"discharge_diagnoses", "hospital_course", "admission_summary", "death_cause"}


def _encounter_notes(doc_dir: Path, admitted: datetime, stats: Counter) -> list[Note]:
    """Presentation notes of one encounter: chief complaint, HPI, examination (H&P and ED note) and
    the first-day SOAP subjective/objective, redacted. Never assessment, plan, discharge documents,
    nursing notes or past history."""
    if not doc_dir.is_dir():
        return []
    notes: list[Note] = []
    seen = set()
    for p in sorted(doc_dir.glob("*.json")):
        narrative = json.loads(p.read_text()).get("narrative") or {}
        sections = narrative.get("sections") or {}
        if not sections or _EXCLUDED_SECTIONS & set(sections):
            continue
        day = (narrative.get("generator_metadata") or {}).get("day_index")
        if day is not None and day != 0:
            continue  # later progress notes reflect treatment
        for key, kind in _NOTE_SECTIONS.items():
            text = sections.get(key)
            if not isinstance(text, str) or not text.strip():
                continue
            clean = redact(text)
            if clean != text.strip():
                stats["note_sections_redacted"] += 1
            if not _has_content(clean):
                stats["note_sections_empty_after_redaction"] += 1
                continue
            if kind in seen:
                continue  # the H&P and the ED note repeat the sections: keep the first of each kind
            seen.add(kind)
            notes.append(Note(time=admitted, kind=kind, text=clean))
    return notes


NONSPECIFIC_COMPLAINTS: tuple[str, ...] = (
    "Feeling generally unwell", "Fatigue and weakness", "Fever", "Shortness of breath", "Malaise",
    "Dizziness", "Poor oral intake", "Confusion", "Fall at home", "Chills", "Not feeling right", "Nausea",
)


def atypical_presentation(notes: list[Note], rng: np.random.Generator) -> list[Note]:
    """The notes with the chief complaint replaced by a nonspecific one (label-independent pool)."""
    complaint = NONSPECIFIC_COMPLAINTS[int(rng.integers(len(NONSPECIFIC_COMPLAINTS)))]
    out = [n.model_copy(update={"text": complaint}) if n.kind == "chief_complaint" else n for n in notes]
    if not any(n.kind == "chief_complaint" for n in notes):
        out.insert(0, Note(time=notes[0].time, kind="chief_complaint", text=complaint))
    return out


# ---------------------------------------------------------------- chest X-ray: taken? findings?

_CARDIORESP = {"pneumonia", "heart_failure", "copd_exacerbation", "asthma_exacerbation", "sepsis"}
_CHEST_COMPLAINT = re.compile(r"cough|dyspn|breath|chest|wheez|fever|sputum|hypox|palpitat|syncope|fall", re.I)

# Marginal probability of each finding given a label; a case with several labels takes the union.
# "no_finding" arises when none is drawn. Atypical (normal) films are deliberate: P(no finding) is
# about 0.22 for pneumonia, 0.09 heart failure, 0.35 COPD, 0.7 asthma, 0.85 no acute finding.
FINDING_PROBS: dict[str, dict[str, float]] = {
    "pneumonia": {"consolidation": 0.72, "effusion": 0.20, "edema": 0.03},
    "heart_failure": {"cardiomegaly": 0.65, "edema": 0.55, "effusion": 0.40},
    "copd_exacerbation": {"hyperinflation": 0.60, "consolidation": 0.08, "cardiomegaly": 0.05},
    "asthma_exacerbation": {"hyperinflation": 0.25, "consolidation": 0.03},
    "sepsis": {"consolidation": 0.12, "effusion": 0.08, "edema": 0.05},
    "urinary_tract_infection": {"consolidation": 0.05, "effusion": 0.03},
    "no_acute_finding": {"cardiomegaly": 0.08, "hyperinflation": 0.06, "effusion": 0.02},
}


def xray_probability(labels: Sequence[str], chief_complaint: str, cfg: CohortConfig) -> float:
    if _CARDIORESP & set(labels):
        return cfg.xray_p_cardiorespiratory
    if _CHEST_COMPLAINT.search(chief_complaint or ""):
        return cfg.xray_p_respiratory_complaint
    return cfg.xray_p_other


def sample_findings(labels: Sequence[str], rng: np.random.Generator) -> tuple[str, ...]:
    """Imaging findings of one film given the case's diagnoses, in IMAGING_FINDINGS order."""
    found = set()
    for lab in labels:
        for finding, p in FINDING_PROBS[lab].items():
            if rng.random() < p:
                found.add(finding)
    if not found:
        return ("no_finding",)
    return tuple(f for f in IMAGING_FINDINGS if f in found)


def case_rng(seed: int, case_id: str, stream: int) -> np.random.Generator:
    """An RNG that depends only on (simulator seed, case id, stream): builds are reproducible and
    one case's draws do not shift when another case is added or removed."""
    h = int.from_bytes(hashlib.sha256(case_id.encode()).digest()[:8], "little")
    return np.random.default_rng([seed, h, stream])


# ---------------------------------------------------------------- conversion


def _save_png(arr: np.ndarray, path: Path) -> bytes:
    from PIL import Image

    if arr.dtype != np.uint8 or arr.ndim != 2:
        raise TypeError(f"render_cxr must return a 2-D uint8 array, got {arr.dtype} {arr.shape}")
    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG", optimize=False)
    data = buf.getvalue()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return data


def convert_raw(raw: Path, seed: int, out: Path, cfg: CohortConfig | None = None) -> dict:
    """Convert one cached simulation into case files and images under `out`. Returns counts:
    {"cases": {split: {label: n}}, "skipped": {...}, "unmodelled_variables": {...}, ...}."""
    from mmdx.data.cxr_render import render_cxr

    cfg = cfg or CohortConfig()
    raw = Path(raw)
    csv_dir = raw / "csv"
    doc_root = raw / "cif" / "narratives" / "template" / "documents"
    version = clinosim_version()
    skipped: Counter = Counter()
    stats: Counter = Counter()
    unmodelled: Counter = Counter()
    counts: dict[str, Counter] = {s: Counter() for s in SPLITS}
    modality_counts: Counter = Counter()
    finding_counts: Counter = Counter()

    patients = {}
    for r in _read_csv(csv_dir / "patients.csv"):
        patients.setdefault(r["patient_id"], r)
    diagnoses = {r["encounter_id"]: r for r in _read_csv(csv_dir / "diagnoses.csv")}
    series = _load_measurements(csv_dir, unmodelled)
    encounters = sorted(_read_csv(csv_dir / "encounters.csv"), key=lambda r: r["encounter_id"])

    for enc in encounters:
        etype = enc["encounter_type"]
        if etype not in cfg.encounter_types:
            continue
        eid, pid = enc["encounter_id"], enc["patient_id"]
        dx = diagnoses.get(eid)
        if dx is None:
            skipped["no_diagnosis_record"] += 1
            continue
        if dx["condition_type"] in ("newborn_birth", "perinatal_delivery"):
            skipped["birth_or_delivery"] += 1
            continue
        truth = [d for d in dx["ground_truth_diseases"].split("|") if d]
        if not truth:
            skipped["no_ground_truth"] += 1
            continue
        labels = labels_for(truth)
        if labels is None:
            skipped["birth_delivery_or_unknown_disease"] += 1
            continue
        person = patients.get(pid)
        admitted = _dt(enc["admission_datetime"])
        if person is None or admitted is None:
            skipped["no_patient_or_admission_time"] += 1
            continue
        case_id = f"s{seed}-{eid}"
        patient_key = f"s{seed}-{pid}"

        # ---- labs and vitals of the first hours
        t0 = admitted - timedelta(hours=cfg.lead_hours)
        t1 = admitted + timedelta(hours=cfg.first_hours)
        discharged = _dt(enc["discharge_datetime"])
        if discharged is not None:
            t1 = min(t1, discharged + timedelta(hours=cfg.after_discharge_hours))
        measurements = []
        seen = set()
        per_var: Counter = Counter()
        for t, var, value, unit in sorted(series.get(pid, ()), key=lambda r: r[0]):
            if t < t0 or t > t1 or (t, var, value, unit) in seen or per_var[var] >= cfg.max_values_per_variable:
                continue
            seen.add((t, var, value, unit))
            per_var[var] += 1
            try:
                measurements.append(Measurement(time=t, variable=var, value=value, unit=unit))
            except ValidationError as e:
                stats["measurements_rejected"] += 1
                log.debug("%s: rejected %s %s %s: %s", case_id, var, value, unit, e.errors()[0]["msg"])

        notes = _encounter_notes(doc_root / eid, admitted, stats)
        if notes and case_rng(seed, case_id, 2).random() < cfg.atypical_complaint_p:
            notes = atypical_presentation(notes, case_rng(seed, case_id, 3))
            stats["atypical_presentations"] += 1

        # ---- chest X-ray
        p_xray = xray_probability(labels, enc.get("chief_complaint", ""), cfg)
        cxr = None
        findings: tuple[str, ...] = ()
        if case_rng(seed, case_id, 0).random() < p_xray:
            rng = case_rng(seed, case_id, 1)
            findings = sample_findings(labels, rng)
            p_ap = cfg.xray_p_ap if etype == "inpatient" else cfg.xray_p_ap / 3
            view = "AP" if rng.random() < p_ap else "PA"
            acquired = admitted + timedelta(minutes=int(rng.integers(20, 360)))
            sex = {"M": "male", "F": "female"}.get(person["sex"], "unknown")
            age = float(person["age"]) if person["age"] else None
            img = render_cxr(findings, case_rng(seed, case_id, 2), size=cfg.image_size, age=age, sex=sex)
            data = _save_png(np.asarray(img), out / "images" / f"{case_id}.png")
            cxr = ChestXray(
                path=f"../../images/{case_id}.png", view=view, format="png", acquired_at=acquired,
                sha256=hashlib.sha256(data).hexdigest(),
                metadata={"synthetic": "true", "renderer": "mmdx cxr_render"},
            )
            finding_counts.update(findings)

        if cxr is None and not measurements and not notes:
            skipped["no_inputs"] += 1
            continue
        age = min(max(float(person["age"] or 0), 0.0), 120.0)
        sex = {"M": "male", "F": "female"}.get(person["sex"], "other" if person["sex"] else "unknown")
        case = PatientCase(
            case_id=case_id,
            demographics=Demographics(age=age, sex=sex),
            cxr=cxr,
            measurements=tuple(measurements),
            notes=tuple(notes),
            labels=CaseLabels(diagnoses=labels, findings=findings, source=LABEL_SOURCE,
                              noisy=dx["diagnosis_correct"].strip().lower() == "false"),
            origin=f"synthetic: clinosim {version} seed {seed}",
        )
        split = split_of(patient_key, cfg.split_fractions)
        case.save(out / "cases" / split / f"{case_id}.json")
        counts[split].update(labels)
        counts[split]["_cases"] += 1
        stats["noisy_labels"] += int(case.labels.noisy)
        stats[f"encounter_{etype}"] += 1
        modality_counts["+".join(sorted(m.value for m in case.modalities)) or "none"] += 1
    log.info("seed %d: %s cases, skipped %s", seed, sum(c["_cases"] for c in counts.values()), dict(skipped))
    return {
        "cases": {s: dict(sorted(c.items())) for s, c in counts.items()},
        "skipped": dict(sorted(skipped.items())),
        "unmodelled_variables": dict(sorted(unmodelled.items())),
        "modalities": dict(sorted(modality_counts.items())),
        "findings": dict(sorted(finding_counts.items())),
        "stats": dict(sorted(stats.items())),
    }


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) else out.get(k, 0) + v
    return out


def convert_cohort(out: Path, raw_dirs: Sequence[tuple[int, Path]], params: dict,
                   cfg: CohortConfig | None = None) -> dict:
    """Rebuild out/cases and out/images from cached simulations (seed, raw dir) and write
    out/manifest.json. Stale cases of an earlier build are removed first."""
    cfg = cfg or CohortConfig()
    out = Path(out)
    for sub in ("cases", "images"):
        shutil.rmtree(out / sub, ignore_errors=True)
    totals: dict = {}
    for seed, raw in raw_dirs:
        totals = _merge(totals, convert_raw(raw, seed, out, cfg))
    per_split = {s: {k: v for k, v in totals.get("cases", {}).get(s, {}).items() if k != "_cases"} for s in SPLITS}
    manifest = {
        "what": "mmdx synthetic cohort: clinosim simulations converted to PatientCase files (synthetic data)",
        "params": params,
        "config": asdict(cfg),
        "clinosim_version": clinosim_version(),
        "conversion_version": CONVERSION_VERSION,
        "label_source": LABEL_SOURCE,
        "cases_per_split": {s: totals.get("cases", {}).get(s, {}).get("_cases", 0) for s in SPLITS},
        "counts": {s: {d: per_split[s].get(d, 0) for d in DIAGNOSES} for s in SPLITS},
        "skipped": totals.get("skipped", {}),
        "unmodelled_variables": totals.get("unmodelled_variables", {}),
        "modalities": totals.get("modalities", {}),
        "findings": totals.get("findings", {}),
        "stats": totals.get("stats", {}),
        "sha256": cohort_digest(out),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def build_cohort(out: Path, seeds: Sequence[int], population: int, start: str = "2024-01-01",
                 end: str = "2024-12-31", workers: int = 2, cfg: CohortConfig | None = None) -> dict:
    """Simulate (or reuse cached runs of) every seed, convert them, write and return the manifest."""
    cfg = cfg or CohortConfig()
    if not seeds:
        raise ValueError("seeds must not be empty")
    if population < 1:
        raise ValueError(f"population must be >= 1, got {population}")
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    out = Path(out)
    t0 = time.monotonic()
    raws = run_simulations(out, seeds, population, start, end, workers, cfg)
    t1 = time.monotonic()
    params = {"seeds": seeds, "population": population, "start": start, "end": end}
    manifest = convert_cohort(out, list(zip(seeds, raws)), params, cfg)
    log.info("simulated in %.0f s, converted in %.0f s", t1 - t0, time.monotonic() - t1)
    return manifest
