"""Clinical notes for a presentation, in one of two phrasing grammars.

- "ed" (the training style): an emergency-department chart: chief complaint, history of the
  present illness (symptoms reported and denied, past history, smoking), examination (vital signs in
  most notes, then every system, normal or not). Several phrasings for every finding; the same
  template family for every condition and complaint.
- "case_report" (held out, never used in training): one paragraph of case-report prose as journals
  publish vignettes ("A 72-year-old woman presented with three days of ..."), with its own wording
  (crepitations, breathlessness on lying flat, burning on passing urine) and British spelling. It
  measures whether the notes model read the clinical content or the training template.

What keeps the template from carrying the label:
- the note never names the final diagnosis (past history may name a comorbidity: "known COPD" is
  written at its prevalence in every condition);
- the number of symptoms documented is drawn independently of everything (K items: the reported
  ones first, then pertinent negatives from the complaint's review of systems);
- every system is examined in every note, and normal and abnormal phrasings have similar lengths;
- which phrasing and which opening are used is drawn uniformly, independent of the condition.
"""
from __future__ import annotations

import numpy as np

from mmdx.data.ed.generate import Presentation, case_rng

STYLES = ("ed", "case_report")

# ---- chief complaints: several phrasings per complaint group (the phrase carries no more than the group)
CHIEF_COMPLAINTS: dict[str, tuple[str, ...]] = {
    "dyspnoea": ("Shortness of breath", "SOB", "Difficulty breathing", "Breathlessness", "Trouble breathing",
                 "Short of breath", "Dyspnea"),
    "cough_fever": ("Cough and fever", "Cough", "Fever and cough", "Cough, feels feverish", "Persistent cough"),
    "chest_pain": ("Chest pain", "Chest tightness", "Pain in chest", "Chest discomfort"),
    "fever": ("Fever", "Fevers and chills", "High temperature", "Feverish"),
    "urinary": ("Burning with urination", "Urinary symptoms", "Painful urination", "Urinary frequency"),
    "weakness_confusion": ("Weakness", "Generalized weakness", "Confusion", "Feeling unwell", "Altered mental status",
                           "Not acting right"),
    "abdominal": ("Abdominal pain", "Nausea and vomiting", "Belly pain", "Lower abdominal pain", "Vomiting"),
    "other": ("Dizziness", "Fall at home", "Fatigue", "Leg swelling", "Palpitations", "Back pain"),
}
CASE_REPORT_COMPLAINTS: dict[str, tuple[str, ...]] = {
    "dyspnoea": ("worsening breathlessness", "increasing difficulty in breathing", "progressive shortness of breath"),
    "cough_fever": ("a cough and feverishness", "a cough with fevers", "a worsening cough"),
    "chest_pain": ("chest pain", "a tight feeling in the chest", "discomfort in the chest"),
    "fever": ("fevers and rigors", "feeling hot and shivery", "a high temperature"),
    "urinary": ("urinary symptoms", "discomfort when passing urine", "passing urine frequently"),
    "weakness_confusion": ("generalised weakness", "new confusion", "being increasingly unwell at home"),
    "abdominal": ("abdominal pain", "nausea and vomiting", "lower abdominal discomfort"),
    "other": ("dizziness", "a fall at home", "tiredness", "swollen legs", "palpitations", "back pain"),  # aligned with ED
}

# Review of systems per complaint group: what a clinician asks about (pertinent negatives come from here).
ROS: dict[str, tuple[str, ...]] = {
    "dyspnoea": ("dyspnoea_exertion", "orthopnoea", "pnd", "leg_swelling", "cough", "sputum", "fever_reported",
                 "chest_tightness", "wheeze_reported", "pleuritic_pain", "palpitations", "weight_gain"),
    "cough_fever": ("fever_reported", "chills", "sputum", "dyspnoea", "pleuritic_pain", "sore_throat", "rhinorrhoea",
                    "wheeze_reported", "chest_tightness", "fatigue"),
    "chest_pain": ("pleuritic_pain", "dyspnoea", "palpitations", "cough", "fever_reported", "leg_swelling",
                   "dyspnoea_exertion", "chest_tightness"),
    "fever": ("chills", "cough", "dysuria", "frequency", "flank_pain", "vomiting", "diarrhoea", "sore_throat",
              "confusion", "fatigue"),
    "urinary": ("dysuria", "frequency", "haematuria", "flank_pain", "fever_reported", "vaginal_discharge", "vomiting",
                "chills"),
    "weakness_confusion": ("fever_reported", "confusion", "cough", "dyspnoea", "dysuria", "vomiting", "diarrhoea",
                           "fatigue", "chills", "palpitations"),
    "abdominal": ("vomiting", "diarrhoea", "fever_reported", "dysuria", "frequency", "flank_pain", "chills",
                  "vaginal_discharge"),
    "other": ("fatigue", "palpitations", "dyspnoea", "fever_reported", "leg_swelling", "confusion", "cough",
              "chest_tightness"),
}

# ---- symptoms: (nouns for a list, whether reported or denied)
SYMPTOM_WORDS = {
    "ed": {
        "dyspnoea": ("shortness of breath", "SOB", "dyspnea", "difficulty breathing"),
        "dyspnoea_exertion": ("DOE", "dyspnea on exertion", "SOB with walking", "exertional dyspnea"),
        "orthopnoea": ("orthopnea", "SOB lying flat", "needing extra pillows", "trouble lying flat"),
        "pnd": ("PND", "waking up gasping", "paroxysmal nocturnal dyspnea", "nighttime breathlessness"),
        "leg_swelling": ("leg swelling", "ankle swelling", "swollen legs", "pedal swelling"),
        "weight_gain": ("weight gain", "recent weight gain", "gaining weight", "clothes feeling tight"),
        "cough": ("cough", "coughing", "a cough"),
        "sputum": ("sputum production", "productive cough", "green sputum", "phlegm"),
        "wheeze_reported": ("wheezing", "wheeze", "whistling breath", "noisy breathing"),
        "fever_reported": ("fever", "fevers", "subjective fever", "feeling feverish"),
        "chills": ("chills", "rigors", "shaking chills", "sweats"),
        "pleuritic_pain": ("pleuritic chest pain", "pain on deep breath", "sharp chest pain with breathing",
                           "pain with inspiration"),
        "chest_tightness": ("chest tightness", "chest pressure", "tight chest", "chest heaviness"),
        "sore_throat": ("sore throat", "throat pain", "scratchy throat", "pharyngitis symptoms"),
        "rhinorrhoea": ("runny nose", "rhinorrhea", "nasal congestion", "stuffy nose"),
        "dysuria": ("dysuria", "burning with urination", "painful urination", "stinging on voiding"),
        "frequency": ("urinary frequency", "frequency", "urgency", "going more often"),
        "haematuria": ("hematuria", "blood in urine", "pink urine", "gross hematuria"),
        "flank_pain": ("flank pain", "back pain", "loin pain", "side pain"),
        "vaginal_discharge": ("vaginal discharge", "abnormal discharge", "vaginal itching", "discharge"),
        "confusion": ("confusion", "altered mentation", "disorientation", "acting confused"),
        "vomiting": ("vomiting", "emesis", "nausea and vomiting", "throwing up"),
        "diarrhoea": ("diarrhea", "loose stools", "watery stools", "frequent stools"),
        "palpitations": ("palpitations", "racing heart", "heart pounding", "fluttering"),
        "fatigue": ("fatigue", "malaise", "tiredness", "low energy"),
    },
    "case_report": {
        "dyspnoea": ("breathlessness", "shortness of breath", "laboured breathing"),
        "dyspnoea_exertion": ("breathlessness on exertion", "being short of breath on climbing stairs",
                              "reduced exercise tolerance"),
        "orthopnoea": ("breathlessness on lying flat", "having to sleep propped up on pillows", "orthopnoea"),
        "pnd": ("waking at night short of breath", "nocturnal breathlessness", "paroxysmal nocturnal dyspnoea"),
        "leg_swelling": ("swollen ankles", "swelling of both legs", "puffy ankles"),
        "weight_gain": ("weight gain of a few kilograms", "gaining weight over the past week", "weight gain"),
        "cough": ("a cough", "coughing", "a persistent cough"),
        "sputum": ("purulent sputum", "coughing up phlegm", "yellow sputum"),
        "wheeze_reported": ("wheeze", "a whistling noise when breathing", "wheezing"),
        "fever_reported": ("fevers", "feeling hot", "a temperature at home"),
        "chills": ("rigors", "shivering", "night sweats"),
        "pleuritic_pain": ("sharp pain on breathing in", "pleuritic pain", "pain on taking a deep breath"),
        "chest_tightness": ("tightness in the chest", "a heavy feeling in the chest", "chest tightness"),
        "sore_throat": ("a sore throat", "pain on swallowing", "a painful throat"),
        "rhinorrhoea": ("a runny nose", "coryzal symptoms", "a blocked nose"),
        "dysuria": ("burning on passing urine", "pain on micturition", "discomfort passing water"),
        "frequency": ("passing urine more often", "urinary urgency", "needing to pass urine frequently"),
        "haematuria": ("blood in the urine", "visible haematuria", "red-tinged urine"),
        "flank_pain": ("loin pain", "pain in the side", "flank pain"),
        "vaginal_discharge": ("vaginal discharge", "an unusual discharge", "vaginal irritation"),
        "confusion": ("confusion", "being muddled", "disorientation"),
        "vomiting": ("vomiting", "being sick", "nausea with vomiting"),
        "diarrhoea": ("diarrhoea", "loose stools", "frequent watery stools"),
        "palpitations": ("palpitations", "a racing heartbeat", "an awareness of the heartbeat"),
        "fatigue": ("lethargy", "tiredness", "exhaustion"),
    },
}

HISTORY_WORDS = {
    "ed": {
        "prior_hf": ("HFrEF (EF 30%)", "CHF", "heart failure with prior admission", "cardiomyopathy, EF 35%"),
        "prior_mi": ("CAD s/p MI", "prior MI", "CAD with stents", "NSTEMI in the past"),
        "known_copd": ("COPD", "COPD on inhalers", "emphysema", "COPD (GOLD 3)"),
        "asthma_history": ("asthma", "asthma since childhood", "asthma on inhalers", "reactive airway disease"),
        "diabetes": ("T2DM", "type 2 diabetes", "DM on metformin", "diabetes on insulin"),
        "ckd": ("CKD 3", "chronic kidney disease", "CKD stage 4", "renal insufficiency"),
        "atrial_fibrillation": ("AF on apixaban", "atrial fibrillation", "paroxysmal AF", "afib on warfarin"),
        "hypertension": ("HTN", "hypertension", "high blood pressure", "HTN on lisinopril"),
        "immunosuppressed": ("on chemotherapy", "renal transplant on tacrolimus", "long-term prednisone", "HIV"),
        "recurrent_uti": ("recurrent UTIs", "frequent urine infections", "recurrent cystitis", "prior pyelonephritis"),
        "home_oxygen": ("home O2 2L", "on home oxygen", "home oxygen at night", "2L NC at home"),
    },
    "case_report": {
        "prior_hf": ("a previous admission with heart failure", "ischaemic cardiomyopathy", "left ventricular systolic dysfunction"),
        "prior_mi": ("a myocardial infarction", "ischaemic heart disease", "coronary stenting"),
        "known_copd": ("chronic obstructive pulmonary disease", "COPD", "emphysema"),
        "asthma_history": ("asthma", "childhood asthma", "asthma treated with inhalers"),
        "diabetes": ("type 2 diabetes mellitus", "diabetes", "insulin-treated diabetes"),
        "ckd": ("chronic kidney disease", "impaired renal function", "stage 3 chronic kidney disease"),
        "atrial_fibrillation": ("atrial fibrillation", "paroxysmal atrial fibrillation", "anticoagulated atrial fibrillation"),
        "hypertension": ("hypertension", "treated hypertension", "high blood pressure"),
        "immunosuppressed": ("a kidney transplant", "immunosuppression for rheumatoid arthritis", "ongoing chemotherapy"),
        "recurrent_uti": ("recurrent urinary infections", "previous pyelonephritis", "recurrent cystitis"),
        "home_oxygen": ("long-term oxygen therapy", "home oxygen", "nocturnal oxygen"),
    },
}

# Exam: system -> (normal phrasings, {sign: abnormal phrasings})
EXAM_WORDS = {
    "ed": {
        "Lungs": (("clear to auscultation bilaterally, no wheezes, rales or rhonchi", "CTAB, good air entry throughout",
                   "normal work of breathing, clear, no added sounds", "normal breath sounds throughout"),
                  {"crackles": ("crackles at the {side} base", "bibasilar rales", "inspiratory crackles {side}",
                                "coarse crackles {side}"),
                   "wheeze_exam": ("diffuse expiratory wheeze", "scattered wheezes", "wheezing bilaterally",
                                   "end-expiratory wheeze"),
                   "dullness": ("dull to percussion at the {side} base", "dullness {side} base", "stony dullness {side}"),
                   "bronchial_breathing": ("bronchial breath sounds {side}", "egophony {side}", "tubular breathing {side}"),
                   "reduced_air_entry": ("decreased air entry {side}", "diminished breath sounds {side}", "poor air movement"),
                   "prolonged_expiration": ("prolonged expiratory phase", "prolonged expiration", "long expiratory time"),
                   "accessory_muscles": ("using accessory muscles", "accessory muscle use", "tripod positioning")}),
        "CV": (("RRR, S1 S2 normal, no murmurs, rubs or gallops", "regular rate and rhythm, no JVD",
                "S1 S2 normal, no murmur", "heart sounds normal, no JVD, no gallop"),
               {"jvd": ("JVP elevated", "JVD to the jaw", "raised JVP", "jugular venous distension"),
                "s3": ("S3 gallop", "S3 present", "third heart sound", "gallop rhythm")}),
        "Abd": (("soft, non-tender, non-distended, no CVA tenderness", "soft, NT/ND", "benign abdomen, no CVAT",
                 "non-tender, no guarding or rebound"),
                {"suprapubic_tenderness": ("suprapubic tenderness", "tender suprapubically", "TTP suprapubic"),
                 "abdominal_tenderness": ("diffusely tender", "mild epigastric tenderness", "lower abdominal tenderness"),
                 "cva_tenderness": ("CVA tenderness {side}", "{side} CVAT", "costovertebral angle tenderness {side}")}),
        "Ext": (("no peripheral edema, calves soft and non-tender", "no edema", "warm, well perfused, cap refill < 2 s",
                 "no leg swelling, pulses intact"),
                {"leg_oedema": ("bilateral pitting edema", "2+ pedal edema", "edema to the knees", "1+ ankle edema"),
                 "mottled_skin": ("mottled knees", "cap refill 4 s", "cool mottled extremities")}),
        "Neuro": (("alert and oriented x3, moving all extremities", "A&Ox3", "alert, oriented, no focal deficit",
                   "grossly intact, speech normal"),
                  {"confusion": ("confused, oriented to person only", "disoriented", "drowsy and confused", "A&Ox1")}),
        "Other": (("chest wall non-tender", "pharynx normal", "no rash", "no lymphadenopathy"),
                  {"chest_wall_tenderness": ("reproducible chest wall tenderness", "tender over costochondral junction",
                                             "pain reproduced on palpation"),
                   "pharyngeal_erythema": ("pharynx erythematous", "injected pharynx", "red throat")}),
    },
    "case_report": {  # noun phrases: "Examination revealed A, B and C."
        "Lungs": (("clear lung fields", "normal breath sounds", "an unremarkable chest"),
                  {"crackles": ("{side} basal crepitations", "coarse crepitations at the {side} base", "fine inspiratory crepitations"),
                   "wheeze_exam": ("a widespread polyphonic wheeze", "expiratory wheeze throughout", "bilateral wheeze"),
                   "dullness": ("dullness to percussion at the {side} base", "a dull percussion note on the {side}"),
                   "bronchial_breathing": ("bronchial breathing at the {side} base", "increased vocal resonance on the {side}"),
                   "reduced_air_entry": ("reduced breath sounds on the {side}", "poor air entry on the {side}"),
                   "prolonged_expiration": ("a prolonged expiratory phase", "prolonged expiration"),
                   "accessory_muscles": ("use of the accessory muscles of respiration", "recession and accessory muscle use")}),
        "CV": (("normal heart sounds", "a regular pulse with normal heart sounds", "no cardiac murmurs"),
               {"jvd": ("a raised jugular venous pressure", "an elevated jugular venous pressure"),
                "s3": ("a third heart sound", "a gallop rhythm")}),
        "Abd": (("a soft, non-tender abdomen", "an unremarkable abdomen"),
                {"suprapubic_tenderness": ("suprapubic tenderness", "tenderness above the pubis"),
                 "abdominal_tenderness": ("generalised abdominal tenderness", "tenderness in the lower abdomen"),
                 "cva_tenderness": ("{side} renal angle tenderness", "tenderness in the {side} loin")}),
        "Ext": (("no peripheral oedema", "warm peripheries"),
                {"leg_oedema": ("pitting oedema to the mid-shins", "bilateral ankle oedema"),
                 "mottled_skin": ("mottling of the knees", "a capillary refill time of four seconds")}),
        "Neuro": (("full orientation", "a normal conscious level"),
                  {"confusion": ("an abbreviated mental test score of 6/10", "disorientation in time and place")}),
        "Other": (("a normal throat", "no rash"),
                  {"chest_wall_tenderness": ("reproducible tenderness of the chest wall",),
                   "pharyngeal_erythema": ("an inflamed pharynx", "erythema of the pharynx")}),
    },
}

# Other history and charting boilerplate: their number is drawn independently of the condition (other
# history rises with age), so how long a note is says little about what the patient has.
OTHER_HISTORY = {
    "ed": ("hyperlipidemia", "hypothyroidism", "GERD", "osteoarthritis", "depression", "gout", "migraine",
           "s/p appendectomy", "s/p cholecystectomy", "anemia", "obesity", "sleep apnea"),
    "case_report": ("hypercholesterolaemia", "hypothyroidism", "reflux", "osteoarthritis", "depression", "gout",
                    "migraine", "a previous appendicectomy", "a cholecystectomy", "anaemia", "obesity", "sleep apnoea"),
}
BOILERPLATE = ("ROS otherwise negative.", "Lives with family.", "Independent at baseline.", "NKDA.",
               "Meds reviewed with patient.", "Family history noncontributory.", "Brought in by family.",
               "History from patient and chart.", "Pain score documented in triage.",
               "All other systems reviewed and negative.", "Allergies: penicillin (rash).", "Lives alone, walks with a cane.",
               "Works full time, drinks alcohol socially.", "Seen by PCP last month, no medication changes since.",
               "Patient is a reliable historian.", "Interpreter used for history.", "Collateral history from daughter by phone.",
               "Home medications reconciled with pharmacy list.", "Advance directive on file, full code.")
EXTRA_EXAM = ("Skin: warm and dry, no rash.", "HEENT: normocephalic, atraumatic, mucous membranes moist.",
              "Psych: normal mood and affect.", "Back: no midline tenderness.", "Eyes: PERRL, conjunctivae normal.",
              "Lymph: no cervical lymphadenopathy.", "MSK: full range of motion, no joint swelling.")

VITALS_IN_NOTE_P = 0.3  # share of ED exam notes that copy the triage vital signs (the rest refer to the chart)

_NUM_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve",
              "thirteen", "fourteen")


def _pick(rng: np.random.Generator, options):
    return options[int(rng.integers(len(options)))]


def _join(items: list[str], conj: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {conj} " + items[-1]


def _documented(p: Presentation) -> tuple[list[str], list[str]]:
    """(reported, denied) symptom items: K items in all, K independent of the condition. The same
    items in both styles: a rewrite changes the words, not the facts."""
    rng = case_rng(p.seed, p.index, 12)
    k = int(rng.integers(5, 10))
    present = [s for s in SYMPTOM_WORDS["ed"] if p.findings.get(s)]
    rng.shuffle(present)
    reported = present[: max(1, k - 2)] if present else []
    ros = [s for s in ROS[p.complaint] if not p.findings.get(s) and not (s == "vaginal_discharge" and p.sex != "female")]
    rng.shuffle(ros)
    denied = ros[: max(k - len(reported), 2)]
    return reported, denied


def _complaint(p: Presentation, pools: dict[str, tuple[str, ...]]) -> str:
    """The complaint phrase: one index per case for both styles (the 'other' pools are aligned)."""
    pool = pools[p.complaint]
    return pool[int(case_rng(p.seed, p.index, 13).integers(len(CHIEF_COMPLAINTS[p.complaint]))) % len(pool)]


def _other_history(p: Presentation, style: str) -> list[str]:
    """Unrelated past history: how many depends on age only; the same items in both styles."""
    rng = case_rng(p.seed, p.index, 14)
    n = min(int(rng.poisson(0.2 + p.age / 70)), 4)
    idx = rng.choice(len(OTHER_HISTORY["ed"]), size=n, replace=False)
    return [OTHER_HISTORY[style][int(i)] for i in idx]


def _vitals_at_triage(p: Presentation) -> dict[str, float]:
    return {m.variable: m.value for m in p.measurements if m.hours == 0.0}


def _exam_parts(p: Presentation, rng: np.random.Generator, style: str) -> list[tuple[str, str]]:
    """(system, text) for every system: its abnormal signs, or one normal phrasing. One side per case."""
    side = _pick(rng, ("right", "left", "right", "left", "bilateral" if style == "ed" else "both"))
    parts = []
    for system, (normal, abnormal) in EXAM_WORDS[style].items():
        signs = [s for s in abnormal if p.findings.get(s)]
        text = _join([_pick(rng, abnormal[s]).format(side=side) for s in signs]) if signs else _pick(rng, normal)
        parts.append((system, text))
    return parts


def _distress(v: dict[str, float], rng: np.random.Generator, style: str) -> str:
    sick = v.get("respiratory_rate", 16) >= 26 or v.get("spo2", 99) < 90 or v.get("systolic_bp", 120) < 90
    if style == "ed":
        return _pick(rng, ("appears unwell, in respiratory distress", "ill-appearing, tachypneic", "uncomfortable, working to breathe")
                     if sick else ("well-appearing, in no acute distress", "comfortable, NAD", "no acute distress, speaking full sentences"))
    return _pick(rng, ("looked unwell and was working hard to breathe", "appeared acutely unwell") if sick
                 else ("looked comfortable at rest", "did not appear distressed"))


def write_notes(p: Presentation, style: str = "ed") -> list[tuple[str, str]]:
    """The presentation's notes as (kind, text) pairs, in the given phrasing grammar."""
    if style == "ed":
        return _ed_notes(p)
    if style == "case_report":
        return [("case_report", _case_report(p))]
    raise ValueError(f"unknown note style {style!r}; known: {', '.join(STYLES)}")


def _ed_notes(p: Presentation) -> list[tuple[str, str]]:
    rng = case_rng(p.seed, p.index, 10)
    words, hx = SYMPTOM_WORDS["ed"], HISTORY_WORDS["ed"]
    cc = _complaint(p, CHIEF_COMPLAINTS)
    cc += _pick(rng, ("", "", "", "", " since yesterday", ", worse today", " (per EMS)", " x several days",
                      ", sent in by PCP", " and feeling unwell", ", getting worse", " - see triage note"))
    age, sex = int(p.age), ("M" if p.sex == "male" else "F")
    days = max(1, int(round(p.days)))
    dur = _pick(rng, (f"x {days} days", f"for {days} days", f"since {days} days ago", f"over the past {days} days"))
    opening = _pick(rng, (
        f"{age} y/o {sex} presenting with {cc.lower()} {dur}.",
        f"{age}-year-old {'man' if sex == 'M' else 'woman'} with {cc.lower()} {dur}.",
        f"Pt is a {age}yo {sex} c/o {cc.lower()}, onset {days} days ago.",
        f"{age}{sex} here for {cc.lower()} {dur}.",
    ))
    reported, denied = _documented(p)
    sentences = [opening]
    if reported:
        sentences.append(_pick(rng, ("Reports", "Endorses", "Positive for", "Complains of")) + " "
                         + _join([_pick(rng, words[s]) for s in reported]) + ".")
    if denied:
        sentences.append(_pick(rng, ("Denies", "No", "Negative for", "Without")) + " "
                         + _join([_pick(rng, words[s]) for s in denied], "or") + ".")
    pmh = [_pick(rng, hx[h]) for h in hx if p.findings.get(h)] + _other_history(p, "ed")
    rng.shuffle(pmh)
    sentences.append(_pick(rng, ("PMH:", "Past history:", "Hx:", "PMHx:")) + " "
                     + (_join(pmh) if pmh else _pick(rng, ("none significant", "nil", "no chronic conditions", "unremarkable"))) + ".")
    smoking = (_pick(rng, (f"Smoker, {int(rng.integers(10, 60))} pack-years", "Current smoker", "Ex-smoker", "Former smoker"))
               if p.findings.get("smoker") else _pick(rng, ("Never smoker", "Non-smoker", "Denies tobacco", "No tobacco use")))
    sentences.append(smoking + ".")
    n_extra = int(rng.integers(0, 9))  # how much a clinician writes varies more than what the patient has
    sentences += [str(b) for b in rng.choice(BOILERPLATE, size=n_extra, replace=False)]
    hpi = " ".join(sentences)

    v = _vitals_at_triage(p)
    exam = []
    if rng.random() < VITALS_IN_NOTE_P:
        exam.append(_pick(rng, (
            "VS: T {temperature:.1f} HR {heart_rate:.0f} BP {systolic_bp:.0f}/{diastolic_bp:.0f} RR {respiratory_rate:.0f} SpO2 {spo2:.0f}% RA.",
            "Vitals: Temp {temperature:.1f}C, P {heart_rate:.0f}, BP {systolic_bp:.0f}/{diastolic_bp:.0f}, R {respiratory_rate:.0f}, O2 sat {spo2:.0f}% on room air.",
            "T {temperature:.1f}, HR {heart_rate:.0f}, BP {systolic_bp:.0f}/{diastolic_bp:.0f}, RR {respiratory_rate:.0f}, sat {spo2:.0f}%.",
        )).format(**v))
    exam.append("General: " + _distress(v, rng, "ed") + ".")
    exam += [f"{system}: {text}." for system, text in _exam_parts(p, rng, "ed")]
    exam += [str(e) for e in rng.choice(EXTRA_EXAM, size=int(rng.integers(0, 5)), replace=False)]
    return [("chief_complaint", cc), ("history_of_present_illness", hpi), ("physical_exam", " ".join(exam))]


def _case_report(p: Presentation) -> str:
    rng = case_rng(p.seed, p.index, 11)
    words, hx = SYMPTOM_WORDS["case_report"], HISTORY_WORDS["case_report"]
    he, his = ("She", "Her") if p.sex == "female" else ("He", "His")
    noun = "woman" if p.sex == "female" else "man"
    days = max(1, int(round(p.days)))
    dur = f"{_NUM_WORDS[days]}-day" if days < len(_NUM_WORDS) else f"{days}-day"
    out = [f"A {int(p.age)}-year-old {noun} presented to the emergency department with a {dur} history of "
           f"{_complaint(p, CASE_REPORT_COMPLAINTS)}."]
    reported, denied = _documented(p)
    if reported:
        out.append(f"{he} {_pick(rng, ('described', 'reported', 'also noticed'))} {_join([_pick(rng, words[s]) for s in reported])}.")
    if denied:
        out.append(f"{he} {_pick(rng, ('had no', 'denied', 'did not report'))} {_join([_pick(rng, words[s]) for s in denied], 'or')}.")
    pmh = [_pick(rng, hx[h]) for h in hx if p.findings.get(h)] + _other_history(p, "case_report")
    out.append(f"{his} past medical history {'included ' + _join(pmh) if pmh else 'was unremarkable'}.")
    out.append(f"{he} {'was a former smoker' if p.findings.get('smoker') and rng.random() < 0.5 else 'smoked' if p.findings.get('smoker') else 'had never smoked'}.")
    v = _vitals_at_triage(p)
    out.append(f"On arrival {his.lower()} temperature was {v['temperature']:.1f} °C, heart rate {v['heart_rate']:.0f} beats per "
               f"minute, blood pressure {v['systolic_bp']:.0f}/{v['diastolic_bp']:.0f} mm Hg, respiratory rate "
               f"{v['respiratory_rate']:.0f} breaths per minute and oxygen saturation {v['spo2']:.0f}% on room air.")
    out.append(f"{he} {_distress(v, rng, 'case_report')}.")
    exam = [text for _, text in _exam_parts(p, rng, "case_report")]
    out.append("Examination revealed " + _join(exam) + ".")
    return " ".join(out)
