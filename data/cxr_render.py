"""Synthetic frontal chest radiographs grounded in real anatomy and real lesion geometry.

No labelled chest X-ray image set is available offline, so the synthetic (clinosim) cohort gets
rendered images. Everything here is SYNTHETIC pixels, but the geometry is taken from real data shipped
in the `torchxrayvision` 1.5.7 package folder (read as files; the package itself is never imported
because it imports torchvision, which is broken beside the pinned CPU torch):

- `semantic_masks_v7labs_lungs.zip`: 517 real binary lung masks. After quality filtering (two lungs,
  not cut by the image border) ~430 remain; each render samples one as the lung fields.
- `BBox_List_2017.csv.gz`: 984 real NIH lesion boxes (1024x1024). Infiltrate/pneumonia boxes place
  consolidations, effusion boxes size effusions, cardiomegaly boxes set the cardiothoracic ratio.
- `kaggle_stage_2_train_labels.csv.zip`: RSNA pneumonia boxes, grouped per patient (1-4 opacities).

Lesion boxes come from whole images, masks from differently framed images; boxes are mapped into a
render's lung box through a reference lung box, the median lung bounding box of the accepted masks
(an approximation of where lungs sit in a standard frontal film, logged at build time).

The render is an additive attenuation model in frame coordinates (x, y in [0, 1] of the image side):
soft tissue of a cylinder-like torso, minus air where the lungs are, plus heart, mediastinum, spine,
clavicles, ribs, hila and vessels; findings replace lung air with fluid (consolidation, effusion,
edema) or change geometry (cardiomegaly, hyperinflation). Pose, exposure, gamma, noise, blur, body
habitus and unrelated devices (markers, ECG leads) vary per render, so no finding is separable by a
global statistic. A person can look at a grid of renders with `scripts/cxr_contact_sheet.py`.

Public API: `render_cxr` (image only; the cohort builder calls it), `render_cxr_detailed` (image plus
the ground-truth anatomy and finding parameters), `RenderConfig`, `load_anatomy`.

Why one file of ~680 lines: it is one renderer. The anatomy loading and every structure and finding
of the render share the same frame coordinates and reference lung box, and `render_cxr_detailed`
(about 270 lines) is one attenuation sum that reads top to bottom, layer after layer; split, the
geometry would be spread over several files.
"""
from __future__ import annotations

import csv
import gzip
import hashlib
import importlib.util
import io
import logging
import math
import os
import zipfile
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from mmdx.core.labels import IMAGING_FINDINGS

log = logging.getLogger(__name__)

CACHE_VERSION = 2  # bump when the mask filtering or the stored arrays change
MASK_RES = 128  # side of the canonical lung-box mask stored per real mask
SEXES = ("female", "male", "other", "unknown")


@dataclass(frozen=True)
class RenderConfig:
    """Knobs of the renderer. Defaults were tuned by looking at contact sheets (see module docstring)."""

    # pose: PA films are rarely perfectly straight
    max_rotation_deg: float = 5.0  # uniform in +-this
    max_shift: float = 0.035  # translation, fraction of the image side
    scale_range: tuple[float, float] = (0.92, 1.07)  # zoom of the whole patient in the field
    # anatomy
    thorax_width_range: tuple[float, float] = (0.64, 0.76)  # lung-box width, fraction of the side
    lung_top_range: tuple[float, float] = (0.09, 0.16)  # apex row, fraction of the side
    normal_ctr_mean: float = 0.445  # cardiothoracic ratio of normal hearts (adult PA ~0.39-0.50)
    normal_ctr_sd: float = 0.035
    normal_ctr_max: float = 0.495  # a render without `cardiomegaly` never exceeds this CTR
    cardiomegaly_ctr_min: float = 0.51  # a render with `cardiomegaly` never falls below this CTR
    max_intrinsic_ctr_tries: int = 20  # resample masks whose own cardiac notch is too wide
    # display: exposure, gamma, noise, blur
    gamma_range: tuple[float, float] = (0.8, 1.25)
    gain_range: tuple[float, float] = (1.45, 1.75)  # attenuation -> display brightness
    noise_sd_range: tuple[float, float] = (0.006, 0.025)  # quantum-like noise, display units
    blur_px_range: tuple[float, float] = (0.35, 1.1)  # Gaussian sigma at 128 px; scales with size
    # unrelated devices
    p_marker: float = 0.5  # a side marker letter block in an upper corner
    p_ecg: float = 0.15  # ECG electrodes with leads
    p_gastric_bubble: float = 0.6  # air in the stomach under the left hemidiaphragm
    # finding severity: fraction of renders drawn from the subtle end of each range
    p_subtle: float = 0.35


@dataclass
class Anatomy:
    """Real lung masks in canonical lung-box coordinates plus real lesion boxes, all normalised.

    masks: (N, 2, R, R) uint8, channel 0 = image-left lung (patient right), 1 = image-right lung.
    aspect: (N,) lung bounding box height / width in the source image.
    u_mid: (N,) mediastinal midline as a fraction of the lung-box width.
    gap_ctr: (N,) gap between the lungs at heart level (80th percentile over rows 45-85 % down)
      / box width. These masks include the retrocardiac lung, so the gap (median ~0.18) is the
      mediastinum, not the heart; it is a lower bound on the rendered CTR.
    vbot: (N, 2) lowest lung row per side, fraction of the box height.
    ref_box: (4,) x0, y0, x1, y1 median lung box of the source images (lesion-box reference frame).
    cons_boxes: (M, 4) x, y, w, h consolidation boxes in [0, 1] image units; cons_group: (M,) group
      id (one source image); boxes of a group are rendered together.
    eff_boxes, cardio_boxes: (K, 4) NIH effusion / cardiomegaly boxes, same units.
    """

    masks: np.ndarray
    aspect: np.ndarray
    u_mid: np.ndarray
    gap_ctr: np.ndarray
    vbot: np.ndarray
    names: np.ndarray
    ref_box: np.ndarray
    cons_boxes: np.ndarray
    cons_group: np.ndarray
    eff_boxes: np.ndarray
    cardio_boxes: np.ndarray
    group_starts: np.ndarray = field(default=None)  # (G+1,) index of each group's first box

    def __post_init__(self):
        if self.group_starts is None:
            change = np.flatnonzero(np.diff(self.cons_group)) + 1
            self.group_starts = np.concatenate([[0], change, [len(self.cons_group)]])


@dataclass
class RenderedCXR:
    """One render with its ground truth. Masks are (size, size) float32 in [0, 1] in pixel space."""

    image: np.ndarray  # (size, size) uint8
    findings: tuple[str, ...]
    lung_mask: np.ndarray  # lung fields before findings (air-containing lung, heart removed)
    heart_mask: np.ndarray
    ctr: float  # cardiothoracic ratio of the rendered heart silhouette
    severity: dict[str, float]  # finding -> severity in [0, 1]; absent findings absent
    mask_name: str  # the real lung mask this render started from
    params: dict[str, float]  # pose and display parameters, for audit


# ---------------------------------------------------------------------------------------------
# Real data: read once, filter, downsample, cache as npz under mmdx home.


def _xrv_data_dir() -> Path:
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "torchxrayvision is not installed; install torchxrayvision==1.5.7 --no-deps for its data folder"
        )
    return Path(list(spec.submodule_search_locations)[0]) / "data"


_SOURCES = ("semantic_masks_v7labs_lungs.zip", "BBox_List_2017.csv.gz", "kaggle_stage_2_train_labels.csv.zip")


def _sources_digest(d: Path) -> str:
    h = hashlib.sha256()
    for name in _SOURCES:
        p = d / name
        if not p.is_file():
            raise FileNotFoundError(f"missing {p} (torchxrayvision 1.5.7 data folder)")
        h.update(name.encode())
        h.update(p.read_bytes())
    return h.hexdigest()


def _process_mask(raw: bytes):
    """Binary lung mask bytes -> (2, R, R) float lungs in their bounding box plus stats, or None."""
    from PIL import Image
    from scipy import ndimage as ndi

    im = Image.open(io.BytesIO(raw))
    im.draft("L", (256, 256))  # JPEG: decode at reduced size, much faster
    im = im.convert("L")
    s = 256 / max(im.size)
    im = im.resize((max(1, round(im.width * s)), max(1, round(im.height * s))), Image.BILINEAR)
    a = np.asarray(im) > 127  # (h, w)
    if a.mean() < 0.05:
        return None, "empty"
    lab, k = ndi.label(a)
    if k < 2:
        return None, "one component"
    sizes = ndi.sum(a, lab, range(1, k + 1))
    order = np.argsort(sizes)[::-1]
    if sizes[order[1]] < 0.25 * sizes[order[0]]:
        return None, "second lung too small"
    m1, m2 = lab == order[0] + 1, lab == order[1] + 1
    if ndi.center_of_mass(m1)[1] > ndi.center_of_mass(m2)[1]:
        m1, m2 = m2, m1  # m1 = image-left lung
    m1, m2 = ndi.binary_fill_holes(m1), ndi.binary_fill_holes(m2)
    u = m1 | m2
    ys, xs = np.nonzero(u)
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    h, w = a.shape
    if y0 <= 1 or x0 <= 1 or y1 >= h - 1 or x1 >= w - 1:
        return None, "cut by the image border"
    r1, r2 = np.flatnonzero(m1.any(1)), np.flatnonzero(m2.any(1))
    overlap = (min(r1.max(), r2.max()) - max(r1.min(), r2.min())) / max(np.ptp(r1), np.ptp(r2))
    aspect = (y1 - y0) / (x1 - x0)
    ratio = m1.sum() / m2.sum()
    if overlap < 0.75 or not 0.55 <= aspect <= 1.2 or not 0.6 <= ratio <= 1.45:
        return None, "implausible shape"
    chans = []
    for m in (m1, m2):
        crop = Image.fromarray((m[y0:y1, x0:x1] * 255).astype(np.uint8))
        chans.append(np.asarray(crop.resize((MASK_RES, MASK_RES), Image.BILINEAR)))
    chans = np.stack(chans)  # (2, R, R) uint8
    left, right = chans[0] > 127, chans[1] > 127
    cols = np.arange(MASK_RES)
    mids, gaps = [], []
    for row in range(MASK_RES):
        if left[row].any() and right[row].any():
            lmax, rmin = cols[left[row]].max(), cols[right[row]].min()
            if rmin > lmax:
                v = row / (MASK_RES - 1)
                if 0.2 <= v <= 0.6:
                    mids.append((lmax + rmin) / 2)
                if 0.45 <= v <= 0.85 and left[row].sum() >= 4 and right[row].sum() >= 4:
                    gaps.append(rmin - lmax)
    if not mids or not gaps:
        return None, "lungs not separated"
    stats = dict(
        aspect=aspect,
        u_mid=float(np.median(mids)) / (MASK_RES - 1),
        gap_ctr=float(np.percentile(gaps, 80)) / (MASK_RES - 1),
        vbot=[np.flatnonzero(left.any(1)).max() / (MASK_RES - 1), np.flatnonzero(right.any(1)).max() / (MASK_RES - 1)],
        src_box=[x0 / w, y0 / h, x1 / w, y1 / h],
    )
    return (chans, stats), "ok"


def _read_boxes(d: Path):
    """NIH + RSNA boxes in [0, 1] units of their 1024x1024 images."""
    with gzip.open(d / "BBox_List_2017.csv.gz", "rt") as f:
        rows = list(csv.reader(f))[1:]
    nih: dict[str, list[list[float]]] = {}
    for r in rows:
        nih.setdefault(r[1], []).append([float(v) / 1024 for v in r[2:6]])
    cons, group = [], []
    gid = 0
    for label in ("Infiltrate", "Pneumonia"):
        for b in nih[label]:  # NIH lists one box per row; group rows of one image together
            cons.append(b)
            group.append(gid)
            gid += 1
    with zipfile.ZipFile(d / "kaggle_stage_2_train_labels.csv.zip") as z:
        with z.open(z.namelist()[0]) as f:
            rsna = list(csv.reader(io.TextIOWrapper(f)))[1:]
    last = None
    for r in rsna:  # rows of one patient are adjacent in the file
        if r[5] != "1":
            continue
        if r[0] != last:
            gid += 1
            last = r[0]
        cons.append([float(v) / 1024 for v in r[1:5]])
        group.append(gid)
    return (np.asarray(cons, np.float32), np.asarray(group, np.int32),
            np.asarray(nih["Effusion"], np.float32), np.asarray(nih["Cardiomegaly"], np.float32))


def _build_anatomy(d: Path) -> dict[str, np.ndarray]:
    masks, stats, names, reasons = [], [], [], {}
    with zipfile.ZipFile(d / "semantic_masks_v7labs_lungs.zip") as z:
        for n in sorted(z.namelist()):
            if n.endswith("/"):
                continue
            out, why = _process_mask(z.read(n))
            reasons[why] = reasons.get(why, 0) + 1
            if out is not None:
                masks.append(out[0])
                stats.append(out[1])
                names.append(Path(n).name)
    log.info("lung masks: %s", reasons)
    if len(masks) < 50:
        raise RuntimeError(f"only {len(masks)} usable lung masks; the mask archive looks wrong ({reasons})")
    cons, group, eff, cardio = _read_boxes(d)
    ref = np.median(np.array([s["src_box"] for s in stats]), axis=0)
    log.info("reference lung box (x0, y0, x1, y1) = %s from %d masks", np.round(ref, 3), len(masks))
    return dict(
        masks=np.stack(masks), aspect=np.array([s["aspect"] for s in stats], np.float32),
        u_mid=np.array([s["u_mid"] for s in stats], np.float32),
        gap_ctr=np.array([s["gap_ctr"] for s in stats], np.float32),
        vbot=np.array([s["vbot"] for s in stats], np.float32), names=np.array(names),
        ref_box=ref.astype(np.float32), cons_boxes=cons, cons_group=group, eff_boxes=eff, cardio_boxes=cardio,
    )


@lru_cache(maxsize=1)
def load_anatomy() -> Anatomy:
    """The filtered real masks and boxes; built once (~15 s) then read from an npz cache (<0.1 s)."""
    from mmdx.core.config import home

    d = _xrv_data_dir()
    digest = _sources_digest(d)[:16]
    path = home() / "cxr_render" / f"anatomy_v{CACHE_VERSION}_{digest}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as z:
            return Anatomy(**{k: z[k] for k in z.files})
    log.info("building the lung-anatomy cache at %s", path)
    arrays = _build_anatomy(d)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.tmp.npz")
    np.savez_compressed(tmp, **arrays)
    os.replace(tmp, path)  # atomic: concurrent builders do not see half a file
    return Anatomy(**arrays)


# ---------------------------------------------------------------------------------------------
# Small helpers


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """(size, size) float32 zero-mean, unit-ish sd noise with features ~size/cells pixels wide."""
    from PIL import Image

    g = rng.standard_normal((cells, cells)).astype(np.float32)
    return np.asarray(Image.fromarray(g, mode="F").resize((size, size), Image.BICUBIC))


def _sample_bilinear(stack: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Sample a (C, R, R) float32 stack at fractional (rows, cols) -> (C, *rows.shape); 0 outside.

    A plain gather: ~10x faster than scipy's map_coordinates on 128x128 and shares its indices
    across channels."""
    C, R, _ = stack.shape
    pad = np.zeros((C, R + 2, R + 2), np.float32)  # a zero border makes out-of-range reads 0
    pad[:, 1:-1, 1:-1] = stack
    r = np.minimum(np.maximum(rows + 1, 0), R + 0.999)
    c = np.minimum(np.maximum(cols + 1, 0), R + 0.999)
    r0, c0 = r.astype(np.int32), c.astype(np.int32)  # floor: r, c >= 0
    fr, fc = r - r0, c - c0
    flat = pad.reshape(C, -1)
    i00 = (r0 * (R + 2) + c0).ravel()
    v00, v01 = flat[:, i00], flat[:, i00 + 1]
    v10, v11 = flat[:, i00 + R + 2], flat[:, i00 + R + 3]
    fr, fc = fr.ravel(), fc.ravel()
    top = v00 + (v01 - v00) * fc
    bot = v10 + (v11 - v10) * fc
    return (top + (bot - top) * fr).reshape((C,) + rows.shape)


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.minimum(np.maximum(x, 0.0), 1.0)  # np.clip is several times slower on small arrays
    return x * x * (3 - 2 * x)


HILUM_U = 0.13  # hilum offset from the midline, fraction of the lung-box width
HILUM_V = 0.42  # hilum height, fraction of the lung-box height
VESSEL_BANK = 8  # precomputed vessel textures a render chooses from


@lru_cache(maxsize=1)
def _vessel_bank() -> np.ndarray:
    """(K, 2, R, R) float32 vessel-ridge textures radiating from each hilum, in midline-centred
    lung-box coordinates. Computed once with fixed seeds (arctan2 on every render was the slowest
    step); a render picks one with its own generator."""
    R = MASK_RES
    g = (np.arange(R, dtype=np.float32)) / (R - 1)
    v, u = np.meshgrid(g, g, indexing="ij")
    bank = np.zeros((VESSEL_BANK, 2, R, R), np.float32)
    for k in range(VESSEL_BANK):
        rng = np.random.default_rng(7919 + k)
        wob = _smooth_noise(rng, R, 6)
        for side, hu in enumerate((0.5 - HILUM_U, 0.5 + HILUM_U)):
            r = np.hypot(u - hu, (v - HILUM_V) * 0.8) + 1e-3
            th = np.arctan2(v - HILUM_V, u - hu)
            n_br = rng.uniform(14, 20)
            bank[k, side] = np.exp(-(np.sin(n_br * th + 3.5 * np.log(r) + 0.8 * wob) / 0.35) ** 2)
    return bank


def _severity(rng: np.random.Generator, cfg: RenderConfig) -> float:
    """Severity in (0, 1]; a fraction cfg.p_subtle of findings are subtle (< 0.35)."""
    if rng.random() < cfg.p_subtle:
        return float(rng.uniform(0.1, 0.35))
    return float(rng.uniform(0.35, 1.0))


def _validate(findings: Sequence[str], size: int, age: float | None, sex: str | None) -> tuple[str, ...]:
    if isinstance(findings, str):
        raise ValueError(f"findings: expected a sequence of finding names, got the string {findings!r}")
    fs = tuple(dict.fromkeys(findings))  # de-duplicate, keep order
    unknown = [f for f in fs if f not in IMAGING_FINDINGS]
    if unknown:
        raise ValueError(f"findings: unknown finding(s) {unknown}; expected a subset of {IMAGING_FINDINGS}")
    if "no_finding" in fs and len(fs) > 1:
        raise ValueError(f"findings: 'no_finding' cannot be combined with other findings, got {list(fs)}")
    if not isinstance(size, (int, np.integer)) or not 32 <= size <= 1024:
        raise ValueError(f"size: expected an integer in [32, 1024], got {size!r}")
    if age is not None and not (isinstance(age, (int, float)) and math.isfinite(age) and 0 <= age <= 120):
        raise ValueError(f"age: expected years in [0, 120] or None, got {age!r}")
    if sex is not None and sex not in SEXES:
        raise ValueError(f"sex: expected one of {SEXES} or None, got {sex!r}")
    return tuple(f for f in fs if f != "no_finding")


# ---------------------------------------------------------------------------------------------
# The renderer


def render_cxr(findings: Sequence[str], rng: np.random.Generator, size: int = 128,
               age: float | None = None, sex: str | None = None) -> np.ndarray:
    """A synthetic PA-like frontal chest radiograph, (size, size) uint8, showing `findings`.

    `findings` is a subset of `IMAGING_FINDINGS` (empty or ("no_finding",) renders a normal film);
    unknown names raise ValueError. Deterministic given the generator's state. See
    `render_cxr_detailed` for the ground-truth masks and parameters.
    """
    return render_cxr_detailed(findings, rng, size=size, age=age, sex=sex).image


def render_cxr_detailed(findings: Sequence[str], rng: np.random.Generator, size: int = 128,
                        age: float | None = None, sex: str | None = None,
                        config: RenderConfig | None = None) -> RenderedCXR:
    """Render one film and return it with its anatomy masks, CTR and finding severities."""
    fs = _validate(findings, size, age, sex)
    cfg = config or RenderConfig()
    anat = load_anatomy()
    S = int(size)
    has = set(fs)
    sev: dict[str, float] = {}

    # --- patient: habitus from age / sex -------------------------------------------------------
    if sex is None or sex in ("other", "unknown"):
        sex_eff = "female" if rng.random() < 0.5 else "male"
    else:
        sex_eff = sex
    age_eff = float(age) if age is not None else float(rng.uniform(25, 85))
    child = age_eff < 14
    body_factor = rng.uniform(1.10, 1.32) + (0.04 if sex_eff == "male" else 0.0) - (0.06 if child else 0.0)

    # --- cardiothoracic ratio, then a real mask whose mediastinal gap fits under it -----------
    if "cardiomegaly" in has:
        sev["cardiomegaly"] = _severity(rng, cfg)
        b = anat.cardio_boxes[rng.integers(len(anat.cardio_boxes))]
        ref_w = anat.ref_box[2] - anat.ref_box[0]
        ctr_data = float(b[2] / ref_w)  # a real NIH heart width relative to the reference thorax
        ctr = cfg.cardiomegaly_ctr_min + sev["cardiomegaly"] * max(0.02, ctr_data - 0.45)
        ctr = float(np.clip(ctr, cfg.cardiomegaly_ctr_min, 0.72))
    else:
        ctr = rng.normal(cfg.normal_ctr_mean + (0.02 if child else 0.0) + (0.01 if age_eff > 70 else 0.0),
                         cfg.normal_ctr_sd)
        if "hyperinflation" in has:
            ctr -= rng.uniform(0.03, 0.07)  # long narrow heart of emphysema
        ctr = float(np.clip(ctr, 0.33, cfg.normal_ctr_max))
    for _ in range(cfg.max_intrinsic_ctr_tries):
        mi = int(rng.integers(len(anat.masks)))
        if anat.gap_ctr[mi] <= ctr:
            break
    else:  # no fitting mask drawn: the narrowest of a few, then the CTR follows the real mediastinum
        cand = rng.integers(len(anat.masks), size=8)
        mi = int(cand[np.argmin(anat.gap_ctr[cand])])
    ctr = max(ctr, float(anat.gap_ctr[mi]))
    if "cardiomegaly" not in has and ctr > cfg.normal_ctr_max:
        raise RuntimeError(f"mask {anat.names[mi]} forces CTR {ctr:.3f} above the normal maximum")

    # --- layout in frame units ------------------------------------------------------------------
    hyper = "hyperinflation" in has
    if hyper:
        sev["hyperinflation"] = _severity(rng, cfg)
    hs = sev.get("hyperinflation", 0.0)
    tw = rng.uniform(*cfg.thorax_width_range) * (1 + 0.05 * hs)  # lung-box width
    lh_stretch = 1 + hs * rng.uniform(0.12, 0.3)
    lh = float(anat.aspect[mi]) * tw * rng.uniform(0.95, 1.05) * lh_stretch
    y_top = rng.uniform(*cfg.lung_top_range) - 0.02 * hs
    lh = min(lh, 0.86 - y_top)  # keep the costophrenic angles inside the film
    x0 = 0.5 - tw / 2 + rng.normal(0, 0.01)
    xm = x0 + float(anat.u_mid[mi]) * tw  # mediastinal midline
    bw = tw / 2 * body_factor  # body half-width

    # --- pose: output pixel -> frame coordinates ----------------------------------------------
    rot = math.radians(rng.uniform(-cfg.max_rotation_deg, cfg.max_rotation_deg))
    scale = rng.uniform(*cfg.scale_range)
    shift = [float(v) for v in rng.uniform(-cfg.max_shift, cfg.max_shift, size=2)]
    pix = (np.arange(S, dtype=np.float32) + 0.5) / S
    py, px = np.meshgrid(pix, pix, indexing="ij")  # (S, S) each
    qx, qy = px - 0.5 - shift[0], py - 0.5 - shift[1]
    c, s_ = math.cos(rot), math.sin(rot)
    X = (c * qx + s_ * qy) / scale + 0.5  # (S, S) frame x
    Y = (-s_ * qx + c * qy) / scale + 0.5  # (S, S) frame y

    # --- lungs: sample the real mask into the lung box (hyperinflation flattens the domes) ----
    u = (X - x0) / tw
    v = (Y - y_top) / lh
    if hyper:
        bump = np.exp(-((u - 0.27) / 0.14) ** 2) + np.exp(-((u - 0.73) / 0.14) ** 2)
        v = v - (0.05 + 0.07 * hs) * bump * _smoothstep((v - 0.45) / 0.55)
    rows, cols = v * (MASK_RES - 1), u * (MASK_RES - 1)
    lungL, lungR = _sample_bilinear(anat.masks[mi].astype(np.float32) / 255.0, rows, cols)  # (S, S) each
    y_dia = y_top + lh * float(anat.vbot[mi].mean())  # costophrenic level, frame units

    # --- heart and mediastinum: remove lung air where they lie (these masks include the
    # retrocardiac lung, so the heart is drawn here, not taken from a notch in the mask) ---------
    W = ctr * tw
    hh = W * rng.uniform(0.72, 0.88) * (1 + 0.25 * hs)
    hcx = xm + W * rng.uniform(0.14, 0.2)
    hcy = y_top + lh * 0.9 - hh * 0.38
    # an ellipse tilted so the apex points down and to the patient's left (image right); the
    # semi-axes are chosen so its horizontal extent is exactly W (the CTR stays what it says)
    tilt = math.radians(rng.uniform(15, 35) * (1 - 0.5 * hs))
    k_ax = rng.uniform(0.72, 0.88)
    a_ax = (W / 2) / math.sqrt(math.cos(tilt) ** 2 + (k_ax * math.sin(tilt)) ** 2)
    b_ax = min(a_ax * k_ax, hh / 2)
    hdx, hdy = X - hcx, Y - hcy
    e1 = (hdx * math.cos(tilt) + hdy * math.sin(tilt)) / a_ax
    e2 = (-hdx * math.sin(tilt) + hdy * math.cos(tilt)) / b_ax
    heart = _smoothstep((1 - np.sqrt(e1 ** 2 + e2 ** 2)) / 0.12)
    medi_half = max(0.5 * float(anat.gap_ctr[mi]) * tw, tw * rng.uniform(0.09, 0.12))
    medi = _smoothstep((1 - np.abs(X - xm - 0.006) / medi_half) / 0.35) * (1 - _smoothstep((Y - hcy) / 0.05))
    knob = _smoothstep((1 - np.hypot((X - (xm + medi_half - 0.005)) / 0.035, (Y - (y_top + lh * 0.2)) / 0.035)) / 0.5)
    cover = np.maximum(np.maximum(heart * 0.85, medi * 0.8), knob * 0.7)
    lungL = lungL * (1 - cover)  # retrocardiac lung stays faintly visible, as on a real film
    lungR = lungR * (1 - cover)
    lung = np.clip(lungL + lungR, 0, 1)
    lung_mask = lung.copy()
    air = lung.copy()  # air fraction; findings replace air with fluid
    from scipy import ndimage as ndi

    depth = ndi.gaussian_filter(lung, 0.05 * S, truncate=2.5)  # thicker lung in the middle of each field

    # --- body outline: sloping shoulders, a neck, torso widest at the lower ribs --------------
    hw = bw * (0.86 + 0.14 * _smoothstep((Y - y_top) / (0.6 * lh)))  # body half-width by row
    dxb = (X - xm) / hw
    torso = np.sqrt(np.clip(1 - dxb ** 2, 0, 1))  # chord length through a cylinder
    shoulder_top = y_top - 0.09 + 0.1 * dxb ** 2
    torso = torso * _smoothstep((Y - shoulder_top) / 0.06)
    neck = np.sqrt(np.clip(1 - ((X - xm) / (0.075 + 0.015 * (sex_eff == "male"))) ** 2, 0, 1))
    body = np.maximum(torso, 0.8 * neck)
    A = 0.42 * body ** 0.7
    y_dome = y_top + lh * 0.72  # about the height of the diaphragm domes
    A += 0.04 * _smoothstep((Y - y_dome) / 0.25) * body ** 2 * (1 - lung)  # liver / bowel under the domes
    A += (0.05 * heart + 0.04 * medi) * (1 - _smoothstep((Y - y_dome - 0.04) / 0.08))
    trach = _smoothstep((1 - np.abs(X - xm - 0.004) / 0.018) / 0.4) * (1 - _smoothstep((Y - (y_top + lh * 0.3)) / 0.04))
    A -= 0.08 * trach * body

    # --- bones: spine, ribs (posterior curving down laterally, faint anterior), clavicles ----
    spine = _smoothstep((1 - np.abs(X - xm) / 0.036) / 0.3)
    vert = 0.75 + 0.25 * np.cos(np.pi * (Y - y_top) / (lh / 11.5)) ** 2
    A += 0.06 * spine * vert * body
    dx = (X - xm) / (tw / 2)
    adx = np.abs(dx)
    n_ribs = rng.uniform(9.5, 11.0) * (1 - 0.12 * hs)
    curve = (0.22 - 0.12 * hs) * adx ** 2 - 0.06 * adx
    ph = ((Y - y_top) / lh - curve) * n_ribs + rng.uniform(0, 1) + 0.12 * _smooth_noise(rng, S, 5)
    fr = ph - np.floor(ph)
    ribs_p = np.exp(-((fr - 0.5) / 0.15) ** 2) * (0.6 + 0.8 * np.exp(-((np.abs(fr - 0.5) - 0.14) / 0.04) ** 2))
    ph_a = ((Y - y_top) / lh + 0.18 * (1 - adx) ** 2) * n_ribs * 0.8 + rng.uniform(0, 1)
    fa = ph_a - np.floor(ph_a)
    ribs_a = np.exp(-((fa - 0.5) / 0.16) ** 2) * _smoothstep((adx - 0.25) / 0.3)
    rib_zone = _smoothstep((1.12 - adx) / 0.08) * _smoothstep((adx - 0.08) / 0.1) \
        * _smoothstep((Y - y_top + 0.05) / 0.05) * (1 - _smoothstep((Y - y_dia) / 0.06)) * (0.4 + 0.6 * lung)
    rib_amp = rng.uniform(0.018, 0.035) * (0.8 if age_eff > 75 else 1.0)  # osteopenia: fainter bones
    A += rib_amp * rib_zone * (ribs_p + 0.45 * ribs_a)
    for side in (-1, 1):  # clavicles: from the sternal notch laterally and up
        ax_, ay_ = xm + side * 0.025, y_top + 0.04 + rng.normal(0, 0.01)
        bx_, by_ = xm + side * rng.uniform(0.3, 0.36), ay_ - rng.uniform(0.03, 0.06)
        band = np.flatnonzero((np.abs(Y - ay_) < 0.16).any(1))  # rows the clavicle can reach
        if band.size == 0:
            continue
        sl = slice(band[0], band[-1] + 1)
        Xb, Yb = X[sl], Y[sl]
        t = _smoothstep(((Xb - ax_) * (bx_ - ax_) + (Yb - ay_) * (by_ - ay_)) / ((bx_ - ax_) ** 2 + (by_ - ay_) ** 2))
        dd = np.hypot(Xb - ax_ - t * (bx_ - ax_), Yb - ay_ - t * (by_ - ay_) + 0.012 * t * (1 - t))
        A[sl] += 0.07 * np.exp(-(dd / 0.011) ** 2)

    # --- hila and vessels ----------------------------------------------------------------------
    hil_y = y_top + lh * HILUM_V
    hil = [(xm - HILUM_U * tw, hil_y), (xm + HILUM_U * tw, hil_y)]
    ridges = _sample_bilinear(_vessel_bank()[int(rng.integers(VESSEL_BANK))], rows,
                              (u - float(anat.u_mid[mi]) + 0.5) * (MASK_RES - 1))  # (2, S, S)
    edema = "edema" in has
    if edema:
        sev["edema"] = _severity(rng, cfg)
    es = sev.get("edema", 0.0)
    vessel_amp = rng.uniform(0.035, 0.055) * (1 + 0.6 * es) * (1 - 0.4 * hs)
    vess = np.zeros_like(X)
    hila = np.zeros_like(X)
    for (hx, hy), ridge in zip(hil, ridges):
        r = np.hypot(X - hx, Y - hy)
        reach = 0.2 * (1 - 0.3 * hs) + 0.05 * es
        upper = 1 + 0.5 * es * (Y < hy)  # upper-lobe diversion in edema
        vess += ridge * np.exp(-r / reach) * upper
        hila += np.exp(-(r / (0.045 * (1 + 0.5 * es))) ** 2) * (0.4 + 0.6 * ridge)
    fine = _smooth_noise(rng, S, max(16, S // 5))
    A += lung * (vessel_amp * vess * np.maximum(0.35 + 0.65 * fine, 0)  # broken, tapering branches
                 + rng.uniform(0.025, 0.045) * (1 + 0.5 * es) * hila)

    # --- findings that replace air with fluid -------------------------------------------------
    ref = anat.ref_box
    rw, rh = ref[2] - ref[0], ref[3] - ref[1]
    if "consolidation" in has:
        sev["consolidation"] = _severity(rng, cfg)
        cs = sev["consolidation"]
        g = int(rng.integers(len(anat.group_starts) - 1))
        boxes = anat.cons_boxes[anat.group_starts[g]:anat.group_starts[g + 1]][:2]
        opac = np.zeros_like(X)
        patch = _smooth_noise(rng, S, max(10, S // 8))
        for bx, by, bwid, bht in boxes:
            shrink = rng.uniform(0.45, 0.9) if cs < 0.35 else rng.uniform(0.7, 1.0)
            cx = x0 + ((bx + bwid / 2) - ref[0]) / rw * tw
            cy = y_top + ((by + bht / 2) - ref[1]) / rh * lh
            ex, ey = max(bwid / rw * tw * shrink / 2, 0.03), max(bht / rh * lh * shrink / 2, 0.03)
            rr = np.sqrt(((X - cx) / ex) ** 2 + ((Y - cy) / ey) ** 2)
            env = _smoothstep((1 - rr + 0.35 * patch) / 0.7)  # ragged, ill-defined margins
            opac = np.maximum(opac, env)
        dens = (0.25 + 0.7 * cs) * opac * _smoothstep((patch + 0.6) / 1.4)
        if rng.random() < 0.5:  # air bronchograms: thin dark branches inside dense consolidation
            br = _smooth_noise(rng, S, max(8, S // 12))
            dens = dens * (1 - 0.55 * np.exp(-(br / 0.12) ** 2) * _smoothstep((dens - 0.4) / 0.3))
        air = air * (1 - np.clip(dens, 0, 0.95))
    if edema:
        haze = np.zeros_like(X)
        for hx, hy in hil:
            r2 = ((X - hx) / (0.13 + 0.12 * es)) ** 2 + ((Y - hy) / (0.17 + 0.12 * es)) ** 2
            haze += np.exp(-r2)
        patchy = np.clip(0.75 + 0.25 * _smooth_noise(rng, S, max(8, S // 10)), 0.3, 1.3)
        air = air * (1 - np.clip((0.12 + 0.55 * es) * haze * patchy, 0, 0.9))
        if rng.random() < 0.6:  # Kerley B lines: short horizontal lines at the lateral bases
            per = rng.uniform(0.011, 0.016)
            kl = np.exp(-(np.sin(np.pi * (Y - y_top) / per) / 0.25) ** 2)
            lat = _smoothstep((adx - 0.72) / 0.12) * _smoothstep((Y - (y_top + 0.6 * lh)) / 0.1)
            A += (0.02 + 0.04 * es) * kl * lat * lung
    if "effusion" in has:
        sev["effusion"] = _severity(rng, cfg)
        es_ = sev["effusion"]
        b = anat.eff_boxes[rng.integers(len(anat.eff_boxes))]
        frac = float(np.clip(b[3] / rh, 0.08, 0.6))  # real effusion box height / lung height
        sides = [int(rng.integers(2))] if rng.random() < 0.65 else [0, 1]
        for sd in sides:
            height = lh * frac * (0.15 + 0.85 * es_) * rng.uniform(0.6, 1.0)
            lat = np.clip(-dx if sd == 0 else dx, 0, 1.2)  # 0 at the midline, 1 at the lateral wall
            y_fl = y_top + lh * float(anat.vbot[mi][sd]) - height * (0.45 + 0.55 * lat ** 1.5)
            fluid = _smoothstep((Y - y_fl) / (0.02 + 0.03 * es_))
            side_lung = lungL if sd == 0 else lungR
            air = air - side_lung * fluid * air * 0.95
            A += 0.03 * fluid * side_lung  # layering fluid is a little denser than soft tissue
    air = np.clip(air, 0, 1)

    # lung air: darkens by how much air lies along the ray; the torso thickness scales it
    air_k = rng.uniform(0.2, 0.25) * (1 + 0.15 * hs)
    A -= air_k * air * (0.15 + 0.85 * np.minimum(depth * 1.4, 1))
    if rng.random() < cfg.p_gastric_bubble:
        gb = np.hypot((X - (xm + tw * 0.22)) / 0.05, (Y - (y_dia + 0.04)) / 0.03)
        A -= 0.18 * _smoothstep((1 - gb) / 0.4) * (1 - lung)
    if sex_eff == "female" and age_eff >= 14:  # breast shadows over the lower zones
        amp = rng.uniform(0.01, 0.045)
        for side in (-1, 1):  # soft above, a sharper curved lower border, as on real films
            bd = np.hypot((X - (xm + side * tw * 0.32)) / 0.2, (Y - (y_top + lh * 0.82)) / 0.14)
            A += amp * _smoothstep((1 - bd) / 0.06) * _smoothstep((Y - y_top - lh * 0.5) / 0.3)
    # devices unrelated to the labels
    if rng.random() < cfg.p_ecg:
        for _ in range(int(rng.integers(1, 4))):
            ex_, ey_ = rng.uniform(0.15, 0.85), rng.uniform(0.2, 0.8)
            A += 0.35 * _smoothstep((1 - np.hypot(px - ex_, py - ey_) / 0.012) / 0.3)
            ang = rng.uniform(0, 2 * np.pi)
            along = (px - ex_) * math.cos(ang) + (py - ey_) * math.sin(ang)
            perp = -(px - ex_) * math.sin(ang) + (py - ey_) * math.cos(ang) - 0.15 * along ** 2
            A += 0.2 * np.exp(-(perp / 0.003) ** 2) * (along > 0) * (along < rng.uniform(0.1, 0.3))
    if rng.random() < cfg.p_marker:
        mx_, my_ = rng.choice([0.08, 0.88]), rng.uniform(0.04, 0.12)
        box = (np.abs(px - mx_) < 0.025) & (np.abs(py - my_) < 0.03)
        hole = (np.abs(px - mx_ - 0.006) < 0.01) & (np.abs(py - my_ + 0.005) < 0.012)
        A = np.where(box & ~hole, 0.65, A)

    # --- display: exposure, heel effect, gamma, noise, blur, 8 bits ----------------------------
    gain = rng.uniform(*cfg.gain_range)
    gamma = rng.uniform(*cfg.gamma_range)
    heel = 1 + rng.uniform(-0.06, 0.06) * (py - 0.5)
    x = np.clip(A * gain * heel + rng.uniform(-0.03, 0.03), 0, None)
    I = (x / (1 + 0.15 * x)) ** gamma  # soft shoulder instead of a hard clip at white
    nsd = rng.uniform(*cfg.noise_sd_range)
    I = I + nsd * np.sqrt(I + 0.05) * rng.standard_normal((S, S)).astype(np.float32)
    blur = rng.uniform(*cfg.blur_px_range) * S / 128
    I = ndi.gaussian_filter(I.astype(np.float32), blur)
    img = (np.clip(I, 0, 1) * 255 + 0.5).astype(np.uint8)
    return RenderedCXR(
        image=img, findings=fs or ("no_finding",), lung_mask=lung_mask.astype(np.float32),
        heart_mask=heart.astype(np.float32), ctr=ctr,
        severity=sev, mask_name=str(anat.names[mi]),
        params=dict(rotation_deg=math.degrees(rot), scale=scale, shift_x=float(shift[0]), shift_y=float(shift[1]),
                    gain=gain, gamma=gamma, noise_sd=nsd, blur_px=blur, thorax_width=tw, lung_height=lh),
    )
