"""`mmdx workflow score`: every case of a folder through the modality tools, via the tool runner,
into SQLite, resumable.

    mmdx workflow score --cohort data/cohort --split test --run-id test-v1 [--runner ray --ray-pools cxr=2]
    mmdx workflow summary --run-id test-v1

Batch scoring is what the runner's batching is for. Cases go to the runner in chunks, every tool
of every case of a chunk in one `run()` call, with `concurrency` chunks in flight: in-process that
is one forward pass per tool per chunk; through Ray the tools run on their actors in parallel, and
the chunks in flight keep each actor's next batch ready while it runs the current one.

Each chunk is committed as soon as it is back (WAL, synchronous=FULL), so a run killed mid-way
loses at most the chunks in flight, and the same --run-id carries on where it stopped. Stored per
(case file, tool): the typed output (calibrated probabilities, thresholds, embedding, OOD score,
provenance) or the typed failure (a missing modality, a corrupt image, a timeout, a dead actor).
A case file that does not load is stored once, as tool "*", with the validation error; it never
stops the run. The embeddings stored here are what a fusion or distillation workflow trains on.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Sequence

from mmdx.core.case import PatientCase
from mmdx.core.config import home
from mmdx.core.db import connect_durable
from mmdx.core.errors import CaseValidationError
from mmdx.core.tool import CaseInput, ClassifierOutput
from mmdx.tools.serving.options import RUNNERS

ANY_TOOL = "*"  # the tool column of a case file that did not load

SCHEMA = """
CREATE TABLE IF NOT EXISTS score_runs (run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, params TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tool_results (
    run_id TEXT NOT NULL, source TEXT NOT NULL, tool TEXT NOT NULL, case_id TEXT, ok INTEGER NOT NULL,
    kind TEXT, result_json TEXT NOT NULL, finished_at TEXT NOT NULL,
    PRIMARY KEY (run_id, source, tool)
);
"""


def connect(db: str | Path) -> sqlite3.Connection:
    return connect_durable(db, SCHEMA)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _score_chunk(runner, files: list[Path], todo: dict[str, list[str]], timeout_s: float | None) -> list[tuple]:
    """Rows (source, tool, case_id, ok, kind, result_json) for one chunk of case files."""
    rows: list[tuple] = []
    requests: list[tuple[str, CaseInput]] = []
    where: list[tuple[str, str, str]] = []
    for f in files:
        src = str(f)
        try:
            case = PatientCase.load(f)
        except CaseValidationError as e:
            rows.append((src, ANY_TOOL, None, 0, "invalid_input", json.dumps({"message": str(e)})))
            continue
        for tool in todo[src]:
            requests.append((tool, CaseInput(case=case)))
            where.append((src, tool, case.case_id))
    results = runner.run(requests, timeout_s=timeout_s) if requests else []
    for (src, tool, case_id), res in zip(where, results):
        ok = isinstance(res, ClassifierOutput)
        rows.append((src, tool, case_id, int(ok), None if ok else getattr(res, "kind", type(res).__name__),
                     res.model_dump_json()))
    return rows


def score(case_files: Sequence[Path], runner, db: str | Path, run_id: str, tools: Sequence[str],
          chunk: int = 32, concurrency: int = 2, params: dict | None = None, timeout_s: float | None = None,
          on_chunk: Callable[[int, int], None] | None = None) -> dict:
    """Score `case_files` with `tools` through `runner` into `db` under `run_id`; resumes a run.

    Returns counts for this call: cases, rows scored ok, rows failed (typed), rows skipped (done
    before). `on_chunk(done_files, total_files)` is called after each committed chunk."""
    tools = list(tools)
    conn = connect(db)
    try:
        with conn:
            conn.execute("INSERT OR IGNORE INTO score_runs VALUES (?, ?, ?)",
                         (run_id, _now(), json.dumps({"tools": tools, **(params or {})})))
        done: dict[str, set[str]] = {}
        for src, tool in conn.execute("SELECT source, tool FROM tool_results WHERE run_id = ?", (run_id,)):
            done.setdefault(src, set()).add(tool)
        todo: dict[str, list[str]] = {}
        skipped = 0
        for f in case_files:
            have = done.get(str(f), set())
            missing = [] if ANY_TOOL in have else [t for t in tools if t not in have]
            skipped += len(tools) - len(missing)
            if missing:
                todo[str(f)] = missing
        pending = [Path(s) for s in todo]
        chunks = [pending[k:k + max(1, chunk)] for k in range(0, len(pending), max(1, chunk))]
        counts = Counter(cases=len(case_files), skipped=skipped)
        finished = len(case_files) - len(pending)
        with ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="mmdx-score") as pool:
            # at most `concurrency` chunks in flight: the next is submitted as one comes back
            futures = [pool.submit(_score_chunk, runner, c, todo, timeout_s) for c in chunks[:concurrency]]
            nxt = len(futures)
            for k in range(len(chunks)):
                rows = futures[k].result()
                if nxt < len(chunks):
                    futures.append(pool.submit(_score_chunk, runner, chunks[nxt], todo, timeout_s))
                    nxt += 1
                stamp = _now()
                with conn:
                    conn.executemany("INSERT OR REPLACE INTO tool_results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                                     [(run_id, *r, stamp) for r in rows])
                counts["scored"] += sum(r[3] for r in rows)
                counts["failed"] += sum(1 - r[3] for r in rows)
                finished += len(chunks[k])
                if on_chunk is not None:
                    on_chunk(finished, len(case_files))
        return {"cases": counts["cases"], "scored": counts["scored"], "failed": counts["failed"],
                "skipped": counts["skipped"]}
    finally:
        conn.close()


def summary(db: str | Path, run_id: str) -> dict:
    """Per tool: rows ok and failed by kind; cases; files that did not load."""
    conn = connect(db)
    try:
        params = conn.execute("SELECT params FROM score_runs WHERE run_id = ?", (run_id,)).fetchone()
        if params is None:
            raise KeyError(f"no scoring run {run_id!r} in {db}")
        per_tool: dict[str, dict] = {}
        for tool, ok, kind, n in conn.execute(
                "SELECT tool, ok, kind, COUNT(*) FROM tool_results WHERE run_id = ? GROUP BY tool, ok, kind", (run_id,)):
            if tool == ANY_TOOL:
                continue
            t = per_tool.setdefault(tool, {"ok": 0, "failed": {}})
            if ok:
                t["ok"] += n
            else:
                t["failed"][kind] = n
        files = conn.execute("SELECT COUNT(DISTINCT source) FROM tool_results WHERE run_id = ?", (run_id,)).fetchone()[0]
        unreadable = conn.execute("SELECT COUNT(*) FROM tool_results WHERE run_id = ? AND tool = ?",
                                  (run_id, ANY_TOOL)).fetchone()[0]
        return {"run_id": run_id, "params": json.loads(params[0]), "case_files": files,
                "unreadable_case_files": unreadable, "tools": per_tool}
    finally:
        conn.close()


def load_outputs(db: str | Path, run_id: str, tool: str) -> dict[str, ClassifierOutput]:
    """The stored outputs of `tool` that succeeded, by case id (what a fusion workflow reads)."""
    conn = connect(db)
    try:
        rows = conn.execute("SELECT case_id, result_json FROM tool_results WHERE run_id = ? AND tool = ? AND ok = 1",
                            (run_id, tool)).fetchall()
    finally:
        conn.close()
    return {cid: ClassifierOutput.model_validate_json(js) for cid, js in rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx workflow", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("score", help="score a folder of cases with the modality tools (resumable)")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--cases", help="a folder of case JSON files")
    where.add_argument("--cohort", help="a cohort built by `mmdx data build` (with --split)")
    s.add_argument("--split", default="test", choices=["train", "val", "test"])
    s.add_argument("--limit", type=int, help="first N case files")
    s.add_argument("--run-id", required=True, help="same id = resume")
    s.add_argument("--db", default=str(home() / "scores.sqlite"))
    s.add_argument("--tools", default="cxr,labs,notes", help="comma-separated tool names")
    s.add_argument("--chunk", type=int, default=32, help="cases per runner call")
    s.add_argument("--concurrency", type=int, default=2, help="chunks in flight")
    s.add_argument("--timeout-s", type=float, default=300, help="per runner call")
    s.add_argument("--runner", default="inprocess", choices=RUNNERS, help="in this process, Ray actors, or Ray Serve")
    s.add_argument("--ray-address", help="join an existing Ray cluster")
    s.add_argument("--ray-pools", default="", metavar="TOOL=N,...", help="actors (replicas) per tool, e.g. cxr=2")
    sm = sub.add_parser("summary", help="what a scoring run holds")
    sm.add_argument("--run-id", required=True)
    sm.add_argument("--db", default=str(home() / "scores.sqlite"))
    args = p.parse_args(argv)

    if args.cmd == "summary":
        try:
            print(json.dumps(summary(args.db, args.run_id), indent=2))
        except KeyError as e:
            print(f"mmdx workflow: {e.args[0]}", file=sys.stderr)
            return 2
        return 0

    from mmdx import tools as _tools  # noqa: F401 - fills the registry
    from mmdx.core import registry

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    unknown = sorted(set(tools) - set(registry.names()))
    if not tools or unknown:
        print(f"mmdx workflow: unknown tool(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(registry.names())}",
              file=sys.stderr)
        return 2
    folder = Path(args.cases) if args.cases else Path(args.cohort) / "cases" / args.split
    files = sorted(folder.glob("*.json"))[: args.limit]
    if not files:
        print(f"mmdx workflow: no case files (*.json) under {folder}", file=sys.stderr)
        return 2
    if args.runner != "inprocess":
        from mmdx.tools.serving.options import open_runner, parse_pool_sizes, unknown_pool_tools

        try:
            pools = parse_pool_sizes(args.ray_pools)
        except ValueError as e:
            print(f"mmdx workflow: --ray-pools: {e}", file=sys.stderr)
            return 2
        problem = unknown_pool_tools(pools) or (None if set(pools) <= set(tools) else
                                               f"pools for tools not scored: {', '.join(sorted(set(pools) - set(tools)))}")
        if problem:
            print(f"mmdx workflow: --ray-pools: {problem}", file=sys.stderr)
            return 2
        runner = open_runner(args.runner, tool_names=tools, address=args.ray_address, pool_sizes=pools)
    else:
        from mmdx.tools.runner import InProcessRunner

        runner = InProcessRunner()
    try:
        counts = score(files, runner, args.db, args.run_id, tools, chunk=args.chunk, concurrency=args.concurrency,
                       timeout_s=args.timeout_s, params={"folder": str(folder), "runner": args.runner},
                       on_chunk=lambda n, total: print(f"  {n}/{total} case files", flush=True))
    finally:
        runner.close()
    print(json.dumps(counts))
    print(json.dumps(summary(args.db, args.run_id), indent=2))
    return 0
