"""`mmdx data import ...`: turn a real dataset into mmdx case files (or IU report records).

    mmdx data import chexpert  CSV [--images DIR] --out DIR [--uncertain ignore|positive]
    mmdx data import nih       CSV [--images DIR] --out DIR
    mmdx data import medmnist  NPZ --split train|val|test --out DIR
    mmdx data import mimic-iv  ROOT [--hadm-ids 1,2,...] --out DIR
    mmdx data import iu-reports --out FILE.jsonl [--split train|val|test|all] [--seed 0]

CheXpert, NIH and MIMIC-IV write the cohort layout training reads, DIR/cases/{train,val,test}/,
split by patient (data/readers/splits.py; `--fractions`, `--seed`; `--flat` writes one folder as
before, and `mmdx data split` splits such a folder later). MedMNIST ships its own splits: `--split
S` writes DIR/cases/S/ (with PNGs under DIR/cases/S/images/). Each prints what it wrote and what it
skipped, by reason. `--lenient` skips malformed rows (counted) instead of
stopping at the first with an error naming file, line and column. Exit status: 0 done, 1 bad data,
2 bad arguments or dataset not found.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmdx.core.errors import CaseValidationError, CorruptInput, DatasetLayoutError
from mmdx.data import readers
from mmdx.data.readers.splits import DEFAULT_FRACTIONS, parse_fractions, write_layout


def _fractions(text: str):
    try:
        return parse_fractions(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mmdx data import", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="format", required=True)

    def common(sp: argparse.ArgumentParser, out_help: str = "cohort folder: cases/{train,val,test}/*.json") -> None:
        sp.add_argument("--out", required=True, type=Path, help=out_help)
        sp.add_argument("--lenient", action="store_true", help="skip malformed rows (counted) instead of stopping")
        sp.add_argument("--limit", type=int, default=None, help="stop after this many cases")

    def splits(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--fractions", type=_fractions, default=DEFAULT_FRACTIONS, metavar="TRAIN,VAL,TEST",
                        help="patient fractions per split (default 0.7,0.15,0.15)")
        sp.add_argument("--seed", type=int, default=0, help="seed of the patient split")
        sp.add_argument("--flat", action="store_true", help="write every case into OUT itself, unsplit")

    for name, src in (("chexpert", "CheXpert train.csv / valid.csv"), ("nih", "NIH Data_Entry_2017*.csv")):
        sp = sub.add_parser(name, help=f"{src} + image folder")
        sp.add_argument("csv", type=Path, help=src)
        sp.add_argument("--images", type=Path, default=None, help="image root (default: the CSV's folder)")
        sp.add_argument("--keep-missing-images", action="store_true", help="write cases whose image file is absent")
        if name == "chexpert":
            sp.add_argument("--uncertain", choices=("ignore", "positive"), default="ignore", help="how to read -1.0 labels")
        common(sp)
        splits(sp)
    sp = sub.add_parser("medmnist", help="MedMNIST ChestMNIST .npz")
    sp.add_argument("npz", type=Path)
    sp.add_argument("--split", choices=("train", "val", "test"), required=True)
    common(sp)
    sp = sub.add_parser("mimic-iv", help="MIMIC-IV folder with hosp/ and/or icu/")
    sp.add_argument("root", type=Path)
    sp.add_argument("--hadm-ids", default=None, help="comma-separated hadm_id values to keep")
    common(sp)
    splits(sp)
    sp = sub.add_parser("iu-reports", help="Indiana University reports shipped in torchxrayvision (CC BY-NC-ND 4.0)")
    sp.add_argument("--out", required=True, type=Path, help="JSON Lines file to write")
    sp.add_argument("--archive", type=Path, default=None, help="NLMCXR_reports.tgz (default: torchxrayvision's copy)")
    sp.add_argument("--split", choices=("train", "val", "test", "all"), default="all")
    sp.add_argument("--seed", type=int, default=0, help="seed of the uid-hash split")
    return p


def _write_cases(cases, args: argparse.Namespace) -> int:
    out = args.out
    if not args.flat:
        record = write_layout(cases, out, args.fractions, args.seed)
        print(f"splits (by patient): " + ", ".join(f"{s} {record['cases'][s]} case(s) of {record['patients'][s]} patient(s)"
                                                  for s in ("train", "val", "test")) + f"; see {out / 'splits.json'}")
        if record["cases_without_patient_key"]:
            print(f"  {record['cases_without_patient_key']} case(s) name no patient: each was split as its own patient")
        return len(cases)
    out.mkdir(parents=True, exist_ok=True)
    for case in cases:
        case.save(out / readers.case_filename(case.case_id))
    return len(cases)


def _print_report(report: readers.ReadReport, written: int, out: Path) -> None:
    print(f"written: {written} case(s) to {out}")
    print(f"rows read: {report.rows}")
    for reason, n in sorted(report.skipped.items()):
        print(f"skipped: {n} ({reason})")
    for label, n in sorted(report.uncertain.items()):
        print(f"uncertain: {label}: {n}")
    if report.unknown:
        print(f"unmapped labels/variables: {len(report.unknown)} kinds")
        for name, n in sorted(report.unknown.items(), key=lambda kv: -kv[1])[:20]:
            print(f"  {name}: {n}")


def _run(args: argparse.Namespace) -> int:
    report = readers.ReadReport()
    if args.format == "iu-reports":
        reports = readers.load_iu_reports(args.archive)
        chosen = reports if args.split == "all" else readers.iu_split(reports, seed=args.seed)[args.split]
        args.out.parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, "w", encoding="utf-8") as f:
            for r in chosen:
                f.write(json.dumps(r.model_dump(mode="json")) + "\n")
        print(f"written: {len(chosen)} report(s) to {args.out} (licence: {readers.IU_LICENCE})")
        for label, n in readers.iu_label_counts(chosen).items():
            print(f"  {label}: {n}")
        return 0
    if args.format == "medmnist":
        out = args.out / "cases" / args.split
        paths = readers.medmnist_to_cases(args.npz, args.split, out, limit=args.limit, report=report)
        _print_report(report, len(paths), out)
        return 0
    if args.format == "mimic-iv":
        hadm = None
        if args.hadm_ids:
            try:
                hadm = [int(h) for h in args.hadm_ids.split(",") if h.strip()]
            except ValueError:
                print(f"mmdx data import: --hadm-ids must be comma-separated integers, got {args.hadm_ids!r}", file=sys.stderr)
                return 2
        cases = readers.read_mimic_iv(args.root, hadm, lenient=args.lenient, report=report)
        cases = cases[: args.limit] if args.limit is not None else cases
    else:
        read = readers.read_chexpert if args.format == "chexpert" else readers.read_nih
        extra = {"uncertain": args.uncertain} if args.format == "chexpert" else {}
        cases = read(args.csv, args.images, lenient=args.lenient, require_images=not args.keep_missing_images,
                     limit=args.limit, report=report, **extra)
    _print_report(report, _write_cases(cases, args), args.out)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point; accepts argv with or without the leading word `import`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["import"]:
        argv = argv[1:]
    try:
        args = _parser().parse_args(argv)
    except SystemExit as e:  # argparse exits on --help (0) and on bad arguments (2)
        return int(e.code or 0)
    try:
        return _run(args)
    except (readers.DatasetNotFound, DatasetLayoutError) as e:
        print(f"mmdx data import: {e}", file=sys.stderr)
        return 2
    except (CaseValidationError, CorruptInput) as e:
        print(f"mmdx data import: bad data: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
