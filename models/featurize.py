"""PatientCase -> model inputs, one function per modality, plus batch collation.

    featurize(kind, case, config, lab_stats) -> an item (numpy arrays + `notes` on what was degraded)
    collate(kind, items, config)             -> a dict of tensors, passed as model(**batch)

- cxr: the image via mmdx.core.images.load_image (CorruptInput on a bad file), resized to
  config.image_size square, standardised per image (zero mean, unit variance).
- labs: one token per measurement: index into the model's `config.variables`, value normalised as
  (value - median) / IQR with statistics fitted on the training split (stored in the model card),
  time in hours since the case's first measurement. Longer series keep the most recent
  config.max_tokens measurements and say so in `notes`.
- notes: the case's notes joined, each under a "[kind]" header, tokenised with the MiniLM tokenizer;
  a text longer than the window is read in overlapping windows that the model pools (collate_notes).
  A note in a language the model does not read is an UnsupportedLanguage error, not set-aside text.

A case without the modality raises ModalityAbsent naming the field.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from mmdx.core.case import PatientCase
from mmdx.core.errors import CorruptInput, ModalityAbsent, UnsupportedLanguage
from mmdx.core.images import load_image
from mmdx.core.units import VARIABLES
from mmdx.models.lab_transformer import N_DEMO

VALUE_CLIP = 20.0  # normalised values beyond +-20 IQRs are clipped (possible but extreme values)

LabStats = dict[str, tuple[float, float]]  # variable -> (median, IQR), fitted on the training split


@dataclass
class CxrItem:
    image: np.ndarray  # (1, S, S) float32, standardised
    notes: list[str] = field(default_factory=list)


@dataclass
class LabItem:
    var_idx: np.ndarray  # (T,) int64
    values: np.ndarray  # (T,) float32, normalised
    times: np.ndarray  # (T,) float32, hours since the first measurement
    demo: np.ndarray  # (N_DEMO,) float32
    notes: list[str] = field(default_factory=list)


@dataclass
class NoteItem:
    text: str
    notes: list[str] = field(default_factory=list)


# ---- cxr
def cxr_features(case: PatientCase, image_size: int) -> CxrItem:
    path = case.image_path()
    if path is None:
        raise ModalityAbsent(f"case {case.case_id} has no chest X-ray", field="cxr")
    arr = load_image(path)  # (H, W) in [0, 1]; raises CorruptInput
    notes = []
    h, w = arr.shape
    if max(h, w) / min(h, w) > 1.25:
        notes.append(f"image {w}x{h} is not square; resized to {image_size}x{image_size}, which distorts it")
    x = torch.from_numpy(np.ascontiguousarray(arr))[None, None]  # (1, 1, H, W)
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)[0]  # (1, S, S)
    std = float(x.std())
    if std < 1e-4:
        raise CorruptInput(f"{path.name}: image is nearly constant after resizing", field="cxr.path")
    x = (x - x.mean()) / std
    return CxrItem(image=x.numpy().astype(np.float32), notes=notes)


def collate_cxr(items: list[CxrItem]) -> dict[str, torch.Tensor]:
    return {"images": torch.from_numpy(np.stack([it.image for it in items]))}  # (B, 1, S, S)


# ---- labs
def demo_vector(case: PatientCase) -> np.ndarray:
    d = case.demographics
    return np.array([d.age / 100.0, d.sex == "female", d.sex == "male", d.sex in ("other", "unknown")], dtype=np.float32)


def fit_lab_stats(cases: list[PatientCase]) -> LabStats:
    """Per-variable median and IQR over every measurement in `cases` (the training split)."""
    by_var: dict[str, list[float]] = {}
    for case in cases:
        for m in case.measurements:
            by_var.setdefault(m.variable, []).append(m.value)
    stats = {}
    for var, vals in sorted(by_var.items()):
        q1, med, q3 = np.percentile(np.asarray(vals, dtype=np.float64), [25, 50, 75])
        iqr = max(float(q3 - q1), 0.01 * abs(float(med)), 1e-3)  # a constant variable must not divide by zero
        stats[var] = (float(med), iqr)
    return stats


def lab_features(case: PatientCase, stats: LabStats, max_tokens: int, panel: tuple[str, ...] = (),
                 variables: tuple[str, ...] = ()) -> LabItem:
    """`variables`: the model's vocabulary (index = position); measurements of any other variable
    are not read and the item's notes say so. `panel` narrows what is read further."""
    if not case.measurements:
        raise ModalityAbsent(f"case {case.case_id} has no labs or vital signs", field="measurements")
    ms = sorted(case.measurements, key=lambda m: m.time)
    notes = []
    index = {name: i for i, name in enumerate(variables or sorted(VARIABLES))}
    read = set(panel or index) & set(index)
    outside = sorted({m.variable for m in ms if m.variable not in read})
    if outside:
        ms = [m for m in ms if m.variable in read]
        notes.append(f"present, not read by this model: {', '.join(outside)}")
        if not ms:
            raise ModalityAbsent(f"case {case.case_id} has no measurement this model reads ({', '.join(sorted(read))})",
                                 field="measurements")
    if len(ms) > max_tokens:
        notes.append(f"{len(ms)} measurements; kept the most recent {max_tokens}")
        ms = ms[-max_tokens:]
    t0 = ms[0].time
    unseen = sorted({m.variable for m in ms if m.variable not in stats})
    if unseen:
        notes.append(f"variables unseen in training, normalised by their possible range: {', '.join(unseen)}")
    values = []
    for m in ms:
        if m.variable in stats:
            med, iqr = stats[m.variable]
        else:
            spec = VARIABLES[m.variable]
            med, iqr = (spec.lo + spec.hi) / 2, (spec.hi - spec.lo) / 4
        values.append((m.value - med) / iqr)
    return LabItem(
        var_idx=np.array([index[m.variable] for m in ms], dtype=np.int64),
        values=np.clip(np.array(values, dtype=np.float32), -VALUE_CLIP, VALUE_CLIP),
        times=np.array([(m.time - t0).total_seconds() / 3600.0 for m in ms], dtype=np.float32),
        demo=demo_vector(case),
        notes=notes,
    )


def collate_labs(items: list[LabItem]) -> dict[str, torch.Tensor]:
    B, T = len(items), max(len(it.var_idx) for it in items)
    var_idx = torch.zeros(B, T, dtype=torch.long)
    values = torch.zeros(B, T)
    times = torch.zeros(B, T)
    mask = torch.zeros(B, T, dtype=torch.bool)
    for i, it in enumerate(items):
        n = len(it.var_idx)
        var_idx[i, :n] = torch.from_numpy(it.var_idx)
        values[i, :n] = torch.from_numpy(it.values)
        times[i, :n] = torch.from_numpy(it.times)
        mask[i, :n] = True
    demo = torch.from_numpy(np.stack([it.demo for it in items]))  # (B, N_DEMO)
    assert demo.shape[1] == N_DEMO
    return {"var_idx": var_idx, "values": values, "times": times, "mask": mask, "demo": demo}


# ---- notes
def note_text(case: PatientCase, set_aside: list[str] | None = None) -> str:
    """The notes as the model reads them. Text addressed to an AI (chat turns, tool-call JSON, "ignore
    previous instructions", another language: mmdx.core.screen) is set aside, and what was set aside
    is appended to `set_aside`. The rest is read as written: the training notes never name the final
    diagnosis (past history may name a comorbidity, as real notes do), so nothing is redacted."""
    from mmdx.core.screen import note_language, screen_note

    if not case.notes:
        raise ModalityAbsent(f"case {case.case_id} has no clinical notes", field="notes")
    parts, foreign = [], []
    for n in case.notes:
        language = note_language(n.text)
        if language != "English":  # not an attack: a note the model cannot read
            foreign.append(f"{n.kind} note in {language}")
            continue
        screened = screen_note(n.text)
        if screened.flagged and set_aside is not None:
            set_aside.append(f"{n.kind} note: {screened.summary()}")
        if screened.text.strip():
            parts.append(f"[{n.kind.replace('_', ' ')}] {screened.text}")
    if foreign and set_aside is not None and parts:
        set_aside.append(f"not read (the note model reads English only): {'; '.join(foreign)}")
    if foreign and not parts:
        raise UnsupportedLanguage(f"case {case.case_id}: {'; '.join(foreign)}: the note model reads English only",
                                  field="notes")
    if not parts:
        raise ModalityAbsent(f"case {case.case_id}: no clinical text left in its notes once text addressed to an AI "
                             f"was set aside ({len(case.notes)} note(s))", field="notes")
    return "\n".join(parts)


def note_features(case: PatientCase) -> NoteItem:
    set_aside: list[str] = []
    text = note_text(case, set_aside)
    return NoteItem(text=text, notes=set_aside)


# A note longer than the encoder's window is read whole: in windows of max_length tokens that
# overlap by CHUNK_STRIDE (no sentence is only ever seen cut in two), pooled by the model per note
# (NoteEncoder.forward's chunk_owner). MAX_CHUNKS windows bound the work for one note (32 x 256
# tokens is ~30 pages); text beyond them is not read, and the output says so.
CHUNK_STRIDE = 32
MAX_CHUNKS = 32


def collate_notes(items: list[NoteItem], max_length: int) -> dict[str, torch.Tensor]:
    from mmdx.models.note_encoder import load_tokenizer

    enc = load_tokenizer()([it.text for it in items], truncation=True, max_length=max_length, stride=CHUNK_STRIDE,
                           return_overflowing_tokens=True, padding=True, return_tensors="pt")
    owner = enc["overflow_to_sample_mapping"].tolist()  # (C,) window -> note
    seen: dict[int, int] = {}
    keep = []
    for c, o in enumerate(owner):
        seen[o] = seen.get(o, 0) + 1
        if seen[o] <= MAX_CHUNKS:
            keep.append(c)
    for i, it in enumerate(items):
        n = seen.get(i, 0)
        if n > MAX_CHUNKS:
            it.notes.append(f"note text longer than {MAX_CHUNKS} windows of {max_length} tokens: read the first "
                            f"{MAX_CHUNKS} of {n} (pooled); the rest was not read")
        elif n > 1:
            it.notes.append(f"note text read whole in {n} overlapping windows of {max_length} tokens, pooled")
    keep_t = torch.tensor(keep, dtype=torch.long)
    return {"input_ids": enc["input_ids"][keep_t], "attention_mask": enc["attention_mask"][keep_t],  # (C, T) each
            "chunk_owner": torch.tensor([owner[c] for c in keep], dtype=torch.long)}  # (C,)


# ---- dispatch: by the modality the kind reads (models/registry.py)
def featurize(kind: str, case: PatientCase, config, lab_stats: LabStats | None = None):
    from mmdx.models.registry import spec

    modality = spec(kind).modality
    if modality == "cxr":
        return cxr_features(case, config.image_size)
    if modality == "labs":
        if lab_stats is None:
            raise ValueError("lab features need the training statistics (lab_stats)")
        return lab_features(case, lab_stats, config.max_tokens, config.panel, config.variables)
    return note_features(case)


def collate(kind: str, items: list, config) -> dict[str, torch.Tensor]:
    from mmdx.models.registry import spec

    modality = spec(kind).modality
    if modality == "cxr":
        return collate_cxr(items)
    if modality == "labs":
        return collate_labs(items)
    return collate_notes(items, config.max_length)


def targets(case: PatientCase, labels: tuple[str, ...], kind: str) -> np.ndarray:
    """(L,) float32 multi-hot over the kind's target: imaging findings or diagnoses."""
    from mmdx.models.registry import spec

    if case.labels is None:
        raise ValueError(f"case {case.case_id} has no labels")
    have = set(case.labels.findings if spec(kind).target == "imaging_findings" else case.labels.diagnoses)
    return np.array([lab in have for lab in labels], dtype=np.float32)
