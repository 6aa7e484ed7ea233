"""`mmdx data`: build the synthetic cohort, audit it, copy the demo cases, print counts, import real data.

    mmdx data build --out DIR [--seed S | --seeds S1,S2..] [--population N] [--start D --end D] [--workers K]
                    [--source ed|clinosim] [--note-style ed|case_report]
    mmdx data audit DIR [--json FILE]   (the realism audit: artefact probes and plain baselines)
    mmdx data demo --out DIR
    mmdx data stats DIR
    mmdx data make-demo DIR --dest data/demo   (maintainers: choose the committed demo cases)
    mmdx data import ...            (delegates to mmdx.data.readers.cli)
    mmdx data split SRC --out DIR [--fractions 0.7,0.15,0.15] [--seed S]   (a flat case folder -> the cohort layout)
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from mmdx.data import cohort
from mmdx.data.demo_cases import copy_demo, demo_dir  # noqa: F401 (demo_dir: re-exported for callers)
from mmdx.core.labels import DIAGNOSES

log = logging.getLogger(__name__)


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--seeds must be comma-separated integers, got {text!r}") from None
    if not seeds:
        raise argparse.ArgumentTypeError("--seeds is empty")
    return seeds


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmdx data", description="Synthetic cohort, demo cases, real-data import.")
    sub = p.add_subparsers(dest="cmd", required=True)
    default_seeds = ",".join(str(s) for s in cohort.DEFAULT_SEEDS)
    b = sub.add_parser("build", help="generate the synthetic ED cohort as PatientCase files",
                       description="Generate adult emergency-department presentations calibrated to published "
                                   "diagnostic accuracy (synthetic; one process per seed) and write them as "
                                   "PatientCase files under OUT/cases/{train,val,test}. --source clinosim runs the "
                                   "legacy simulator conversion instead (cached under OUT/raw).")
    b.add_argument("--seed", type=int, help="one seed (shorthand for --seeds S)")
    b.add_argument("--seeds", type=_seed_list, help=f"comma-separated seeds (default {default_seeds})")
    b.add_argument("--population", type=_positive, default=cohort.DEFAULT_POPULATION,
                   help=f"catchment population per seed (default {cohort.DEFAULT_POPULATION})")
    b.add_argument("--out", type=Path, required=True, help="output directory")
    b.add_argument("--workers", type=_positive, default=2, help="processes at once, one seed each (default 2)")
    b.add_argument("--start", default=cohort.DEFAULT_START, help=f"first arrival date (default {cohort.DEFAULT_START})")
    b.add_argument("--end", default=cohort.DEFAULT_END, help=f"last arrival date (default {cohort.DEFAULT_END})")
    b.add_argument("--source", default="ed", choices=cohort.SOURCES,
                   help="ed: the literature-calibrated generator (default); clinosim: the legacy simulator")
    b.add_argument("--note-style", default="ed", choices=cohort.NOTE_STYLES,
                   help="phrasing of the notes: ed charts (default, what models train on) or case_report prose "
                        "(held out: for robustness evaluations)")
    a = sub.add_parser("audit", help="the realism audit of a built cohort (artefact probes, plain baselines)",
                       description="Fit plain models on DIR's train split and report, on its test split, macro "
                                   "AUROC with bootstrap CIs for each artefact probe (values shuffled, template "
                                   "shape, measurement count, note length...), each modality alone and all "
                                   "together, against the targets of the realism audit.")
    a.add_argument("dir", type=Path, help="built cohort directory")
    a.add_argument("--json", type=Path, default=None, help="also write the report as JSON to this file")
    a.add_argument("--boot", type=_positive, default=200, help="bootstrap resamples for the CIs (default 200)")
    a.add_argument("--probes-only", action="store_true", help="only the artefact probes (fast)")
    d = sub.add_parser("demo", help="copy the committed demo cases and images",
                       description="Copy the small committed synthetic demo cases (and their X-ray PNGs) to OUT.")
    d.add_argument("--out", type=Path, required=True, help="output directory")
    s = sub.add_parser("stats", help="print the counts of a built cohort",
                       description="Print cases per label and split from DIR/manifest.json.")
    s.add_argument("dir", type=Path, help="cohort directory (holding manifest.json)")
    m = sub.add_parser("make-demo", help="choose the demo cases from a built cohort (maintainers)",
                       description="Copy the demo cases (see cohort.DEMO_SPECS) from DIR's test split to DEST.")
    m.add_argument("dir", type=Path, help="built cohort directory")
    m.add_argument("--dest", type=Path, required=True, help="where to write cases/ and images/ (data/demo)")
    m.add_argument("--split", default="test", choices=cohort.SPLITS, help="split to choose from (default test)")
    sub.add_parser("import", help="read a real dataset into PatientCase files (see: mmdx data import --help)",
                   add_help=False)
    sp = sub.add_parser("split", help="split a flat folder of case files by patient into the cohort layout",
                        description="Write OUT/cases/{train,val,test}/ from the case files in SRC, every patient in one split.")
    sp.add_argument("src", type=Path, help="folder of case JSON files")
    sp.add_argument("--out", type=Path, required=True, help="cohort folder to write")
    sp.add_argument("--fractions", default="0.7,0.15,0.15", help="patient fractions per split (default 0.7,0.15,0.15)")
    sp.add_argument("--seed", type=int, default=0)
    return p


def _manifest_problem(manifest) -> str | None:
    """Why `manifest` cannot be a cohort's manifest.json (None when `_print_stats` can print it)."""
    if not isinstance(manifest, dict):
        return f"expected a JSON object, got {type(manifest).__name__}"
    counts, per_split = manifest.get("counts"), manifest.get("cases_per_split")
    for s in cohort.SPLITS:
        if not isinstance(counts, dict) or not isinstance(counts.get(s), dict):
            return f"counts.{s}: expected an object of label counts"
        if not all(isinstance(n, int) for n in counts[s].values()):
            return f"counts.{s}: expected integer counts"
        if not isinstance(per_split, dict) or not isinstance(per_split.get(s), int):
            return f"cases_per_split.{s}: expected an integer"
    return None


def _print_stats(manifest: dict) -> None:
    counts = manifest["counts"]
    header = f"{'label':<26}" + "".join(f"{s:>8}" for s in cohort.SPLITS)
    print(header)
    for d in DIAGNOSES:
        print(f"{d:<26}" + "".join(f"{counts[s].get(d, 0):>8}" for s in cohort.SPLITS))
    print(f"{'cases':<26}" + "".join(f"{manifest['cases_per_split'][s]:>8}" for s in cohort.SPLITS))
    if manifest.get('skipped'):
        print(f"skipped: {json.dumps(manifest['skipped'], sort_keys=True)}")
    print(f"modalities: {json.dumps(manifest.get('modalities', {}), sort_keys=True)}")
    print(f"sha256: {manifest.get('sha256', '')}")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "import":
        from mmdx.data.readers.cli import main as readers_main

        return int(readers_main(argv[1:]) or 0)
    args = _parser().parse_args(argv)
    if args.cmd == "build":
        seeds = args.seeds or ([args.seed] if args.seed is not None else list(cohort.DEFAULT_SEEDS))
        if args.seeds and args.seed is not None:
            seeds = list(dict.fromkeys([args.seed, *args.seeds]))
        logging.getLogger("mmdx").setLevel(logging.INFO)
        manifest = cohort.build_cohort(args.out, seeds, args.population, args.start, args.end, args.workers,
                                       source=args.source, note_style=args.note_style)
        _print_stats(manifest)
        return 0
    if args.cmd == "audit":
        from mmdx.data.audit import run_audit

        report = run_audit(args.dir, n_boot=args.boot, probes_only=args.probes_only)
        print(report.text())
        if args.json:
            args.json.write_text(report.model_dump_json(indent=2) + "\n")
        return 0
    if args.cmd == "split":
        from mmdx.core.errors import CaseValidationError, DatasetLayoutError
        from mmdx.data.readers.splits import parse_fractions, split_folder

        try:
            record = split_folder(args.src, args.out, parse_fractions(args.fractions), args.seed)
        except (ValueError, DatasetLayoutError, CaseValidationError) as e:
            print(f"mmdx data split: {e}", file=sys.stderr)
            return 2
        print(json.dumps({k: record[k] for k in ("patients", "cases", "cases_without_patient_key")}))
        return 0
    if args.cmd == "demo":
        written = copy_demo(args.out)
        print(f"wrote {sum(p.suffix == '.json' for p in written)} demo cases to {args.out / 'cases'} (synthetic)")
        return 0
    if args.cmd == "make-demo":
        chosen = cohort.select_demo(args.dir, args.dest, args.split)
        print("\n".join(chosen))
        return 0
    if args.cmd == "stats":
        path = args.dir / "manifest.json"
        if not path.is_file():
            print(f"mmdx data stats: no manifest.json in {args.dir}", file=sys.stderr)
            return 2
        try:
            manifest = json.loads(path.read_bytes())
        except (OSError, ValueError) as e:  # ValueError: not JSON, or not UTF-8
            print(f"mmdx data stats: cannot read {path}: {e}", file=sys.stderr)
            return 1
        problem = _manifest_problem(manifest)
        if problem:
            print(f"mmdx data stats: {path} is not a cohort manifest: {problem}", file=sys.stderr)
            return 1
        _print_stats(manifest)
        return 0
    raise AssertionError(f"unhandled subcommand {args.cmd}")


if __name__ == "__main__":
    raise SystemExit(main())
