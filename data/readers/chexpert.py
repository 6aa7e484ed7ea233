"""CheXpert `train.csv` / `valid.csv` + image folder -> cases (findings from the CheXpert labeler)."""
from __future__ import annotations

import logging
import math
import re
from pathlib import Path
from typing import Literal

from mmdx.core.case import CaseLabels, ChestXray, Demographics, PatientCase
from mmdx.data.readers.common import (_SEX, MalformedRow, ReadReport, _age, _image_csv_source, _ImageIndex, _ordered,
                                      _rows)

log = logging.getLogger(__name__)

CHEXPERT_LABELS: tuple[str, ...] = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion", "Edema",
    "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion", "Pleural Other",
    "Fracture", "Support Devices",
)
# CheXpert label -> ours. "Lung Opacity" is left unmapped: in CheXpert it is the parent of edema,
# consolidation, pneumonia, atelectasis and lesions, so it would overstate consolidation.
CHEXPERT_TO_FINDING: dict[str, str] = {
    "No Finding": "no_finding",
    "Cardiomegaly": "cardiomegaly",
    "Edema": "edema",
    "Consolidation": "consolidation",
    "Pneumonia": "consolidation",
    "Pleural Effusion": "effusion",
}
CHEXPERT_COLUMNS = ("Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", *CHEXPERT_LABELS)


def read_chexpert(csv_path: str | Path, image_root: str | Path | None = None, *,
                  uncertain: Literal["ignore", "positive"] = "ignore", lenient: bool = False,
                  require_images: bool = True, limit: int | None = None,
                  report: ReadReport | None = None) -> list[PatientCase]:
    """Cases from a CheXpert `train.csv`/`valid.csv` and its image folder.

    Label values: 1.0 positive, 0.0 negative, -1.0 uncertain, blank not mentioned (absent).
    `uncertain="ignore"` (default) treats -1.0 as absent, `"positive"` as present; either way the
    -1.0 values are counted in `report.uncertain`. `image_root` defaults to the CSV's folder; the
    `Path` column may start with the dataset folder name (CheXpert-v1.0-small/...).
    """
    if uncertain not in ("ignore", "positive"):
        raise ValueError(f"uncertain must be 'ignore' or 'positive', got {uncertain!r}")
    csv_path, images, report = _image_csv_source("CheXpert", csv_path, image_root, report)
    cases: list[PatientCase] = []
    for line, row in _rows(csv_path, CHEXPERT_COLUMNS):
        if limit is not None and len(cases) >= limit:
            break
        report.rows += 1
        try:
            case = _chexpert_case(csv_path, line, row, images, uncertain, require_images, report)
        except MalformedRow as e:
            if not lenient:
                raise
            report.skip(f"malformed {e.column}")
            log.debug("skipped %s", e)
            continue
        if case is not None:
            cases.append(case)
            report.cases += 1
    log.info("%s", report.summary())
    return cases


def _chexpert_case(file: Path, line: int, row: dict[str, str], images: _ImageIndex, uncertain: str,
                   require_images: bool, report: ReadReport) -> PatientCase | None:
    rel = row["Path"].strip()
    if not rel:
        raise MalformedRow(file, line, "Path", "empty image path")
    sex = _SEX.get(row["Sex"].strip().lower())
    if sex is None:
        raise MalformedRow(file, line, "Sex", f"sex {row['Sex']!r} is not Female, Male or Unknown")
    age = _age(row["Age"], file, line, "Age")
    findings, uncertain_here, unmapped_here = [], [], []
    for name in CHEXPERT_LABELS:
        raw = row[name].strip()
        try:
            v = float(raw) if raw else None
        except ValueError:
            v = math.nan
        if v is not None and v not in (1.0, 0.0, -1.0):
            raise MalformedRow(file, line, name, f"label value {raw!r} is not 1.0, 0.0, -1.0 or blank")
        if v == -1.0:
            uncertain_here.append(name)
        present = v == 1.0 or (v == -1.0 and uncertain == "positive")
        if present:
            if name in CHEXPERT_TO_FINDING:
                findings.append(CHEXPERT_TO_FINDING[name])
            else:
                unmapped_here.append(name)
    fl, appa = row["Frontal/Lateral"].strip().lower(), row["AP/PA"].strip().upper()
    view = "LATERAL" if fl == "lateral" or appa in ("LL", "RL", "LATERAL") else appa if appa in ("AP", "PA") else "UNKNOWN"
    found = images.find(rel)
    if found is None and require_images:
        report.skip("image not found")
        return None
    for name in uncertain_here:  # counted only for rows that become cases
        report.uncertain[name] = report.uncertain.get(name, 0) + 1
    for name in unmapped_here:
        report.note_unknown(name)
    parts = [re.sub(r"[^A-Za-z0-9._-]", "_", p) for p in Path(rel).with_suffix("").parts]
    case_id = "chexpert:" + ":".join(parts[-3:])  # patientNNNNN:studyN:viewN_frontal
    fmt = None if found is not None or Path(rel).suffix.lower() in (".png", ".jpg", ".jpeg", ".dcm") else "jpeg"
    return PatientCase(
        case_id=case_id[:128],
        demographics=Demographics(age=age, sex=sex),
        cxr=ChestXray(path=str(found) if found else rel, view=view, format=fmt,
                      metadata={"source": "CheXpert", "csv_path": rel, "uncertain_policy": uncertain}),
        labels=CaseLabels(findings=_ordered(findings), source=f"CheXpert labeler ({file.name}; uncertain={uncertain})"),
        origin=f"real: CheXpert {file.name} line {line}",
    )
