"""Published figures the emergency-department generator is calibrated to, and where each comes from.

Two tables, written once:

- `SOURCES`: key -> citation and link (the links are those of ../shared/CLINICAL-SOURCES.md).
- `CALIBRATION`: one row per published figure the generator must reproduce: a quantity (sensitivity,
  specificity, LR+, LR-, AUROC, prevalence) of a finding for a diagnosis against a comparison group,
  the figure and the interval a large draw must fall in, and the source. Where a source gives a 95%
  CI it is the interval; where it gives none, the interval says so (`ci_note`). The test
  `tests/test_ed_calibration.py` draws a large cohort and checks every row.

The generator's own parameters (data/ed/parameters.py) are separate: they are choices, and each
block there names the rows here it was tuned to reproduce. Figures come from emergency-department
studies where they exist; where only primary-care or outpatient figures exist the row says so.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SOURCES: dict[str, str] = {
    "wang2005": "Wang CS et al. Does this dyspneic patient in the emergency department have congestive heart failure? "
                "JAMA 2005;294:1944-56 (22 studies). https://www.deepdyve.com/export-to-EndNote?fmt=ris&p=7Ycy4FgR9A",
    "nnt_hf": "TheNNT, Dyspnea due to heart failure (from Wang 2005). "
              "http://www.thennt.com/lr/dyspnea-due-to-heart-failure-without-chronic-respiratory-disease/",
    "mccullough2002": "McCullough PA et al. B-type natriuretic peptide and clinical judgment in emergency diagnosis of heart "
                      "failure (Breathing Not Properly). Circulation 2002;106:416-22. "
                      "https://www.metajournal.com/articles/472768/",
    "maisel2002": "Maisel AS et al. Rapid measurement of BNP in the emergency diagnosis of heart failure. NEJM 2002;347:161-7. "
                  "https://paperexplained.cn/articles/paper/detail/3a220f28d076e62794ba70a0865713351b7205cf",
    "metlay1997": "Metlay JP et al. Does this patient have community-acquired pneumonia? JAMA 1997;278:1440-5 (via U Washington "
                  "physical diagnosis notes). https://depts.washington.edu/physdx/pulmonary/evid1.html",
    "ebell2020": "Ebell MH et al. Accuracy of signs and symptoms for the diagnosis of community-acquired pneumonia: a "
                 "meta-analysis. Acad Emerg Med 2020. https://journalclub.wustl.edu/2020/04/25/",
    "scirep2019": "Accuracy of signs, symptoms and biomarkers for pneumonia in primary care. Sci Rep 2019. "
                  "https://pmc.ncbi.nlm.nih.gov/articles/PMC6527561",
    "lebel2015": "Le Bel J et al. CRP and procalcitonin in CT-adjudicated ED community-acquired pneumonia. Crit Care 2015. "
                 "https://doi.org/10.1186/s13054-015-1083-6",
    "bach2012": "Maisel A et al. Procalcitonin in acute dyspnoea (BACH). Eur J Heart Fail 2012. https://www.pubmed.gov/22302662/",
    "bent2002": "Bent S et al. Does this woman have an acute uncomplicated urinary tract infection? JAMA 2002;287:2701-10. "
                "https://metajournal.com/articles/212906/",
    "afp2013": "Urinalysis in women with urinary symptoms. Am Fam Physician 2013. https://aafp.org/afp/2013/0515/od2.html",
    "holleman1993": "Holleman DR, Simel DL et al. Diagnosis of obstructive airways disease from the clinical examination. "
                    "J Gen Intern Med 1993;8:63-8; U Washington notes. http://depts.washington.edu/physdx/pulmonary/evid2.html",
    "plant2000": "Plant PK et al. One year period prevalence study of respiratory acidosis in acute exacerbations of COPD. "
                 "Thorax 2000;55:550-4. https://thorax.bmj.com/content/55/7/550",
    "copdcxr": "Chest radiography in acute exacerbations of COPD: 16% significant abnormalities. Thorax (cited via "
               "CLINICAL-SOURCES). http://thorax.bmj.com/lookup/external-ref?access_num=8457095&link_type=MED",
    "aanzdem": "Kelly AM et al. An observational study of dyspnea in emergency departments (AANZDEM). "
               "https://research.bond.edu.au/en/publications/an-observational-study-of-dyspnea-in-emergency-departments-the-as",
    "rhee2019": "Sepsis-3 criteria in US hospital admissions (85 hospitals). https://pmc.ncbi.nlm.nih.gov/articles/PMC6859245",
    "shapiro2005": "Shapiro NI et al. Serum lactate as a predictor of mortality in ED patients with infection. Ann Emerg Med "
                   "2005. https://pubmed.ncbi.nlm.nih.gov/15855951/",
    "self2013": "Self WH et al. High rate of false-negative chest radiographs for CAP compared with CT. Am J Emerg Med 2013. "
                "https://www.ajemjournal.com/article/S0735-6757(12)00463-9/pdf",
    "assumption": "No published figure found (see ../shared/CLINICAL-SOURCES.md, 'Not found'); a stated modelling choice.",
}

Quantity = Literal["sens", "spec", "lr+", "lr-", "auroc", "rate"]


@dataclass(frozen=True)
class Figure:
    """One published figure: `quantity` of `finding` for `target` against `comparison`.

    target / comparison are case selectors understood by data/ed/calibration.py, e.g.
    "heart_failure", "not heart_failure | complaint=dyspnoea". `finding` names a predicate on a
    generated presentation (a symptom, sign, history item, thresholded lab, or CXR finding).
    """

    finding: str
    quantity: Quantity
    target: str
    comparison: str
    value: float  # the published figure
    lo: float  # the interval a large draw must fall in (the source's 95% CI where it gives one)
    hi: float
    source: str  # key of SOURCES
    ci_note: str = "95% CI of the source"


_DYSP = "complaint=dyspnoea"  # Wang 2005's population: dyspnoeic adults in the emergency department
CALIBRATION: tuple[Figure, ...] = (
    # ---- heart failure in ED dyspnoea (Wang 2005; Breathing Not Properly)
    Figure("prior_hf", "lr+", "heart_failure", f"not heart_failure | {_DYSP}", 5.8, 4.1, 8.0, "wang2005"),
    Figure("prior_hf", "lr-", "heart_failure", f"not heart_failure | {_DYSP}", 0.45, 0.38, 0.53, "wang2005"),
    Figure("prior_mi", "lr+", "heart_failure", f"not heart_failure | {_DYSP}", 3.1, 2.0, 4.9, "nnt_hf"),
    Figure("known_copd", "lr+", "heart_failure", f"not heart_failure | {_DYSP}", 0.81, 0.60, 1.1, "nnt_hf"),
    Figure("pnd", "lr+", "heart_failure", f"not heart_failure | {_DYSP}", 2.6, 1.5, 4.5, "wang2005"),
    Figure("orthopnoea", "lr+", "heart_failure", f"not heart_failure | {_DYSP}", 2.2, 1.2, 3.9, "nnt_hf"),
    Figure("dyspnoea_exertion", "lr+", "heart_failure", f"not heart_failure | {_DYSP}", 1.3, 1.2, 1.4, "nnt_hf"),
    Figure("dyspnoea_exertion", "lr-", "heart_failure", f"not heart_failure | {_DYSP}", 0.48, 0.35, 0.67, "wang2005"),
    Figure("s3", "lr+", "heart_failure", f"not heart_failure | {_DYSP}", 11.0, 4.9, 25.0, "wang2005"),
    Figure("jvd", "lr+", "heart_failure", f"not heart_failure | {_DYSP}", 5.1, 3.2, 7.9, "nnt_hf"),
    Figure("crackles", "lr+", "heart_failure", f"not heart_failure | {_DYSP}", 2.8, 1.9, 4.1, "nnt_hf"),
    Figure("crackles", "lr-", "heart_failure", f"not heart_failure | {_DYSP}", 0.51, 0.37, 0.70, "wang2005"),
    Figure("leg_oedema", "lr+", "heart_failure", f"not heart_failure | {_DYSP}", 2.3, 1.5, 3.7, "nnt_hf"),
    Figure("wheeze_exam", "lr+", "heart_failure", f"not heart_failure | {_DYSP}", 0.52, 0.04, 2.9, "nnt_hf"),
    Figure("atrial_fibrillation", "lr+", "heart_failure", f"not heart_failure | {_DYSP}", 3.8, 1.7, 8.8, "wang2005",
           "Wang's figure is AF on the ECG; here a history of AF stands for it"),
    Figure("cxr:cardiomegaly", "lr+", "heart_failure", f"not heart_failure | {_DYSP} | cxr", 3.3, 2.4, 4.7, "wang2005"),
    Figure("cxr:cardiomegaly", "lr-", "heart_failure", f"not heart_failure | {_DYSP} | cxr", 0.33, 0.23, 0.48, "wang2005"),
    Figure("cxr:effusion", "lr+", "heart_failure", f"not heart_failure | {_DYSP} | cxr", 3.2, 2.4, 4.3, "nnt_hf"),
    Figure("cxr:edema", "lr+", "heart_failure", f"not heart_failure | {_DYSP} | cxr", 12.0, 5.2, 27.0, "nnt_hf",
           "interstitial oedema LR+ 12 (5.2-27); vascular congestion 12 (6.8-21)"),
    Figure("cxr:hyperinflation", "lr+", "heart_failure", f"not heart_failure | {_DYSP} | cxr", 0.38, 0.15, 0.7, "nnt_hf",
           "no CI in the source; 0.15-0.7 assumed"),
    Figure("bnp>=100", "sens", "heart_failure", _DYSP, 0.90, 0.87, 0.93, "mccullough2002",
           "no CI in the source; +-0.03 assumed (n=744 with HF)"),
    Figure("bnp>=100", "spec", "heart_failure", f"not heart_failure | {_DYSP}", 0.73, 0.70, 0.76, "mccullough2002",
           "no CI in the source; +-0.03 assumed"),
    Figure("bnp", "auroc", "heart_failure", f"not heart_failure | {_DYSP}", 0.90, 0.88, 0.91, "mccullough2002"),
    # ---- pneumonia (Metlay 1997; Ebell 2020; primary-care biomarkers)
    Figure("fever_reported", "lr+", "pneumonia", "not pneumonia | complaint=dyspnoea,cough_fever", 1.7, 1.5, 2.3, "metlay1997",
           "Metlay reports 1.7-2.1 without CIs; 1.5-2.3 assumed"),
    Figure("crackles", "lr+", "pneumonia", "not pneumonia | complaint=dyspnoea,cough_fever", 2.42, 1.19, 4.69, "scirep2019"),
    Figure("dullness", "lr+", "pneumonia", "not pneumonia | complaint=dyspnoea,cough_fever", 2.62, 1.14, 5.30, "ebell2020"),
    Figure("bronchial_breathing", "lr+", "pneumonia", "not pneumonia | complaint=dyspnoea,cough_fever", 6.17, 1.34, 18.0,
           "ebell2020", "Ebell's figure is for egophony"),
    Figure("temp>=38", "lr+", "pneumonia", "not pneumonia | complaint=dyspnoea,cough_fever", 3.21, 2.02, 3.9, "scirep2019",
           "Ebell 2020: measured temperature LR+ 2.52 (2.02-3.20); upper bound widened to the SciRep figure"),
    # HR and RR figures come from primary care (acute cough): compared within the cough/fever presentations,
    # the closest population here; in ED dyspnoea every class is tachycardic and tachypnoeic.
    Figure("hr>100", "lr+", "pneumonia", "not pneumonia | complaint=cough_fever", 2.79, 1.8, 3.5, "scirep2019",
           "no CI in the source; 1.8-3.5 assumed"),
    Figure("rr>=20", "lr+", "pneumonia", "not pneumonia | complaint=cough_fever", 3.47, 1.5, 3.9, "scirep2019",
           "no CI in the source; 1.5-3.9 assumed"),
    Figure("crp", "auroc", "pneumonia", "not pneumonia | complaint=dyspnoea,cough_fever", 0.787, 0.717, 0.857, "lebel2015"),
    Figure("procalcitonin", "auroc", "pneumonia", "not pneumonia | complaint=dyspnoea,cough_fever", 0.723, 0.655, 0.80,
           "bach2012", "BACH 0.723 in ED dyspnoea; LeBel 0.655 (0.570-0.739) in CT-adjudicated CAP"),
    Figure("cxr:consolidation", "sens", "pneumonia", "cxr", 0.65, 0.435, 0.80, "self2013",
           "radiograph vs CT sensitivity 43.5%; clinically diagnosed ED pneumonia mostly has an infiltrate, so 0.435-0.80"),
    # ---- COPD (outpatient airflow obstruction: Holleman 1993)
    Figure("smoker", "sens", "copd_exacerbation", "", 0.94, 0.90, 0.98, "holleman1993", "no CI in the source; +-0.04 assumed"),
    Figure("wheeze_reported", "sens", "copd_exacerbation", "", 0.70, 0.51, 0.80, "holleman1993",
           "outpatient sensitivity 51%; an exacerbation presents with wheeze more often: 0.51-0.80 assumed"),
    Figure("pco2>45", "rate", "copd_exacerbation", "", 0.47, 0.40, 0.54, "plant2000",
           "47% hypercapnic among admitted exacerbations; +-0.07 assumed"),
    Figure("ph<7.35", "rate", "copd_exacerbation", "", 0.20, 0.15, 0.25, "plant2000", "20% acidotic; +-0.05 assumed"),
    Figure("cxr:consolidation", "rate", "copd_exacerbation", "cxr", 0.10, 0.06, 0.16, "copdcxr",
           "16% of exacerbation films had significant abnormalities, most of them new infiltrates"),
    # ---- urinary tract infection (Bent 2002, women, mostly primary care; urinalysis)
    Figure("dysuria", "lr+", "urinary_tract_infection", "not urinary_tract_infection | complaint=urinary", 1.5, 1.2, 2.0, "bent2002"),
    Figure("frequency", "lr+", "urinary_tract_infection", "not urinary_tract_infection | complaint=urinary", 1.8, 1.1, 3.0, "bent2002"),
    Figure("haematuria", "lr+", "urinary_tract_infection", "not urinary_tract_infection | complaint=urinary", 2.0, 1.3, 2.9, "bent2002"),
    Figure("vaginal_discharge", "lr+", "urinary_tract_infection", "not urinary_tract_infection | complaint=urinary | female",
           0.3, 0.1, 0.9, "bent2002"),
    Figure("cva_tenderness", "lr+", "urinary_tract_infection", "not urinary_tract_infection | complaint=urinary", 1.7, 1.1, 2.5, "bent2002"),
    Figure("nitrite", "lr+", "urinary_tract_infection", "not urinary_tract_infection | complaint=urinary | female",
           6.5, 4.2, 10.0, "afp2013"),
    # ---- sepsis (lactate in ED infection)
    Figure("lactate>=4", "rate", "sepsis", "", 0.12, 0.07, 0.18, "shapiro2005",
           "assumption anchored on Shapiro 2005 (lactate >=4 in 8-10% of ED infection, more in sepsis)"),
    # ---- case mix (AANZDEM ED dyspnoea: HF 14.9%, LRTI 20.2%, COPD 13.6%, asthma 12.7%)
    Figure("heart_failure", "rate", _DYSP, "", 0.149, 0.10, 0.25, "aanzdem",
           "share of ED dyspnoea; 0.10-0.25 allowed (Breathing Not Properly 47%, ICON 19%)"),
    Figure("copd_exacerbation", "rate", _DYSP, "", 0.136, 0.09, 0.22, "aanzdem", "share of ED dyspnoea; 0.09-0.22 allowed"),
    Figure("asthma_exacerbation", "rate", _DYSP, "", 0.127, 0.07, 0.18, "aanzdem", "share of ED dyspnoea; 0.07-0.18 allowed"),
    Figure("pneumonia", "rate", _DYSP, "", 0.202, 0.10, 0.25, "aanzdem",
           "lower respiratory tract infection in 20.2% of ED dyspnoea; pneumonia is part of it: 0.10-0.25 allowed"),
)
