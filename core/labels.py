"""The label lists, written once. Every model head, tool output, metric and report reads them here."""
from __future__ import annotations

# Diagnoses the agent ranks. Chosen from what the clinosim simulator produces with enough support
# (see core/data/cohort.py for the ICD-10 mapping and the counts in the README). Multi-label: a septic
# pneumonia carries both. `no_acute_finding` marks encounters with none of the others.
DIAGNOSES: tuple[str, ...] = (
    "pneumonia",
    "heart_failure",
    "copd_exacerbation",
    "asthma_exacerbation",
    "urinary_tract_infection",
    "sepsis",
    "no_acute_finding",
)

# Chest X-ray findings the image model predicts (multi-label). `no_finding` = none of the others.
IMAGING_FINDINGS: tuple[str, ...] = (
    "consolidation",
    "effusion",
    "cardiomegaly",
    "hyperinflation",
    "edema",
    "no_finding",
)

HUMAN_NAMES: dict[str, str] = {
    "pneumonia": "pneumonia",
    "heart_failure": "heart failure",
    "copd_exacerbation": "COPD exacerbation",
    "asthma_exacerbation": "asthma exacerbation",
    "urinary_tract_infection": "urinary tract infection",
    "sepsis": "sepsis",
    "no_acute_finding": "no acute finding",
    "consolidation": "consolidation",
    "effusion": "pleural effusion",
    "cardiomegaly": "cardiomegaly",
    "hyperinflation": "hyperinflation",
    "edema": "pulmonary edema",
    "no_finding": "no finding",
}
