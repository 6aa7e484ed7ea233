"""The label lists, written once. Every model head, tool output, metric and report reads them here."""
from __future__ import annotations

# Diagnoses the agent ranks: common adult emergency presentations of breathlessness, cough, fever and
# urinary symptoms (the cohort generator in mmdx.data draws them). Multi-label: a septic pneumonia
# carries both. `no_acute_finding` marks presentations with none of the others: it means "none of the
# conditions mmdx covers", never an all-clear.
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

# Words that name each label in free text: the one vocabulary of the grounding check, the leakage
# check of the cohort and the redaction of legacy (clinosim) notes. Matched on word boundaries in any
# case, except the abbreviations in CASE_SENSITIVE, which are ordinary words in lower case ("CAP" is
# community-acquired pneumonia, "cap refill" is not).
SYNONYMS: dict[str, tuple[str, ...]] = {
    "pneumonia": ("pneumonia", "pneumonias", "pneumonitis", "bronchopneumonia", "lobar infection", "chest infection",
                  "CAP", "HAP"),
    "heart_failure": ("heart failure", "cardiac failure", "CHF", "HF", "HFrEF", "HFpEF", "ADHF", "cardiac decompensation",
                      "decompensated heart", "cardiac asthma"),
    "copd_exacerbation": ("COPD", "AECOPD", "chronic obstructive", "chronic obstructive pulmonary disease", "emphysema",
                          "chronic bronchitis"),
    "asthma_exacerbation": ("asthma", "asthmatic", "status asthmaticus", "bronchospasm", "reactive airway disease"),
    "urinary_tract_infection": ("urinary tract infection", "urinary tract infections", "UTI", "UTIs", "pyelonephritis",
                                "cystitis", "urosepsis", "tubulo-interstitial nephritis", "tubulointerstitial nephritis"),
    "sepsis": ("sepsis", "septic", "septicaemia", "septicemia", "bacteremia", "bacteraemia", "SIRS"),
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


# ---- leakage check and redaction (derived from SYNONYMS; nothing else lists label words)
# Words that give a diagnosis away in a note although they name no single label.
CASE_SENSITIVE: frozenset[str] = frozenset({"CAP", "HAP", "HF", "SIRS"})
GIVEAWAY_WORDS: tuple[str, ...] = ("exacerbation", "exacerbations", "congestive", "lobar", "no acute finding")
REDACTED = "[redacted]"


def _label_terms() -> tuple[str, ...]:
    terms = set(GIVEAWAY_WORDS)
    for d in DIAGNOSES:
        terms.update(SYNONYMS.get(d, ()))
        terms.update((d, d.replace("_", " "), HUMAN_NAMES[d]))
    return tuple(sorted(terms, key=lambda t: (-len(t), t)))  # longest first: phrases win over their words


LABEL_TERMS: tuple[str, ...] = _label_terms()


def _terms_regex(terms):
    import re

    def pattern(t: str) -> str:
        body = re.escape(t).replace(r"\ ", r"[\s_-]+").replace(r"\-", r"[\s_-]*")
        return body if t in CASE_SENSITIVE else f"(?i:{body})"

    alt = "|".join(pattern(t) for t in terms)
    return re.compile(r"(?<![A-Za-z0-9])(" + alt + r")(?![A-Za-z0-9])")


_LABEL_RE = _terms_regex(LABEL_TERMS)


def find_label_leaks(text: str) -> list[str]:
    """Diagnosis names, synonyms or giveaway words found in `text` (whole words, any case)."""
    return [m.group(0) for m in _LABEL_RE.finditer(text)]


def redact(text: str) -> str:
    """Every diagnosis name or synonym replaced by "[redacted]" (legacy clinosim notes only)."""
    import re

    return re.sub(r"[ \t]+", " ", _LABEL_RE.sub(REDACTED, text)).strip()
