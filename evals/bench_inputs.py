"""What the serving benchmark serves: synthetic radiograph cases, a demo case with all three
modalities, and stand-in weights for the real cxr tool where no trained ones are installed."""
from __future__ import annotations

import dataclasses
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmdx.core.case import ChestXray, Demographics, Modality, PatientCase
from mmdx.core.labels import IMAGING_FINDINGS
from mmdx.core.tool import CaseInput


# ---- the stand-in weights (used when no trained cxr weights are installed) --------------------------

def standin_cxr_weights(root: Path, size: str = "small", overrides: dict | None = None) -> Path:
    """A CxrViT checkpoint at random init (seed 0) for the real cxr tool to load: config `size`
    with `overrides`, thresholds 0.5, temperatures 1. The same digest wherever it is written."""
    import torch

    from mmdx.models.build import build_model, load_config
    from mmdx.models.card import ModelCard, save_checkpoint

    config = load_config("cxr", size, **(overrides or {}))
    torch.manual_seed(0)
    model = build_model("cxr", config)
    n = len(IMAGING_FINDINGS)
    card = ModelCard(model_id="", kind="cxr", config_name=size + ("+" + str(overrides) if overrides else ""),
                     config=dataclasses.asdict(config), labels=list(IMAGING_FINDINGS), target="imaging_findings",
                     thresholds=[0.5] * n, temperatures=[1.0] * n,
                     data_description=f"none: random init (seed 0), a stand-in for benchmarks, "
                                      f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M params")
    save_checkpoint(root, card, model.state_dict())
    return root


@dataclass
class StandInFactory:
    """Picklable `tool_factory(name, device=)` for the runners: the real cxr tool on stand-in
    weights, tool name -> (config size, overrides). The weights are written once per process (in
    the worker that builds the tool, so it works on any machine of a cluster)."""

    specs: dict[str, tuple[str, dict]] = field(default_factory=lambda: {"cxr": ("small", {})})

    def __call__(self, name: str, device: str = "cpu"):
        from mmdx.tools.cxr import CxrTool

        size, overrides = self.specs[name]
        key = (size, tuple(sorted(overrides.items())))
        if key not in _STANDIN_DIRS:
            _STANDIN_DIRS[key] = standin_cxr_weights(Path(tempfile.mkdtemp(prefix="mmdx-standin-")), size, overrides)
        return CxrTool(weights_dir=_STANDIN_DIRS[key], device=device)


_STANDIN_DIRS: dict[tuple, Path] = {}  # stand-in checkpoints written in this process


FANOUT_SPECS = {  # three tools of different cost for the fan-out figure
    "cxr_tiny": ("tiny", {}),
    "cxr_small": ("small", {}),
    "cxr_deep": ("small", {"n_layer": 8}),
}


def real_cxr_available() -> tuple[bool, str]:
    """Whether the trained cxr model loads; and why not."""
    try:
        from mmdx.models.inference import load_model

        model = load_model("cxr", device="cpu")
        return True, f"trained cxr model {model.card.model_id}"
    except Exception as e:  # noqa: BLE001 - any failure to load means: use the stand-in, and say why
        return False, f"{type(e).__name__}: {str(e)[:200]}"


def write_cases(root: Path, n_requests: int, n_images: int = 32, side: int = 256, seed: int = 0) -> list[CaseInput]:
    """`n_requests` cases over `n_images` synthetic grayscale PNGs (smooth noise + a bright blob)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:side, 0:side] / side
    paths = []
    for k in range(n_images):
        low = rng.normal(size=(side // 16, side // 16))
        img = np.kron(low, np.ones((16, 16)))  # (side, side) blocky field
        cy, cx, r = rng.uniform(0.3, 0.7, size=2).tolist() + [rng.uniform(0.05, 0.2)]
        img = img + 3 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * r * r)) + 0.3 * rng.normal(size=img.shape)
        img = (255 * (img - img.min()) / (img.max() - img.min())).astype(np.uint8)
        p = root / f"img{k:03d}.png"
        Image.fromarray(img).save(p)
        paths.append(p)
    return [
        CaseInput(case=PatientCase(case_id=f"bench-{i}", demographics=Demographics(age=40 + i % 50),
                                   cxr=ChestXray(path=str(paths[i % n_images]), view="PA")))
        for i in range(n_requests)
    ]


def three_modality_case(root: Path) -> CaseInput:
    """A committed demo case with an X-ray, labs and a note (copied under `root`)."""
    from mmdx.data.demo_cases import copy_demo

    for p in sorted(x for x in copy_demo(root) if x.suffix == ".json"):
        case = PatientCase.load(p)
        if {Modality.cxr, Modality.labs, Modality.notes} <= case.modalities:
            return CaseInput(case=case)
    raise FileNotFoundError("no demo case has an X-ray, labs and a note")
