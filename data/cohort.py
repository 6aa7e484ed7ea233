"""The embedded synthetic cohort: build it, read it, pick demo cases from it.

    mmdx data build --out cohorts/default [--seeds 1,2,..] [--population N] [--start --end] [--source ed|clinosim]

Layout (every source writes the same):

    OUT/cases/{train,val,test}/<case_id>.json   PatientCase files, split by patient
    OUT/images/<case_id>.png                    rendered radiographs (synthetic)
    OUT/truth.jsonl                             latent conditions behind each recorded label (ed source;
                                                for analysis, never a model input)
    OUT/manifest.json                           parameters, counts, sha256 over cases and images

Sources:
- `ed` (default): the literature-calibrated emergency-department generator (data/ed/), one process
  per seed (at most `workers` at once). Deterministic for (seeds, population, start, end).
- `clinosim`: the legacy simulator conversion (data/clinosim_source.py), kept for comparison.
"""
from __future__ import annotations

import hashlib
import json
import logging
import shutil
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor
from datetime import datetime
from pathlib import Path

from mmdx.core.case import PatientCase
from mmdx.core.errors import MmdxError
from mmdx.core.labels import DIAGNOSES

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
SOURCES = ("ed", "clinosim")
DEFAULT_SEEDS: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
DEFAULT_POPULATION = 4000  # catchment people per seed: about 1,050 ED presentations a year each
DEFAULT_START, DEFAULT_END = "2024-01-01", "2024-12-31"
NOTE_STYLES = ("ed", "case_report")


def cohort_digest(out: Path) -> str:
    """sha256 over every case file and image (relative path and bytes, in sorted order)."""
    h = hashlib.sha256()
    out = Path(out)
    files = sorted(p for sub in ("cases", "images") for p in (out / sub).rglob("*") if p.is_file())
    for p in files:
        h.update(p.relative_to(out).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def iter_cases(out: Path, split: str | None = None) -> Iterable[PatientCase]:
    """Load the built cases (one split or all), sorted by path."""
    root = Path(out) / "cases"
    pattern = f"{split}/*.json" if split else "*/*.json"
    for p in sorted(root.glob(pattern)):
        yield PatientCase.load(p)


def read_truth(out: Path) -> dict[str, dict]:
    """case_id -> the generator's truth row (empty for sources that write none)."""
    path = Path(out) / "truth.jsonl"
    if not path.is_file():
        return {}
    return {r["case_id"]: r for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip())}


def _parse_day(text: str, what: str) -> datetime:
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        raise MmdxError(f"{what} must be a date like 2024-01-31, got {text!r}") from None


def _ed_seed(args: tuple) -> dict:
    from mmdx.data.ed.build import build_seed

    seed, population, start, end, out, note_style = args
    return build_seed(seed, population, start, end, Path(out), note_style)


def _merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _merge(out.get(k, {}), v) if isinstance(v, dict) else out.get(k, 0) + v
    return out


def build_cohort(out: Path, seeds: Sequence[int], population: int, start: str = DEFAULT_START, end: str = DEFAULT_END,
                 workers: int = 2, source: str = "ed", note_style: str = "ed") -> dict:
    """Build (or rebuild) the cohort under `out` and return its manifest."""
    if source not in SOURCES:
        raise MmdxError(f"unknown cohort source {source!r}; known: {', '.join(SOURCES)}")
    if not seeds:
        raise ValueError("seeds must not be empty")
    if population < 1:
        raise ValueError(f"population must be >= 1, got {population}")
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    seeds = list(dict.fromkeys(int(s) for s in seeds))
    if source == "clinosim":
        if note_style != "ed":
            raise MmdxError("--note-style applies to the ed source only")
        from mmdx.data.clinosim_source import build_cohort as build_clinosim

        return build_clinosim(out, seeds, population, start, end, workers)
    if note_style not in NOTE_STYLES:
        raise MmdxError(f"unknown note style {note_style!r}; known: {', '.join(NOTE_STYLES)}")
    t_start, t_end = _parse_day(start, "--start"), _parse_day(end, "--end")
    if t_end <= t_start:
        raise MmdxError(f"--end ({end}) must be after --start ({start})")
    out = Path(out)
    for sub in ("cases", "images"):
        shutil.rmtree(out / sub, ignore_errors=True)
    t0 = time.monotonic()
    jobs = [(s, population, t_start, t_end, str(out), note_style) for s in seeds]
    if workers == 1 or len(jobs) == 1:
        results = [_ed_seed(j) for j in jobs]
    else:
        with ProcessPoolExecutor(max_workers=min(workers, len(jobs))) as pool:
            results = list(pool.map(_ed_seed, jobs))
    totals: dict = {}
    truth = []
    for r in results:
        truth += r.pop("truth")
        totals = _merge(totals, r)
    truth.sort(key=lambda row: row["case_id"])
    (out / "truth.jsonl").write_text("".join(json.dumps(row, sort_keys=True) + "\n" for row in truth))
    from mmdx.data.ed.generate import GENERATOR_VERSION

    cases = totals.get("cases", {})
    manifest = {
        "what": "mmdx synthetic cohort: adult emergency-department presentations from the literature-calibrated "
                "generator (synthetic data)",
        "source": "ed", "generator": GENERATOR_VERSION, "note_style": note_style,
        "params": {"seeds": seeds, "population": population, "start": start, "end": end},
        "cases_per_split": {s: cases.get(s, {}).get("_cases", 0) for s in SPLITS},
        "counts": {s: {d: cases.get(s, {}).get(d, 0) for d in DIAGNOSES} for s in SPLITS},
        "modalities": dict(sorted(totals.get("modalities", {}).items())),
        "findings": dict(sorted(totals.get("findings", {}).items())),
        "complaints": dict(sorted(totals.get("complaints", {}).items())),
        "stats": totals.get("stats", {}),
        "sha256": cohort_digest(out),
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    log.info("built %d cases in %.0f s", sum(manifest["cases_per_split"].values()), time.monotonic() - t0)
    return manifest


# ---------------------------------------------------------------- demo cases


def _measured(case: PatientCase, variable: str) -> float | None:
    vals = [m.value for m in case.measurements if m.variable == variable]
    return vals[0] if vals else None


def _notes_text(case: PatientCase) -> str:
    return " ".join(n.text for n in case.notes)


def _disagreeing_dyspnoea(case: PatientCase) -> bool:
    """An emergency dyspnoea case whose modalities point different ways: heart failure recorded and
    the BNP above the 100 pg/mL cut-off (Maisel 2002), while the film shows consolidation or
    hyperinflation (read as pneumonia or COPD) and neither cardiomegaly nor oedema."""
    text = _notes_text(case).lower()
    breathless = any(w in text for w in ("short of breath", "shortness of breath", "dyspn", "breathless", "difficulty breathing"))
    bnp = _measured(case, "bnp")
    film = set(case.labels.findings)
    return (breathless and case.cxr is not None and bnp is not None and bnp >= 100
            and bool(film & {"consolidation", "hyperinflation"}) and not film & {"cardiomegaly", "edema"})


# (name, label spec, modalities removed, preference, extra requirement)
DEMO_SPECS: tuple[tuple[str, str, tuple[str, ...], str, object], ...] = (
    ("pneumonia-all-modalities", "pneumonia", (), "consolidation", None),
    ("heart-failure-all-modalities", "heart_failure", (), "cardiomegaly", None),
    ("dyspnoea-modalities-disagree", "heart_failure", (), "", _disagreeing_dyspnoea),
    ("copd-no-xray", "copd_exacerbation", ("cxr",), "", None),
    ("uti-or-sepsis-labs-notes", "urinary_tract_infection|sepsis", ("cxr",), "", None),
    ("no-acute-finding-notes-only", "no_acute_finding", ("cxr", "labs"), "", None),
    ("xray-only", "heart_failure|copd_exacerbation|pneumonia|asthma_exacerbation", ("labs", "notes"), "abnormal", None),
)


def select_demo(cohort_dir: Path, dest: Path, split: str = "test") -> list[str]:
    """Pick the demo cases from a built cohort's `split` and copy them (with their PNGs) to
    dest/cases and dest/images. Deterministic: the first case by case id that fits each spec (and its
    extra requirement), preferring an X-ray showing the preferred finding, then a single-label case,
    then a case whose label is not marked noisy, then one that already lacks the modalities to remove
    (else they are removed with PatientCase.without). Returns the chosen case ids."""
    cohort_dir, dest = Path(cohort_dir), Path(dest)
    cases = list(iter_cases(cohort_dir, split))
    for sub in ("cases", "images"):
        shutil.rmtree(dest / sub, ignore_errors=True)
    chosen: list[str] = []
    used = set()
    for name, label_spec, remove, prefer, extra in DEMO_SPECS:
        wanted = set(label_spec.split("|"))
        keep = {"cxr", "labs", "notes"} - set(remove)
        pool = [c for c in cases if c.case_id not in used and c.labels and wanted & set(c.labels.diagnoses)
                and keep <= {m.value for m in c.modalities} and (extra is None or extra(c))]

        def rank(c: PatientCase) -> tuple:
            natural = not ({m.value for m in c.modalities} & set(remove))
            if prefer == "abnormal":
                pref = bool(c.labels.findings) and c.labels.findings != ("no_finding",)
            else:
                pref = prefer in c.labels.findings if prefer else True
            return (not pref, len(c.labels.diagnoses) > 1, c.labels.noisy, not natural, c.case_id)

        if not pool:
            raise MmdxError(f"no case in {cohort_dir}/cases/{split} fits demo {name!r}; build a larger cohort")
        case = min(pool, key=rank)
        used.add(case.case_id)
        removed = sorted(set(remove) & {m.value for m in case.modalities})
        demo = case.without(*removed) if removed else case
        update = {}
        if removed:
            update["origin"] = f"{case.origin}; demo copy without {', '.join(removed)}"
        if demo.cxr is not None:
            png = case.image_path()
            (dest / "images").mkdir(parents=True, exist_ok=True)
            shutil.copyfile(png, dest / "images" / png.name)
            update["cxr"] = demo.cxr.model_copy(update={"path": f"../images/{png.name}"})
        demo = demo.model_copy(update=update)
        PatientCase.model_validate(demo.model_dump())  # still a valid case after the edits
        demo.save(dest / "cases" / f"{case.case_id}.json")
        chosen.append(case.case_id)
        log.info("demo %s: %s (%s)", name, case.case_id, ", ".join(case.labels.diagnoses))
    return chosen
