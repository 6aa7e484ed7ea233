"""The emergency-department generator's parameters: every number the sampler draws from.

These are modelling choices, tuned so that a large draw reproduces the published figures in
data/ed/sources.py (CALIBRATION); each block says which figures it was tuned to. Nothing here
depends on the recorded label: the latent *condition* of a presentation drives everything, and the
label a chart review would record is derived from it afterwards, with errors (`LABEL_CONFUSION`).

Conditions: the six diagnoses mmdx ranks, and six "mimics" that present with the same complaints
but are none of them (all recorded as `no_acute_finding`). Every probability row below lists one
value per condition in `CONDITIONS` order:

    pna  hf   copd asth uti  seps | vri  anx  cwp  ge   vag  mal
    (viral respiratory infection, anxiety/hyperventilation, chest-wall pain, gastroenteritis,
     vaginitis or STI, nonspecific malaise)
"""
from __future__ import annotations

CONDITIONS: tuple[str, ...] = (
    "pneumonia", "heart_failure", "copd_exacerbation", "asthma_exacerbation", "urinary_tract_infection", "sepsis",
    "viral_respiratory_infection", "anxiety_hyperventilation", "chest_wall_pain", "gastroenteritis",
    "vaginitis_or_sti", "nonspecific_malaise",
)
MIMICS: tuple[str, ...] = CONDITIONS[6:]

# ---- case mix: P(primary condition). Tuned to the AANZDEM shares of ED dyspnoea (rows "rate",
# complaint=dyspnoea) once the complaint distributions below are applied.
PREVALENCE: dict[str, float] = {
    "pneumonia": 0.12, "heart_failure": 0.10, "copd_exacerbation": 0.09, "asthma_exacerbation": 0.07,
    "urinary_tract_infection": 0.10, "sepsis": 0.06,
    "viral_respiratory_infection": 0.12, "anxiety_hyperventilation": 0.06, "chest_wall_pain": 0.08,
    "gastroenteritis": 0.07, "vaginitis_or_sti": 0.04, "nonspecific_malaise": 0.09,
}

# ---- co-occurring conditions: (primary, secondary, P). Sepsis has a source: pneumonia 45%, urinary
# 30%, other or unknown 25% (assumption, in line with the usual ED source mix).
SECONDARY: tuple[tuple[str, str, float], ...] = (
    ("sepsis", "pneumonia", 0.45),
    ("sepsis", "urinary_tract_infection", 0.30),
    ("copd_exacerbation", "pneumonia", 0.08),
    ("heart_failure", "pneumonia", 0.05),
)

# ---- demographics: (mean age, sd, P(female)); ages are truncated to 18-100. Assumption, in line
# with ED registries (ADHERE heart failure mean age ~72-75; COPD exacerbation ~70; asthma ~40).
DEMOGRAPHICS: dict[str, tuple[float, float, float]] = {
    "pneumonia": (66, 18, 0.48), "heart_failure": (76, 11, 0.50), "copd_exacerbation": (69, 10, 0.50),
    "asthma_exacerbation": (40, 16, 0.62), "urinary_tract_infection": (56, 22, 0.75), "sepsis": (68, 16, 0.47),
    "viral_respiratory_infection": (42, 18, 0.55), "anxiety_hyperventilation": (36, 13, 0.65),
    "chest_wall_pain": (46, 16, 0.50), "gastroenteritis": (45, 20, 0.55), "vaginitis_or_sti": (29, 8, 1.0),
    "nonspecific_malaise": (62, 20, 0.55),
}

# ---- presenting complaint group: P(group | condition). The order set and the X-ray decision depend
# on the group (and age), never on the condition.
COMPLAINT_GROUPS: tuple[str, ...] = ("dyspnoea", "cough_fever", "chest_pain", "fever", "urinary", "weakness_confusion",
                                     "abdominal", "other")
COMPLAINT: dict[str, dict[str, float]] = {
    "pneumonia": {"dyspnoea": 0.35, "cough_fever": 0.38, "fever": 0.08, "chest_pain": 0.07, "weakness_confusion": 0.10, "other": 0.02},
    "heart_failure": {"dyspnoea": 0.68, "chest_pain": 0.10, "weakness_confusion": 0.10, "cough_fever": 0.05, "other": 0.07},
    "copd_exacerbation": {"dyspnoea": 0.70, "cough_fever": 0.23, "chest_pain": 0.04, "weakness_confusion": 0.03},
    "asthma_exacerbation": {"dyspnoea": 0.76, "cough_fever": 0.16, "chest_pain": 0.08},
    "urinary_tract_infection": {"urinary": 0.50, "fever": 0.14, "abdominal": 0.15, "weakness_confusion": 0.16, "other": 0.05},
    "sepsis": {"fever": 0.30, "weakness_confusion": 0.35, "dyspnoea": 0.15, "abdominal": 0.10, "urinary": 0.05, "other": 0.05},
    "viral_respiratory_infection": {"cough_fever": 0.68, "dyspnoea": 0.12, "fever": 0.15, "other": 0.05},
    "anxiety_hyperventilation": {"dyspnoea": 0.55, "chest_pain": 0.35, "other": 0.10},
    "chest_wall_pain": {"chest_pain": 0.88, "dyspnoea": 0.12},
    "gastroenteritis": {"abdominal": 0.72, "fever": 0.10, "weakness_confusion": 0.18},
    "vaginitis_or_sti": {"urinary": 0.70, "abdominal": 0.30},
    "nonspecific_malaise": {"weakness_confusion": 0.52, "other": 0.33, "dyspnoea": 0.08, "chest_pain": 0.07},
}
SYMPTOM_DAYS: dict[str, tuple[float, float]] = {  # onset: log-normal (median days, sigma)
    "pneumonia": (3, 0.6), "heart_failure": (4, 0.8), "copd_exacerbation": (3, 0.7), "asthma_exacerbation": (1.5, 0.8),
    "urinary_tract_infection": (2.5, 0.7), "sepsis": (2, 0.7), "viral_respiratory_infection": (3, 0.7),
    "anxiety_hyperventilation": (0.3, 1.2), "chest_wall_pain": (2, 1.0), "gastroenteritis": (1.5, 0.6),
    "vaginitis_or_sti": (4, 0.8), "nonspecific_malaise": (4, 1.0),
}

#                          pna   hf  copd  asth  uti  seps |  vri   anx   cwp   ge   vag   mal
# ---- symptoms (history of the present illness)
SYMPTOMS: dict[str, tuple[float, ...]] = {
    "dyspnoea":           (.65, .92, .95, .95, .05, .35,  .30, .85, .25, .05, .00, .15),
    "dyspnoea_exertion":  (.60, .84, .85, .75, .03, .30,  .35, .65, .30, .03, .00, .35),  # wang2005 lr+/lr-
    "orthopnoea":         (.18, .50, .30, .15, .01, .08,  .08, .15, .05, .01, .00, .05),  # nnt_hf lr+ 2.2
    "pnd":                (.12, .40, .22, .15, .01, .05,  .05, .12, .03, .01, .00, .04),  # wang2005 lr+ 2.6
    "leg_swelling":       (.08, .60, .15, .03, .05, .08,  .02, .02, .03, .02, .00, .10),
    "weight_gain":        (.03, .35, .05, .02, .02, .03,  .01, .01, .01, .01, .00, .03),
    "cough":              (.85, .40, .85, .75, .05, .30,  .90, .10, .10, .05, .00, .10),
    "sputum":             (.55, .12, .65, .25, .02, .15,  .45, .03, .03, .02, .00, .05),
    "wheeze_reported":    (.15, .25, .72, .85, .01, .05,  .20, .10, .03, .01, .00, .03),  # holleman1993
    "fever_reported":     (.62, .12, .35, .20, .45, .75,  .65, .05, .03, .35, .05, .10),  # metlay1997 lr+ 1.7-2.1
    "chills":             (.45, .05, .15, .05, .35, .55,  .35, .02, .02, .20, .02, .05),
    "pleuritic_pain":     (.30, .05, .05, .05, .02, .08,  .08, .12, .65, .02, .00, .03),
    "chest_tightness":    (.15, .25, .30, .55, .01, .05,  .10, .45, .40, .02, .00, .05),
    "sore_throat":        (.15, .02, .10, .10, .01, .05,  .60, .05, .03, .05, .00, .03),
    "rhinorrhoea":        (.15, .02, .15, .20, .01, .03,  .60, .03, .02, .03, .00, .02),
    "dysuria":            (.02, .01, .02, .01, .62, .15,  .01, .01, .01, .05, .45, .03),  # bent2002 lr+ 1.5
    "frequency":          (.03, .05, .03, .01, .60, .12,  .01, .02, .01, .05, .33, .05),  # bent2002 lr+ 1.8
    "haematuria":         (.01, .01, .01, .00, .20, .05,  .00, .00, .00, .01, .10, .01),  # bent2002 lr+ 2.0
    "flank_pain":         (.05, .02, .02, .01, .35, .12,  .02, .02, .15, .10, .05, .05),
    "vaginal_discharge":  (.00, .00, .00, .00, .08, .01,  .00, .00, .00, .00, .30, .00),  # bent2002 lr+ 0.3 (women only)
    "confusion":          (.12, .05, .05, .01, .10, .35,  .01, .02, .01, .05, .00, .25),
    "vomiting":           (.10, .05, .03, .03, .20, .25,  .08, .05, .02, .85, .03, .15),
    "diarrhoea":          (.08, .02, .02, .02, .05, .15,  .05, .02, .01, .70, .02, .08),
    "palpitations":       (.05, .20, .08, .10, .03, .10,  .03, .40, .10, .05, .01, .15),
    "fatigue":            (.55, .60, .40, .25, .40, .70,  .50, .20, .10, .50, .10, .65),
}
# ---- history: comorbidities and risk factors
HISTORY: dict[str, tuple[float, ...]] = {
    "prior_hf":           (.12, .60, .20, .02, .08, .12,  .04, .02, .04, .04, .00, .08),  # wang2005 lr+ 5.8, lr- 0.45
    "prior_mi":           (.12, .32, .15, .02, .10, .12,  .05, .03, .10, .05, .00, .12),  # nnt_hf lr+ 3.1
    "known_copd":         (.20, .30, .92, .06, .08, .15,  .06, .04, .05, .04, .00, .08),  # nnt_hf lr 0.81 for HF
    "asthma_history":     (.06, .03, .12, .92, .08, .05,  .15, .12, .08, .08, .08, .06),
    "smoker":             (.55, .55, .94, .30, .30, .45,  .35, .35, .35, .30, .35, .40),  # holleman1993 sens 94%
    "diabetes":           (.25, .35, .25, .10, .25, .32,  .10, .08, .10, .12, .05, .20),
    "ckd":                (.10, .22, .10, .02, .12, .20,  .03, .02, .03, .05, .00, .10),
    "atrial_fibrillation":(.10, .30, .12, .02, .08, .12,  .03, .03, .04, .04, .00, .10),  # wang2005 lr+ 3.8
    "hypertension":       (.45, .65, .55, .20, .40, .50,  .25, .20, .30, .30, .10, .45),
    "immunosuppressed":   (.10, .03, .08, .03, .06, .18,  .04, .02, .02, .04, .02, .05),
    "recurrent_uti":      (.03, .03, .03, .02, .30, .10,  .02, .02, .02, .03, .15, .05),
    "home_oxygen":        (.05, .08, .30, .01, .02, .05,  .01, .00, .00, .01, .00, .02),
}
# ---- examination signs
SIGNS: dict[str, tuple[float, ...]] = {
    "crackles":           (.60, .60, .25, .08, .05, .30,  .12, .03, .03, .03, .00, .10),  # wang2005, scirep2019
    "wheeze_exam":        (.15, .22, .75, .90, .01, .05,  .15, .03, .02, .01, .00, .03),  # nnt_hf lr 0.52 for HF
    "jvd":                (.05, .39, .12, .03, .03, .08,  .02, .01, .02, .02, .00, .05),  # nnt_hf lr+ 5.1
    "s3":                 (.02, .13, .02, .01, .00, .03,  .01, .01, .00, .00, .00, .02),  # wang2005 lr+ 11
    "leg_oedema":         (.18, .50, .30, .08, .08, .20,  .10, .10, .10, .05, .00, .25),  # nnt_hf lr+ 2.3
    "dullness":           (.22, .15, .08, .04, .02, .08,  .06, .02, .02, .01, .00, .03),  # ebell2020 lr+ 2.62
    "bronchial_breathing":(.18, .02, .03, .01, .00, .05,  .03, .00, .00, .00, .00, .01),  # ebell2020 (egophony) 6.17
    "reduced_air_entry":  (.40, .25, .55, .45, .02, .15,  .08, .03, .05, .02, .00, .05),
    "accessory_muscles":  (.15, .20, .45, .40, .01, .15,  .03, .15, .02, .01, .00, .02),
    "prolonged_expiration":(.05, .08, .60, .65, .00, .02, .05, .05, .01, .00, .00, .01),
    "cva_tenderness":     (.03, .02, .02, .01, .40, .12,  .02, .02, .06, .06, .22, .04),  # bent2002 lr+ 1.7
    "suprapubic_tenderness":(.02, .01, .01, .01, .35, .10, .01, .01, .03, .15, .25, .03),
    "abdominal_tenderness":(.05, .05, .02, .02, .20, .20, .02, .02, .03, .60, .20, .08),
    "mottled_skin":       (.02, .05, .02, .00, .02, .30,  .00, .00, .00, .02, .00, .02),
    "chest_wall_tenderness":(.03, .01, .01, .01, .00, .01, .02, .05, .60, .00, .00, .02),
    "pharyngeal_erythema":(.10, .01, .05, .05, .00, .02,  .45, .02, .02, .05, .00, .02),
}
FEMALE_ONLY = frozenset({"vaginal_discharge"})
# Findings are not independent given the condition: a florid heart failure has orthopnoea, a raised
# JVP, oedema and crackles together, an atypical one few of them. Each case has one "expression"
# latent; a finding characteristic of one of the case's conditions (P at least twice the median over
# the other conditions, and >= 0.1) loads on it with CHARACTERISTIC_LOADING, every other symptom or
# sign with BURDEN_LOADING (a general symptom burden). Marginals stay exactly as tabled.
CHARACTERISTIC_LOADING = 0.85
# Atypical presentations (the elderly pneumonia that presents as confusion, the heart failure that
# presents as tiredness): in ATYPICAL_P of the six diagnoses, the complaint comes from nonspecific
# malaise and each symptom and sign probability moves ATYPICAL_WEIGHT of the way to malaise's.
# Biochemically quiet disease (early, mild, partly treated): in MILD_P of them, every vital and lab
# distribution moves MILD_SHRINK of the way to healthy physiology. The two are drawn independently,
# so each modality misses some cases another catches. The rows above are tuned so that, mixtures
# included, the large-draw marginals still meet the published figures (tests/test_ed_calibration.py).
ATYPICAL_P = 0.30
ATYPICAL_WEIGHT = 0.85
MILD_P = 0.30
MILD_SHRINK = 0.65
MILD_EXEMPT = frozenset({"bnp"})  # natriuretic peptides stay raised in early or treated heart failure
BURDEN_LOADING = 0.20

# ---- vital signs: normal (mean, sd) per condition; clipped to a physiological range.
# Tuned to pneumonia T>=38 LR+ 3.21, HR>100 LR+ 2.79, RR>=20 LR+ 3.47 (scirep2019 / ebell2020).
VITALS: dict[str, tuple[tuple[float, float], ...]] = {
    #                  pna          hf           copd         asth         uti          seps
    #                  vri          anx          cwp          ge           vag          mal
    "temperature":    ((37.8, .90), (36.8, .40), (37.2, .70), (36.9, .40), (37.6, .90), (38.3, 1.3),
                       (37.7, .70), (36.8, .30), (36.8, .30), (37.4, .70), (36.9, .40), (36.9, .50)),
    "heart_rate":     ((106, 17), (96, 20), (98, 16), (104, 16), (92, 16), (114, 20),
                       (88, 14), (98, 14), (82, 12), (98, 15), (80, 12), (88, 16)),
    "respiratory_rate": ((24, 5), (24, 5), (24, 5), (24, 5), (18, 3), (24, 6),
                         (18, 3), (21, 4), (17, 2.5), (18, 2.5), (16, 2), (18, 3)),
    "spo2":           ((93, 4), (93, 4), (90, 4), (94, 3), (97, 2), (94, 4),
                       (97, 1.8), (98.5, 1.2), (98, 1.2), (98, 1.5), (99, 1), (97, 2)),
    "systolic_bp":    ((128, 22), (142, 28), (140, 22), (135, 18), (128, 22), (100, 22),
                       (130, 18), (140, 18), (138, 18), (122, 18), (122, 14), (132, 24)),
}
VITAL_RANGES: dict[str, tuple[float, float]] = {
    "temperature": (33.5, 42.0), "heart_rate": (35, 190), "respiratory_rate": (8, 50), "spo2": (70, 100),
    "systolic_bp": (60, 230),
}

# ---- laboratory values. "log": log-normal (median, sigma of the log); "lin": normal (mean, sd).
# Tuned to BNP >= 100 pg/mL sens 0.90 / spec 0.73, AUROC 0.90 (mccullough2002); CRP AUROC 0.79
# (lebel2015); PCT AUROC ~0.72 (bach2012); COPD pCO2 > 45 in 47%, pH < 7.35 in 20% (plant2000).
LABS: dict[str, tuple[str, tuple[tuple[float, float], ...]]] = {
    #              pna           hf            copd          asth          uti           seps
    #              vri           anx           cwp           ge            vag           mal
    "wbc": ("log", ((12.5, .35), (8.8, .30), (10.8, .30), (10.0, .30), (11.5, .35), (14.5, .50),
                    (8.6, .30), (7.6, .25), (7.6, .25), (10.0, .30), (7.5, .25), (8.2, .30))),
    "hemoglobin": ("lin", ((12.9, 1.7), (12.7, 1.8), (13.5, 1.6), (13.6, 1.4), (12.8, 1.7), (12.0, 2.0),
                           (13.6, 1.4), (13.8, 1.3), (13.8, 1.3), (13.9, 1.5), (13.2, 1.2), (12.6, 1.8))),
    "platelets": ("lin", ((255, 85), (220, 70), (250, 70), (260, 65), (245, 75), (175, 85),
                          (240, 60), (250, 55), (250, 55), (250, 65), (250, 55), (235, 70))),
    "sodium": ("lin", ((136, 4), (137.5, 4), (139, 3), (139, 2.5), (137, 3.5), (135, 5),
                       (138.5, 2.5), (139.5, 2), (139.5, 2), (136, 4), (139.5, 2), (137.5, 3.5))),
    "potassium": ("lin", ((4.0, .45), (4.3, .55), (4.2, .45), (3.8, .40), (4.0, .45), (4.2, .65),
                          (4.0, .35), (3.7, .30), (4.0, .30), (3.7, .50), (4.0, .30), (4.1, .45))),
    "creatinine": ("log", ((1.0, .30), (1.15, .35), (1.0, .25), (.85, .20), (1.05, .35), (1.4, .45),
                           (.9, .20), (.85, .18), (.9, .20), (1.05, .30), (.8, .18), (1.0, .30))),
    "glucose": ("log", ((125, .25), (130, .28), (130, .25), (115, .20), (120, .25), (135, .30),
                        (105, .18), (100, .15), (100, .15), (105, .20), (95, .15), (115, .25))),
    "bicarbonate": ("lin", ((23.5, 3), (24.5, 3.5), (26.5, 3.5), (22.5, 2.5), (23.5, 3), (20, 4),
                            (24.5, 2.2), (22.5, 2.2), (25, 2), (21.5, 3), (25, 2), (24.5, 2.8))),
    "crp": ("log", ((70, 1.0), (14, .95), (30, 1.1), (12, 1.0), (60, 1.0), (140, .85),
                    (30, 1.0), (3, .8), (4, .9), (25, 1.0), (6, .9), (9, 1.1))),
    "procalcitonin": ("log", ((.18, 1.2), (.07, .9), (.09, .9), (.06, .8), (.20, 1.2), (1.8, 1.3),
                              (.08, .9), (.04, .7), (.04, .7), (.08, .9), (.04, .7), (.06, .9))),
    "lactate": ("log", ((1.6, .40), (1.5, .35), (1.4, .35), (1.6, .35), (1.4, .35), (2.4, .50),
                        (1.2, .30), (1.3, .30), (1.1, .30), (1.6, .35), (1.0, .30), (1.3, .35))),
    "bnp": ("log", ((70, 1.4), (600, 1.4), (65, 1.35), (30, 1.2), (45, 1.4), (90, 1.4),
                    (30, 1.2), (22, 1.0), (22, 1.1), (30, 1.2), (15, 1.0), (55, 1.4))),
    "troponin": ("log", ((.012, 1.0), (.020, 1.0), (.012, 1.0), (.006, .9), (.010, 1.0), (.025, 1.2),
                         (.005, .8), (.004, .7), (.005, .8), (.006, .9), (.003, .6), (.008, 1.0))),
    "d_dimer": ("log", ((1.2, .8), (1.0, .7), (.8, .7), (.5, .7), (.9, .8), (2.0, .8),
                        (.5, .7), (.35, .6), (.4, .6), (.6, .7), (.3, .6), (.7, .8))),
    "pco2": ("lin", ((38, 6), (40, 7), (45, 10), (37, 6), (39, 4), (34, 6),
                     (39, 4), (32, 4), (40, 4), (38, 4), (40, 3), (40, 4))),
    "ph": ("lin", ((7.41, .04), (7.39, .05), (7.385, .04), (7.42, .04), (7.40, .03), (7.35, .07),
                   (7.40, .03), (7.46, .03), (7.40, .02), (7.39, .04), (7.40, .02), (7.40, .03))),
}
LAB_RANGES: dict[str, tuple[float, float]] = {
    "wbc": (0.5, 60), "hemoglobin": (5, 20), "platelets": (10, 900), "sodium": (115, 160), "potassium": (2.2, 7.5),
    "creatinine": (0.3, 12), "glucose": (40, 800), "bicarbonate": (6, 45), "crp": (0.2, 500), "procalcitonin": (0.01, 100),
    "lactate": (0.4, 15), "bnp": (5, 5000), "troponin": (0.001, 5), "d_dimer": (0.1, 20), "pco2": (18, 110),
    "ph": (6.9, 7.65),
}
# Patient-level effects on the log (or linear) value, centred within each condition so the marginals
# above still hold: (variable, history item or "age_per_decade", shift).
LAB_EFFECTS: tuple[tuple[str, str, float], ...] = (
    ("bnp", "age_per_decade", 0.20), ("bnp", "ckd", 0.50), ("bnp", "atrial_fibrillation", 0.40),
    ("troponin", "age_per_decade", 0.15), ("troponin", "ckd", 0.50),
    ("creatinine", "ckd", 0.60), ("creatinine", "age_per_decade", 0.05),
    ("glucose", "diabetes", 0.45), ("hemoglobin", "ckd", -1.2), ("d_dimer", "age_per_decade", 0.12),
    ("bicarbonate", "known_copd", 1.0), ("pco2", "home_oxygen", 6.0),
)
# Share of each variable's spread driven by the case's severity (the rest is independent noise);
# the sign is where disease pushes it.
SEVERITY_LOADING = 0.50
SEVERITY_DIRECTION: dict[str, int] = {
    "temperature": +1, "heart_rate": +1, "respiratory_rate": +1, "spo2": -1, "systolic_bp": -1,
    "wbc": +1, "crp": +1, "procalcitonin": +1, "lactate": +1, "bnp": +1, "troponin": +1, "creatinine": +1,
    "d_dimer": +1, "platelets": -1, "sodium": -1, "bicarbonate": -1, "pco2": +1, "ph": -1,
}
SEVERITY_FINDINGS_CORRELATION = 0.3  # corr(severity of physiology, expression of symptoms and signs)

# ---- urinalysis (dipstick): P(nitrite positive), P(leukocyte esterase >= 1+). Tuned to nitrite
# LR+ 6.5 (afp2013) in women with urinary complaints; asymptomatic bacteriuria after 70 adds 5%.
URINE_NITRITE: tuple[float, ...] = (.05, .05, .05, .03, .60, .25, .04, .03, .03, .06, .10, .07)
URINE_LE: tuple[float, ...] = (.15, .12, .12, .08, .82, .40, .10, .08, .08, .15, .45, .20)

# ---- chest radiograph findings: P(finding | condition); cardiomegaly in conditions other than
# heart failure rises with age (`CARDIOMEGALY_AGE`). Tuned to Wang 2005 (cardiomegaly LR+ 3.3 /
# LR- 0.33, effusion LR+ 3.2, oedema LR+ 12, hyperinflation LR 0.38 for HF), Self 2013 and the
# exacerbation films (copdcxr).
CXR_FINDINGS: dict[str, tuple[float, ...]] = {
    "consolidation":   (.65, .05, .10, .03, .02, .06,  .05, .01, .01, .02, .01, .03),
    "effusion":        (.20, .26, .06, .03, .02, .10,  .03, .01, .02, .01, .00, .06),
    "edema":           (.04, .48, .03, .01, .01, .05,  .01, .00, .00, .00, .00, .03),
    "hyperinflation":  (.02, .04, .55, .30, .02, .03,  .04, .03, .03, .02, .02, .03),
    "cardiomegaly":    (.00, .74, .00, .00, .00, .00,  .00, .00, .00, .00, .00, .00),
}
CARDIOMEGALY_AGE = (0.04, 0.40, 40.0, 90.0)  # P from 0.04 at age 40 to 0.40 at 90, other conditions
HYPERINFLATION_SMOKER = 0.06  # added for smokers without COPD

# ---- what is ordered: by complaint group and age, never by condition.
XRAY_P: dict[str, float] = {"dyspnoea": 0.95, "cough_fever": 0.88, "chest_pain": 0.90, "fever": 0.65, "urinary": 0.15,
                            "weakness_confusion": 0.55, "abdominal": 0.30, "other": 0.35}
BLOODS_P = 0.93  # the core panel (blood count, chemistry, CRP) for every complaint
# P(ordered) = base + the complaint's boost (+ an age bonus): broad, overlapping panels, as ED order
# sets are; which extra tests a case has says something about its complaint, little about its
# diagnosis (the realism audit's "values shuffled" probe measures how little).
ORDER_BASE: dict[str, float] = {"bnp": 0.35, "troponin": 0.45, "abg": 0.22, "d_dimer": 0.12, "lactate": 0.32,
                                "procalcitonin": 0.12, "urinalysis": 0.55}
ORDER_BOOST: dict[str, dict[str, float]] = {
    "dyspnoea": {"bnp": 0.18, "troponin": 0.12, "abg": 0.13, "d_dimer": 0.08, "procalcitonin": 0.03},
    "cough_fever": {"lactate": 0.06, "procalcitonin": 0.06, "abg": 0.03},
    "chest_pain": {"troponin": 0.35, "bnp": 0.06, "d_dimer": 0.18},
    "fever": {"lactate": 0.15, "urinalysis": 0.12, "procalcitonin": 0.08},
    "urinary": {"urinalysis": 0.20},
    "weakness_confusion": {"urinalysis": 0.12, "troponin": 0.06, "lactate": 0.08, "bnp": 0.03},
    "abdominal": {"urinalysis": 0.10, "lactate": 0.06},
    "other": {"troponin": 0.03},
}
ORDER_AGE_BONUS = {"bnp": 0.15, "troponin": 0.10, "urinalysis": 0.05}  # added at age >= 65
REPEAT_VITALS = (0.45, 0.25)  # P(one re-check of the vital signs), P(a second one): independent of everything
REPEAT_TROPONIN_CHEST_PAIN = 0.80  # second troponin at ~3 h for chest pain
REPEAT_LACTATE = (0.45, 0.12)  # P(repeat lactate at ~2 h) when the first is >= 2 mmol/L, and when it is not

# ---- recorded label: chart review gets it wrong in a share of cases (ED HF diagnosis matched
# discharge in 81%, AANZDEM; 36% of ED pneumonia diagnoses absent at discharge, Jones). The recorded
# label is what models train on; such cases are marked `labels.noisy`.
LABEL_ERROR_P = 0.06
LABEL_CONFUSION: dict[str, tuple[tuple[str, float], ...]] = {
    "pneumonia": (("no_acute_finding", .5), ("heart_failure", .2), ("copd_exacerbation", .3)),
    "heart_failure": (("copd_exacerbation", .45), ("pneumonia", .45), ("no_acute_finding", .1)),
    "copd_exacerbation": (("asthma_exacerbation", .3), ("heart_failure", .3), ("pneumonia", .4)),
    "asthma_exacerbation": (("copd_exacerbation", .5), ("no_acute_finding", .5)),
    "urinary_tract_infection": (("no_acute_finding", 1.0),),
    "sepsis": (("no_acute_finding", 1.0),),  # sepsis missed: the source (if any) stays recorded
    "viral_respiratory_infection": (("pneumonia", .8), ("asthma_exacerbation", .2)),
    "anxiety_hyperventilation": (("asthma_exacerbation", 1.0),),
    "chest_wall_pain": (("pneumonia", 1.0),),
    "gastroenteritis": (("urinary_tract_infection", .6), ("sepsis", .4)),
    "vaginitis_or_sti": (("urinary_tract_infection", 1.0),),
    "nonspecific_malaise": (("urinary_tract_infection", .6), ("heart_failure", .4)),
}
