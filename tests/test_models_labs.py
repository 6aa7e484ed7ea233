"""Lab transformer: shapes, padding, Time2Vec (models/lab_transformer.py)."""
import torch

from mmdx.core.labels import DIAGNOSES
from mmdx.models.build import build_model, load_config
from mmdx.models.lab_transformer import N_DEMO, LabConfig

VOCAB = LabConfig().variables

torch.set_num_threads(1)


def _model():
    torch.manual_seed(0)
    return build_model("labs", load_config("labs", "tiny")).eval()


def _batch(B=2, T=7, seed=0):
    g = torch.Generator().manual_seed(seed)
    var_idx = torch.randint(0, len(VOCAB), (B, T), generator=g)
    values = torch.randn(B, T, generator=g)
    times = torch.rand(B, T, generator=g) * 72  # hours
    mask = torch.ones(B, T, dtype=torch.bool)
    demo = torch.rand(B, N_DEMO, generator=g)
    return var_idx, values, times, mask, demo


def test_shapes():
    model = _model()
    logits, emb = model(*_batch())
    assert logits.shape == (2, len(DIAGNOSES)) and emb.shape == (2, model.config.n_embd)


def test_padding_tokens_do_not_change_the_output():
    model = _model()
    var_idx, values, times, mask, demo = _batch(B=1, T=5)
    ref = model(var_idx, values, times, mask, demo)[0]
    pad = 4
    padded = model(
        torch.cat([var_idx, torch.randint(0, len(VOCAB), (1, pad))], 1),
        torch.cat([values, 50 * torch.randn(1, pad)], 1),
        torch.cat([times, 1000 * torch.rand(1, pad)], 1),
        torch.cat([mask, torch.zeros(1, pad, dtype=torch.bool)], 1),
        demo,
    )[0]
    torch.testing.assert_close(ref, padded)


def test_time2vec_uses_timestamps_not_token_order():
    model = _model()
    var_idx, values, times, mask, demo = _batch(B=1, T=8)
    ref = model(var_idx, values, times, mask, demo)[0]
    perm = torch.randperm(8, generator=torch.Generator().manual_seed(1))
    shuffled = model(var_idx[:, perm], values[:, perm], times[:, perm], mask[:, perm], demo)[0]
    torch.testing.assert_close(ref, shuffled, rtol=1e-5, atol=1e-5)  # same (var, value, time) set -> same output
    other_times = model(var_idx, values, times * 0.3 + 5.0, mask, demo)[0]
    assert (ref - other_times).abs().max() > 1e-4  # different times -> different output
    # shuffling the times alone (values keep their positions) also changes it
    assert (ref - model(var_idx, values, times[:, perm], mask, demo)[0]).abs().max() > 1e-4


def test_repeated_timestamps_are_allowed():
    model = _model()
    var_idx, values, _, mask, demo = _batch(B=2, T=6)
    times = torch.zeros(2, 6)  # every measurement at hour 0: non-unique positions are fine
    logits, _ = model(var_idx, values, times, mask, demo)
    assert torch.isfinite(logits).all()


def test_demographics_enter_the_output():
    model = _model()
    var_idx, values, times, mask, demo = _batch(B=1)
    assert not torch.allclose(model(var_idx, values, times, mask, demo)[0], model(var_idx, values, times, mask, demo + 1)[0])
