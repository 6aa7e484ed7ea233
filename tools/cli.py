"""`mmdx tools list` and `mmdx tools run NAME --case FILE`: the tools from the shell.

`mmdx tool NAME --case FILE`, the older spelling of `mmdx tools run`, still works and says so on
stderr (stdout is unchanged, so scripts reading `--json` keep working).
"""
from __future__ import annotations

import argparse
import json
import sys

from mmdx.core.case import PatientCase
from mmdx.core.errors import CaseValidationError, MmdxError, ToolInputError


def tools_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx tools", description="The registered tools: list them, or run one on a case.")
    sub = p.add_subparsers(dest="cmd", required=True)
    ls = sub.add_parser("list", help="list tools with what they require and their description")
    ls.add_argument("--json", action="store_true")
    _add_run_args(sub.add_parser("run", help="run one tool on a case file", description="Run one tool on a case file."))
    args = p.parse_args(argv)
    if args.cmd == "run":
        return _run(args, "mmdx tools run")
    return _list(args.json)


def tool_main(argv: list[str] | None = None) -> int:
    """`mmdx tool NAME ...`: deprecated spelling of `mmdx tools run NAME ...`."""
    print("mmdx tool is deprecated; use `mmdx tools run NAME --case FILE`", file=sys.stderr)
    p = argparse.ArgumentParser(prog="mmdx tool", description="Run one tool on a case file (deprecated: mmdx tools run).")
    _add_run_args(p)
    return _run(p.parse_args(argv), "mmdx tool")


def _add_run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="tool name (see `mmdx tools list`)")
    p.add_argument("--case", required=True, help="patient case JSON file")
    p.add_argument("--weights", help="weights directory (default: the shipped weights)")
    p.add_argument("--json", action="store_true", help="print the typed output as JSON")


def _list(as_json: bool) -> int:
    from mmdx import tools
    from mmdx.core.tool import describe

    rows = [
        {"name": n, "requires": sorted(m.value for m in cls.requires), "target": getattr(cls, "target", ""),
         "description": describe(cls), "input_schema": cls.Input.model_json_schema()["title"],
         "output_schema": cls.Output.__name__}
        for n, cls in tools.registry().items()
    ]
    if as_json:
        json.dump(rows, sys.stdout, indent=2)
        print()
    else:
        for r in rows:
            print(f"{r['name']:<8} requires {', '.join(r['requires']):<6}  {r['description']}")
    return 0


def _json_error(kind: str, message: str, field: str | None = None, problems=()) -> None:
    """An error as the one JSON object on stdout (with --json, stdout carries JSON only)."""
    json.dump({"error": kind, "message": message, "field": field,
               "problems": [{"field": f, "message": m} for f, m in problems]}, sys.stdout)
    print()


def _run(args: argparse.Namespace, prog: str) -> int:
    from mmdx import tools
    from mmdx.core.registry import tool_class
    from mmdx.core.tool import CaseInput

    try:
        case = PatientCase.load(args.case)
        tool = tools.get(args.name) if not args.weights else tool_class(args.name)(weights_dir=args.weights)  # UnknownTool if no such name
        out = tool(CaseInput(case=case))
    except CaseValidationError as e:
        if args.json:
            _json_error("invalid_case", f"invalid case {args.case}", problems=e.problems)
        else:
            print(f"{prog}: invalid case {args.case}:", file=sys.stderr)
            for field, msg in e.problems:
                print(f"  {field}: {msg}", file=sys.stderr)
        return 1
    except ToolInputError as e:
        if args.json:
            _json_error(e.kind, str(e), field=e.field)
        else:
            print(f"{prog} {args.name}: {e.kind}: {e}", file=sys.stderr)
        return 1
    except MmdxError as e:
        if args.json:
            _json_error(type(e).__name__, str(e))
        else:
            print(f"{prog} {args.name}: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if args.json:
        print(out.model_dump_json(indent=2))
    else:
        print(f"{args.name} on {case.case_id} ({out.provenance.model_id}, weights {out.provenance.weights_sha256[:12]}):")
        for s in sorted(out.scores, key=lambda s: -s.probability):
            mark = "+" if s.positive else " "
            print(f"  {mark} {s.label:<26} p={s.probability:.3f} (threshold {s.threshold:.2f})")
        print(f"  OOD score {out.ood_score:.2f}{' (flagged)' if out.ood_flag else ''}")
        for n in out.notes:
            print(f"  note: {n}")
    return 0
