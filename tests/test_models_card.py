"""Model card round trip and weight digests (models/card.py, models/inference.py)."""
import numpy as np
import pytest
import torch

from mmdx.core.errors import WeightsError
from mmdx.models.build import build_model, config_to_dict, load_config
from mmdx.models.card import CARD_FILE, WEIGHTS_FILE, ModelCard, fit_ood, load_card, save_checkpoint
from mmdx.models.inference import load_model


def _save(tmp_path):
    cfg = load_config("labs", "tiny")
    torch.manual_seed(0)
    model = build_model("labs", cfg)
    rng = np.random.default_rng(0)
    card = ModelCard(model_id="pending", kind="labs", config_name="tiny", config=config_to_dict(cfg),
                     labels=list(cfg.labels), target="diagnoses", thresholds=[0.5] * len(cfg.labels),
                     temperatures=[1.0] * len(cfg.labels), feature_stats={"wbc": (8.0, 3.0)},
                     ood=fit_ood(rng.normal(size=(200, cfg.n_embd)), rng.normal(size=(50, cfg.n_embd))),
                     data_description="synthetic test data")
    return save_checkpoint(tmp_path, card, model.state_dict()), model


def test_card_round_trip_and_load(tmp_path):
    card, model = _save(tmp_path)
    again = load_card(tmp_path)
    assert again == card and again.model_id.startswith("mmdx-labs-tiny-")
    assert again.feature_stats["wbc"] == (8.0, 3.0)
    loaded = load_model("labs", tmp_path, device="cpu")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.model.state_dict()[k], v)


def test_ood_score_flags_far_embeddings(tmp_path):
    card, _ = _save(tmp_path)
    rng = np.random.default_rng(1)
    near = card.ood.score(rng.normal(size=(500, len(card.ood.mean))))
    assert 0.8 < np.percentile(near, 95) < 1.25
    assert card.ood.score(5 + rng.normal(size=(3, len(card.ood.mean)))).min() > 5


def test_sha256_mismatch_and_missing_files_raise_weights_error(tmp_path):
    _save(tmp_path)
    w = tmp_path / WEIGHTS_FILE
    data = bytearray(w.read_bytes())
    data[-1] ^= 0xFF
    w.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="sha256"):
        load_model("labs", tmp_path, device="cpu")
    w.unlink()
    with pytest.raises(WeightsError, match="missing"):
        load_model("labs", tmp_path, device="cpu")
    (tmp_path / CARD_FILE).unlink()
    with pytest.raises(WeightsError, match="no model card"):
        load_model("labs", tmp_path, device="cpu")


def test_wrong_kind_raises(tmp_path):
    _save(tmp_path)
    with pytest.raises(WeightsError, match="labs model"):
        load_model("cxr", tmp_path, device="cpu")
