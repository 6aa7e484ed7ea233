"""`mmdx bench agent`: how the agent behaves with the real local LLM, per case and in total.

Reports, over the demo cases and a held-out slice of the cohort (synthetic):
- schema-valid LLM outputs (every attempt counts; goal 100%);
- tool-selection precision and recall of the LLM's own proposals (before the guard) against the
  relevant tools of each case (evals/relevance.py: a runnable tool whose absence would change the
  top diagnosis or the abstention), beside "propose every runnable tool" scored the same way;
- baselines on the same cases, scored through the same aggregate and abstention rules: the majority
  class of the cohort's training split, each single diagnosis tool alone, and the fused model alone;
- guard overrides per case; LLM claim sets accepted by the check; top-1 agreement with the cohort's
  labels (synthetic ground truth); agreement with the fused classifier, when one is registered;
- time per case, p50 and p90, until the numbers are ready (the differential, shown first) and until
  the whole answer, split into stages (LLM plan, reflect, answer; tools; the rest of the graph),
  with the tokens the LLM evaluated and generated and how many came from its prompt cache;
- the machine: cores, LLM threads, load average before and after (a shared machine is noisy).
A benchmark, not a test: nothing here asserts a time.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from mmdx.agent.scope import vital_signs
from mmdx.core.case import PatientCase

LLM_STEPS = ("plan", "reflect", "answer")


def _pct(values: list[float], q: float) -> float:
    """The q-quantile by linear interpolation (q=0.5: the median)."""
    v = sorted(values)
    if not v:
        return float("nan")
    k = (len(v) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(v) - 1)
    return round(v[lo] + (v[hi] - v[lo]) * (k - lo), 3)


def run_case(agent, case: PatientCase, baselines: bool = True) -> dict:
    marks: dict[str, float] = {}
    t0 = time.perf_counter()
    final = agent.run(case, progress=lambda e: marks.setdefault(e["stage"], time.perf_counter() - t0))
    wall = time.perf_counter() - t0
    dx = final["diagnosis"]
    ev = final.get("events", [])
    llm_events = [e for e in ev if "schema_valid" in e]
    proposed = set()
    for e in ev:
        if e["step"] in ("plan_proposed", "reflect_proposed"):
            proposed |= set(e["tools"])
    avail = set(agent.runnable(case))
    stage = {s: round(sum(e["latency_s"] for e in llm_events if e["step"] == s), 3) for s in LLM_STEPS}
    tools_s = sum(e["latency_s"] for e in ev if e["step"] == "tools")
    llm_s = sum(stage.values())
    tokens = {k: sum((e.get("tokens") or {}).get(k) or 0 for e in llm_events) for k in ("prompt_n", "predicted_n", "cache_n")}
    top = dx.top().diagnosis if dx.top() and not dx.abstained else None
    fused = None
    if "fused" in final.get("results", {}):
        fused = max(final["results"]["fused"].scores, key=lambda s: s.probability).label
    extra = _baselines(agent, case) if baselines else {"relevant": sorted(avail), "baseline_top": {}}
    return {**extra,
        "case_id": case.case_id, "modalities": sorted(m.value for m in case.modalities),
        "llm_calls": len(llm_events), "llm_valid": sum(e["schema_valid"] for e in llm_events),
        "proposed": sorted(proposed), "available": sorted(avail), "tp": len(proposed & set(extra["relevant"])),
        "tp_every_tool": len(avail & set(extra["relevant"])),
        "overrides": len(dx.overrides), "top": top, "abstained": dx.abstained, "urgent_review": dx.urgent_review,
        "truth": list(case.labels.diagnoses) if case.labels else None, "fused_top": fused,
        "rationale_source": dx.rationale_source, "claims_refused": len(dx.grounding.rejected),
        "wall_s": round(wall, 3), "to_numbers_s": round(marks.get("differential", wall), 3),
        "llm_s": round(llm_s, 3), **{f"llm_{s}_s": v for s, v in stage.items()}, "tools_s": round(tools_s, 3),
        "graph_s": round(max(0.0, wall - llm_s - tools_s), 3), "tokens": tokens,
    }


def _baselines(agent, case: PatientCase) -> dict:
    """Untimed, after the agent's run: every runnable tool on the case (and the fused model without
    each modality) through the agent's runner; the relevant tools; each single tool's and the fused
    model's answer alone (an abstention is no top-1)."""
    from mmdx.evals.relevance import answer, relevant_tools, tool_table

    table = tool_table(agent.runner, case, names=agent.runnable(case))
    vitals = vital_signs(case)
    tops = {}
    for name, out in table.results.items():
        if getattr(out, "target", None) == "diagnoses":
            a = answer([out], vitals)
            tops[name] = None if a.abstained else a.top
    return {"relevant": sorted(relevant_tools(table, vitals)), "baseline_top": tops,
            "failed_tools": sorted(n for n, o in table.results.items() if getattr(o, "kind", None))}


def majority_label(cohort: Path | None, cases: list[PatientCase]) -> tuple[str | None, str]:
    """The most frequent diagnosis of the cohort's training split (its manifest), else of `cases`."""
    from collections import Counter

    manifest = Path(cohort) / "manifest.json" if cohort else None
    if manifest is not None and manifest.is_file():
        counts = json.loads(manifest.read_text()).get("counts", {}).get("train", {})
        counts = {k: v for k, v in counts.items() if not k.startswith("_")}
        if counts:
            return max(counts, key=counts.get), f"the training split of {cohort}"
    c = Counter(d for case in cases if case.labels for d in case.labels.diagnoses)
    return (c.most_common(1)[0][0] if c else None), "the benchmarked cases themselves (no cohort manifest)"


def warm_up_case(case: PatientCase) -> PatientCase:
    """A case like `case` but not identical (another id, a year older): a warm-up on a measured case
    would leave that case's own prompts in the LLM's cache and flatter its time."""
    return case.model_copy(update={"case_id": "warm-up", "demographics": case.demographics.model_copy(
        update={"age": min(120.0, case.demographics.age + 1)})})


def _top1(rows: list[dict], top_of) -> str | None:
    labelled = [r for r in rows if r["truth"]]
    if not labelled:
        return None
    return f"{sum(top_of(r) in r['truth'] for r in labelled)}/{len(labelled)}"


def bench(agent, cases: list[PatientCase], warmup: bool = True, cohort: Path | None = None, baselines: bool = True) -> dict:
    load_before = os.getloadavg()
    if warmup and cases:  # fills the prompt cache with the system prompt, untimed, as a running server would have
        agent.run(warm_up_case(cases[0]))
    rows = [run_case(agent, c, baselines=baselines) for c in cases]
    load_after = os.getloadavg()
    n_prop = sum(len(r["proposed"]) for r in rows)
    n_avail = sum(len(r["available"]) for r in rows)
    n_rel = sum(len(r["relevant"]) for r in rows)
    tp = sum(r["tp"] for r in rows)
    tp_all = sum(r["tp_every_tool"] for r in rows)
    majority, majority_from = majority_label(cohort, cases)
    tool_names = sorted({t for r in rows for t in r["baseline_top"]})
    labelled = [r for r in rows if r["truth"]]
    with_fused = [r for r in rows if r["fused_top"]]
    med = lambda key: _pct([r[key] for r in rows], 0.5)  # noqa: E731
    summary = {
        "cases": len(rows),
        "llm_model": getattr(agent.llm, "model_id", "?"),
        "llm_threads": getattr(agent.llm, "n_threads", None),
        "schema_valid_rate": round(sum(r["llm_valid"] for r in rows) / max(1, sum(r["llm_calls"] for r in rows)), 4),
        "relevance": "a runnable tool whose absence changes the top diagnosis or the abstention (evals/relevance.py)",
        "relevant_tools": n_rel, "proposed_tools": n_prop, "runnable_tools": n_avail,
        "tool_precision": round(tp / n_prop, 4) if n_prop else None,
        "tool_recall": round(tp / n_rel, 4) if n_rel else None,
        "every_tool_precision": round(tp_all / n_avail, 4) if n_avail else None,  # the policy "propose everything"
        "every_tool_recall": 1.0 if n_rel else None,
        "guard_overrides_per_case": round(sum(r["overrides"] for r in rows) / max(1, len(rows)), 3),
        "llm_claims_accepted": sum(r["rationale_source"] == "llm" for r in rows),
        "llm_claim_sets_refused": sum(r["claims_refused"] > 0 for r in rows),
        "top1_matches_label": (round(sum(r["top"] in r["truth"] for r in labelled) / len(labelled), 4) if labelled else None),
        "top1": {"agent": _top1(rows, lambda r: r["top"]),
                 f"majority class ({majority})": _top1(rows, lambda r: majority),
                 **{f"{t} alone": _top1([r for r in rows if t in r["baseline_top"]], lambda r, t=t: r["baseline_top"][t])
                    for t in tool_names}},
        "top1_note": ("an abstention counts as no top-1; a tool's row counts the cases it could run on; majority class from "
                      + majority_from),
        "abstained": sum(r["abstained"] for r in rows),
        "urgent_review": sum(r["urgent_review"] for r in rows),
        "agreement_with_fused": (round(sum(r["top"] == r["fused_top"] for r in with_fused) / len(with_fused), 4)
                                 if with_fused else "n/a: no fused model registered"),
        "p50_wall_s": med("wall_s"), "p90_wall_s": _pct([r["wall_s"] for r in rows], 0.9),
        "p50_to_numbers_s": med("to_numbers_s"), "p90_to_numbers_s": _pct([r["to_numbers_s"] for r in rows], 0.9),
        "p50_wall_answered_s": _pct([r["wall_s"] for r in rows if not r["abstained"]], 0.5),  # cases with LLM claims to write
        "median_llm_s": med("llm_s"), **{f"median_llm_{s}_s": med(f"llm_{s}_s") for s in LLM_STEPS},
        "median_tools_s": med("tools_s"), "median_graph_s": med("graph_s"),
        "median_prompt_tokens": _pct([r["tokens"]["prompt_n"] for r in rows], 0.5),
        "median_cached_tokens": _pct([r["tokens"]["cache_n"] for r in rows], 0.5),
        "median_generated_tokens": _pct([r["tokens"]["predicted_n"] for r in rows], 0.5),
        "cpu_cores": os.cpu_count(), "load_avg_1m_before": round(load_before[0], 2), "load_avg_1m_after": round(load_after[0], 2),
        "data": "synthetic (the mmdx ED cohort or demo cases; rendered radiographs)",
    }
    return {"summary": summary, "cases": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx bench agent", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cohort", default="cohorts/default", help="cohort directory (its test split is used)")
    p.add_argument("--n", type=int, default=20, help="held-out cohort cases to add to the demo cases")
    p.add_argument("--json", action="store_true")
    p.add_argument("--out", help="also write the JSON here")
    from mmdx.agent.cli import add_agent_args, build_agent, demo_dir

    add_agent_args(p)
    args = p.parse_args(argv)
    cases = [PatientCase.load(f) for f in sorted(demo_dir().glob("*.json"))]
    test_dir = Path(args.cohort) / "cases" / "test"
    if test_dir.exists():
        cases += [PatientCase.load(f) for f in sorted(test_dir.glob("*.json"))[: args.n]]
    agent = build_agent(args)
    result = bench(agent, cases, cohort=Path(args.cohort))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        for k, v in result["summary"].items():
            print(f"{k:<28} {v}")
    return 0
