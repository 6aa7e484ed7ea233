"""`mmdx demo`, `mmdx diagnose` and `mmdx chat`: the agent from the shell."""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
import uuid
from pathlib import Path

from mmdx.core.case import PatientCase
from mmdx.core.config import data_home, home
from mmdx.core.errors import CaseValidationError, MmdxError
from mmdx.tools.serving.options import RUNNERS


def add_agent_args(p: argparse.ArgumentParser) -> None:
    from mmdx.agent.llm import BACKENDS, DEFAULT_MODEL

    g = p.add_argument_group("agent")
    g.add_argument("--llm", "--llm-model", dest="llm", default=os.environ.get("MMDX_LLM") or os.environ.get("MMDX_LLM_MODEL") or DEFAULT_MODEL,
                   help="the LLM: a packaged model (qwen2.5-coder-1.5b, the default; qwen2.5-coder-0.5b), a path to any .gguf "
                        "file, a Hugging Face model folder, or the URL of an OpenAI-compatible server "
                        "(http://host:port/v1: vLLM, llama.cpp server, Ollama). Env MMDX_LLM. An API key for the server is "
                        "read from MMDX_LLM_API_KEY, never from the command line")
    g.add_argument("--llm-backend", default=os.environ.get("MMDX_LLM_BACKEND", "auto"), choices=list(BACKENDS),
                   help="auto (default: chosen from --llm), llamacpp, transformers or openai; env MMDX_LLM_BACKEND")
    g.add_argument("--llm-name", default=os.environ.get("MMDX_LLM_NAME"),
                   help="with a server URL: the model name to ask for (default: the server's first model); env MMDX_LLM_NAME")
    g.add_argument("--threads", type=int, default=int(os.environ.get("MMDX_LLM_THREADS", "0")),
                   help="LLM CPU threads; 0 (default) = the cores free right now, from the load average (on a busy "
                        "2-core machine 2 threads fell below 1 token/s); env MMDX_LLM_THREADS")
    g.add_argument("--runner", default=os.environ.get("MMDX_RUNNER", "inprocess"), choices=RUNNERS,
                   help="where tools run: in this process, in Ray actors, or on Ray Serve deployments")
    g.add_argument("--ray-address", default=os.environ.get("MMDX_RAY_ADDRESS"), help="join an existing Ray cluster")
    g.add_argument("--ray-pools", type=parse_pools, default=os.environ.get("MMDX_RAY_POOLS", ""),
                   metavar="TOOL=N,...", help="actors (replicas) per tool with --runner ray (serve), e.g. cxr=4,notes=2 (default 1 each; "
                                              "env MMDX_RAY_POOLS)")
    g.add_argument("--audit-log", default=str(data_home() / "audit.jsonl"),
                   help="hash-chained audit log ('' to disable; default in the data directory, see `mmdx audit --help`)")
    g.add_argument("--audit-content", action="store_true",
                   help="opt in to recording note text and case inputs in the audit log (default: digests only)")


def llm_config(args):
    """The LLMConfig the agent flags (and environment) ask for."""
    from mmdx.agent.llm import config_from_spec

    return config_from_spec(args.llm, backend=args.llm_backend, name=args.llm_name, n_threads=args.threads,
                            api_key=os.environ.get("MMDX_LLM_API_KEY") or None)


def parse_pools(text: str) -> dict[str, int]:
    """'cxr=4,notes=2' -> {'cxr': 4, 'notes': 2}, as an argparse type."""
    from mmdx.tools.ray_runner import parse_pool_sizes

    try:
        return parse_pool_sizes(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def check_pools(pools: dict[str, int]) -> None:
    """Exit with a clear message when a pool names no registered tool."""
    from mmdx.tools.ray_runner import unknown_pool_tools

    problem = unknown_pool_tools(pools)
    if problem:
        raise SystemExit(f"--ray-pools: {problem}")


def build_agent(args):
    from mmdx.agent.graph import DiagnosticAgent
    from mmdx.agent.llm import load_llm
    from mmdx.core.audit import AuditLog

    check_pools(args.ray_pools)  # before the LLM loads: a typo should cost nothing
    llm = load_llm(llm_config(args))
    runner = None
    if args.runner != "inprocess":
        from mmdx.tools.serving.options import open_runner

        runner = open_runner(args.runner, address=args.ray_address, pool_sizes=args.ray_pools)
    audit = AuditLog(args.audit_log, include_content=args.audit_content) if args.audit_log else None
    agent = DiagnosticAgent(llm, runner=runner, audit=audit)
    agent.warm_up()  # the fixed system prompt into the LLM's prompt cache, before the first case
    return agent


def demo_dir() -> Path:
    """The packaged demo cases (synthetic), copied to $MMDX_HOME/demo; returns the cases folder."""
    from mmdx.data.demo_cases import copy_demo

    out = home() / "demo"
    shutil.rmtree(out, ignore_errors=True)  # our own cache folder: no stale case from an older package
    copy_demo(out)  # a handful of small files: copying each time keeps them in step with the package
    return out / "cases"


def _print_trace(final: dict, file=None) -> None:
    file = file or sys.stdout
    dx = final["diagnosis"]
    print("plan:", file=file)
    for p in dx.plan:
        print(f"  - {p.tool:<6} [{p.source}] {p.reason}", file=file)
    for o in dx.overrides:
        print(f"  guard {o.action} {o.tool}: {o.why}", file=file)
    for e in final.get("events", []):
        if e["step"].endswith("_proposed"):
            continue
        if e["step"] == "tools":
            print(f"  tools {', '.join(e['tools'])} ran in {e['latency_s']:.2f}s", file=file)
        elif "schema_valid" not in e:  # a step the graph records without an LLM call (reflect_skipped)
            print(f"  {e['step'].replace('_', ' ')}: {e.get('why', '')}", file=file)
        else:
            print(f"  llm {e['step']}: {'valid' if e['schema_valid'] else 'INVALID'} in {e['latency_s']:.1f}s", file=file)


def _json_error(kind: str, message: str, problems=()) -> None:
    """With --json, stdout carries JSON only: an error is one JSON object there (exit status 1)."""
    print(json.dumps({"error": kind, "message": message, "problems": [{"field": f, "message": m} for f, m in problems]}))


def demo_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx demo", description="Run the diagnostic agent with the local LLM on a packaged demo case (synthetic).")
    p.add_argument("--case", help="demo case id or a case file (default: the first demo case)")
    p.add_argument("--all", action="store_true", help="run every demo case")
    p.add_argument("--json", action="store_true")
    add_agent_args(p)
    args = p.parse_args(argv)
    d = demo_dir()
    files = sorted(d.glob("*.json"))
    if args.case:
        files = [Path(args.case)] if Path(args.case).exists() else [f for f in files if f.stem == args.case]
    elif not args.all:
        # the richest case first: the one with the most modalities (ties: file order)
        files = [max(files, key=lambda f: len(PatientCase.load(f).modalities))]
    if not files:
        msg = f"no such case {args.case!r}; demo cases: {', '.join(f.stem for f in sorted(d.glob('*.json')))}"
        _json_error("no_such_case", msg) if args.json else print(f"mmdx demo: {msg}", file=sys.stderr)
        return 2
    info = sys.stderr if args.json else sys.stdout  # with --json, stdout carries the JSON only
    print(f"mmdx demo: loading the LLM ({args.llm}, backend {args.llm_backend}) and the tools...", file=info, flush=True)
    t0 = time.perf_counter()
    agent = build_agent(args)
    print(f"  ready in {time.perf_counter() - t0:.1f}s", file=info, flush=True)
    answers = []
    for f in files:
        try:
            case = PatientCase.load(f)
        except CaseValidationError as e:
            if not args.json:
                raise
            _json_error("invalid_case", f"invalid case {f}", e.problems)
            return 1
        print(f"\n=== {f.stem} ({case.origin}; modalities: {', '.join(sorted(m.value for m in case.modalities))})", file=info)
        if case.labels:
            print(f"  (ground truth, hidden from the agent: {', '.join(case.labels.diagnoses)})", file=info)
        t1 = time.perf_counter()
        final = agent.run(case)
        _print_trace(final, info)
        if args.json:
            answers.append(final["diagnosis"].model_dump(mode="json"))
        else:
            print(final["diagnosis"].summary())
        print(f"  ({time.perf_counter() - t1:.1f}s)", file=info)
    if args.json:
        print(json.dumps(answers, indent=2))
    return 0


def diagnose_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx diagnose", description="Run the diagnostic agent on a case file.")
    p.add_argument("--case", required=True, help="patient case JSON")
    p.add_argument("--question", help="the clinician's question, if any")
    p.add_argument("--json", action="store_true", help="print the Diagnosis as JSON")
    add_agent_args(p)
    args = p.parse_args(argv)
    try:
        case = PatientCase.load(args.case)
    except CaseValidationError as e:
        if args.json:
            _json_error("invalid_case", f"invalid case {args.case}", e.problems)
            return 1
        print(f"mmdx diagnose: invalid case {args.case}:", file=sys.stderr)
        for f, m in e.problems:
            print(f"  {f}: {m}", file=sys.stderr)
        return 1
    agent = build_agent(args)
    final = agent.run(case, question=args.question)
    if args.json:
        print(final["diagnosis"].model_dump_json(indent=2))
    else:
        _print_trace(final)
        print(final["diagnosis"].summary())
    return 0


CHAT_HELP = """attach:
  /case FILE          attach a patient case file
  /new AGE SEX        start a new case from uploads (sex: female|male|other|unknown)
  /image FILE         attach a chest X-ray (PNG, JPEG, DICOM)
  /labs FILE.csv      attach labs (columns: time,variable,value,unit)
  /note TEXT          paste a clinical note
ask (or just type a question; the LLM decides which of these it is):
  /diagnose           run the agent on the case
  /explain [LABEL]    why LABEL is or is not likely, from the stored tool outputs
  /whatif cxr|labs|notes   the answer without that input (only the tools that read it rerun)
  /compare            the answers so far side by side
  /ask TEXT           a general question (answered only when every clause checks out)
session:
  /history            show this thread's turns
  /quit               leave (the thread is saved; resume with --thread ID)"""


def _show_event(event: dict) -> None:
    """Terminal progress: one line per stage, then the reply."""
    if "stage" in event:
        detail = event.get("detail") or (", ".join(event["tools"]) if event.get("tools") else "")
        if event["stage"] == "differential":
            top = [f"{d['diagnosis']} {d['probability']:.2f}" for d in event.get("differential", [])[:3]]
            detail = "numbers ready: " + ", ".join(top)
        elif event["stage"] == "triage" and event.get("red_flags"):
            detail = "RED FLAGS: " + "; ".join(event["red_flags"])
        if event["stage"] != "done":
            print(f"  [{event['stage']}] {detail}".rstrip(), flush=True)
    elif "token" in event:
        print("mmdx> " + event["token"], flush=True)


def chat_main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx chat", description="Chat with the diagnostic agent in the terminal; threads persist in SQLite.",
                                epilog=CHAT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--thread", help="thread id to resume (default: a new one)")
    p.add_argument("--db", default=str(data_home() / "chat.sqlite"), help="SQLite file for conversations (default in the data directory)")
    p.add_argument("--case", help="attach this case file at the start")
    add_agent_args(p)
    args = p.parse_args(argv)
    from mmdx.agent.chat import ChatSession

    session = ChatSession(build_agent(args), args.db)
    thread = args.thread or uuid.uuid4().hex[:12]
    hist = session.history(thread)
    print(f"mmdx chat: thread {thread} ({len(hist['messages'])} earlier messages). /help for commands.")
    for m in hist["messages"][-6:]:
        print(f"{m['role']}> {m['content'][:500]}")
    pending: dict = {}
    if args.case:
        pending = _attach_case(args.case)
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if not line:
            continue
        if line in ("/quit", "/exit"):
            break
        if line == "/help":
            print(CHAT_HELP)
            continue
        if line == "/history":
            for m in session.history(thread)["messages"]:
                print(f"{m['role']}> {m['content']}")
            continue
        cmd, _, rest = line.partition(" ")
        try:
            if cmd == "/case":
                pending.update(_attach_case(rest.strip()))
                print(f"(case attached: {rest.strip()}; ask a question or type 'diagnose')")
                continue
            if cmd == "/new":
                age, _, sex = rest.partition(" ")
                pending.update({"age": float(age), "sex": sex.strip() or "unknown"})
                print("(new case started)")
                continue
            if cmd == "/image":
                pending["image_path"] = str(Path(rest.strip()).resolve())
                print("(image attached)")
                continue
            if cmd == "/labs":
                pending["labs_csv"] = Path(rest.strip()).read_text()
                print("(labs attached)")
                continue
            if cmd == "/note":
                pending["note"] = rest
                print("(note attached)")
                continue
        except (OSError, ValueError) as e:
            print(f"(could not attach: {e})")
            continue
        session.send(thread, line, attach=pending or None, on_event=_show_event)
        pending = {}
    session.close()
    print(f"(thread {thread} saved in {args.db})")
    return 0


def _attach_case(path: str) -> dict:
    f = Path(path).resolve()
    return {"case_json": f.read_text(), "case_dir": str(f.parent)}
