"""Honest scope: red-flag vital signs, checked by rule before any model speaks.

The thresholds are the National Early Warning Score 2 chart: Royal College of Physicians, "National
Early Warning Score (NEWS) 2: Standardising the assessment of acute-illness severity in the NHS",
updated report of a working party, London: RCP, 2017 (chart 1, the NEWS2 scoring system; chart 3,
the clinical response to NEWS trigger thresholds). Per parameter, 0-3 points:

    parameter              3        2          1            0           1            2          3
    respiration rate /min  <=8                 9-11         12-20                    21-24      >=25
    SpO2 scale 1 (%)       <=91     92-93      94-95        >=96
    systolic BP (mmHg)     <=90     91-100     101-110      111-219                             >=220
    pulse (/min)           <=40                41-50        51-90       91-110       111-130    >=131
    temperature (degC)     <=35.0              35.1-36.0    36.1-38.0   38.1-39.0    >=39.1

A red flag is a parameter scoring 3 (RCP: "urgent ward-based response") or an aggregate of 5 or
more ("key threshold for urgent response"). One rule is mmdx's own, not NEWS2's, and says so: a
temperature of 40.0 degC or more (hyperpyrexia, as in heat stroke) is a red flag although NEWS2
gives it 2 points. What the case format cannot hold is not scored, and the answer says so:
consciousness (new confusion scores 3), supplemental oxygen (2), and SpO2 scale 2 for patients with
hypercapnic respiratory failure (so SpO2 88-92% in such a patient is flagged here when NEWS2 would
not). The score uses the latest value of each parameter; over the parameters present it is a lower
bound of the full NEWS2.

"Normal vital signs", which "none of the N conditions mmdx covers" needs before it can be called
likely: at least 3 of the 5 parameters measured, each scoring 0.
"""
from __future__ import annotations

import math

from mmdx.core.case import PatientCase
from mmdx.agent.diagnosis import RedFlag, VitalSigns

NEWS2_SOURCE = "NEWS2 (Royal College of Physicians, 2017)"
# parameter -> ((upper bound inclusive, points), ...) ascending; the last bound is +inf
NEWS2_BANDS: dict[str, tuple[tuple[float, int], ...]] = {
    "respiratory_rate": ((8, 3), (11, 1), (20, 0), (24, 2), (math.inf, 3)),
    "spo2": ((91, 3), (93, 2), (95, 1), (math.inf, 0)),
    "systolic_bp": ((90, 3), (100, 2), (110, 1), (219, 0), (math.inf, 3)),
    "heart_rate": ((40, 3), (50, 1), (90, 0), (110, 1), (130, 2), (math.inf, 3)),
    "temperature": ((35.0, 3), (36.0, 1), (38.0, 0), (39.0, 1), (math.inf, 2)),
}
CHART_DECIMALS = {"respiratory_rate": 0, "spo2": 0, "systolic_bp": 0, "heart_rate": 0, "temperature": 1}
NAMES = {"respiratory_rate": "respiration rate", "spo2": "SpO2", "systolic_bp": "systolic blood pressure",
         "heart_rate": "pulse", "temperature": "temperature"}
URGENT_AGGREGATE = 5  # RCP chart 3: aggregate 5-6 is the key threshold for an urgent response
HYPERPYREXIA_C = 40.0  # mmdx's own rule (not NEWS2)
NOT_SCORED = ("consciousness", "supplemental oxygen")
MIN_PARAMETERS_FOR_NORMAL = 3


def news2_points(variable: str, value: float) -> int:
    v = round(value, CHART_DECIMALS[variable])
    for upper, points in NEWS2_BANDS[variable]:
        if v <= upper:
            return points
    raise AssertionError("the last band is unbounded")


def vital_signs(case: PatientCase) -> VitalSigns | None:
    """The latest value of each NEWS2 parameter in the case, scored; None when there are none."""
    latest = {}
    for m in sorted(case.measurements, key=lambda m: m.time):
        if m.variable in NEWS2_BANDS:
            latest[m.variable] = m
    if not latest:
        return None
    flags, total, points = [], 0, {}
    for var, m in latest.items():
        p = news2_points(var, m.value)
        points[var] = p
        total += p
        if p == 3:
            flags.append(RedFlag(variable=var, value=m.value, unit=m.unit, points=p,
                                 rule=f"{NEWS2_SOURCE}: {NAMES[var]} {m.value:g} {m.unit} scores 3"))
        elif var == "temperature" and m.value >= HYPERPYREXIA_C:
            flags.append(RedFlag(variable=var, value=m.value, unit=m.unit, points=p,
                                 rule=f"mmdx rule (not NEWS2): temperature >= {HYPERPYREXIA_C:g} degC is hyperpyrexia"))
    if total >= URGENT_AGGREGATE and not any(f.points == 3 for f in flags):
        flags.append(RedFlag(variable="news2_aggregate", value=float(total), unit="points", points=total,
                             rule=f"{NEWS2_SOURCE}: aggregate score {total} >= {URGENT_AGGREGATE} (urgent response)"))
    normal = len(latest) >= MIN_PARAMETERS_FOR_NORMAL and all(p == 0 for p in points.values())
    return VitalSigns(news2_partial=total, parameters=tuple(sorted(latest)), points=tuple(points[v] for v in sorted(latest)),
                      red_flags=tuple(flags), normal=normal, not_scored=NOT_SCORED)


def describe_flags(vitals: VitalSigns) -> str:
    """'systolic blood pressure 85 mmHg (NEWS2 3); pulse 125 bpm (NEWS2 2)', red flags first."""
    parts = []
    for f in vitals.red_flags:
        if f.variable == "news2_aggregate":
            parts.append(f"NEWS2 {int(f.value)} on the {len(vitals.parameters)} parameters measured")
        else:
            parts.append(f"{NAMES[f.variable]} {f.value:g} {f.unit} ({'NEWS2 3' if f.points == 3 else 'hyperpyrexia'})")
    return "; ".join(parts)
