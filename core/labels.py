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

# Which diagnoses an imaging finding supports (evidence links in the answer; not a probability).
FINDING_SUPPORTS: dict[str, tuple[str, ...]] = {
    "consolidation": ("pneumonia",),
    "effusion": ("heart_failure", "pneumonia"),
    "cardiomegaly": ("heart_failure",),
    "edema": ("heart_failure",),
    "hyperinflation": ("copd_exacerbation", "asthma_exacerbation"),
    "no_finding": (),
}

# Words that name each label in free text (rationale grounding checks, leakage checks).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "pneumonia": ("pneumonia", "pneumonitis", "lobar infection", "chest infection"),
    "heart_failure": ("heart failure", "cardiac failure", "chf", "hfref", "hfpef", "cardiac decompensation"),
    "copd_exacerbation": ("copd", "chronic obstructive", "emphysema", "chronic bronchitis"),
    "asthma_exacerbation": ("asthma", "status asthmaticus", "bronchospasm"),
    "urinary_tract_infection": ("urinary tract infection", "uti", "pyelonephritis", "cystitis", "urosepsis"),
    "sepsis": ("sepsis", "septic", "septicaemia", "septicemia", "bacteremia", "bacteraemia"),
    "consolidation": ("consolidation", "airspace opacity", "airspace disease", "infiltrate"),
    "effusion": ("effusion", "pleural fluid"),
    "cardiomegaly": ("cardiomegaly", "enlarged heart", "enlarged cardiac silhouette"),
    "hyperinflation": ("hyperinflation", "hyperinflated", "hyperexpanded", "flattened diaphragm"),
    "edema": ("pulmonary edema", "pulmonary oedema", "edema", "oedema", "vascular congestion"),
}

# Findings and diagnoses outside mmdx's label set: no tool can support them, so an answer that
# asserts one is ungrounded.
OUTSIDE_TERMS: tuple[str, ...] = (
    "pneumothorax", "nodule", "mass", "tumor", "tumour", "cancer", "malignancy", "carcinoma", "fracture",
    "tuberculosis", "pulmonary embolism", "embolus", "myocardial infarction", "stemi", "nstemi", "covid",
    "atelectasis", "fibrosis", "lymphadenopathy", "aortic dissection", "stroke", "appendicitis", "meningitis",
)
