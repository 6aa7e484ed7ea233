"""`mmdx workflow score`: every case of a folder through the modality tools, via the tool runner,
into a run folder in the one results schema (workflows/results_log.py), resumable.

    mmdx workflow score --cohort cohorts/default --split test --out runs/score-test [--runner ray --ray-pools cxr=2]
    mmdx workflow summary runs/score-test

Batch scoring is what the runner's batching is for. Cases go to the runner in chunks, every tool
of every case of a chunk in one `run()` call, with `concurrency` chunks in flight: in-process that
is one forward pass per tool per chunk; through Ray the tools run on their actors in parallel, and
the chunks in flight keep each actor's next batch ready while it runs the current one.

Each chunk's records are appended to `OUT/results.jsonl` as soon as it is back (flushed, fsync'd),
so a run killed mid-way loses at most the chunks in flight, and the same --out carries on where it
stopped. One record per (tool, case file): step = the tool, key = the file; its result holds the
calibrated probabilities and thresholds and, in `extra["output"]`, the whole typed output (embedding,
OOD score, provenance) or the typed failure (a missing modality, a corrupt image, a timeout, a dead
actor). A case file that does not load is stored once, as tool "*", with the validation error; it
never stops the run. The embeddings stored here are what a fusion or distillation workflow trains on
(`load_outputs`).
"""
from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Sequence

from mmdx.core.case import PatientCase
from mmdx.core.errors import CaseValidationError
from mmdx.core.tool import CaseInput, ClassifierOutput
from mmdx.tools.serving.options import RUNNERS
from mmdx.workflows.results_log import NamedResult, ResultRecord, ResultsLog

ANY_TOOL = "*"  # the tool of a case file that did not load
WORKFLOW = "score"


def _record(src: str, tool: str, case_id: str | None, res) -> ResultRecord:
    if isinstance(res, ClassifierOutput):
        named = NamedResult(target=res.target, scores={s.label: s.probability for s in res.scores},
                            thresholds={s.label: s.threshold for s in res.scores},
                            top=max(res.scores, key=lambda s: s.probability).label, ood_flag=res.ood_flag, tools_run=[tool],
                            model_id=res.provenance.model_id, weights_sha256=res.provenance.weights_sha256,
                            extra={"output": json.loads(res.model_dump_json())})
    elif isinstance(res, dict):  # a file that did not load
        named = NamedResult(ok=False, failure_kind="invalid_input", failure=res["message"])
    else:
        named = NamedResult(ok=False, failure_kind=res.kind, failure=res.message, extra={"output": json.loads(res.model_dump_json())})
    return ResultRecord(workflow=WORKFLOW, step=tool, kind="score", key=src, case_id=case_id, results={tool: named})


def _score_chunk(runner, files: list[Path], todo: dict[str, list[str]], timeout_s: float | None) -> list[ResultRecord]:
    """The records of one chunk of case files."""
    rows: list[ResultRecord] = []
    requests: list[tuple[str, CaseInput]] = []
    where: list[tuple[str, str, str]] = []
    for f in files:
        src = str(f)
        try:
            case = PatientCase.load(f)
        except CaseValidationError as e:
            rows.append(_record(src, ANY_TOOL, None, {"message": str(e)}))
            continue
        for tool in todo[src]:
            requests.append((tool, CaseInput(case=case)))
            where.append((src, tool, case.case_id))
    results = runner.run(requests, timeout_s=timeout_s) if requests else []
    for (src, tool, case_id), res in zip(where, results):
        rows.append(_record(src, tool, case_id, res))
    return rows


def score(case_files: Sequence[Path], runner, out: str | Path, tools: Sequence[str], chunk: int = 32, concurrency: int = 2,
          timeout_s: float | None = None, on_chunk: Callable[[int, int], None] | None = None) -> dict:
    """Score `case_files` with `tools` through `runner` into `out`/results.jsonl; resumes a run.

    Returns counts for this call: cases, (file, tool) pairs scored ok, failed (typed), skipped
    (done before). `on_chunk(done_files, total_files)` is called after each stored chunk."""
    tools = list(tools)
    log = ResultsLog(Path(out) / "results.jsonl")
    try:
        todo: dict[str, list[str]] = {}
        skipped = 0
        for f in case_files:
            if log.done(ANY_TOOL, str(f)):
                skipped += len(tools)
                continue
            missing = [t for t in tools if not log.done(t, str(f))]
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
                for rec in rows:
                    log.append(rec)
                    ok = all(r.ok for r in rec.results.values())
                    counts["scored" if ok else "failed"] += 1
                finished += len(chunks[k])
                if on_chunk is not None:
                    on_chunk(finished, len(case_files))
        return {"cases": counts["cases"], "scored": counts["scored"], "failed": counts["failed"], "skipped": counts["skipped"]}
    finally:
        log.close()


def summary(out: str | Path) -> dict:
    """Per tool: rows ok and failed by kind; case files; files that did not load."""
    path = Path(out) / "results.jsonl"
    if not path.is_file():
        raise KeyError(f"no scoring run in {out} (no results.jsonl)")
    per_tool: dict[str, dict] = {}
    files, unreadable = set(), 0
    for rec in ResultsLog(path).records():
        files.add(rec.key)
        if rec.step == ANY_TOOL:
            unreadable += 1
            continue
        r = rec.results[rec.step]
        t = per_tool.setdefault(rec.step, {"ok": 0, "failed": {}})
        if r.ok:
            t["ok"] += 1
        else:
            t["failed"][r.failure_kind] = t["failed"].get(r.failure_kind, 0) + 1
    return {"out": str(out), "case_files": len(files), "unreadable_case_files": unreadable,
            "tools": dict(sorted(per_tool.items()))}


def load_outputs(out: str | Path, tool: str) -> dict[str, ClassifierOutput]:
    """The stored outputs of `tool` that succeeded, by case id (what a fusion workflow reads)."""
    outs = {}
    for rec in ResultsLog(Path(out) / "results.jsonl").records(tool):
        r = rec.results[tool]
        if r.ok:
            outs[rec.case_id] = ClassifierOutput.model_validate(r.extra["output"])
    return outs


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
    s.add_argument("--out", required=True, help="the run folder (results.jsonl); the same folder resumes")
    s.add_argument("--tools", default="cxr,labs,notes", help="comma-separated tool names")
    s.add_argument("--chunk", type=int, default=32, help="cases per runner call")
    s.add_argument("--concurrency", type=int, default=2, help="chunks in flight")
    s.add_argument("--timeout-s", type=float, default=300, help="per runner call")
    s.add_argument("--runner", default="inprocess", choices=RUNNERS, help="in this process, Ray actors, or Ray Serve")
    s.add_argument("--ray-address", help="join an existing Ray cluster")
    s.add_argument("--ray-pools", default="", metavar="TOOL=N,...", help="actors (replicas) per tool, e.g. cxr=2")
    sm = sub.add_parser("summary", help="what a scoring run holds")
    sm.add_argument("out", help="the run folder")
    args = p.parse_args(argv)

    if args.cmd == "summary":
        try:
            print(json.dumps(summary(args.out), indent=2))
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
        counts = score(files, runner, args.out, tools, chunk=args.chunk, concurrency=args.concurrency, timeout_s=args.timeout_s,
                       on_chunk=lambda n, total: print(f"  {n}/{total} case files", flush=True))
    finally:
        runner.close()
    print(json.dumps(counts))
    print(json.dumps(summary(args.out), indent=2))
    return 0
