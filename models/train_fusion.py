"""`mmdx train fused`: train the fused model on the frozen encoders' tokens, calibrate, evaluate, save.

    mmdx train fused --data cohorts/default --config small --out models/weights/fused
                     [--strategy irene] [--missing dropout] [--encoders DIR] [--epochs N] [--contrastive-epochs N]

The three encoders (models/weights/{cxr,labs,notes} or --encoders DIR/<modality>) encode the cohort
once (models/encodings.py, cached under --cache); the fusion layer trains on the train split with
the best epoch chosen by validation loss, per-label temperatures and thresholds are fitted on
validation, and the test split is scored on every case and on complete cases. Optional CLIP-style
contrastive pre-training aligns the modalities' pooled projections first (InfoNCE between every pair
present in a batch). The card names the encoder weights; the fused tool refuses tokens from others.
"""
from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from mmdx.models.calibration import apply_temperature, ece, evaluate, fit_calibration, fit_thresholds
from mmdx.models.card import ModelCard, save_checkpoint
from mmdx.models.encodings import Encoded, collate_fused, encode_cases
from mmdx.models.fusion import MODALITIES, FusionConfig, FusionModel

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")


def load_encoders(encoders_dir: Path | None = None, device: str = "cpu") -> dict:
    from mmdx.models.inference import load_model

    return {m: load_model(m, Path(encoders_dir) / m if encoders_dir else None, device=device) for m in MODALITIES}


@torch.no_grad()
def predict(model: FusionModel, enc: Encoded, present: np.ndarray | None = None, batch: int = 256):
    """Raw logits (N, L) and fused embeddings (N, d); `present` (N, M) hides modalities."""
    model.eval()
    logits, embs = [], []
    for i in range(0, len(enc), batch):
        idx = range(i, min(i + batch, len(enc)))
        b = collate_fused(enc, idx, None if present is None else present[i:i + batch], model.config.input_dims)
        lo, em = model(b["tokens"], b["masks"], b["present"])
        logits.append(lo.numpy())
        embs.append(em.numpy())
    return np.concatenate(logits), np.concatenate(embs)


def _fill_bank(model: FusionModel, enc: Encoded) -> None:
    if model.config.missing != "retrieval":
        return
    complete = np.where(enc.present().all(1))[0][: model.config.retrieval_bank]
    if len(complete):
        b = collate_fused(enc, complete, dims=model.config.input_dims)
        model.fill_bank(b["tokens"], b["masks"])


def _contrastive_step(model: FusionModel, b: dict, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE between the pooled projections of every pair of modalities present together."""
    xs = model._project(b["tokens"], b["masks"])
    z = [F.normalize(model._pool(xs[m], b["masks"][m]), dim=-1) for m in range(len(MODALITIES))]
    loss, pairs = 0.0, 0
    for a in range(len(MODALITIES)):
        for c in range(a + 1, len(MODALITIES)):
            both = b["present"][:, a] & b["present"][:, c]
            if both.sum() < 2:
                continue
            sim = z[a][both] @ z[c][both].T / temperature  # (n, n)
            target = torch.arange(sim.shape[0])
            loss = loss + (F.cross_entropy(sim, target) + F.cross_entropy(sim.T, target)) / 2
            pairs += 1
    return loss / max(pairs, 1)


def train_fused(config: FusionConfig, tr: Encoded, va: Encoded, *, epochs: int = 20, lr: float = 1e-3, batch: int = 64,
                seed: int = 0, restrict: np.ndarray | None = None, contrastive_epochs: int = 0) -> tuple[FusionModel, dict]:
    """Train with the lowest validation loss kept. `restrict` (M,) bool trains a model for a subset of
    modalities (the others hidden in every split)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = FusionModel(config)
    hide_tr = None if restrict is None else np.tile(restrict, (len(tr), 1))
    hide_va = None if restrict is None else np.tile(restrict, (len(va), 1))
    usable = np.where((tr.present() & (restrict if restrict is not None else True)).any(1))[0]
    pos = tr.y[usable].sum(0)
    pos_weight = torch.from_numpy(np.clip((len(usable) - pos) / np.maximum(pos, 1), 1.0, 10.0)).float()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
    steps = (epochs + contrastive_epochs) * math.ceil(len(usable) / batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 20))
                                              * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(steps, 1)))))
    best, best_state, history = float("inf"), None, []
    for epoch in range(contrastive_epochs + epochs):
        contrastive = epoch < contrastive_epochs
        model.train()
        _fill_bank(model, tr)
        order = rng.permutation(usable)
        losses = []
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            b = collate_fused(tr, idx, None if hide_tr is None else hide_tr[idx], config.input_dims)
            if contrastive:
                loss = _contrastive_step(model, b)
            else:
                logits, _, aux = model(b["tokens"], b["masks"], b["present"], return_aux=True)
                loss = F.binary_cross_entropy_with_logits(logits, torch.from_numpy(tr.y[idx]), pos_weight=pos_weight) + aux
            if not torch.is_tensor(loss):
                continue
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            losses.append(loss.item())
        if contrastive:
            history.append({"epoch": epoch + 1, "contrastive_loss": float(np.mean(losses)) if losses else None})
            continue
        _fill_bank(model, tr)
        va_logits, _ = predict(model, va, hide_va)
        ok = (va.present() & (restrict if restrict is not None else True)).any(1)
        val_loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(va_logits[ok]), torch.from_numpy(va.y[ok])))
        history.append({"epoch": epoch + 1, "train_loss": float(np.mean(losses)), "val_loss": val_loss})
        if val_loss < best:
            best, best_state = val_loss, copy.deepcopy(model.state_dict())
    if best_state is not None:
        model.load_state_dict(best_state)
    return model, {"history": history, "best_val_loss": best}


def calibrate_and_score(model: FusionModel, va: Encoded, te: Encoded, n_boot: int = 200, seed: int = 0) -> dict:
    """Temperatures and thresholds from validation; test metrics on every case and on complete cases."""
    va_logits, _ = predict(model, va)
    temps, biases = fit_calibration(va_logits, va.y)
    thresholds = fit_thresholds(apply_temperature(va_logits, temps, biases), va.y)
    te_logits, _ = predict(model, te)
    te_probs = apply_temperature(te_logits, temps, biases)
    complete = te.present().all(1)
    labels = tuple(model.config.labels)
    return {
        "temperatures": temps, "biases": biases, "thresholds": thresholds,
        "metrics": {
            "test": evaluate(te_probs, te.y, labels, thresholds, n_boot=n_boot, seed=seed),
            "test_complete_cases": evaluate(te_probs[complete], te.y[complete], labels, thresholds, n_boot=n_boot, seed=seed),
            "calibration": {"test_ece_before": ece(apply_temperature(te_logits, np.ones_like(temps)), te.y),
                            "test_ece_after": ece(te_probs, te.y)},
        },
    }


def encode_cohort(data: Path, encoders: dict, cache_dir: Path | None) -> dict[str, Encoded]:
    from mmdx.models.train import load_split

    return {s: encode_cases(load_split(data, s), encoders, cache_dir) for s in SPLITS}


def run(data: Path, config_name: str, out: Path, *, strategy: str | None = None, missing: str | None = None,
        encoders_dir: Path | None = None, epochs: int = 20, contrastive_epochs: int = 0, seed: int = 0,
        cache_dir: Path | None = Path("runs/cache"), n_boot: int = 200) -> ModelCard:
    from mmdx.models.build import CONFIG_DIR
    from mmdx.models.train import describe_data, load_split

    import json

    path = CONFIG_DIR / f"fused_{config_name}.json"
    if not path.is_file():
        raise ValueError(f"no config {config_name!r} for fused; known: "
                         f"{', '.join(sorted(p.stem[6:] for p in CONFIG_DIR.glob('fused_*.json')))}")
    cfg = {k: v for k, v in json.loads(path.read_text()).items() if not k.startswith("_")}
    if strategy:
        cfg["strategy"] = strategy
    if missing:
        cfg["missing"] = missing
    encoders = load_encoders(encoders_dir)
    cfg["input_dims"] = [_token_width(encoders[m]) for m in MODALITIES]
    config = FusionConfig(**cfg)
    t0 = time.time()
    enc = encode_cohort(data, encoders, cache_dir)
    model, info = train_fused(config, enc["train"], enc["val"], epochs=epochs, seed=seed, contrastive_epochs=contrastive_epochs)
    scored = calibrate_and_score(model, enc["val"], enc["test"], n_boot=n_boot, seed=seed)
    cases = load_split(data, "train")
    card = ModelCard(
        model_id="pending", kind="fused", config_name=config_name, config=_jsonable(config), labels=list(config.labels),
        target="diagnoses", thresholds=scored["thresholds"].tolist(), temperatures=scored["temperatures"].tolist(),
        biases=scored["biases"].tolist(),
        data_description=describe_data(cases), n_train=len(enc["train"]), n_val=len(enc["val"]), n_test=len(enc["test"]),
        metrics=scored["metrics"], training_seconds=round(time.time() - t0, 1),
        training={"epochs": epochs, "contrastive_epochs": contrastive_epochs, "seed": seed, **info,
                  "encoders": {m: e.card.weights_sha256 for m, e in encoders.items()},
                  "encoder_ids": {m: e.card.model_id for m, e in encoders.items()},
                  "n_parameters": sum(p.numel() for p in model.parameters())},
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    card = save_checkpoint(out, card, model.state_dict())
    log.info("fused (%s, %s): test macro AUROC %.3f", config.strategy, config.missing, card.metrics["test"]["macro_auroc"])
    return card


def _token_width(encoder) -> int:
    c = encoder.model.config
    return getattr(c, "n_embd", None) or encoder.model.bert.config.hidden_size


def _jsonable(config) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
