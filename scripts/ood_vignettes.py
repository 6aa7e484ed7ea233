"""The real labs and notes tools on two hand-written vignettes in clinicians' style (not real
patients): their OOD scores and top labels, written to evals/results/ood_vignettes.json.

    OMP_NUM_THREADS=1 .venv/bin/python scripts/ood_vignettes.py
"""
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from test_scope import HEAT_STROKE, TAMPONADE, vignette  # noqa: E402

from mmdx.core.tool import CaseInput  # noqa: E402
from mmdx.tools.runner import InProcessRunner  # noqa: E402

NOTES = {
    "cardiac tamponade": (TAMPONADE, "58M, 2 days progressive dyspnoea and pleuritic chest pain after a viral illness. Distended neck "
                                     "veins, muffled heart sounds, pulsus paradoxus 18 mmHg. ECG low voltage with electrical alternans."),
    "heat stroke": (HEAT_STROKE, "24-year-old marathon runner collapsed at km 38 on a hot day. Confused, GCS 12, hot dry skin. "
                                 "Rectal temperature 41.0 C. No head injury."),
}
runner = InProcessRunner()
out = {}
for name, (vitals, note) in NOTES.items():
    case = vignette(vitals, case_id=name.replace(" ", "-"), note=note)
    for o in runner.run([("labs", CaseInput(case=case)), ("notes", CaseInput(case=case))]):
        top = max(o.scores, key=lambda s: s.probability)
        out.setdefault(name, {})[o.tool] = {"ood_score": round(o.ood_score, 3), "ood_flag": o.ood_flag,
                                            "top": top.label, "top_probability": round(top.probability, 3)}
dest = ROOT / "evals" / "results" / "ood_vignettes.json"
dest.write_text(json.dumps(out, indent=2) + "\n")
print(json.dumps(out, indent=2))
