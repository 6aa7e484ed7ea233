"""The packaged demo cases: a few synthetic cases (and their X-ray PNGs) committed under data/demo/.

Small and import-light on purpose: the agent's `mmdx demo`, the tests and the benchmarks read them
without loading the cohort generator.
"""
from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path


def demo_dir() -> Path:
    """The packaged directory of committed demo cases."""
    return Path(str(resources.files("mmdx.data") / "demo"))


def copy_demo(out: Path) -> list[Path]:
    """Copy the committed demo cases (cases/*.json) and images (images/*.png) to `out`."""
    src = demo_dir()
    written = []
    for sub in ("cases", "images"):
        for p in sorted((src / sub).glob("*")):
            if p.is_file():
                dst = Path(out) / sub / p.name
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(p, dst)
                written.append(dst)
    if not any(p.suffix == ".json" for p in written):
        raise FileNotFoundError(f"no demo cases found under {src}")
    return written
