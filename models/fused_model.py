"""Load a trained fused model and predict from encoder tokens (the fused tool's engine).

    fused = load_fused()                                   # models/weights/fused/ in the package
    probs, emb = fused.predict({"cxr": toks_or_None, "labs": ..., "notes": ...})

Probabilities are calibrated (per-label temperatures from the card); a missing modality is handled by
the method the model was trained with (models/fusion.py). The card names the encoder weights the
model was trained on: tokens from other encoder weights are refused (WeightsError), since the
fusion layer would read them wrongly.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmdx.core.errors import WeightsError
from mmdx.models.calibration import apply_temperature
from mmdx.models.card import ModelCard, load_card, load_weights
from mmdx.models.fusion import MODALITIES, FusionConfig, FusionModel

WEIGHTS_ROOT = Path(__file__).resolve().parent / "weights"


def fusion_config(card: ModelCard) -> FusionConfig:
    return FusionConfig(**card.config)


class LoadedFused:
    def __init__(self, card: ModelCard, model: FusionModel, device: str = "cpu"):
        self.card = card
        self.model = model.to(device).eval()
        self.device = device
        self.temperatures = np.asarray(card.temperatures, dtype=np.float64)
        self.biases = np.asarray(card.biases, dtype=np.float64)
        self.thresholds = np.asarray(card.thresholds, dtype=np.float64)
        self.encoders: dict[str, str] = dict(card.training.get("encoders", {}))  # modality -> weights sha256

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.card.labels)

    def check_encoder(self, modality: str, weights_sha256: str) -> None:
        want = self.encoders.get(modality)
        if want and want != weights_sha256:
            raise WeightsError(f"the fused model was trained on {modality} encoder {want[:12]}, got tokens from "
                               f"{weights_sha256[:12]}; retrain it (mmdx train fused) after changing an encoder")

    @torch.inference_mode()
    def predict_batch(self, rows: list[dict[str, np.ndarray | None]]) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated probabilities (B, L) and fused embeddings (B, d) for rows of modality -> tokens."""
        B = len(rows)
        dims = self.model.config.input_dims
        toks, masks = [], []
        for j, m in enumerate(MODALITIES):
            width = max([len(r[m]) for r in rows if r.get(m) is not None] or [1])
            x = torch.zeros(B, width, dims[j])
            mk = torch.zeros(B, width, dtype=torch.bool)
            for i, r in enumerate(rows):
                t = r.get(m)
                if t is not None:
                    x[i, : len(t)] = torch.from_numpy(np.asarray(t, dtype=np.float32))
                    mk[i, : len(t)] = True
            toks.append(x.to(self.device))
            masks.append(mk.to(self.device))
        present = torch.tensor([[r.get(m) is not None for m in MODALITIES] for r in rows], dtype=torch.bool, device=self.device)
        logits, emb = self.model(toks, masks, present)
        return apply_temperature(logits.float().cpu().numpy(), self.temperatures, self.biases), emb.float().cpu().numpy()


def load_fused(weights_dir: Path | None = None, device: str = "cpu") -> LoadedFused:
    weights_dir = Path(weights_dir) if weights_dir is not None else WEIGHTS_ROOT / "fused"
    card = load_card(weights_dir)
    if card.kind != "fused":
        raise WeightsError(f"{weights_dir} holds a {card.kind} model, not a fused one")
    model = FusionModel(fusion_config(card))
    try:
        model.load_state_dict(load_weights(weights_dir, card))
    except RuntimeError as e:
        raise WeightsError(f"fused weights do not fit the card's config: {str(e)[:300]}") from e
    return LoadedFused(card, model, device)
