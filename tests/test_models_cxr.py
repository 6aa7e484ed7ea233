"""ViT shapes and position handling (models/cxr_vit.py)."""
import pytest
import torch

from mmdx.core.labels import IMAGING_FINDINGS
from mmdx.models.build import build_model, load_config
from mmdx.models.cxr_vit import CxrViT, ViTConfig

torch.set_num_threads(1)


def test_shapes_tiny_config():
    cfg = load_config("cxr", "tiny")
    model = build_model("cxr", cfg).eval()
    logits, emb = model(torch.randn(3, 1, cfg.image_size, cfg.image_size))
    assert logits.shape == (3, len(IMAGING_FINDINGS))
    assert emb.shape == (3, cfg.n_embd)


def test_no_registers_and_wrong_size():
    model = CxrViT(ViTConfig(image_size=16, patch_size=4, n_layer=1, n_head=1, n_embd=8, n_registers=0)).eval()
    assert model(torch.randn(1, 1, 16, 16))[0].shape == (1, len(IMAGING_FINDINGS))
    with pytest.raises(ValueError, match="16x16"):
        model(torch.randn(1, 1, 32, 32))
    with pytest.raises(ValueError, match="multiple"):
        ViTConfig(image_size=30, patch_size=8)


def test_position_embedding_makes_layout_matter():
    torch.manual_seed(0)
    model = CxrViT(ViTConfig(image_size=16, patch_size=8, n_layer=1, n_head=1, n_embd=8, dropout=0.0)).eval()
    with torch.no_grad():
        model.row_pos.normal_(std=1.0)
        model.col_pos.normal_(std=1.0)
    img = torch.randn(1, 1, 16, 16)
    swapped = torch.cat([img[..., 8:, :], img[..., :8, :]], dim=2)  # top and bottom halves swapped
    assert not torch.allclose(model(img)[0], model(swapped)[0])
