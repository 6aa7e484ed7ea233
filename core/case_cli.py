"""`mmdx case validate FILE...` and `mmdx case import FILE`.

validate: each file's problems (field: message) or `ok`, exit 0 when all pass. A file passes when
it is a case this mmdx reads (a known schema_version, every field valid), its X-ray file exists
and decodes (`--no-image-check` skips that), and a recorded image sha256 matches. Results the case
keeps that no model reads are listed. With --json, stdout is one JSON array (one object per file).

import: a flat CSV or a FHIR Observation bundle of vitals and labs -> a case JSON (core/case_import.py),
naming every column or code it could not map (kept in the case as results no model reads).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from mmdx.core.case import PatientCase
from mmdx.core.errors import CaseValidationError, ToolInputError


def _validate(args) -> int:
    failed = 0
    report = []
    for f in args.files:
        problems: list[tuple[str, str]] = []
        case = None
        try:
            case = PatientCase.load(f)
        except CaseValidationError as e:
            problems = e.problems
        if case is not None and not args.no_image_check and case.cxr is not None:
            from mmdx.core.images import load_image

            try:
                load_image(case.image_path())
            except ToolInputError as e:
                problems.append(("cxr.path", str(e)))
        failed += bool(problems)
        report.append({"file": f, "ok": not problems, "problems": [{"field": a, "message": b} for a, b in problems],
                       "modalities": sorted(m.value for m in case.modalities) if case else [],
                       "not_read_by_any_model": [r.describe() for r in case.other_results] if case else []})
        if not args.json:
            if problems:
                print(f"{f}: invalid")
                for field, msg in problems:
                    print(f"  {field}: {msg}")
            else:
                print(f"{f}: ok ({', '.join(sorted(m.value for m in case.modalities)) or 'demographics only'}; "
                      f"{len(case.measurements)} measurement(s))")
                if case.not_read():
                    print(f"  {case.not_read()}")
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    return 1 if failed else 0


def _import(args) -> int:
    from mmdx.core.case_import import import_case

    try:
        case, unmapped = import_case(args.file, case_id=args.case_id, age=args.age, sex=args.sex, fmt=args.format)
    except CaseValidationError as e:
        if args.json:
            print(json.dumps({"error": "invalid_input", "message": f"cannot import {args.file}",
                              "problems": [{"field": a, "message": b} for a, b in e.problems]}))
        else:
            print(f"mmdx case import: cannot import {args.file}:", file=sys.stderr)
            for field, msg in e.problems:
                print(f"  {field}: {msg}", file=sys.stderr)
        return 1
    out = Path(args.out) if args.out else None
    if out is not None:
        case.save(out)
    summary = {"case_id": case.case_id, "written": str(out) if out else None, "measurements": len(case.measurements),
               "other_results": len(case.other_results), "unmapped": unmapped}
    if args.json:
        print(json.dumps(summary if out else {**summary, "case": json.loads(case.to_json())}, indent=2))
        return 0
    if out is None:
        print(case.to_json())
    dest = sys.stderr if out is None else sys.stdout
    print(f"imported {case.case_id}: {len(case.measurements)} measurement(s), {len(case.other_results)} other result(s)"
          + (f", written to {out}" if out else ""), file=dest)
    for name in unmapped:
        print(f"  unmapped (kept, not read by any model): {name}", file=dest)
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx case", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="validate case JSON files (fields, schema version, the image)")
    v.add_argument("files", nargs="+")
    v.add_argument("--json", action="store_true", help="machine-readable output (stdout is JSON only)")
    v.add_argument("--no-image-check", action="store_true", help="do not open the referenced image")
    v.add_argument("--check-image", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    i = sub.add_parser("import", help="a flat CSV or FHIR Observation bundle of vitals and labs -> a case")
    i.add_argument("file", help="CSV (time,variable,value,unit[,specimen] or wide: time + one column per test) or FHIR JSON")
    i.add_argument("--out", help="case JSON to write (default: print it)")
    i.add_argument("--case-id", help="case id (default: from the bundle's patient or the file name)")
    i.add_argument("--age", type=float, help="age in years (default: from the FHIR Patient resource)")
    i.add_argument("--sex", choices=["female", "male", "other", "unknown"], help="sex (default: from FHIR, else unknown)")
    i.add_argument("--format", choices=["csv", "fhir"], help="default: by the file's suffix")
    i.add_argument("--json", action="store_true", help="print a JSON summary (stdout is JSON only)")
    args = p.parse_args(argv)
    return _validate(args) if args.cmd == "validate" else _import(args)
