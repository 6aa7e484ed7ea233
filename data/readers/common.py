"""What every dataset reader shares: typed errors, the read report, CSV reading that names file,
line and column, the image index of the image+CSV datasets, and the age and sex conventions.

Conventions (each reader's docstring adds its format's):

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
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import io
import re
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

from pydantic import BaseModel, Field

from mmdx.core.errors import CaseValidationError, MmdxError
from mmdx.core.labels import IMAGING_FINDINGS

UNKNOWN_AGE = 50.0  # years; stands in for a missing age (see module docstring), always flagged


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


def _ordered(findings: Iterable[str]) -> tuple[str, ...]:
    s = set(findings)
    return tuple(f for f in IMAGING_FINDINGS if f in s)


# ------------------------------------------------------------------------------------------------
# CSV + image folder datasets (CheXpert, NIH)

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
