"""`mmdx case validate FILE...`: print each file's problems (field: message) or `ok`; exit 0 when all pass."""
from __future__ import annotations

import argparse
import json
import sys

from mmdx.core.case import PatientCase
from mmdx.core.errors import CaseValidationError


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx case", description=__doc__)
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("validate", help="validate case JSON files")
    v.add_argument("files", nargs="+")
    v.add_argument("--json", action="store_true", help="machine-readable output")
    v.add_argument("--check-image", action="store_true", help="also open the referenced image")
    args = p.parse_args(argv)
    failed = 0
    report = []
    for f in args.files:
        problems: list[tuple[str, str]] = []
        case = None
        try:
            case = PatientCase.load(f)
        except CaseValidationError as e:
            problems = e.problems
        if case is not None and args.check_image and case.cxr is not None:
            from mmdx.core.images import load_image
            from mmdx.core.errors import ToolInputError

            try:
                load_image(case.image_path())
            except ToolInputError as e:
                problems.append(("cxr.path", str(e)))
        failed += bool(problems)
        report.append({"file": f, "ok": not problems, "problems": [{"field": a, "message": b} for a, b in problems],
                       "modalities": sorted(m.value for m in case.modalities) if case else []})
        if not args.json:
            if problems:
                print(f"{f}: invalid")
                for field, msg in problems:
                    print(f"  {field}: {msg}")
            else:
                print(f"{f}: ok ({', '.join(sorted(m.value for m in case.modalities)) or 'demographics only'})")
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        print()
    return 1 if failed else 0
