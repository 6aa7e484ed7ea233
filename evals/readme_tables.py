"""The README's figure tables, rendered from the files the code wrote: model cards, the cohort
manifest, benchmark and evaluation JSON. Nothing in a marked block is typed by hand.

    python -m mmdx.evals.readme_tables            # rewrite the marked blocks of README.md
    python -m mmdx.evals.readme_tables --check    # exit 1 and print a diff when README.md is stale

A block is delimited in the README by `<!-- generated:NAME -->` and `<!-- /generated:NAME -->`;
`BLOCKS[NAME]` renders it. tests/test_readme_tables.py re-renders every block and diffs.
Sources (paths relative to the repository root):
- `cohort`: evals/results/cohort_default_manifest.json (a copy of cohorts/default/manifest.json);
- `models`: models/weights/*/card.json;
- `workflows`: workflows/*.yaml;
- `routing`: evals/results/routing_summary.json (summary.json of `mmdx eval run workflows/routing.yaml`);
- `evals`: evals/results/<workflow>_summary.json for the other workflows that were run;
- `serving`: evals/results/serving-<N>-clients.json (`mmdx bench serving --out`), (d) beside (e);
- `agent`: evals/results/agent_bench.json (`mmdx bench agent --out`), the agent beside its baselines.

Why one file of ~400 lines: it is the map from each README block to the file behind it, one small
renderer a block; split, the map and the test that diffs it would be read in several places.
"""
from __future__ import annotations

import argparse
import difflib
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "evals" / "results"


def _f(x, nd: int = 3) -> str:
    if x is None:
        return "—"
    if isinstance(x, (list, tuple)) and len(x) == 2 and all(v is not None for v in x):
        return f"{x[0]:.{nd}f}–{x[1]:.{nd}f}"
    if isinstance(x, float):
        return f"{x:.{nd}f}"
    return str(x)


def _json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.is_file() else None


def cohort_block() -> str:
    m = _json(RESULTS / "cohort_default_manifest.json")
    if m is None:
        return "_No cohort manifest recorded (evals/results/cohort_default_manifest.json)._"
    p = m["params"]
    splits = ("train", "val", "test")
    labels = sorted({k for s in splits for k in m["counts"][s]}, key=lambda k: (k == "no_acute_finding", k))
    lines = [f"`mmdx data build --out cohorts/default`: seeds {', '.join(map(str, p['seeds']))}, population {p['population']:,} "
             f"each, presentations {p['start']} to {p['end']} ({m['generator']}, synthetic). "
             f"{sum(m['cases_per_split'].values()):,} cases; {m['stats']['noisy_labels']:,} carry a wrong recorded label "
             "(marked noisy).", "", "| label | train | val | test |", "|---|---|---|---|"]
    for lab in labels:
        lines.append(f"| {lab} | " + " | ".join(f"{m['counts'][s].get(lab, 0):,}" for s in splits) + " |")
    lines.append("| cases | " + " | ".join(f"{m['cases_per_split'][s]:,}" for s in splits) + " |")
    mods = m["modalities"]
    parts = [f"{k.replace('+', ' + ')}: {v:,}" for k, v in sorted(mods.items(), key=lambda kv: -kv[1])]
    lines += ["", f"Modalities: {'; '.join(parts)} (together {sum(mods.values()):,}, every case once)."]
    return "\n".join(lines)


def models_block() -> str:
    rows = ["| model | kind | trained on | train / val / test | test macro AUROC (95% CI) | macro AUPRC | ECE | baseline |",
            "|---|---|---|---|---|---|---|---|"]
    for card_path in sorted((ROOT / "models" / "weights").glob("*/card.json")):
        c = json.loads(card_path.read_text())
        t = (c.get("metrics") or {}).get("test") or {}
        ci = t.get("macro_auroc_ci95")
        bkey = next((k for k in sorted(c.get("metrics") or {}) if k.startswith("baseline")), None)
        base = (c["metrics"][bkey] or {}) if bkey else {}
        if base:
            base = {"name": bkey.removeprefix("baseline_").replace("_", " + ").replace("logreg", "LR"), **base}
        desc = c.get("data_description", "")
        seeds = sorted({int(s) for grp in re.findall(r"seeds? (\d+(?:, \d+)*)", desc) for s in grp.split(", ")})
        gen = "clinosim" if "clinosim" in desc else "mmdx ED generator" if "mmdx-ed" in desc else "?"
        data = (f"synthetic ({gen}), seeds {', '.join(map(str, seeds))}" if seeds and "synthetic" in desc else
                "real IU report text" if "Indiana" in desc else desc[:60])
        rows.append(f"| `{card_path.parent.name}` | {c['kind']} | {data} | {c.get('n_train', 0):,} / {c.get('n_val', 0):,} / "
                    f"{c.get('n_test', 0):,} | {_f(t.get('macro_auroc'))}" + (f" ({_f(ci)})" if ci else "") +
                    f" | {_f(t.get('macro_auprc'))} | {_f(t.get('ece'))} | "
                    + (f"{base.get('name', 'baseline')}: {_f(base.get('macro_auroc'))}" if base else "—") + " |")
    return "\n".join(rows)


def workflows_block() -> str:
    import yaml

    rows = ["| file | steps | what it answers |", "|---|---|---|"]
    for p in sorted((ROOT / "workflows").glob("*.yaml")):
        w = yaml.safe_load(p.read_text())
        steps = ", ".join(f"{s['name']} ({s['kind']})" for s in w["steps"])
        rows.append(f"| `workflows/{p.name}` | {steps} | {' '.join(str(w.get('description', '')).split())} |")
    return "\n".join(rows)


def routing_block() -> str:
    s = _json(RESULTS / "routing_summary.json")
    if s is None:
        return "_Not run yet: `mmdx eval run workflows/routing.yaml --out runs/routing`, then copy its summary.json to evals/results/routing_summary.json._"
    step = next(v for v in s["steps"].values() if v["kind"] == "routing")
    out = [f"Data: {s['dataset']}."]
    for view, title in (("llm_sample", "the LLM's sample"), ("all_cases", "the whole split (no LLM)")):
        b = step[view]
        out += ["", f"On {title}: {b['n_cases']} cases. LLM scheduler: {b['llm_scheduler'] or 'not run on these cases'}.", "",
                "| policy | macro AUROC (95% CI) | top-1 | abstains | no answer | tool ms / case | LLM ms / case | model calls / case |",
                "|---|---|---|---|---|---|---|---|"]
        for name, r in sorted(step[view]["policies"].items(), key=lambda kv: (kv[0] != "llm_scheduler", kv[0])):
            ci = r.get("macro_auroc_ci95")
            out.append(f"| {name}{' (hindsight)' if name == 'oracle' else ''} | {_f(r['macro_auroc'])}" + (f" ({_f(ci)})" if ci else "")
                       + f" | {_f(r['top1'])} | {_f(r['abstention_rate'])} | {r.get('n_failed', 0)}/{r['n']} | {_f(r['mean_tool_ms'], 1)} | {_f(r['mean_llm_ms'], 0)} | "
                       f"{_f(r['mean_model_calls'], 2)} |")
        out.append(f"\nOn the frontier (top-1 against cost): {', '.join(b['frontier_top1_vs_cost']) or 'none'}.")
    return "\n".join(out)


def _tools_table(s: dict, name: str, step: dict) -> list[str]:
    out = [f"Step `{name}`, split {s['split']}" + (f", conformal sets fitted on {s['calibration_split']}" if s.get("calibration_split") else "")
           + ":", "", "| tool | cases | macro AUROC (95% CI) | macro AUPRC | ECE | top-1 (majority class) | conformal coverage / set size | not scored |",
           "|---|---|---|---|---|---|---|---|"]
    for tool, r in sorted(step["results"].items()):
        c, conf = r["classification"], r.get("conformal") or {}
        out.append(f"| {tool} | {r['n_scored']:,} | {_f(c.get('macro_auroc'))} ({_f(c.get('macro_auroc_ci95'))}) | {_f(c.get('macro_auprc'))} | "
                   f"{_f(r['calibration']['ece'])} | {_f(r['top1']['top1'])} ({_f(r.get('majority_class_top1', {}).get('top1'))}) | "
                   + (f"{_f(conf.get('coverage'))} / {_f(conf.get('mean_set_size'), 2)}" if conf.get("coverage") is not None else "—")
                   + f" | {', '.join(f'{k} {v}' for k, v in sorted(r['failures'].items())) or '—'} |")
    return out


def _pivot(results: dict, cell) -> list[str]:
    """Rows `tool`, columns `what` from keys 'tool|what'."""
    tools = sorted({k.split("|")[0] for k in results})
    cols = list(dict.fromkeys(k.split("|", 1)[1] for k in results))
    out = ["| tool | " + " | ".join(c.replace("_", " ") for c in cols) + " |", "|---|" + "---|" * len(cols)]
    for tool in tools:
        out.append(f"| {tool} | " + " | ".join(cell(results[f"{tool}|{c}"]) if f"{tool}|{c}" in results else "—" for c in cols) + " |")
    return out


def _same_as_recorded(rows: list[dict]) -> str:
    """How a workflow's ablation rows compare with the recorded ablation (evals/results/fusion_ablation.json)."""
    rec = _json(RESULTS / "fusion_ablation.json")
    if rec is None:
        return ""
    def key(r: dict) -> tuple:
        return r.get("model"), r.get("pattern")

    want = {key(r): r for r in rec["rows"]}
    got = [r for r in rows if r.get("group", "rows") == "rows"]
    differ = sum(key(r) not in want or {k: v for k, v in r.items() if k != "group"} != want[key(r)] for r in got)
    if differ == 0 and len(got) == len(want):
        return (f": the same {len(got)} rows, figure for figure, as the recorded ablation in the fusion ablation section "
                "above (the same seed and epochs)")
    return f": {differ} of {len(got)} rows differ from the recorded ablation in the fusion ablation section above"


def evals_block() -> str:
    out: list[str] = []
    for p in sorted(RESULTS.glob("*_summary.json")):
        if p.name == "routing_summary.json":
            continue
        s = json.loads(p.read_text())
        data = "real: IU report text" if s["dataset"].startswith("real") else "synthetic"
        out += ["", f"**`{s['workflow']}`** ({data}; `mmdx eval run workflows/{s['workflow']}.yaml`"
                + (f", first {s['limit']} cases" if s.get("limit") else "") + f"). Data: {s['dataset']}.", ""]
        for name, step in sorted(s["steps"].items()):
            if step["kind"] in ("tools", "text_baseline", "agent"):
                out += _tools_table(s, name, step)
            elif step["kind"] == "missingness":
                n = next(iter(step["results"].values()))["n_scored"] if step["results"] else 0
                out += [f"Step `{name}`: macro AUROC (top-1) on the {n:,} {step['cases']}. A dash: the tool cannot run "
                        "without that input (the fused model needs two modalities or more).", ""]
                out += _pivot(step["results"], lambda r: "—" if r["macro_auroc"] is None else
                              f"{_f(r['macro_auroc'])} ({_f(r['top1']['top1'], 2)})")
            elif step["kind"] == "probes":
                out += [f"Step `{name}`: answers kept / cases counted; in brackets OOD-flagged / probed, and refused. "
                        f"{step['rule'][0].upper()}{step['rule'][1:]}. Failing: {', '.join(step['failing']) or 'none'}.", ""]
                out += _pivot(step["results"], lambda r: f"{'**' if r['fails'] else ''}{r['kept']}/{r['counted']}{'**' if r['fails'] else ''} "
                                                         f"({r['ood_flagged']}/{r['n']}" + (f"; refused {r['refused']}" if r.get("refused") else "") + ")")
            elif step["kind"] == "injection":
                by_pos = step.get("answers_changed_by_position") or {}
                pos = f" (by position: {', '.join(f'{k} {v[0]}/{v[1]}' for k, v in by_pos.items())})" if by_pos else ""
                out.append(f"- Step `{name}`: {step['tried']} injected notes; the payload reached an LLM prompt {step['llm_saw_payload']} times, "
                           f"tool calls changed {step['tool_calls_changed']}, answers changed {step['answers_changed']}{pos}, set-aside text shown "
                           f"{step['set_aside_shown']}; unsupported claims {_f(step['unsupported_claims'])} in {step['llm_claim_sets']} "
                           "claim sets written by the LLM.")
            elif step["kind"] == "python":
                out.append(f"- Step `{name}` (`{step['entry']}`): {len(step['rows'])} rows{_same_as_recorded(step['rows'])}.")
            out.append("")
    text = re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()
    return text or "_No evaluation summaries recorded in evals/results/ yet._"


def calibration_block() -> str:
    r = _json(RESULTS / "ed_calibration.json")
    if r is None:
        return "_Not recorded yet: `python -m mmdx.data.ed.calibration --json evals/results/ed_calibration.json`._"
    lines = [f"`python -m mmdx.data.ed.calibration` (seeds {r['seeds'][0]}-{r['seeds'][1]}, {r['n_presentations']:,} "
             f"synthetic presentations): {len(r['rows']) - r['missed']} of {len(r['rows'])} published figures inside "
             "their interval.", "",
             "| finding | quantity | diagnosis | against | published [interval] | drawn | source |", "|---|---|---|---|---|---|---|"]
    for x in r["rows"]:
        against = x["comparison"].replace("complaint=", "").replace(" | ", ", ") or "—"
        lines.append(f"| {x['finding']} | {x['quantity']} | {x['target']} | {against} | {x['published']:g} "
                     f"[{x['interval'][0]:g}, {x['interval'][1]:g}] | {x['drawn']:.3f}{'' if x['ok'] else ' **MISS**'} | "
                     f"{x['source']} |")
    return "\n".join(lines)


def audit_block() -> str:
    runs = [(name, _json(RESULTS / f"audit_{name}.json")) for name in ("default", "unseen")]
    runs = [(n, r) for n, r in runs if r is not None]
    if not runs:
        return "_Not recorded yet: `mmdx data audit cohorts/default --json evals/results/audit_default.json`._"
    names = [row["name"] for row in runs[0][1]["rows"]]
    head = " | ".join(f"{n} cohort ({r['n_train']:,} train / {r['n_test']:,} test)" for n, r in runs)
    lines = [f"| row | target | {head} |", "|---|---|" + "---|" * len(runs)]
    for name in names:
        cells, target = [], ""
        for _, r in runs:
            row = next((x for x in r["rows"] if x["name"] == name), None)
            if row is None:
                cells.append("—")
                continue
            target = row.get("target") or target
            mark = "" if row.get("passed") is None else (" ok" if row["passed"] else " **MISS**")
            cells.append(f"{row['macro_auroc']:.3f} [{row['ci'][0]:.3f}, {row['ci'][1]:.3f}]{mark}")
        lines.append(f"| {name} | {target or '(reference)'} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ablation_block() -> str:
    r = _json(RESULTS / "fusion_ablation.json")
    if r is None:
        return "_Not recorded yet: `python -m mmdx.workflows.fusion_ablation ... --out DIR`, then copy DIR/ablation.json to evals/results/fusion_ablation.json._"
    from mmdx.workflows.fusion_ablation import render_markdown

    return render_markdown(r).rstrip("\n")


def students_block() -> str:
    r = _json(RESULTS / "students.json")
    if r is None:
        return "_Not recorded yet: `python -m mmdx.evals.students --cohort cohorts/default --alone runs/w/alone --out evals/results/students.json`._"
    lines = [f"Test split of `{r['cohort']}` (synthetic); macro AUROC over the diagnoses [bootstrap 95% CI]; time per case "
             f"on this CPU ({r['torch_threads']} torch thread(s)), student and encoder timed in alternating rounds.", "",
             "| modality | distilled student | same architecture trained alone | encoder | parameters (student / encoder) | ms per case (student / encoder) |",
             "|---|---|---|---|---|---|"]
    for m, row in r["modalities"].items():
        def cell(e):
            return f"{e['macro_auroc']:.3f} [{e['ci95'][0]:.3f}, {e['ci95'][1]:.3f}]" if "macro_auroc" in e else f"— (predicts {e['target']})"
        d, a, e = row["distilled"], row["alone"], row["encoder"]
        lines.append(f"| {m} (n={row['n_test']:,}) | {cell(d)}{'' if row['distilled_beats_alone'] else ' (**not** above alone)'} | "
                     f"{cell(a)} | {cell(e)} | {d['parameters']:,} / {e['parameters']:,} | "
                     f"{row['ms_per_case']['distilled']:.2f} / {row['ms_per_case']['encoder']:.2f} ({row['speedup_over_encoder']}x) |")
    return "\n".join(lines)

SERVING_RUNS = ("serving-8-clients.json", "serving-32-clients.json")
SERVING_ROWS = (("req/s", "throughput_rps"), ("p50 ms", "p50_ms"), ("p99 ms", "p99_ms"),
                ("mean batch on the model", "mean_batch"), ("remote calls", "remote_calls"),
                ("model busy", "actor_busy_fraction"), ("model ms per request", "actor_ms_per_request"),
                ("decoding ms per request (overlapped)", "prepare_ms_per_request"),
                ("CPU ms per request, driver", "driver_cpu_ms_per_request"),
                ("CPU ms per request, actors or replicas", "worker_cpu_ms_per_request"))


def _bench_command(cfg: dict, out: str) -> str:
    """The `mmdx bench serving` command line that gives config `cfg` (flags only where it differs
    from the defaults, but for requests, clients and rounds)."""
    from mmdx.evals.serving_bench import BenchConfig

    default = BenchConfig()
    flags = []
    for key, value in cfg.items():
        if key in ("requests", "clients", "rounds") or value != getattr(default, key, value):
            flags.append("--no-serve" if key == "serve" and not value else f"--{key.replace('_', '-')} {value}")
    return " ".join(["mmdx bench serving", *flags, "--out", out])


def serving_block() -> str:
    runs = [(name, _json(RESULTS / name)) for name in SERVING_RUNS]
    runs = [(name, r) for name, r in runs if r and "e_serve_batched" in r["modes"]]
    if not runs:
        return "_Not run yet: `mmdx bench serving --out evals/results/serving-8-clients.json` (and 32 clients)._"
    cols = [(r, key) for _, r in runs for key in ("d_ray_batched", "e_serve_batched")]
    head = " | ".join(f"{'(d) hand-built' if key.startswith('d') else '(e) Ray Serve'}, {r['config']['clients']} clients"
                      for r, key in cols)
    rows = [f"| same run, median over rounds | {head} |", "|---|" + "---|" * len(cols)]
    for label, field in SERVING_ROWS:
        if not any(field in r["modes"][key] for r, key in cols):
            continue
        cells = []
        for r, key in cols:
            v = r["modes"][key].get(field)
            cells.append("—" if v is None else f"{v:.0%}" if field == "actor_busy_fraction" else
                         str(int(v)) if field == "remote_calls" else str(v))
        rows.append(f"| {label} | {' | '.join(cells)} |")
    cells = []
    for r, key in cols:
        if key.startswith("d"):
            cells.append("1.00")
        else:
            each = [x[key]["throughput_rps"] / x["d_ray_batched"]["throughput_rps"] for x in r["rounds"]]
            cells.append(f"**{r['ratios']['e_over_d']:.2f}** (rounds: {', '.join(f'{e:.2f}' for e in each)})")
    rows.append(f"| throughput against (d), median of the per-round ratios | {' | '.join(cells)} |")
    out = ["\n".join(rows), ""]
    for name, r in runs:
        m, c = r["machine"], r["config"]
        out.append(f"- `evals/results/{name}`: `{_bench_command(c, 'evals/results/' + name)}`; {c['rounds']} interleaved "
                   f"rounds of {c['requests']} requests; {r['model']}; {m['cpus']} CPUs ({m['device']}, torch {m['torch']}); "
                   f"load average (1, 5, 15 min) {', '.join(map(str, m['load_avg_at_start']))} at the start, "
                   f"{', '.join(map(str, m['load_avg_at_end']))} at the end.")
    return "\n".join(out)


def style_shift_block() -> str:
    r = _json(RESULTS / "style_shift.json")
    if r is None:
        return "_Not recorded yet: `python -m mmdx.workflows.style_shift --cohort cohorts/default --out DIR`, then copy DIR/style_shift.json here._"
    n, lab = r["notes"], r["labs"]
    lines = ["| check | figure | tolerance | within |", "|---|---|---|---|",
             f"| notes, test split in held-out case-report prose (n={n['n']:,}) | macro AUROC {n['macro_auroc_original']:.3f} → "
             f"{n['macro_auroc_rewritten']:.3f} (drop {n['drop']:.3f}) | drop ≤ {n['tolerance']} | {'yes' if n['within_tolerance'] else '**no**'} |",
             f"| notes, OOD score on the rewritten text | median {n['ood_median_original']:.2f} → {n['ood_median_rewritten']:.2f}; "
             f"{n['share_rewritten_flagged']:.0%} of rewritten notes flagged | higher | {'yes' if n['ood_higher_on_rewritten'] else '**no**'} |"]
    for key, what in (("repeated_at_two_more_times", "every value repeated 1 h and 2 h later"), ("reversed_order", "measurements listed in reverse order")):
        x = lab[key]
        lines.append(f"| labs, {what} (n={lab['n']:,}) | mean abs. change {x['mean_abs_change']:.3f} (max {x['max_abs_change']:.2f}), "
                     f"top diagnosis kept {x['top1_agreement']:.1%} | ≤ {lab['tolerance']}, ≥ {lab['top1_agreement_required']:.0%} | "
                     f"{'yes' if x['within_tolerance'] else '**no**'} |")
    return "\n".join(lines)


def agent_block() -> str:
    r = _json(RESULTS / "agent_bench.json")
    if r is None:
        return "_Not run yet: `mmdx bench agent --threads 1 --audit-log '' --out evals/results/agent_bench.json`._"
    s = r["summary"]
    out = [f"{s['cases']} cases ({s['data']}); LLM {s['llm_model']}, {s['llm_threads']} thread(s), on {s['cpu_cores']} cores "
           f"(1-minute load average {s['load_avg_1m_before']} before, {s['load_avg_1m_after']} after).", "",
           "| top-1 in the case's labels | cases |", "|---|---|"]
    for k, v in s["top1"].items():
        out.append(f"| {'**the agent**' if k == 'agent' else k} | {v if v is not None else '—'} |")
    out += ["", f"_{s['top1_note']}._", "", "| measure | figure |", "|---|---|",
            f"| abstained / urgent review | {s['abstained']} / {s['urgent_review']} |",
            f"| top-1 agrees with the fused model alone | {_f(s['agreement_with_fused'])} |",
            f"| tool choice by the LLM: precision / recall ({s.get('relevant_tools', '—')} relevant of "
            f"{s.get('runnable_tools', '—')} runnable tools) | {_f(s['tool_precision'], 2)} / {_f(s['tool_recall'], 2)} |",
            f"| the same for \"propose every runnable tool\" | {_f(s.get('every_tool_precision'), 2)} / {_f(s.get('every_tool_recall'), 2)} |",
            f"| schema-valid LLM outputs | {s['schema_valid_rate']:.0%} |",
            f"| LLM claim sets accepted / refused | {s['llm_claims_accepted']} / {s['llm_claim_sets_refused']} |",
            f"| guard overrides per case | {_f(s['guard_overrides_per_case'], 2)} |",
            f"| p50 / p90 until the numbers are shown | {_f(s['p50_to_numbers_s'], 1)} s / {_f(s['p90_to_numbers_s'], 1)} s |",
            f"| p50 / p90 until the whole answer (p50 of answered cases) | {_f(s['p50_wall_s'], 1)} s / {_f(s['p90_wall_s'], 1)} s "
            f"({_f(s['p50_wall_answered_s'], 1)} s) |",
            f"| median LLM plan / reflect / answer; tools; rest of the graph | {_f(s['median_llm_plan_s'], 1)} / "
            f"{_f(s['median_llm_reflect_s'], 1)} / {_f(s['median_llm_answer_s'], 1)} s; {_f(s['median_tools_s'], 2)} s; {_f(s['median_graph_s'], 2)} s |",
            f"| median prompt tokens evaluated / from the prompt cache / generated | {_f(s['median_prompt_tokens'], 0)} / "
            f"{_f(s['median_cached_tokens'], 0)} / {_f(s['median_generated_tokens'], 0)} |"]
    return "\n".join(out)


BLOCKS = {"cohort": cohort_block, "calibration": calibration_block, "audit": audit_block, "models": models_block,
          "ablation": ablation_block, "students": students_block, "style_shift": style_shift_block, "workflows": workflows_block, "routing": routing_block,
          "evals": evals_block, "serving": serving_block, "agent": agent_block}


def render(text: str) -> str:
    """`text` with every marked block re-rendered."""
    def sub(m):
        name = m.group(1)
        if name not in BLOCKS:
            raise KeyError(f"README block {name!r} has no renderer; known: {', '.join(BLOCKS)}")
        return f"<!-- generated:{name} -->\n{BLOCKS[name]()}\n<!-- /generated:{name} -->"

    return re.sub(r"<!-- generated:(\w+) -->.*?<!-- /generated:\1 -->", sub, text, flags=re.S)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m mmdx.evals.readme_tables", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--readme", default=str(ROOT / "README.md"))
    p.add_argument("--check", action="store_true", help="exit 1 with a diff when a block is stale")
    args = p.parse_args(argv)
    path = Path(args.readme)
    old = path.read_text()
    new = render(old)
    if args.check:
        if new != old:
            sys.stdout.writelines(difflib.unified_diff(old.splitlines(True), new.splitlines(True), "README.md", "rendered"))
            return 1
        return 0
    path.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
