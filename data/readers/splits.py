"""The cohort layout training reads, with patient-level splits: DIR/cases/{train,val,test}/*.json.

A patient's images or admissions all go to one split, so no patient is in training and in test.
Patients are ordered by a hash of (seed, patient key) and cut at the split fractions (0.70 / 0.15
/ 0.15 by default); with three or more patients every split gets at least one. The order of a
patient never depends on the others, but where the cuts fall does: adding patients can move a
patient across a cut. `DIR/splits.json` records which patient went where.

The patient key: CheXpert `patientNNNNN` from the image path, NIH `Patient ID`, MIMIC-IV
`subject_id` (from the origin); a case with none (MedMNIST ships its own splits, a MIMIC admission
without admissions.csv) is its own patient, and splits.json counts how many were.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path

from mmdx.core.case import PatientCase
from mmdx.core.errors import DatasetLayoutError
from mmdx.data.readers.common import case_filename

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.70, 0.15, 0.15)


def patient_key(case: PatientCase) -> str | None:
    """Who the case belongs to, when the source says; None otherwise."""
    meta = case.cxr.metadata if case.cxr is not None else {}
    if meta.get("patient_id"):
        return f"nih:{meta['patient_id']}"
    m = re.search(r"(patient\d+)", meta.get("csv_path", ""))
    if m:
        return f"chexpert:{m.group(1)}"
    m = re.search(r"subject_id (\d+)", case.origin)
    if m:
        return f"mimic-iv:{m.group(1)}"
    return None


def parse_fractions(text: str) -> tuple[float, float, float]:
    try:
        parts = tuple(float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"--fractions must be three numbers like 0.7,0.15,0.15, got {text!r}") from None
    if len(parts) != 3 or any(p < 0 for p in parts) or abs(sum(parts) - 1) > 1e-6:
        raise ValueError(f"--fractions must be three non-negative numbers summing to 1, got {text!r}")
    return parts  # type: ignore[return-value]


def _order(key: str, seed: int) -> bytes:
    return hashlib.sha256(f"{seed}:{key}".encode()).digest()


def assign_splits(cases: Iterable[PatientCase], fractions=DEFAULT_FRACTIONS, seed: int = 0) -> tuple[dict[str, list[PatientCase]], dict]:
    """({split: cases}, a record of the assignment) with every patient in exactly one split."""
    by_patient: dict[str, list[PatientCase]] = defaultdict(list)
    keyless = 0
    for case in cases:
        key = patient_key(case)
        if key is None:
            keyless += 1
            key = f"case:{case.case_id}"
        by_patient[key].append(case)
    patients = sorted(by_patient, key=lambda k: _order(k, seed))
    n = len(patients)
    n_val, n_test = (round(fractions[1] * n), round(fractions[2] * n))
    if n >= 3:
        n_val, n_test = max(1, n_val) if fractions[1] > 0 else 0, max(1, n_test) if fractions[2] > 0 else 0
    n_train = max(0, n - n_val - n_test)
    cut = {**{p: "train" for p in patients[:n_train]}, **{p: "val" for p in patients[n_train:n_train + n_val]},
           **{p: "test" for p in patients[n_train + n_val:]}}
    out: dict[str, list[PatientCase]] = {s: [] for s in SPLITS}
    for p in patients:
        out[cut[p]].extend(by_patient[p])
    record = {"seed": seed, "fractions": list(fractions), "patients": {s: sum(v == s for v in cut.values()) for s in SPLITS},
              "cases": {s: len(out[s]) for s in SPLITS}, "cases_without_patient_key": keyless, "assignment": cut}
    return out, record


def _portable(case: PatientCase) -> PatientCase:
    """The case with a relative image path made absolute: the JSON moves, the image does not."""
    if case.cxr is None or Path(case.cxr.path).is_absolute() or not case.base_dir:
        return case
    return case.model_copy(update={"cxr": case.cxr.model_copy(update={"path": str(case.image_path().resolve())})})


def write_layout(cases: Iterable[PatientCase], out: str | Path, fractions=DEFAULT_FRACTIONS, seed: int = 0) -> dict:
    """Write OUT/cases/{train,val,test}/<case>.json and OUT/splits.json; returns the record."""
    out = Path(out)
    by_split, record = assign_splits(cases, fractions, seed)
    for split, members in by_split.items():
        folder = out / "cases" / split
        folder.mkdir(parents=True, exist_ok=True)
        for case in members:
            _portable(case).save(folder / case_filename(case.case_id))
    (out / "splits.json").write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    return record


def split_folder(src: str | Path, out: str | Path, fractions=DEFAULT_FRACTIONS, seed: int = 0) -> dict:
    """`mmdx data split`: a flat folder of case files (an older `mmdx data import`) -> the layout."""
    src = Path(src)
    files = sorted(src.glob("*.json"))
    if not files:
        raise DatasetLayoutError(f"no case files (*.json) in {src}")
    return write_layout((PatientCase.load(f) for f in files), out, fractions, seed)


def layout_problem(data_dir: str | Path) -> str | None:
    """Why `data_dir` is not a cohort for training (None when it is)."""
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        return f"{data_dir} is not a folder"
    missing = [s for s in SPLITS if not (data_dir / "cases" / s).is_dir()]
    if missing:
        flat = any(data_dir.glob("*.json"))
        hint = f"; it holds case files directly: run `mmdx data split {data_dir} --out NEW_DIR`" if flat else ""
        return f"{data_dir} lacks cases/{'/, cases/'.join(missing)}/ (the layout is DIR/cases/{{train,val,test}}/*.json){hint}"
    return None
