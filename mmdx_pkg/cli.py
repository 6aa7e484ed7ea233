"""The `mmdx` command line. Each subcommand lives with the layer that owns it and is imported only
when called (so `mmdx case validate` does not load torch), keeping imports flowing one way: the
table below names modules, core never imports them at import time."""
from __future__ import annotations

import importlib
import io
import logging
import sys

# subcommand -> (module:function taking argv, one-line help). The function parses its own argv.
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("mmdx.agent.cli:demo_main", "run the main job: the agent (or the tools) on a demo case"),
    "data": ("mmdx.data.cli:main", "build the synthetic cohort, write demo cases, read real datasets"),
    "case": ("mmdx.core.case_cli:main", "validate patient case files"),
    "tools": ("mmdx.tools.cli:tools_main", "list the registered tools"),
    "tool": ("mmdx.tools.cli:tool_main", "run one tool on a case"),
    "train": ("mmdx.models.train:main", "train a modality model (cxr, labs, notes)"),
    "diagnose": ("mmdx.agent.cli:diagnose_main", "run the diagnostic agent on a case"),
    "chat": ("mmdx.agent.cli:chat_main", "chat with the agent in the terminal"),
    "serve": ("mmdx.agent.web:main", "serve the chat web page"),
    "bench": ("mmdx.evals.cli:bench_main", "benchmarks (serving, agent)"),
    "eval": ("mmdx.evals.cli:eval_main", "evaluation workflows"),
    "workflow": ("mmdx.workflows.score:main", "score a folder of cases with the tools, via the runner, into SQLite"),
    "audit": ("mmdx.core.audit:main", "verify the hash-chained audit log"),
}


def _usage() -> str:
    lines = ["usage: mmdx <command> [options]   (mmdx <command> --help for each)", "", "commands:"]
    for name, (_, help_) in COMMANDS.items():
        lines.append(f"  {name:<9} {help_}")
    return "\n".join(lines)


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
    return int(fn(rest) or 0)


if __name__ == "__main__":
    raise SystemExit(main())
