"""NIH ChestX-ray14: its 14 labels (also the ChestMNIST label order) mapped onto our imaging
findings, and `Data_Entry_2017*.csv` + image folder(s) -> cases."""
from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from pathlib import Path

from mmdx.core.case import CaseLabels, ChestXray, Demographics, PatientCase
from mmdx.data.readers.common import _SEX, MalformedRow, ReadReport, _age, _image_csv_source, _ordered, _rows

log = logging.getLogger(__name__)

NIH_LABELS: tuple[str, ...] = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening", "Hernia",
)
# NIH label -> ours. Infiltration and pneumonia count as consolidation (as opacity does for IU);
# atelectasis, mass, nodule, pneumothorax, fibrosis, pleural thickening, hernia have no finding of ours.
NIH_TO_FINDING: dict[str, str] = {
    "Cardiomegaly": "cardiomegaly",
    "Effusion": "effusion",
    "Infiltration": "consolidation",
    "Pneumonia": "consolidation",
    "Consolidation": "consolidation",
    "Edema": "edema",
    "Emphysema": "hyperinflation",
    "No Finding": "no_finding",
}


def nih_findings(labels: Iterable[str], report: ReadReport | None = None) -> tuple[str, ...]:
    """Map NIH label names onto ours; labels without a counterpart are counted in `report`."""
    out = []
    for name in labels:
        mapped = NIH_TO_FINDING.get(name)
        if mapped is not None:
            out.append(mapped)
        elif report is not None:
            report.note_unknown(name)
    return _ordered(out)


NIH_COLUMNS = ("Image Index", "Finding Labels", "Follow-up #", "Patient ID", "Patient Age", "Patient Gender", "View Position")


def read_nih(csv_path: str | Path, image_root: str | Path | None = None, *, lenient: bool = False,
             require_images: bool = True, limit: int | None = None,
             report: ReadReport | None = None) -> list[PatientCase]:
    """Cases from NIH ChestX-ray14 `Data_Entry_2017*.csv` and its image folder(s).

    `Finding Labels` is pipe-separated ("Cardiomegaly|Emphysema", "No Finding"). Images are found
    under `image_root` (default: the CSV's folder) directly or in any subfolder (images_001/images/).
    Ages come as "58" or, in early releases, "058Y".
    """
    csv_path, images, report = _image_csv_source("NIH", csv_path, image_root, report)
    known = set(NIH_LABELS) | {"No Finding"}
    cases: list[PatientCase] = []
    for line, row in _rows(csv_path, NIH_COLUMNS):
        if limit is not None and len(cases) >= limit:
            break
        report.rows += 1
        try:
            name = row["Image Index"].strip()
            if not name:
                raise MalformedRow(csv_path, line, "Image Index", "empty image name")
            labels = [s.strip() for s in row["Finding Labels"].split("|") if s.strip()]
            if not labels:
                raise MalformedRow(csv_path, line, "Finding Labels", "empty; NIH writes 'No Finding'")
            if "No Finding" in labels and len(labels) > 1:
                raise MalformedRow(csv_path, line, "Finding Labels", f"'No Finding' beside findings: {row['Finding Labels']!r}")
            age = _age(row["Patient Age"], csv_path, line, "Patient Age")
            sex = _SEX.get(row["Patient Gender"].strip().lower())
            if sex is None:
                raise MalformedRow(csv_path, line, "Patient Gender", f"{row['Patient Gender']!r} is not M or F")
            follow = row["Follow-up #"].strip()
            if not follow.isdigit():
                raise MalformedRow(csv_path, line, "Follow-up #", f"{follow!r} is not a whole number")
        except MalformedRow as e:
            if not lenient:
                raise
            report.skip(f"malformed {e.column}")
            continue
        for lab in labels:
            if lab not in known:
                report.note_unknown(f"label {lab}")  # a label NIH does not define: counted, not mapped
        findings = nih_findings([lab for lab in labels if lab in known], report)
        found = images.find(name)
        if found is None and require_images:
            report.skip("image not found")
            continue
        view = row["View Position"].strip().upper()
        cases.append(PatientCase(
            case_id=f"nih:{re.sub(r'[^A-Za-z0-9._-]', '_', Path(name).stem)}",
            demographics=Demographics(age=age, sex=sex),
            cxr=ChestXray(path=str(found) if found else name, view=view if view in ("AP", "PA") else "UNKNOWN",
                          metadata={"source": "NIH ChestX-ray14", "patient_id": row["Patient ID"].strip(), "follow_up": follow}),
            labels=CaseLabels(findings=findings, source=f"NIH ChestX-ray14 text-mined labels ({csv_path.name})"),
            origin=f"real: NIH ChestX-ray14 {csv_path.name} line {line}",
        ))
        report.cases += 1
    log.info("%s", report.summary())
    return cases
