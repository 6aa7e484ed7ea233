"""`mmdx eval run FILE --out DIR`: run an evaluation workflow (workflows/*.yaml), resumably.

    mmdx eval run workflows/demo.yaml --out runs/demo              # run, or resume a killed run
    mmdx eval run workflows/routing.yaml --out runs/r2 --replay runs/routing   # from the cache, no model loads
    mmdx eval run workflows/cohort.yaml --out runs/cohort --runner ray        # cases fanned out over Ray actors
    mmdx eval report runs/demo                                      # re-render summary.json and report.html

What a run writes in DIR:
- `results.jsonl`: one record per (step, case) in one schema for every kind of step
  (workflows/results_log.py), appended as each case finishes; a killed run resumes with the same
  command, skipping what is there;
- `cache/tools.jsonl`, `cache/llm.jsonl`: every tool output by (tool, input digest, weights digest)
  and every LLM answer by prompt digest, each with its measured latency (evals/tool_cache.py);
- `summary.json`: the metrics, computed from results.jsonl only (sorted, rounded: a replay of the
  run reproduces it byte for byte); `report.html`: the summary with its plots;
- `run.json`: what is not reproducible (start time, wall time, load average, cache hits).

`--replay DIR` loads no model and no LLM: every tool output and LLM answer comes from DIR's cache
(a missing one is an error). Cases are read one at a time; only file paths are listed up front.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

from mmdx.evals.cases import CaseSource, truth_of
from mmdx.workflows.results_log import NamedResult, ResultRecord, ResultsLog
from mmdx.evals.tool_cache import CachingLLM, CachingRunner
from mmdx.evals.workflow_spec import Workflow, WorkflowError, load_workflow

log = logging.getLogger(__name__)
CASE_STEPS = ("tools", "missingness", "probes", "agent", "routing", "text_baseline")
CALIBRATED_STEPS = ("tools", "missingness", "agent", "routing", "text_baseline")  # also run on calibration_split


def sample_indices(n: int, k: int | None) -> set[int]:
    """k indices evenly spread over range(n) (all of them when k is None or >= n)."""
    if k is None or k >= n:
        return set(range(n))
    return {(i * n) // k for i in range(k)}


class RunContext:
    """What steps share: the workflow, the case source, the (caching) runner and LLM, the out folder."""

    def __init__(self, wf: Workflow, out: Path, runner_kind: str, replay: Path | None, llm_spec: str | None,
                 root: Path = Path("."), inner_runner=None, llm_factory=None):
        self.workflow, self.out, self.replay, self.llm_spec = wf, Path(out), replay, llm_spec
        self.source = CaseSource(wf.dataset, root)
        self._llm_factory = llm_factory  # tests: a scripted LLM instead of load_llm
        cache_dir = (replay or self.out) / "cache"
        inner = inner_runner
        if replay is None and inner is None:
            from mmdx.tools.serving.options import open_runner

            inner = open_runner(runner_kind)
        self.runner = CachingRunner(inner, cache_dir, replay=replay is not None)
        self.llm_cache: CachingLLM | None = None
        self._cache_dir = cache_dir
        self._units: dict[str, list[str]] = {}
        self._samples: dict[tuple[str, int | None], set[str]] = {}
        self._current: dict[str, str] = {}  # case id -> unit, for neighbours()

    # ---- the LLM, loaded once, only when a step needs it
    def llm(self, spec):
        if self.llm_cache is None:
            meta = self._cache_dir / "llm_model.json"
            if self.replay is not None:
                model_id = json.loads(meta.read_text())["model_id"] if meta.is_file() else "?"
                self.llm_cache = CachingLLM(None, self._cache_dir, model_id=model_id, replay=True)
            else:
                from mmdx.agent.llm import config_from_spec, load_llm

                llm = (self._llm_factory(spec) if self._llm_factory else
                       load_llm(config_from_spec(self.llm_spec or spec.llm, n_threads=spec.threads)))
                self.llm_cache = CachingLLM(llm, self._cache_dir)
                meta.parent.mkdir(parents=True, exist_ok=True)
                meta.write_text(json.dumps({"model_id": self.llm_cache.model_id}) + "\n")
        return self.llm_cache

    # ---- units and samples
    def units(self, split: str) -> list[str]:
        if split not in self._units:
            self._units[split] = self.source.units(split, self.workflow.limit)
        return self._units[split]

    def sampled(self, split: str, k: int | None) -> list[str]:
        units = self.units(split)
        keep = sample_indices(len(units), k)
        return [u for i, u in enumerate(units) if i in keep]

    def in_sample(self, case, k: int | None) -> bool:
        split = self.workflow.split
        if (split, k) not in self._samples:
            self._samples[(split, k)] = set(self.sampled(split, k))
        return self._current.get(case.case_id) in self._samples[(split, k)]

    def neighbours(self, case, n: int = 20):
        """Up to n other cases of the split after this one (cyclically), loaded one at a time."""
        split = self.workflow.split
        units = self.units(split)
        unit = self._current.get(case.case_id)
        start = units.index(unit) + 1 if unit in units else 0
        for j in range(min(n, len(units) - 1)):
            yield self.source.load(units[(start + j) % len(units)], split)

    def close(self) -> None:
        self.runner.close()


def _step_runner(step, ctx):
    from mmdx.evals import agent_steps, case_steps, other_steps

    return {"tools": case_steps.ToolsStepRunner, "missingness": case_steps.MissingnessStepRunner,
            "probes": case_steps.ProbesStepRunner, "agent": agent_steps.AgentStepRunner,
            "routing": agent_steps.RoutingStepRunner, "text_baseline": other_steps.TextBaseline}[step.kind](step, ctx)


def _unit_key(split: str, unit: str) -> str:
    return f"{split}:{Path(unit).stem}"


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    tty = sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit="case", file=sys.stderr, disable=not enabled, dynamic_ncols=True,
                mininterval=0.5 if tty else 15.0)  # a log file gets a line every 15 s, not one per case


def run_case_step(step, ctx: RunContext, results: ResultsLog, progress: bool, on_record=None) -> None:
    wf = ctx.workflow
    splits = [wf.split] + ([wf.calibration_split] if wf.calibration_split and step.kind in CALIBRATED_STEPS else [])
    runner = None
    for split in splits:
        sample = getattr(getattr(step, "agent", None), "sample", None) if step.kind == "agent" else None
        units = ctx.sampled(split, sample)
        todo = [u for u in units if not results.done(step.name, _unit_key(split, u))]
        if not todo:
            continue
        if runner is None:
            from mmdx.core import registry

            ctx.runner.warm(list(getattr(step, "tools", None) or registry.names()))
            runner = _step_runner(step, ctx)
        bar = _progress(len(units), f"{step.name} [{split}]", progress)
        bar.update(len(units) - len(todo))

        def one(unit, split=split):
            case = ctx.source.load(unit, split)
            ctx._current[case.case_id] = unit
            res = runner.run_case(case)
            return ResultRecord(workflow=wf.name, step=step.name, kind=step.kind, key=_unit_key(split, unit),
                                case_id=case.case_id, split=split, truth=truth_of(case), results=res)

        threads = 8 if wf.runner == "ray" and step.kind in ("tools", "missingness", "probes") else 1
        if threads == 1:
            for unit in todo:
                rec = one(unit)
                results.append(rec)
                bar.update(1)
                if on_record:
                    on_record(rec)
        else:  # fan the cases out: several in flight through the Ray actors, each written as it finishes
            with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mmdx-eval") as pool:
                for rec in pool.map(one, todo):
                    results.append(rec)
                    bar.update(1)
                    if on_record:
                        on_record(rec)
        bar.close()


def run_other_step(step, ctx: RunContext, results: ResultsLog, progress: bool, on_record=None) -> None:
    from mmdx.evals import other_steps

    wf = ctx.workflow
    if step.kind == "python":
        if results.count(step.name):  # the entry point owns its loop: done when its rows are in
            return
        for key, row in other_steps.python_rows(step, ctx):
            results.append(ResultRecord(workflow=wf.name, step=step.name, kind=step.kind, key=key, row=row))
        return
    if step.kind == "injection":
        from mmdx.evals.agent_steps import AgentHarness

        harness = AgentHarness(step.agent, ctx)
        units = list(other_steps.injection_units(step, ctx))
        bar = _progress(len(units), step.name, progress)
        for key, clean, injected, desc in units:
            if not results.done(step.name, key):
                res = other_steps.injection_result(step, ctx, harness, clean, injected, desc)
                rec = ResultRecord(workflow=wf.name, step=step.name, kind=step.kind, key=key, case_id=clean.case_id,
                                   split=wf.split, results=res)
                results.append(rec)
                if on_record:
                    on_record(rec)
            bar.update(1)
        bar.close()
        return
    raise WorkflowError(f"step {step.name}: unknown kind {step.kind}")


def run_workflow(wf: Workflow, out: Path, runner: str | None = None, replay: Path | None = None, llm: str | None = None,
                 progress: bool = True, on_record=None, root: Path = Path("."), inner_runner=None, llm_factory=None) -> dict:
    """Run (or resume) `wf` into `out`; returns the summary. `inner_runner` and `llm_factory` replace
    the real tool runner and LLM (tests); `replay` uses neither."""
    from mmdx.evals.report_html import write_report
    from mmdx.evals.summarize import summarize

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if runner:
        wf = wf.model_copy(update={"runner": runner})
    (out / "workflow.json").write_text(wf.model_dump_json(indent=2) + "\n")
    t0, load0 = time.time(), os.getloadavg()
    ctx = RunContext(wf, out, wf.runner, replay, llm, root, inner_runner=inner_runner, llm_factory=llm_factory)
    results = ResultsLog(out / "results.jsonl")
    try:
        for step in wf.steps:
            if step.kind in CASE_STEPS:
                run_case_step(step, ctx, results, progress, on_record)
            else:
                run_other_step(step, ctx, results, progress, on_record)
    finally:
        results.close()
        ctx.close()
    summary = summarize(wf, ResultsLog(out / "results.jsonl"), ctx.source.describe())
    (out / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    write_report(out, wf, summary, ResultsLog(out / "results.jsonl"))
    (out / "run.json").write_text(json.dumps({
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "wall_s": round(time.time() - t0, 1),
        "load_avg_1m_before": round(load0[0], 2), "load_avg_1m_after": round(os.getloadavg()[0], 2),
        "cpu_cores": os.cpu_count(), "replay_of": str(replay) if replay else None,
        "tool_cache": {"hits": ctx.runner.hits, "misses": ctx.runner.misses}}, indent=2) + "\n")
    return summary


def report_only(out: Path) -> dict:
    from mmdx.evals.report_html import write_report
    from mmdx.evals.summarize import summarize

    wf = Workflow.model_validate_json((Path(out) / "workflow.json").read_text())
    previous = Path(out) / "summary.json"
    source_desc = (json.loads(previous.read_text())["dataset"] if previous.is_file()
                   else CaseSource(wf.dataset).describe())  # what the run itself recorded, else the source's own words
    summary = summarize(wf, ResultsLog(Path(out) / "results.jsonl"), source_desc)
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    write_report(Path(out), wf, summary, ResultsLog(Path(out) / "results.jsonl"))
    return summary


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx eval", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="run (or resume) a workflow file")
    r.add_argument("workflow", help="a workflow file, e.g. workflows/demo.yaml")
    r.add_argument("--out", required=True, help="the run folder (the same folder resumes)")
    r.add_argument("--replay", help="a finished run folder: every tool output and LLM answer from its cache, no model loads")
    r.add_argument("--runner", choices=["inprocess", "ray", "serve"], help="override the workflow's runner")
    r.add_argument("--llm", help="override the LLM of the workflow's agent steps (as mmdx diagnose --llm)")
    r.add_argument("--limit", type=int, help="override the workflow's limit: the first N cases of each split (a quick check)")
    r.add_argument("--no-progress", action="store_true", help="no progress bar")
    rep = sub.add_parser("report", help="re-render summary.json and report.html of a run folder")
    rep.add_argument("out")
    args = p.parse_args(argv)
    if args.cmd == "report":
        report_only(Path(args.out))
        print(Path(args.out) / "report.html")
        return 0
    wf = load_workflow(args.workflow)
    if args.limit is not None:
        if args.limit < 1:
            raise WorkflowError("--limit must be at least 1")
        wf = wf.model_copy(update={"limit": args.limit})
    summary = run_workflow(wf, Path(args.out), runner=args.runner, replay=Path(args.replay) if args.replay else None,
                           llm=args.llm, progress=not args.no_progress)
    print(json.dumps({"workflow": wf.name, "out": args.out, "steps": sorted(summary.get("steps", {}))}))
    print(f"report: {Path(args.out) / 'report.html'}", file=sys.stderr)
    return 0
