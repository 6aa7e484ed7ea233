"""The `mmdx` command line. Each subcommand lives with the layer that owns it and is imported only
when called (so `mmdx case validate` does not load torch), keeping imports flowing one way: the
table below names modules, core never imports them at import time.

For scripts: a typed mmdx error that escapes a command is one line on stderr (with `--json`, a JSON
object on stdout: {"error", "message", "field"}) and exit status 1, never a traceback; a closed
pipe (`mmdx tools run cxr --case X --json | head`) ends quietly with status 141, as other tools do.
`mmdx --help` lists every command and its subcommands (tests/test_cli_scripts.py checks the list
against each command's own dispatch)."""
from __future__ import annotations

import importlib
import io
import json
import logging
import os
import sys

# subcommand -> (module:function taking argv, one-line help). The function parses its own argv.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("mmdx.agent.cli:demo_main", "run the main job: the agent (or the tools) on a demo case"),
    "data": ("mmdx.data.cli:main", "build the synthetic cohort, write demo cases, read real datasets"),
    "case": ("mmdx.core.case_cli:main", "validate case files; import a CSV or FHIR bundle as a case"),
    "tools": ("mmdx.tools.cli:tools_main", "list the registered tools; run one on a case"),
    "tool": ("mmdx.tools.cli:tool_main", "deprecated spelling of `mmdx tools run`"),
    "train": ("mmdx.models.train:main", "train a model: a modality model, the fused model or a student"),
    "diagnose": ("mmdx.agent.cli:diagnose_main", "run the diagnostic agent on a case"),
    "chat": ("mmdx.agent.cli:chat_main", "chat with the agent in the terminal"),
    "serve": ("mmdx.agent.web:main", "serve the chat web page"),
    "bench": ("mmdx.evals.cli:bench_main", "benchmarks (serving, agent, gpu)"),
    "eval": ("mmdx.evals.cli:eval_main", "evaluation workflows"),
    "workflow": ("mmdx.workflows.score:main", "score a folder of cases with the tools, via the runner, into results.jsonl"),
    "audit": ("mmdx.core.audit:main", "verify the hash-chained audit log"),
}
# command -> its subcommands, for `mmdx --help` (each command's module dispatches them)
SUBCOMMANDS: dict[str, tuple[str, ...]] = {
    "data": ("build", "audit", "demo", "stats", "make-demo", "import", "split"),
    "case": ("validate", "import"),
    "tools": ("list", "run"),
    "train": ("cxr", "labs", "notes", "student_cxr", "student_labs", "student_notes", "fused"),
    "bench": ("serving", "agent", "gpu"),
    "eval": ("run", "report", "injection"),
    "workflow": ("score", "summary"),
    "audit": ("verify",),
}


def _usage() -> str:
    lines = ["usage: mmdx <command> [options]   (mmdx <command> --help for each)", "", "commands:"]
    for name, (_, help_) in COMMANDS.items():
        lines.append(f"  {name:<9} {help_}")
        if name in SUBCOMMANDS:
            lines.append(f"  {'':<9}   " + ", ".join(f"{name} {sub}" for sub in SUBCOMMANDS[name]))
    return "\n".join(lines)


def _quiet_broken_pipe() -> int:
    """The reader of our stdout went away (`| head`): stop without a traceback. Python would try to
    flush stdout again at exit and fail; point it at /dev/null first."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout without a file descriptor (tests)
        pass
    return 141  # 128 + SIGPIPE, what `yes | head` reports for yes


def _report_error(name: str, err: Exception, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"error": getattr(err, "kind", type(err).__name__), "message": str(err),
                          "field": getattr(err, "field", None),
                          "problems": [{"field": f, "message": m} for f, m in getattr(err, "problems", [])]}))
    else:
        print(f"mmdx {name}: {err}", file=sys.stderr)
    return 1


def _tolerant_output() -> None:
    """Python hands undecodable argv bytes over as lone surrogates; echoing such a file name (or an
    argparse error quoting it) to a strict UTF-8 stream would crash. Write them as backslash escapes,
    as Python's own stderr does."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper) and stream.errors == "strict":
            stream.reconfigure(errors="backslashreplace")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    _tolerant_output()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    if not argv or argv[0] in ("-h", "--help"):
        print(_usage())
        return 0 if argv else 2
    if argv[0] == "--version":
        from mmdx import __version__

        print(__version__)
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"mmdx: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    target, _ = COMMANDS[name]
    mod_name, fn_name = target.split(":")
    try:
        fn = getattr(importlib.import_module(mod_name), fn_name)
    except (ModuleNotFoundError, AttributeError) as e:
        if mod_name in str(e) or isinstance(e, AttributeError):
            print(f"mmdx: command {name!r} is not available in this build ({e})", file=sys.stderr)
            return 2
        raise
    from mmdx.core.errors import MmdxError

    try:
        code = int(fn(rest) or 0)
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        return _quiet_broken_pipe()
    except MmdxError as e:  # bad input that a command did not report itself: one line, not a traceback
        try:
            return _report_error(name, e, "--json" in rest)
        except BrokenPipeError:
            return _quiet_broken_pipe()
    except ModuleNotFoundError as e:  # an optional part that is not installed: one line naming its extra
        from mmdx.core.extras import MissingExtra, extra_for, missing_message

        extra = extra_for(e)
        if extra is None:
            raise
        return _report_error(name, MissingExtra(missing_message(e.name, extra)), "--json" in rest)


if __name__ == "__main__":
    raise SystemExit(main())
