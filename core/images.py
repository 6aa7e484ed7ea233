"""Read a chest radiograph (PNG, JPEG or DICOM) into a float32 grayscale array in [0, 1].

Every failure is a typed `CorruptInput` naming the file: truncated or corrupt files, images too
large to be a radiograph, unsupported channel layouts, DICOMs without pixel data.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from mmdx.core.errors import CorruptInput

MAX_PIXELS = 8192 * 8192  # larger than any radiograph detector; beyond it we refuse, not allocate
MIN_SIDE = 16


def _from_dicom(path: Path) -> np.ndarray:
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(str(path))
        rows, cols = int(ds.Rows), int(ds.Columns)
        if rows * cols > MAX_PIXELS:
            raise CorruptInput(f"{path.name}: DICOM of {rows}x{cols} pixels exceeds the {MAX_PIXELS} pixel limit", field="cxr.path")
        arr = ds.pixel_array.astype(np.float32)
    except CorruptInput:
        raise
    except (InvalidDicomError, AttributeError, ValueError, TypeError, KeyError, EOFError, OSError) as e:
        raise CorruptInput(f"{path.name}: unreadable DICOM ({type(e).__name__}: {e})", field="cxr.path") from e
    if arr.ndim == 3:  # multi-frame or colour: take the first frame / average channels
        arr = arr[0] if arr.shape[0] < arr.shape[-1] else arr.mean(-1)
    slope = float(getattr(ds, "RescaleSlope", 1) or 1)
    intercept = float(getattr(ds, "RescaleIntercept", 0) or 0)
    arr = arr * slope + intercept
    if str(getattr(ds, "PhotometricInterpretation", "")).upper() == "MONOCHROME1":
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
    return (arr - lo) / (hi - lo)
