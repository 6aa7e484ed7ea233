"""summary.json from results.jsonl: the metrics of every step, from the records alone.

Deterministic on purpose: records are grouped and sorted by key (a run with several cases in flight
writes them in another order), numbers are rounded, and nothing about the machine or the clock is
here (that is run.json). So a replay of a run reproduces this file byte for byte.

Per step kind:
- tools / text_baseline: per tool, classification metrics against the recorded labels of its target
  (AUROC, AUPRC, F1 at stored thresholds, macro, bootstrap CIs), ECE and reliability bins,
  split-conformal sets when the calibration split was run, top-1 beside the majority class, typed
  failures by kind, compute latency;
- missingness: the same per (tool, pattern), on the cases that had all three modalities;
- probes: per (tool, probe), how often the tool kept its confident answer; which tools fail;
- agent: the agent beside its baselines (same metrics), tool-selection precision/recall against
  the defined relevance, cost per case;
- routing: per policy, accuracy against cost on all cases and on the LLM sample; the frontier and
  where the scheduler sits;
- python: the rows as returned; injection: the suite's counts.
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np

from mmdx.core.labels import DIAGNOSES, IMAGING_FINDINGS
from mmdx.evals import metrics as M

SYNTHETIC_NOTE = "synthetic data unless the dataset line says real"


def _labels(target: str | None) -> tuple[str, ...]:
    return IMAGING_FINDINGS if target == "imaging_findings" else DIAGNOSES


def _truth(rec, target: str | None) -> list[str]:
    if not rec.truth:
        return []
    return rec.truth.get("findings" if target == "imaging_findings" else "diagnoses", [])


class _Collect:
    """Per (name, split): the records' results, in key order."""

    def __init__(self):
        self.items: dict[tuple[str, str], list] = defaultdict(list)

    def add(self, rec) -> None:
        for name, r in rec.results.items():
            self.items[(name, rec.split or "")].append((rec.key, rec, r))

    def sorted(self):
        for k in sorted(self.items):
            yield k, sorted(self.items[k], key=lambda t: t[0])


def _matrix(rows, target):
    labels = _labels(target)
    ok = [(rec, r) for _, rec, r in rows if r.ok and r.scores and _truth(rec, target) is not None and rec.truth]
    probs = np.array([[r.scores.get(lab, 0.0) for lab in labels] for _, r in ok], dtype=float).reshape(len(ok), len(labels))
    y = np.array([[lab in _truth(rec, target) for lab in labels] for rec, _ in ok], dtype=float).reshape(len(ok), len(labels))
    thr = np.array([ok[0][1].thresholds.get(lab, 0.5) for lab in labels]) if ok and ok[0][1].thresholds else None
    return labels, probs, y, thr, ok


def score_block(rows, target, ms, cal_rows=None) -> dict:
    """Every metric of one named result over its rows."""
    labels, probs, y, thr, ok = _matrix(rows, target)
    failures: dict[str, int] = defaultdict(int)
    for _, _, r in rows:
        if not r.ok:
            failures[r.failure_kind or "failed"] += 1
    out = {"n_records": len(rows), "n_scored": len(ok), "failures": dict(sorted(failures.items())),
           "target": target, "classification": M.classification(probs, y, labels, thr, ms.bootstrap, ms.seed),
           "calibration": M.reliability(probs, y, ms.ece_bins),
           "top1": M.top1([r.top if not r.abstained else None for _, r in ok], [_truth(rec, target) for rec, _ in ok]),
           "abstention_rate": (round(sum(bool(r.abstained) for _, r in ok) / len(ok), 4) if ok and any(r.abstained is not None for _, r in ok) else None),
           "cost": {"tool": M.latency([r.cost.tool_ms for _, _, r in rows if r.ok]),
                    "llm": M.latency([r.cost.llm_ms for _, _, r in rows if r.ok]),
                    "mean_model_calls": round(float(np.mean([r.cost.model_calls for _, _, r in rows])), 3) if rows else None}}
    if cal_rows:
        _, cp, cy, _, _ = _matrix(cal_rows, target)
        out["conformal"] = M.conformal(cp, cy, probs, y, ms.conformal_alpha)
    return out


def _majority_top1(rows, target) -> dict:
    """Top-1 of always answering the most frequent label of these rows' truth (a floor beside each tool)."""
    from collections import Counter

    truths = [_truth(rec, target) for _, rec, _ in rows if rec.truth]
    c = Counter(t for tr in truths for t in tr)
    if not c:
        return {}
    lab = c.most_common(1)[0][0]
    return {"label": lab, **M.top1([lab] * len(truths), truths)}


def _by_split(step, records, ms, wf, names_filter=None) -> dict:
    col = _Collect()
    for rec in records:
        col.add(rec)
    groups = dict(col.sorted())
    out = {}
    for (name, split), rows in groups.items():
        if split != wf.split or (names_filter and not names_filter(name)):
            continue
        target = next((r.target for _, _, r in rows if r.target), None)
        cal = groups.get((name, wf.calibration_split or "")) if wf.calibration_split else None
        block = score_block(rows, target, ms, cal)
        block["majority_class_top1"] = _majority_top1(rows, target)
        out[name] = block
    return out


def _missingness(records, ms, wf) -> dict:
    complete = [r for r in records if r.split == wf.split]
    col = _Collect()
    for rec in complete:
        rec = rec.model_copy(update={"results": {k: v for k, v in rec.results.items() if v.extra.get("complete_case")}})
        col.add(rec)
    out = {}
    for (name, split), rows in col.sorted():
        if split != wf.split:
            continue
        target = next((r.target for _, _, r in rows if r.target), None)
        b = score_block(rows, target, ms)
        out[name] = {k: b[k] for k in ("n_records", "n_scored", "failures", "top1")} | {
            "macro_auroc": b["classification"].get("macro_auroc"), "macro_auroc_ci95": b["classification"].get("macro_auroc_ci95"),
            "macro_auprc": b["classification"].get("macro_auprc"), "ece": b["calibration"]["ece"]}
    return {"cases": "complete cases only (X-ray, labs and notes present), modalities removed by pattern", "results": out}


def _probes(records, step) -> dict:
    agg: dict[str, dict] = defaultdict(lambda: {"counted": 0, "kept": 0, "refused": 0, "ood_flagged": 0, "n": 0})
    for rec in sorted(records, key=lambda r: r.key):
        for name, r in rec.results.items():
            if "|" not in name or name.endswith("|original") or not r.extra.get("reads_input"):
                continue
            a = agg[name]
            a["n"] += 1
            a["counted"] += bool(r.extra.get("counted"))
            a["kept"] += bool(r.extra.get("counted") and r.extra.get("kept_answer"))
            a["refused"] += bool(r.extra.get("refused"))
            a["ood_flagged"] += bool(r.ood_flag)
    out, failing = {}, []
    for name in sorted(agg):
        a = agg[name]
        rate = round(a["kept"] / a["counted"], 4) if a["counted"] else None
        fails = rate is not None and rate >= step.keep_rate_fails_at
        out[name] = {**a, "keep_rate": rate, "fails": fails}
        if fails:
            failing.append(name)
    return {"rule": f"a tool fails a probe when it keeps its top label at p >= {step.confident_at} without an OOD flag on "
                    f">= {step.keep_rate_fails_at:.0%} of counted cases (swaps: only cases whose donor gets another answer; a tool "
                    "that refused the destroyed input, itself or through the encoder it reads, is not counted)",
            "results": out, "failing": failing}


def _frontier(points: dict[str, tuple[float, float]]) -> list[str]:
    """Names not dominated (another point at least as accurate and no costlier, better in one)."""
    out = []
    for n, (c, a) in points.items():
        if a is None:
            continue
        if not any(a2 is not None and a2 >= a and c2 <= c and (a2 > a or c2 < c) for m, (c2, a2) in points.items() if m != n):
            out.append(n)
    return sorted(out)


def _routing(step_records, ms, wf, step) -> dict:
    recs = [r for r in step_records if r.split == wf.split]
    sample_keys = {r.key for r in recs if "llm_scheduler" in r.results}
    views = {"all_cases": recs, "llm_sample": [r for r in recs if r.key in sample_keys]}
    out = {}
    for view, rs in views.items():
        col = _Collect()
        for rec in rs:
            col.add(rec)
        table, points = {}, {}
        for (name, _), rows in col.sorted():
            b = score_block(rows, "diagnoses", ms)
            ok = [r for _, _, r in rows]
            row = {"n": len(rows), "n_failed": sum(not r.ok for r in ok), "macro_auroc": b["classification"].get("macro_auroc"),
                   "macro_auroc_ci95": b["classification"].get("macro_auroc_ci95"),
                   # top-1 over every case: a policy that gave no answer (a failed tool) missed it
                   "top1": M.top1([r.top if r.ok and not r.abstained else None for _, _, r in rows],
                                  [_truth(rec, "diagnoses") for _, rec, _ in rows])["top1"],
                   "abstention_rate": b["abstention_rate"],
                   "mean_tool_ms": round(float(np.mean([r.cost.tool_ms for r in ok])), 2) if ok else None,
                   "mean_llm_ms": round(float(np.mean([r.cost.llm_ms for r in ok])), 2) if ok else None,
                   "mean_model_calls": round(float(np.mean([r.cost.model_calls for r in ok])), 3) if ok else None}
            if name == "llm_scheduler" and any("llm_ms_by_stage" in r.extra for r in ok):
                row["llm_ms_by_stage"] = {st: M.latency([r.extra.get("llm_ms_by_stage", {}).get(st, 0.0) for r in ok])
                                          for st in ("plan", "reflect", "answer")}
                row["tool_selection"] = M.selection([set(r.extra.get("proposed", [])) for r in ok],
                                                    [set(r.extra.get("relevant", [])) for r in ok])
            table[name] = row
            # the frontier compares policies scored on the same cases: one that ran on part of the view
            # (the LLM on its sample, the X-ray student where there is a film) is shown, not placed
            if (name not in ("oracle", "majority") and row["mean_tool_ms"] is not None and row["n_failed"] < row["n"]
                    and row["n"] == len(rs)):
                points[name] = (row["mean_tool_ms"] + (row["mean_llm_ms"] or 0.0), row["top1"])
        front = _frontier(points)
        verdict = None
        if "llm_scheduler" in table and "llm_scheduler" not in points:
            verdict = (f"run on {table['llm_scheduler']['n']} of these {len(rs)} cases only, so not placed on this "
                       "frontier (see its sample)")
        if "llm_scheduler" in points:
            c, a = points["llm_scheduler"]
            dom = sorted(n for n, (c2, a2) in points.items() if n != "llm_scheduler" and a2 is not None and a is not None
                         and a2 >= a and c2 <= c)
            verdict = ("on the frontier of accuracy (top-1) against cost" if "llm_scheduler" in front else
                       f"below the fixed policies' frontier: {', '.join(dom)} at least as accurate for no more cost")
        out[view] = {"n_cases": len(rs), "policies": table, "frontier_top1_vs_cost": front, "llm_scheduler": verdict}
    return out


def _agent(records, ms, wf) -> dict:
    recs = [r for r in records if r.split == wf.split]
    block = _by_split(None, recs, ms, wf)
    proposed, relevant = [], []
    for rec in sorted(recs, key=lambda r: r.key):
        a = rec.results.get("agent")
        if a is not None:
            proposed.append(set(a.extra.get("proposed", [])))
            relevant.append(set(a.extra.get("relevant", [])))
    stages: dict[str, list[float]] = defaultdict(list)
    for rec in recs:
        a = rec.results.get("agent")
        if a is not None:
            stages["tools"].append(a.cost.tool_ms)
            for st in ("plan", "reflect", "answer") if "llm_ms_by_stage" in a.extra else ():
                stages[f"llm_{st}"].append(a.extra.get("llm_ms_by_stage", {}).get(st, 0.0))
    return {"results": block, "tool_selection": M.selection(proposed, relevant),
            "latency_by_stage": {k: M.latency(v) for k, v in sorted(stages.items())},
            "relevance": "a runnable tool whose absence changes the top diagnosis or the abstention (evals/relevance.py)"}


def _injection(records) -> dict:
    rs = [r.results["injected"].extra for r in sorted(records, key=lambda r: r.key) if "injected" in r.results]
    claims_measured = [e for e in rs if e.get("unsupported_claims") is not None]
    return {"tried": len(rs), "llm_saw_payload": sum(e["llm_saw_payload"] for e in rs),
            "tool_calls_changed": sum(e["calls_changed"] for e in rs), "answers_changed": sum(e["answer_changed"] for e in rs),
            # per position: 'only' replaces the note (its control is the case with its own note), the others
            # are compared with the same placement without the payload (evals/injection.control)
            "answers_changed_by_position": {pos: [sum(e["answer_changed"] for e in rs if e["injection"].startswith(pos + ":")),
                                                  sum(e["injection"].startswith(pos + ":") for e in rs)]
                                            for pos in ("start", "middle", "end", "only")},
            "set_aside_shown": sum(e["set_aside_shown"] for e in rs),
            "llm_claim_sets": sum(e.get("llm_claim_sets", 0) for e in rs),
            "unsupported_claims": sum(e["unsupported_claims"] for e in claims_measured) if claims_measured else None}


def summarize(wf, results, dataset: str) -> dict:
    steps = {}
    ms = wf.metrics
    for step in wf.steps:
        recs = list(results.records(step.name))
        if step.kind in ("tools", "text_baseline"):
            steps[step.name] = {"kind": step.kind, "results": _by_split(step, recs, ms, wf)}
        elif step.kind == "missingness":
            steps[step.name] = {"kind": step.kind, **_missingness(recs, ms, wf)}
        elif step.kind == "probes":
            steps[step.name] = {"kind": step.kind, **_probes(recs, step)}
        elif step.kind == "agent":
            steps[step.name] = {"kind": step.kind, **_agent(recs, ms, wf)}
        elif step.kind == "routing":
            steps[step.name] = {"kind": step.kind, **_routing(recs, ms, wf, step)}
        elif step.kind == "python":
            steps[step.name] = {"kind": step.kind, "entry": step.entry,
                                "rows": [r.row for r in sorted(recs, key=lambda r: r.key)]}
        elif step.kind == "injection":
            steps[step.name] = {"kind": step.kind, **_injection(recs)}
    return {"workflow": wf.name, "description": wf.description, "dataset": dataset, "data_note": SYNTHETIC_NOTE,
            "split": wf.split, "calibration_split": wf.calibration_split, "limit": wf.limit, "steps": steps}
