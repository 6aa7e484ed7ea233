"""The "before" column of the README's agent benchmark: the agent of commit df29149 (before issue
15), timed stage by stage on the same demo cases, warm-up and thread count as `mmdx bench agent`.

    rm -rf /tmp/before && mkdir -p /tmp/before/src && git archive df29149 | tar -x -C /tmp/before/src
    cd /tmp/before && mkdir mmdx && cp -r src/mmdx_pkg/* mmdx/ && \
        for d in core data models tools agent workflows evals; do cp -r src/$d mmdx/$d; done
    cd /tmp && PYTHONPATH=/tmp/before OMP_NUM_THREADS=1 /path/to/.venv/bin/python /path/to/scripts/bench_agent_before.py OUT.json

Run it beside `mmdx bench agent --threads 1 --audit-log '' --out OUT.json`, alternately, on the
same machine: the README pairs runs made one after the other.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, "/tmp/before")
from mmdx.agent.cli import add_agent_args, build_agent, demo_dir  # noqa: E402 (the old tree)
from mmdx.core.case import PatientCase  # noqa: E402

assert "/tmp/before" in sys.modules["mmdx.agent.cli"].__file__, "not the old tree"
p = argparse.ArgumentParser()
add_agent_args(p)
args = p.parse_args(["--threads", "1", "--audit-log", ""])
agent = build_agent(args)
cases = [PatientCase.load(f) for f in sorted(demo_dir().glob("*.json"))]
warm = cases[0].model_copy(update={"case_id": "warm-up", "demographics": cases[0].demographics.model_copy(
    update={"age": cases[0].demographics.age + 1})})
agent.run(warm)  # warm-up on a perturbed copy, untimed (as the new bench does)
load0 = os.getloadavg()[0]
rows = []
for c in cases:
    t0 = time.perf_counter()
    final = agent.run(c)
    wall = time.perf_counter() - t0
    ev = final["events"]
    st = {s: sum(e["latency_s"] for e in ev if e.get("step") == s and "schema_valid" in e) for s in ("plan", "reflect", "answer")}
    dx = final["diagnosis"]
    rows.append({"case_id": c.case_id, "wall_s": round(wall, 3), **{f"llm_{k}_s": round(v, 3) for k, v in st.items()},
                 "tools_s": round(sum(e["latency_s"] for e in ev if e["step"] == "tools"), 3),
                 "valid": [e["schema_valid"] for e in ev if "schema_valid" in e], "source": dx.rationale_source,
                 "abstained": dx.abstained, "top": dx.top().diagnosis if dx.top() else None,
                 "proposed": sorted({t for e in ev if e["step"].endswith("_proposed") for t in e["tools"]}),
                 "available": agent.runnable(c)})
load1 = os.getloadavg()[0]


def pct(v, q):
    v = sorted(v)
    k = (len(v) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(v) - 1)
    return round(v[lo] + (v[hi] - v[lo]) * (k - lo), 3)


out = {"code": "df29149 (before)", "p50_wall_s": pct([r["wall_s"] for r in rows], .5), "p90_wall_s": pct([r["wall_s"] for r in rows], .9),
       **{f"median_llm_{s}_s": pct([r[f"llm_{s}_s"] for r in rows], .5) for s in ("plan", "reflect", "answer")},
       "median_tools_s": pct([r["tools_s"] for r in rows], .5),
       "p50_wall_answered_s": pct([r["wall_s"] for r in rows if not r["abstained"]], .5),
       "load_avg_1m_before": round(load0, 2), "load_avg_1m_after": round(load1, 2),
       "schema_valid": f"{sum(sum(r['valid']) for r in rows)}/{sum(len(r['valid']) for r in rows)}",
       "llm_rationales": sum(r["source"] == "llm" for r in rows), "rows": rows}
json.dump(out, open(sys.argv[1], "w"), indent=2)
print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=1))
