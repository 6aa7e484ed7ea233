"""`mmdx eval run`: the agent over a cohort split, one row per case in SQLite, resumable.

Each finished case is committed at once (WAL mode, synchronous=FULL), so a run killed mid-way loses
at most the case in flight; `mmdx eval run` with the same --run-id skips what is done and carries on.
`mmdx eval report --run-id` prints top-1 agreement with the (synthetic) labels, abstentions, how many
answers were degraded, and per-diagnosis recall.
"""
from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

from mmdx.core.case import PatientCase
from mmdx.core.config import home
from mmdx.core.db import connect_durable

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL, case_id TEXT NOT NULL, finished_at TEXT NOT NULL, wall_s REAL NOT NULL,
    truth TEXT, top TEXT, abstained INTEGER NOT NULL, degraded INTEGER NOT NULL, diagnosis_json TEXT NOT NULL,
    PRIMARY KEY (run_id, case_id)
);
CREATE TABLE IF NOT EXISTS runs (run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, params TEXT NOT NULL);
"""


def connect(db: str | Path) -> sqlite3.Connection:
    return connect_durable(db, SCHEMA)


def run(agent, case_files: list[Path], db: str | Path, run_id: str, params: dict | None = None, on_case=None) -> dict:
    """Diagnose every case not yet done in `run_id`; returns counts {done_before, ran, total}."""
    conn = connect(db)
    conn.execute("INSERT OR IGNORE INTO runs VALUES (?, ?, ?)", (run_id, datetime.now(timezone.utc).isoformat(), json.dumps(params or {})))
    conn.commit()
    done = {r[0] for r in conn.execute("SELECT case_id FROM results WHERE run_id = ?", (run_id,))}
    ran = 0
    for f in case_files:
        case = PatientCase.load(f)
        if case.case_id in done:
            continue
        t0 = time.perf_counter()
        dx = agent.diagnose(case)
        conn.execute("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", (
            run_id, case.case_id, datetime.now(timezone.utc).isoformat(), time.perf_counter() - t0,
            json.dumps(list(case.labels.diagnoses)) if case.labels else None,
            dx.top().diagnosis if dx.top() else None, int(dx.abstained), int(bool(dx.degraded)), dx.model_dump_json()))
        conn.commit()
        ran += 1
        if on_case:
            on_case(case.case_id)
    conn.close()
    return {"done_before": len(done), "ran": ran, "total": len(case_files)}


def report(db: str | Path, run_id: str) -> dict:
    conn = connect(db)
    rows = conn.execute("SELECT truth, top, abstained, degraded FROM results WHERE run_id = ?", (run_id,)).fetchall()
    conn.close()
    labelled = [(json.loads(t), top, a) for t, top, a, _ in rows if t]
    answered = [(t, top) for t, top, a in labelled if not a]
    hits, support = Counter(), Counter()
    for truth, top, _ in labelled:
        for d in truth:
            support[d] += 1
            hits[d] += top == d
    return {
        "run_id": run_id, "cases": len(rows), "abstained": sum(r[2] for r in rows), "degraded": sum(r[3] for r in rows),
        "top1_in_labels_answered": round(sum(top in t for t, top in answered) / len(answered), 4) if answered else None,
        "recall_at_top1": {d: f"{hits[d]}/{support[d]}" for d in sorted(support)},
        "data": "synthetic (clinosim cohort)",
    }


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["injection"]:
        from mmdx.evals.injection import main as injection_main

        return injection_main(argv[1:])
    p = argparse.ArgumentParser(prog="mmdx eval", description=__doc__ + "\n`mmdx eval injection --help`: the prompt-injection suite.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run (or resume) the agent over a cohort split")
    r.add_argument("--cohort", default="data/cohort")
    r.add_argument("--split", default="test", choices=["train", "val", "test"])
    r.add_argument("--limit", type=int, help="first N cases of the split")
    r.add_argument("--run-id", required=True, help="same id = resume")
    r.add_argument("--db", default=str(home() / "evals.sqlite"))
    rep = sub.add_parser("report", help="summarise a run")
    rep.add_argument("--run-id", required=True)
    rep.add_argument("--db", default=str(home() / "evals.sqlite"))
    from mmdx.agent.cli import add_agent_args, build_agent

    add_agent_args(r)
    args = p.parse_args(argv)
    if args.cmd == "report":
        print(json.dumps(report(args.db, args.run_id), indent=2))
        return 0
    files = sorted((Path(args.cohort) / "cases" / args.split).glob("*.json"))[: args.limit]
    if not files:
        print(f"mmdx eval: no cases under {args.cohort}/cases/{args.split} (build with `mmdx data build`)", file=sys.stderr)
        return 2
    counts = run(build_agent(args), files, args.db, args.run_id, params={"cohort": args.cohort, "split": args.split, "llm": args.llm},
                 on_case=lambda cid: print(f"  done {cid}", flush=True))
    print(json.dumps(counts))
    print(json.dumps(report(args.db, args.run_id), indent=2))
    return 0
