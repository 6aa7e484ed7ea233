"""Where a workflow's cases come from, streamed one at a time (memory stays flat as the cohort grows).

- `cohort`: the embedded synthetic ED cohort by seeds, population and dates. A folder whose
  manifest records other parameters is refused (its results would not be the workflow's); a missing
  one is built (`mmdx data build`, about a minute for the default seeds) when `build_if_missing`.
- `path`: a real-format import (`DIR/cases/{train,val,test}/`, as `mmdx data import` writes) or a
  flat folder of case files (every case counts as the workflow's split).
- `iu_reports`: the real Indiana University report texts, split as in training (`iu_split`); each
  report becomes a case with one note (findings + impression) and its MeSH-derived findings as
  labels (real text; the labels come from the report itself).

Only case *paths* are listed up front; each case is read when it is scored.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Iterator

from mmdx.core.case import CaseLabels, Note, PatientCase
from mmdx.evals.workflow_spec import DatasetSpec, WorkflowError

log = logging.getLogger(__name__)
IU_ORIGIN = "real: Indiana University chest X-ray report text (CC BY-NC-ND 4.0)"


class CaseSource:
    """Lists the case units of a split and loads each on demand. `describe` says what the data is."""

    def __init__(self, spec: DatasetSpec, root: Path | None = None):
        self.spec = spec
        self.root = Path(root or ".")
        self.folder: Path | None = None
        self._iu: dict | None = None
        if spec.cohort is not None:
            self.folder = self._cohort()
        elif spec.path is not None:
            self.folder = (self.root / spec.path).resolve()
            if not self.folder.is_dir():
                raise WorkflowError(f"dataset.path: {self.folder} is not a folder")

    def _cohort(self) -> Path:
        from mmdx.data import cohort as cohort_mod

        c = self.spec.cohort
        folder = (self.root / c.dir).resolve()
        want = {"seeds": list(c.seeds), "population": c.population, "start": c.start.isoformat(), "end": c.end.isoformat()}
        manifest = folder / "manifest.json"
        if manifest.is_file():
            have = json.loads(manifest.read_text()).get("params", {})
            if {k: have.get(k) for k in want} != want:
                raise WorkflowError(f"dataset.cohort: {folder} was built with {have}, the workflow asks for {want}; "
                                    f"point dir elsewhere or rebuild it")
            return folder
        if not c.build_if_missing:
            raise WorkflowError(f"dataset.cohort: no cohort at {folder}; build it with `mmdx data build --out {c.dir} "
                                f"--seeds {','.join(map(str, c.seeds))} --population {c.population}`")
        log.warning("building the synthetic cohort %s (seeds %s, population %d): about a minute for seeds 1-7",
                    folder, c.seeds, c.population)
        cohort_mod.build_cohort(folder, seeds=c.seeds, population=c.population, start=want["start"], end=want["end"])
        return folder

    def describe(self) -> str:
        if self.spec.cohort is not None:
            c = self.spec.cohort
            return (f"synthetic: mmdx ED cohort, seeds {','.join(map(str, c.seeds))}, population {c.population}, "
                    f"{c.start}..{c.end} ({c.dir})")  # as the workflow wrote it: the summary reads alike on every machine
        if self.spec.path is not None:
            return f"cases under {self.spec.path} (their origin field says whether they are real or synthetic)"
        return IU_ORIGIN

    def units(self, split: str, limit: int | None = None) -> list[str]:
        """The units of a split, sorted: case file paths, or IU report ids."""
        if self.spec.iu_reports is not None:
            return [r.uid for r in self._iu_split()[split]][:limit]
        sub = self.folder / "cases" / split
        folder = sub if sub.is_dir() else self.folder
        files = sorted(str(p) for p in folder.glob("*.json"))
        return files[:limit]

    def load(self, unit: str, split: str) -> PatientCase:
        if self.spec.iu_reports is not None:
            r = self._iu_by_uid(split)[unit]
            text = f"[findings] {r.findings}\n[impression] {r.impression}".strip()
            return PatientCase(case_id=f"iu-{r.uid}", demographics={"age": 50, "sex": "unknown"},
                               notes=(Note(kind="radiology_report", text=text),),
                               labels=CaseLabels(findings=r.findings_labels, source="MeSH major headings of the report (real)"),
                               origin=IU_ORIGIN)
        return PatientCase.load(unit)

    def iter_cases(self, split: str, limit: int | None = None) -> Iterator[PatientCase]:
        for u in self.units(split, limit):
            yield self.load(u, split)

    # ---- IU reports
    def _iu_split(self) -> dict:
        if self._iu is None:
            from mmdx.data.readers import iu_split, load_iu_reports

            path = (self.spec.iu_reports or {}).get("path")
            splits = iu_split(load_iu_reports(path))
            self._iu = {s: [r for r in rs if (r.findings or r.impression).strip()] for s, rs in splits.items()}
        return self._iu

    def _iu_by_uid(self, split: str) -> dict:
        if not hasattr(self, "_by_uid"):
            self._by_uid = {s: {r.uid: r for r in rs} for s, rs in self._iu_split().items()}
        return self._by_uid[split]


def truth_of(case: PatientCase) -> dict[str, list[str]] | None:
    if case.labels is None:
        return None
    return {"diagnoses": list(case.labels.diagnoses), "findings": list(case.labels.findings)}
