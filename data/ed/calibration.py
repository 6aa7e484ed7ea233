"""Check a draw of presentations against the published figures (data/ed/sources.CALIBRATION).

    report = check(presentations)          # one CheckResult per CALIBRATION row
    [r for r in report if not r.ok]        # the figures the draw misses

Selectors (a Figure's target / comparison) are " | "-joined conditions on a presentation:
a condition name ("heart_failure": it is among the presentation's true conditions), "not <name>",
"complaint=<group>[,<group>...]", "cxr" (a radiograph was taken), "female". The empty selector takes
every presentation. Findings are binary items (symptoms, history, signs), "cxr:<finding>",
thresholded values ("bnp>=100", "temp>=38", "hr>100", "rr>=20", "pco2>45", "ph<7.35", "lactate>=4"),
"nitrite", a condition name, or, for AUROC rows, a continuous variable ("bnp", "crp").
"""
from __future__ import annotations

import operator
import re
from dataclasses import dataclass

import numpy as np

from mmdx.data.ed.generate import Presentation
from mmdx.data.ed.parameters import CONDITIONS
from mmdx.data.ed.sources import CALIBRATION, Figure

_SHORT = {"temp": "temperature", "hr": "heart_rate", "rr": "respiratory_rate"}
_OPS = {">=": operator.ge, ">": operator.gt, "<=": operator.le, "<": operator.lt}
_THRESH = re.compile(r"^([a-z_0-9]+)(>=|<=|>|<)([0-9.]+)$")


def selector(text: str):
    parts = [p.strip() for p in text.split("|") if p.strip()]
    tests = []
    for part in parts:
        neg = part.startswith("not ")
        name = part[4:].strip() if neg else part
        if name.startswith("complaint="):
            groups = set(name.split("=", 1)[1].split(","))
            t = (lambda g: lambda p: p.complaint in g)(groups)
        elif name == "cxr":
            t = lambda p: p.cxr_taken  # noqa: E731
        elif name == "female":
            t = lambda p: p.sex == "female"  # noqa: E731
        elif name in CONDITIONS:
            t = (lambda c: lambda p: c in p.conditions)(name)
        else:
            raise ValueError(f"unknown selector part {part!r}")
        tests.append((lambda f, n: (lambda p: not f(p)) if n else f)(t, neg))
    return lambda p: all(t(p) for t in tests)


def finding_value(p: Presentation, finding: str) -> float:
    if finding in p.findings:
        return float(p.findings[finding])
    if finding.startswith("cxr:"):
        return float(finding[4:] in p.cxr_findings)
    if finding == "nitrite":
        return float(p.urine[0])
    if finding in CONDITIONS:
        return float(finding in p.conditions)
    m = _THRESH.match(finding)
    if m:
        var = _SHORT.get(m.group(1), m.group(1))
        return float(_OPS[m.group(2)](p.physiology[var], float(m.group(3))))
    var = _SHORT.get(finding, finding)
    if var in p.physiology:
        return p.physiology[var]
    raise ValueError(f"unknown finding {finding!r}")


def _auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    from scipy.stats import rankdata

    r = rankdata(np.concatenate([pos, neg]))
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


@dataclass(frozen=True)
class CheckResult:
    figure: Figure
    measured: float
    n_target: int
    n_comparison: int

    @property
    def ok(self) -> bool:
        return self.figure.lo <= self.measured <= self.figure.hi

    def line(self) -> str:
        f = self.figure
        mark = "ok  " if self.ok else "MISS"
        return (f"{mark} {f.finding:<22} {f.quantity:<5} {f.target:<24} published {f.value:<6g} [{f.lo:g}, {f.hi:g}] "
                f"drawn {self.measured:.3f} (n={self.n_target}/{self.n_comparison}) {f.source}")


def check_figure(f: Figure, ps: list[Presentation]) -> CheckResult:
    """Target group: `target` within the comparison's context (its parts that are not "not ...");
    comparison group: `comparison`. sens/rate are means over the target group, spec is 1 - the mean
    over the comparison group, lr+/lr-/auroc compare the two."""
    context = selector(" | ".join(p for p in f.comparison.split("|") if not p.strip().startswith("not ")))
    tgt, cmp_ = selector(f.target), selector(f.comparison)
    target = [p for p in ps if tgt(p) and context(p)]
    comparison = [p for p in ps if cmp_(p)] if f.comparison else []
    vt = np.array([finding_value(p, f.finding) for p in target])
    vc = np.array([finding_value(p, f.finding) for p in comparison])
    if f.quantity in ("sens", "rate"):
        return CheckResult(f, float(vt.mean()) if len(vt) else float("nan"), len(vt), 0)
    if f.quantity == "spec":
        return CheckResult(f, 1.0 - float(vc.mean()), len(vt), len(vc))
    if f.quantity == "auroc":
        return CheckResult(f, _auroc(vt, vc), len(vt), len(vc))
    pt, pc = float(vt.mean()), float(vc.mean())
    if f.quantity == "lr+":
        return CheckResult(f, pt / pc if pc > 0 else float("inf"), len(vt), len(vc))
    if f.quantity == "lr-":
        return CheckResult(f, (1 - pt) / (1 - pc), len(vt), len(vc))
    raise ValueError(f"unknown quantity {f.quantity!r}")


def check(ps: list[Presentation], figures: tuple[Figure, ...] = CALIBRATION) -> list[CheckResult]:
    return [check_figure(f, ps) for f in figures]


def report(seeds: range = range(900, 920), population: int = 4000) -> dict:
    """The calibration check on a large draw (default: about 20,000 presentations from seeds 900-919,
    never used for the shipped cohort), as JSON-ready rows."""
    from datetime import datetime

    from mmdx.data.ed.generate import presentations
    from mmdx.data.ed.sources import SOURCES

    ps = []
    for seed in seeds:
        ps += presentations(seed, population, datetime(2024, 1, 1), datetime(2024, 12, 31))
    rows = [{"finding": r.figure.finding, "quantity": r.figure.quantity, "target": r.figure.target,
             "comparison": r.figure.comparison, "published": r.figure.value, "interval": [r.figure.lo, r.figure.hi],
             "ci_note": r.figure.ci_note, "drawn": round(r.measured, 4), "n_target": r.n_target,
             "n_comparison": r.n_comparison, "ok": r.ok, "source": r.figure.source} for r in check(ps)]
    return {"what": "published diagnostic-accuracy figures against a draw of the ED generator (synthetic)",
            "seeds": [seeds.start, seeds.stop - 1], "population": population, "n_presentations": len(ps),
            "missed": sum(not r["ok"] for r in rows), "rows": rows,
            "sources": {k: SOURCES[k] for k in sorted({r["source"] for r in rows})}}


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    from pathlib import Path

    p = argparse.ArgumentParser(prog="python -m mmdx.data.ed.calibration",
                                description="Check a large draw of the ED generator against every published figure.")
    p.add_argument("--json", type=Path, default=None, help="also write the report as JSON here")
    p.add_argument("--seeds", default="900-919", help="first-last seed of the draw (default 900-919)")
    p.add_argument("--population", type=int, default=4000)
    args = p.parse_args(argv)
    a, b = (int(x) for x in args.seeds.split("-"))
    rep = report(range(a, b + 1), args.population)
    for r in rep["rows"]:
        print(f"{'ok  ' if r['ok'] else 'MISS'} {r['finding']:<22} {r['quantity']:<5} {r['target']:<24} published "
              f"{r['published']:<6g} [{r['interval'][0]:g}, {r['interval'][1]:g}] drawn {r['drawn']:.3f} {r['source']}")
    print(f"{rep['n_presentations']} presentations, {rep['missed']} of {len(rep['rows'])} figures missed (synthetic draw)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rep, indent=1) + "\n")
    return 1 if rep["missed"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
