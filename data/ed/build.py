"""Presentations -> PatientCase files (and rendered radiographs) for one seed of the ED cohort.

    build_seed(seed, population, start, end, out, note_style="ed") -> counts

Writes out/cases/<split>/<case_id>.json, out/images/<case_id>.png and returns the rows of
out/truth.jsonl (the latent conditions behind each recorded label, for analysis only: never an
input). The split is by patient (one presentation per patient here), by a stable hash. Everything
is synthetic and every case says so (`origin`, `labels.source`, the image metadata).
"""
from __future__ import annotations

import hashlib
import io
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from mmdx.core.case import CaseLabels, ChestXray, Demographics, Measurement, Note, PatientCase
from mmdx.data.ed.generate import GENERATOR_VERSION, Presentation, case_rng, presentations
from mmdx.data.ed.notes import write_notes

LABEL_SOURCE = "recorded ED diagnosis from the mmdx ED generator (synthetic; wrong in ~6% of cases, marked noisy)"
IMAGE_SIZE = 128  # rendered radiograph side, pixels
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)  # train / val / test, by patient
NOTE_OFFSETS_H = {"chief_complaint": 0.0, "history_of_present_illness": 0.25, "physical_exam": 0.3, "case_report": 0.3}


def split_of(patient_key: str, fractions: tuple[float, float, float] = SPLIT_FRACTIONS) -> str:
    """train/val/test by a stable hash of the patient key, so a patient never spans two splits."""
    u = int.from_bytes(hashlib.sha256(patient_key.encode()).digest()[:8], "little") / 2**64
    if u < fractions[0]:
        return "train"
    if u < fractions[0] + fractions[1]:
        return "val"
    return "test"


def _png(arr: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(arr, mode="L").save(buf, format="PNG", optimize=False)
    return buf.getvalue()


def to_case(p: Presentation, out: Path, note_style: str = "ed", image_size: int = IMAGE_SIZE) -> PatientCase:
    """The presentation as a PatientCase; renders and writes its radiograph under out/images/."""
    from mmdx.data.cxr_render import render_cxr

    t0 = p.arrival
    cxr = None
    if p.cxr_taken:
        img = render_cxr(p.cxr_findings, case_rng(p.seed, p.index, 20), size=image_size, age=p.age, sex=p.sex)
        data = _png(np.asarray(img))
        path = out / "images" / f"{p.case_id}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        portable = case_rng(p.seed, p.index, 21).random() < (0.35 if p.complaint == "weakness_confusion" else 0.12)
        cxr = ChestXray(path=f"../../images/{p.case_id}.png", view="AP" if portable else "PA", format="png",
                        acquired_at=t0 + timedelta(hours=round(p.cxr_hours, 2)), sha256=hashlib.sha256(data).hexdigest(),
                        metadata={"synthetic": "true", "renderer": "mmdx cxr_render"})
    measurements = tuple(
        Measurement(time=t0 + timedelta(minutes=round(m.hours * 60)), variable=m.variable, value=m.value, unit=m.unit)
        for m in p.measurements)
    notes = tuple(Note(time=t0 + timedelta(hours=NOTE_OFFSETS_H.get(kind, 0.3)), kind=kind, text=text)
                  for kind, text in write_notes(p, note_style))
    return PatientCase(
        case_id=p.case_id,
        demographics=Demographics(age=p.age, sex=p.sex),
        cxr=cxr, measurements=measurements, notes=notes,
        labels=CaseLabels(diagnoses=p.recorded_diagnoses, findings=p.cxr_findings, source=LABEL_SOURCE, noisy=p.noisy),
        origin=f"synthetic: {GENERATOR_VERSION} seed {p.seed}" + ("" if note_style == "ed" else f", notes in {note_style} style"),
    )


def truth_row(p: Presentation, split: str) -> dict:
    return {"case_id": p.case_id, "split": split, "conditions": list(p.conditions), "true_diagnoses": list(p.true_diagnoses),
            "recorded_diagnoses": list(p.recorded_diagnoses), "noisy": p.noisy, "complaint": p.complaint,
            "atypical": p.atypical, "mild": p.mild,
            "severity": round(p.severity, 4)}


def build_seed(seed: int, population: int, start: datetime, end: datetime, out: Path, note_style: str = "ed",
               image_size: int = IMAGE_SIZE) -> dict:
    """Write one seed's cases and images under `out`. Returns counts and the truth rows."""
    out = Path(out)
    counts = {s: Counter() for s in ("train", "val", "test")}
    modalities: Counter = Counter()
    findings: Counter = Counter()
    complaints: Counter = Counter()
    truth = []
    noisy = 0
    for p in presentations(seed, population, start, end):
        case = to_case(p, out, note_style, image_size)
        split = split_of(p.case_id)
        case.save(out / "cases" / split / f"{p.case_id}.json")
        counts[split].update(p.recorded_diagnoses)
        counts[split]["_cases"] += 1
        modalities["+".join(sorted(m.value for m in case.modalities))] += 1
        findings.update(p.cxr_findings)
        complaints[p.complaint] += 1
        noisy += int(p.noisy)
        truth.append(truth_row(p, split))
    return {"cases": {s: dict(c) for s, c in counts.items()}, "modalities": dict(modalities), "findings": dict(findings),
            "complaints": dict(complaints), "stats": {"noisy_labels": noisy}, "truth": truth}
