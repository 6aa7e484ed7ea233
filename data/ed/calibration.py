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
