"""MedMNIST ChestMNIST `.npz` -> (image, findings) pairs, or PNG + case JSON files."""
from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mmdx.core.case import CaseLabels, ChestXray, Demographics, PatientCase
from mmdx.core.errors import CaseValidationError, CorruptInput
from mmdx.data.readers.common import UNKNOWN_AGE, DatasetNotFound, MalformedRow, ReadReport, _sha256, case_filename
from mmdx.data.readers.nih import NIH_LABELS, nih_findings

log = logging.getLogger(__name__)

MEDMNIST_SIZES = (28, 64, 128, 224)
MEDMNIST_LICENCE = "MedMNIST ChestMNIST: CC BY 4.0 (derived from NIH ChestX-ray14, CC0)"


def _medmnist_arrays(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    if split not in ("train", "val", "test"):
        raise ValueError(f"split must be train, val or test, got {split!r}")
    if not path.is_file():
        raise DatasetNotFound(f"MedMNIST file not found: {path}")
    try:
        npz = np.load(path, allow_pickle=False)
        keys = set(npz.files)
        ik, lk = f"{split}_images", f"{split}_labels"
        missing = [k for k in (ik, lk) if k not in keys]
        if missing:
            raise CaseValidationError([(f"{path.name}:{missing[0]}", f"missing array; file has {sorted(keys)}")])
        images, labels = npz[ik], npz[lk]
    except (OSError, ValueError, EOFError) as e:
        raise CorruptInput(f"{path.name}: not a readable .npz ({e})") from e
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1] != images.shape[2] or images.shape[1] not in MEDMNIST_SIZES:
        raise CaseValidationError([(f"{path.name}:{ik}", f"expected uint8 (N, S, S) with S in {MEDMNIST_SIZES}, got {images.dtype} {images.shape}")])
    if labels.shape != (images.shape[0], len(NIH_LABELS)):
        raise CaseValidationError([(f"{path.name}:{lk}", f"expected shape ({images.shape[0]}, {len(NIH_LABELS)}), got {labels.shape}")])
    return images, labels


def read_medmnist_npz(path: str | Path, split: str, report: ReadReport | None = None) -> Iterator[tuple[np.ndarray, tuple[str, ...]]]:
    """Yield (image (S, S) uint8, findings) for each image of `split` in a ChestMNIST `.npz`.

    Labels are the 14 NIH labels in NIH order (`NIH_LABELS`); a row with none set is "no finding".
    A label value other than 0/1 raises `MalformedRow` (line = 0-based image index + 1).
    """
    path = Path(path)
    images, labels = _medmnist_arrays(path, split)
    for i in range(images.shape[0]):
        row = labels[i]
        bad = [j for j, v in enumerate(row) if v not in (0, 1)]
        if bad:
            raise MalformedRow(path, i + 1, f"{split}_labels[{NIH_LABELS[bad[0]]}]", f"label value {row[bad[0]]} is not 0 or 1")
        names = [NIH_LABELS[j] for j in range(len(NIH_LABELS)) if row[j] == 1] or ["No Finding"]
        if report is not None:
            report.rows += 1
        yield images[i], nih_findings(names, report)


def medmnist_to_cases(path: str | Path, split: str, out_dir: str | Path, *, limit: int | None = None,
                      report: ReadReport | None = None) -> list[Path]:
    """Write `out_dir/images/<id>.png` and `out_dir/<id>.json` for each image; return the JSON paths.

    ChestMNIST has no age, sex or view: age is `UNKNOWN_AGE` (flagged in cxr.metadata), sex
    "unknown", view "UNKNOWN". Image paths in the JSON are relative to the case file.
    """
    from PIL import Image

    path, out_dir = Path(path), Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    report = report if report is not None else ReadReport()
    report.source = report.source or f"medmnist {path.name} [{split}]"
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", path.stem)
    written = []
    for i, (img, findings) in enumerate(read_medmnist_npz(path, split, report)):
        if limit is not None and i >= limit:
            break
        case_id = f"{stem}_{split}_{i:06d}"
        png = out_dir / "images" / f"{case_id}.png"
        Image.fromarray(np.ascontiguousarray(img)).save(png)  # (S, S) uint8 -> 8-bit grayscale PNG
        case = PatientCase(
            case_id=case_id,
            demographics=Demographics(age=UNKNOWN_AGE, sex="unknown"),
            cxr=ChestXray(path=f"images/{png.name}", sha256=_sha256(png), metadata={
                "source": MEDMNIST_LICENCE, "split": split, "index": str(i), "age_unknown": "true"}),
            labels=CaseLabels(findings=findings, source=f"MedMNIST {path.name} {split}_labels (NIH text-mined)"),
            origin=f"real: MedMNIST {path.name} {split}[{i}]; age unknown (set to {UNKNOWN_AGE:g})",
        )
        written.append(case.save(out_dir / case_filename(case_id)))
        report.cases += 1
    log.info("%s", report.summary())
    return written
