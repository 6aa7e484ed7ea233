"""`mmdx bench agent`: how the agent behaves with the real local LLM, per case and in total.

Reports, over the demo cases and a held-out slice of the cohort (synthetic):
- schema-valid LLM outputs (every attempt counts; goal 100%);
- tool-selection precision and recall of the LLM's own proposals (before the guard) against the
  available-and-relevant tools (every modality tool whose input is present);
- guard overrides per case; top-1 agreement with the cohort's labels (synthetic ground truth);
- agreement of the final ranking with the fused classifier, when a fused model is registered;
- median wall time per case split into LLM, tools and graph overhead.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

from mmdx.core.case import PatientCase


def bench(agent, cases: list[PatientCase]) -> dict:
    rows = []
    for case in cases:
        t0 = time.perf_counter()
        final = agent.run(case)
        wall = time.perf_counter() - t0
        dx = final["diagnosis"]
        ev = final.get("events", [])
        llm_events = [e for e in ev if "schema_valid" in e]
        proposed = set()
        for e in ev:
            if e["step"] in ("plan_proposed", "reflect_proposed"):
                proposed |= set(e["tools"])
        avail = set(agent.runnable(case))
        llm_s = sum(e["latency_s"] for e in llm_events)
        tools_s = sum(e["latency_s"] for e in ev if e["step"] == "tools")
        top = dx.top().diagnosis if dx.top() and not dx.abstained else None
        fused = None
        if "fused" in final.get("results", {}):
            fo = final["results"]["fused"]
            fused = max(fo.scores, key=lambda s: s.probability).label
        rows.append({
            "case_id": case.case_id, "modalities": sorted(m.value for m in case.modalities),
            "llm_calls": len(llm_events), "llm_valid": sum(e["schema_valid"] for e in llm_events),
            "proposed": sorted(proposed), "available": sorted(avail),
            "tp": len(proposed & avail), "overrides": len(dx.overrides), "top": top, "abstained": dx.abstained,
            "truth": list(case.labels.diagnoses) if case.labels else None, "fused_top": fused,
            "wall_s": round(wall, 3), "llm_s": round(llm_s, 3), "tools_s": round(tools_s, 3),
            "graph_s": round(max(0.0, wall - llm_s - tools_s), 3), "rationale_source": dx.rationale_source,
        })
    n_prop = sum(len(r["proposed"]) for r in rows)
    n_avail = sum(len(r["available"]) for r in rows)
    tp = sum(r["tp"] for r in rows)
    labelled = [r for r in rows if r["truth"]]
    with_fused = [r for r in rows if r["fused_top"]]
    summary = {
        "cases": len(rows),
        "llm_model": getattr(agent.llm, "model_id", "?"),
        "schema_valid_rate": round(sum(r["llm_valid"] for r in rows) / max(1, sum(r["llm_calls"] for r in rows)), 4),
        "tool_precision": round(tp / n_prop, 4) if n_prop else None,
        "tool_recall": round(tp / n_avail, 4) if n_avail else None,
        "guard_overrides_per_case": round(sum(r["overrides"] for r in rows) / max(1, len(rows)), 3),
        "llm_rationales_accepted": sum(r["rationale_source"] == "llm" for r in rows),
        "top1_matches_label": (round(sum(r["top"] in r["truth"] for r in labelled) / len(labelled), 4) if labelled else None),
        "abstained": sum(r["abstained"] for r in rows),
        "agreement_with_fused": (round(sum(r["top"] == r["fused_top"] for r in with_fused) / len(with_fused), 4)
                                 if with_fused else "n/a: no fused model registered"),
        "median_wall_s": statistics.median(r["wall_s"] for r in rows),
        "median_llm_s": statistics.median(r["llm_s"] for r in rows),
        "median_tools_s": statistics.median(r["tools_s"] for r in rows),
        "median_graph_s": statistics.median(r["graph_s"] for r in rows),
        "data": "synthetic (clinosim cohort, rendered radiographs)",
    }
    return {"summary": summary, "cases": rows}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx bench agent", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cohort", default="data/cohort", help="cohort directory (its test split is used)")
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
    result = bench(agent, cases)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
    else:
        for k, v in result["summary"].items():
            print(f"{k:<28} {v}")
    return 0
