"""report.html: a run's summary as one self-contained page, with matplotlib plots inlined as PNG.

Plots: ROC curves per tool (from the records' scores), reliability diagrams (from the summary's
bins), macro AUROC by missingness pattern, the routing frontier (accuracy against cost, the oracle
and the majority class marked), trust-probe keep rates, and compute latency per tool or policy.
Every page says the data is synthetic unless the dataset is the real IU report text.
"""
from __future__ import annotations

import base64
import html
import io
import json
from pathlib import Path

import numpy as np

from mmdx.evals.summarize import _labels, _truth


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80, bbox_inches="tight")
    import matplotlib.pyplot as plt

    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode()


def _img(b64: str, kind: str, title: str) -> str:
    return (f'<figure class="plot" data-plot="{html.escape(kind)}"><img alt="{html.escape(title)}" '
            f'src="data:image/png;base64,{b64}"><figcaption>{html.escape(title)}</figcaption></figure>')


def _roc(y: np.ndarray, p: np.ndarray):
    order = np.argsort(-p, kind="mergesort")
    y = y[order]
    tps, fps = np.cumsum(y), np.cumsum(1 - y)
    return np.r_[0, fps / max(fps[-1], 1)], np.r_[0, tps / max(tps[-1], 1)]


def _roc_plot(step_name: str, records, wf) -> str | None:
    import matplotlib.pyplot as plt

    per_tool: dict[str, list] = {}
    for rec in records:
        if rec.split != wf.split or not rec.truth:
            continue
        for name, r in rec.results.items():
            if r.ok and r.scores:
                per_tool.setdefault(name, []).append((rec.key, _truth(rec, r.target), r))
    tools = sorted(per_tool)[:8]
    if not tools:
        return None
    fig, axes = plt.subplots(1, len(tools), figsize=(3.2 * len(tools), 3.2), squeeze=False)
    for ax, name in zip(axes[0], tools):
        rows = sorted(per_tool[name], key=lambda t: t[0])
        labels = _labels(rows[0][2].target)
        for lab in labels:
            y = np.array([lab in t for _, t, _ in rows], dtype=float)
            if 0 < y.sum() < len(y):
                fx, fy = _roc(y, np.array([r.scores.get(lab, 0.0) for _, _, r in rows]))
                ax.plot(fx, fy, lw=1, label=lab[:14])
        ax.plot([0, 1], [0, 1], "k:", lw=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("false positive rate", fontsize=8)
        ax.legend(fontsize=6, loc="lower right")
    axes[0][0].set_ylabel("true positive rate", fontsize=8)
    return _img(_png(fig), "roc", f"{step_name}: ROC per label (synthetic data unless stated)")


def _calibration_plot(step_name: str, results: dict) -> str | None:
    import matplotlib.pyplot as plt

    tools = [t for t in sorted(results) if results[t].get("calibration", {}).get("bins")][:8]
    if not tools:
        return None
    fig, ax = plt.subplots(figsize=(4.2, 4))
    ax.plot([0, 1], [0, 1], "k:", lw=0.8, label="perfect")
    for t in tools:
        bins = results[t]["calibration"]["bins"]
        ax.plot([b["mean_p"] for b in bins], [b["observed"] for b in bins], "o-", ms=3,
                label=f"{t} (ECE {results[t]['calibration']['ece']})")
    ax.set_xlabel("mean predicted probability")
    ax.set_ylabel("observed frequency")
    ax.legend(fontsize=7)
    return _img(_png(fig), "calibration", f"{step_name}: reliability diagram")


def _latency_plot(step_name: str, results: dict, key: str = "tool") -> str | None:
    import matplotlib.pyplot as plt

    names = [n for n in sorted(results) if results[n].get("cost", {}).get(key, {}).get("n")]
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(max(4, 0.9 * len(names)), 3))
    p50 = [results[n]["cost"][key]["p50_ms"] for n in names]
    p90 = [results[n]["cost"][key]["p90_ms"] for n in names]
    x = np.arange(len(names))
    ax.bar(x - 0.2, p50, 0.4, label="p50")
    ax.bar(x + 0.2, p90, 0.4, label="p90")
    ax.set_xticks(x, names, rotation=30, ha="right", fontsize=7)
    ax.set_ylabel(f"{key} ms per case")
    ax.legend(fontsize=7)
    return _img(_png(fig), "latency", f"{step_name}: {key} compute per case")


def _missingness_plot(step_name: str, results: dict) -> str | None:
    import matplotlib.pyplot as plt

    tools = sorted({k.split("|")[0] for k in results})
    patterns = sorted({k.split("|")[1] for k in results})
    if not tools:
        return None
    fig, ax = plt.subplots(figsize=(max(4.5, 0.8 * len(patterns) * len(tools) / 2), 3.2))
    w = 0.8 / len(tools)
    for i, t in enumerate(tools):
        vals = [results.get(f"{t}|{p}", {}).get("macro_auroc") or 0 for p in patterns]
        ax.bar(np.arange(len(patterns)) + i * w, vals, w, label=t)
    ax.set_xticks(np.arange(len(patterns)) + 0.4 - w / 2, patterns, fontsize=7)
    ax.set_ylim(0.4, 1.0)
    ax.set_ylabel("macro AUROC")
    ax.legend(fontsize=7)
    return _img(_png(fig), "missingness", f"{step_name}: macro AUROC by missing modality (complete cases)")


def _frontier_plot(step_name: str, view: str, block: dict) -> str | None:
    import matplotlib.pyplot as plt

    pol = block["policies"]
    if not pol:
        return None
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for name, r in sorted(pol.items()):
        if r["top1"] is None or r["mean_tool_ms"] is None:
            continue
        cost = r["mean_tool_ms"] + (r["mean_llm_ms"] or 0)
        marker = "*" if name == "llm_scheduler" else ("x" if name in ("oracle", "majority") else "o")
        ax.scatter([max(cost, 0.1)], [r["top1"]], marker=marker, s=60 if marker == "*" else 25)
        ax.annotate(name, (max(cost, 0.1), r["top1"]), fontsize=6, xytext=(3, 2), textcoords="offset points")
    front = sorted((pol[n]["mean_tool_ms"] + (pol[n]["mean_llm_ms"] or 0), pol[n]["top1"]) for n in block["frontier_top1_vs_cost"])
    if front:
        ax.plot([max(c, 0.1) for c, _ in front], [a for _, a in front], "k--", lw=0.8, label="frontier")
    ax.set_xscale("log")
    ax.set_xlabel("cost per case: tool + LLM ms (log)")
    ax.set_ylabel("top-1 (abstention = miss)")
    ax.legend(fontsize=7)
    return _img(_png(fig), "routing", f"{step_name}: accuracy against cost ({view}, {block['n_cases']} cases)")


def _probe_plot(step_name: str, block: dict) -> str | None:
    import matplotlib.pyplot as plt

    names = [n for n in sorted(block["results"]) if block["results"][n]["keep_rate"] is not None]
    if not names:
        return None
    fig, ax = plt.subplots(figsize=(max(4, 0.7 * len(names)), 3))
    rates = [block["results"][n]["keep_rate"] for n in names]
    ax.bar(range(len(names)), rates, color=["C3" if block["results"][n]["fails"] else "C0" for n in names])
    ax.set_xticks(range(len(names)), names, rotation=35, ha="right", fontsize=7)
    ax.set_ylabel("kept confident answer")
    ax.set_ylim(0, 1)
    return _img(_png(fig), "probes", f"{step_name}: answers kept with the input destroyed (red: fails)")


def _table(rows: list[dict], cols: list[str]) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r.get(c, '')))}</td>" for c in cols) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _step_section(step, block: dict, records, wf) -> str:
    parts = [f"<h2>{html.escape(step.name)} <small>({step.kind})</small></h2>"]
    kind = step.kind
    if kind in ("tools", "text_baseline", "agent"):
        res = block["results"]
        rows = [{"name": n, "n": r["n_scored"], "macro AUROC": r["classification"].get("macro_auroc"),
                 "95% CI": r["classification"].get("macro_auroc_ci95"), "macro AUPRC": r["classification"].get("macro_auprc"),
                 "macro F1": r["classification"].get("macro_f1"), "ECE": r["calibration"]["ece"], "top-1": r["top1"]["top1"],
                 "majority top-1": r.get("majority_class_top1", {}).get("top1"),
                 "conformal coverage": (r.get("conformal") or {}).get("coverage"),
                 "set size": (r.get("conformal") or {}).get("mean_set_size"), "failures": r["failures"]} for n, r in sorted(res.items())]
        parts.append(_table(rows, list(rows[0]) if rows else ["name"]))
        if kind == "agent":
            parts.append(f"<p>tool selection against relevance: {html.escape(json.dumps(block['tool_selection']))}</p>")
        parts += [p for p in (_roc_plot(step.name, records, wf), _calibration_plot(step.name, res), _latency_plot(step.name, res)) if p]
    elif kind == "missingness":
        rows = [{"tool|pattern": n, **{k: v for k, v in r.items() if k != "failures"}} for n, r in sorted(block["results"].items())]
        parts.append(_table(rows, list(rows[0]) if rows else ["tool|pattern"]))
        parts.append(_missingness_plot(step.name, block["results"]) or "")
    elif kind == "probes":
        parts.append(f"<p>{html.escape(block['rule'])}. Failing: <b>{html.escape(', '.join(block['failing']) or 'none')}</b></p>")
        parts.append(_table([{"tool|probe": n, **r} for n, r in block["results"].items()],
                            ["tool|probe", "n", "counted", "kept", "keep_rate", "ood_flagged", "fails"]))
        parts.append(_probe_plot(step.name, block) or "")
    elif kind == "routing":
        for view in ("all_cases", "llm_sample"):
            b = block[view]
            parts.append(f"<h3>{view} ({b['n_cases']} cases)</h3><p>LLM scheduler: {html.escape(str(b['llm_scheduler']))}</p>")
            parts.append(_table([{"policy": n, **r} for n, r in sorted(b["policies"].items())],
                                ["policy", "n", "macro_auroc", "macro_auroc_ci95", "top1", "abstention_rate", "mean_tool_ms",
                                 "mean_llm_ms", "mean_model_calls"]))
            parts.append(_frontier_plot(step.name, view, b) or "")
    elif kind == "python":
        rows = block["rows"]
        cols = sorted({k for r in rows for k in r}) if rows else ["(no rows)"]
        parts.append(_table(rows, cols))
    elif kind == "injection":
        parts.append(_table([{k: v for k, v in block.items() if k != "kind"}], [k for k in block if k != "kind"]))
    return "\n".join(parts)


CSS = """body{font-family:sans-serif;margin:24px;max-width:1400px} table{border-collapse:collapse;font-size:12px;margin:8px 0}
td,th{border:1px solid #ccc;padding:3px 6px} .banner{background:#fff3cd;padding:8px;border:1px solid #e0c36c}
figure{display:inline-block;margin:8px} img{max-width:100%}"""


def write_report(out: Path, wf, summary: dict, results) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    sections = []
    for step in wf.steps:
        block = summary["steps"].get(step.name)
        if block is not None:
            sections.append(_step_section(step, block, list(results.records(step.name)), wf))
    page = (f"<!doctype html><html><head><meta charset='utf-8'><title>mmdx eval: {html.escape(wf.name)}</title>"
            f"<style>{CSS}</style></head><body><h1>mmdx evaluation: {html.escape(wf.name)}</h1>"
            f"<p class='banner'><b>Data:</b> {html.escape(summary['dataset'])}. Results on synthetic data describe the "
            f"simulator as much as the models; not for clinical use.</p><p>{html.escape(wf.description)}</p>"
            f"<p>split: {html.escape(wf.split)}; calibration split: {html.escape(str(wf.calibration_split))}; "
            f"summary: <a href='summary.json'>summary.json</a>, records: <a href='results.jsonl'>results.jsonl</a></p>"
            + "\n".join(sections) + "</body></html>")
    path = Path(out) / "report.html"
    path.write_text(page, encoding="utf-8")
    return path
