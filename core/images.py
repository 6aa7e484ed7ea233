"""Read a chest radiograph (PNG, JPEG or DICOM) into a float32 grayscale array in [0, 1].

Every failure is a typed `CorruptInput` naming the file: truncated or corrupt files, images too
large to be a radiograph, unsupported channel layouts, DICOMs without pixel data, with a transfer
syntax no installed decoder reads, or with header values that are not numbers
(tests/test_fuzz_dicom_cli.py fuzzes this).
"""
from __future__ import annotations

import struct
import warnings
import zlib
from pathlib import Path

import numpy as np

from mmdx.core.errors import CorruptInput

MAX_PIXELS = 8192 * 8192  # larger than any radiograph detector; beyond it we refuse, not allocate
MIN_SIDE = 16
FLOAT32_MAX = float(np.finfo(np.float32).max)  # a Python float: comparing with it never casts


def _from_dicom(path: Path) -> np.ndarray:
    import pydicom
    from pydicom.errors import BytesLengthException, InvalidDicomError

    try:  # everything that reads the file's values, so any bad value lands in the except below
        ds = pydicom.dcmread(str(path))
        rows, cols = int(ds.Rows), int(ds.Columns)
        if rows * cols > MAX_PIXELS:
            raise CorruptInput(f"{path.name}: DICOM of {rows}x{cols} pixels exceeds the {MAX_PIXELS} pixel limit", field="cxr.path")
        samples = int(ds.get("SamplesPerPixel", 1) or 1)
        slope = float(ds.get("RescaleSlope", 1) or 1)
        intercept = float(ds.get("RescaleIntercept", 0) or 0)
        monochrome1 = str(ds.get("PhotometricInterpretation", "")).upper() == "MONOCHROME1"
        arr = ds.pixel_array.astype(np.float32)  # (R, C), (F, R, C), (R, C, S) or (F, R, C, S)
    except CorruptInput:
        raise
    except (InvalidDicomError, BytesLengthException, AttributeError, ValueError, TypeError, KeyError, EOFError, OSError, OverflowError,
            struct.error, zlib.error, NotImplementedError, RuntimeError) as e:
        # NotImplementedError / RuntimeError: pydicom has no decoder for the declared transfer syntax
        raise CorruptInput(f"{path.name}: unreadable DICOM ({type(e).__name__}: {e})", field="cxr.path") from e
    if arr.ndim == 4 or (arr.ndim == 3 and samples == 1):
        arr = arr[0]  # multi-frame (also frames beyond NumberOfFrames): (F, R, C[, S]) -> the first frame
    if arr.ndim == 3:
        arr = arr.mean(-1)  # colour: (R, C, S) -> (R, C) grey
    with np.errstate(over="ignore", invalid="ignore"):  # overflow becomes inf, refused by load_image
        arr = arr * slope + intercept
        if monochrome1:
            arr = arr.max() - arr  # MONOCHROME1 stores bone dark; flip to the usual display
    return arr


def _from_raster(path: Path) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_PIXELS:
                    raise CorruptInput(f"{path.name}: {im.width}x{im.height} pixels exceeds the limit", field="cxr.path")
                im.load()
                if im.mode in ("RGB", "RGBA", "P", "LA", "CMYK", "YCbCr"):
                    im = im.convert("L")
                if im.mode not in ("L", "I", "I;16", "F"):
                    raise CorruptInput(f"{path.name}: unsupported pixel mode {im.mode}", field="cxr.path")
                arr = np.asarray(im, dtype=np.float32)
    except CorruptInput:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as e:
        raise CorruptInput(f"{path.name}: unreadable image ({type(e).__name__}: {e})", field="cxr.path") from e
    return arr


def load_image(path: str | Path) -> np.ndarray:
    """(H, W) float32 in [0, 1]."""
    path = Path(path)
    if not path.is_file():
        raise CorruptInput(f"image file not found: {path}", field="cxr.path")
    suffix = path.suffix.lower()
    arr = _from_dicom(path) if suffix in (".dcm", ".dicom") else _from_raster(path)
    if arr.ndim != 2 or min(arr.shape) < MIN_SIDE:
        raise CorruptInput(f"{path.name}: expected a 2-D image at least {MIN_SIDE}px a side, got shape {arr.shape}", field="cxr.path")
    if not np.isfinite(arr).all():
        raise CorruptInput(f"{path.name}: image has NaN or infinite pixels", field="cxr.path")
    lo, hi = float(arr.min()), float(arr.max())
    if hi - lo < 1e-6:
        raise CorruptInput(f"{path.name}: image is blank (constant value {lo:g})", field="cxr.path")
    if hi - lo > FLOAT32_MAX:  # (arr - lo) would overflow to inf
        raise CorruptInput(f"{path.name}: pixel values span {lo:g} to {hi:g}, beyond any detector's range", field="cxr.path")
    out = (arr - lo) / (hi - lo)
    r = neighbour_correlation(out)
    if r < NOISE_BELOW:
        raise CorruptInput(f"{path.name}: image looks like random noise, not a radiograph (neighbouring pixels correlate "
                           f"at r={r:.2f}; in a radiograph they correlate strongly)", field="cxr.path")
    return out


# Anatomy is smooth: in a radiograph, even a noisy low-dose one, a pixel predicts its neighbour
# (r >= 0.98 on every rendered cohort image and on the real lung masks; no real film was at hand to
# measure, hence the wide margin). Uniform noise gives r ~ 0, and the embedding-based OOD score does
# not catch it (a noise image scores like a validation case: evals trust_probes). Below NOISE_BELOW
# the image is refused.
NOISE_BELOW = 0.3


def neighbour_correlation(arr: np.ndarray, max_rows: int = 256) -> float:
    """The larger of the horizontal and vertical lag-1 pixel correlations of a (H, W) image, on at most
    `max_rows` evenly spaced rows (and the rows under them). 1.0 when a direction has no variance."""
    rows = np.unique(np.linspace(0, arr.shape[0] - 2, min(max_rows, arr.shape[0] - 1)).astype(int))
    pairs = ((arr[rows, :-1], arr[rows, 1:]), (arr[rows], arr[rows + 1]))
    best = -1.0
    for a, b in pairs:
        a, b = a.astype(np.float64).ravel(), b.astype(np.float64).ravel()
        sa, sb = a.std(), b.std()
        if sa < 1e-12 or sb < 1e-12:
            return 1.0
        best = max(best, float(((a - a.mean()) * (b - b.mean())).mean() / (sa * sb)))
    return best
