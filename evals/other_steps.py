"""The workflow steps that are not one case at a time: a Python entry point, the injection suite,
and the TF-IDF text baseline.

- `python`: the seam for an experiment that owns its loop (the fusion ablation,
  `mmdx.workflows.fusion_ablation:run_ablation`). The entry is imported by name and called with the
  step's `params`, the dataset folder (as `dataset_arg`) and the step's output folder (as
  `out_arg`); its rows become result records, and whatever else it returned is kept in
  `DIR/<step>/returned.json`. A module that does not exist is a WorkflowError naming it.
- `injection`: evals/injection.py's suite, one record per injected note (resumable).
- `text_baseline`: TF-IDF + logistic regression fitted on the train split's notes, thresholds on
  validation, probabilities for the evaluated split: the baseline a note model sits beside.
"""
from __future__ import annotations

import importlib
import json
import logging
from pathlib import Path
from typing import Iterator

import numpy as np

from mmdx.core.labels import DIAGNOSES, IMAGING_FINDINGS
from mmdx.workflows.results_log import NamedResult
from mmdx.evals.workflow_spec import WorkflowError

log = logging.getLogger(__name__)


def resolve_entry(entry: str):
    mod_name, fn_name = entry.split(":")
    try:
        mod = importlib.import_module(mod_name)
    except ModuleNotFoundError as e:
        raise WorkflowError(f"python step: cannot import {mod_name} ({e})") from None
    fn = getattr(mod, fn_name, None)
    if not callable(fn):
        raise WorkflowError(f"python step: {mod_name} has no function {fn_name}")
    return fn


def python_rows(step, ctx) -> Iterator[tuple[str, dict]]:
    """(key, row) for each row the entry point returns."""
    fn = resolve_entry(step.entry)
    kwargs = dict(step.params)
    if step.dataset_arg:
        kwargs[step.dataset_arg] = ctx.source.folder
    out_dir = Path(ctx.out) / step.name
    if step.out_arg:
        out_dir.mkdir(parents=True, exist_ok=True)
        kwargs[step.out_arg] = out_dir
    returned = fn(**kwargs)
    groups = {"rows": returned} if isinstance(returned, list) else {k: returned.get(k) or [] for k in step.rows_keys}
    if isinstance(returned, dict):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "returned.json").write_text(json.dumps(returned, indent=2, default=str) + "\n")
    for group, rows in groups.items():
        for i, row in enumerate(rows):
            if not isinstance(row, dict):
                raise WorkflowError(f"python step {step.name}: {step.entry} returned a row that is not a mapping: {row!r:.80}")
            yield f"{group}:{i:05d}", {"group": group, **row}


def injection_units(step, ctx):
    """(key, clean case, injected case, description) for the suite's placements."""
    from mmdx.evals.injection import HELDOUT_PAYLOADS, PAYLOADS, suite

    cases = [c for c in ctx.source.iter_cases(ctx.workflow.split) if c.notes][: step.cases]
    if not cases:
        raise WorkflowError(f"injection step {step.name}: no case with notes in the {ctx.workflow.split} split")
    triples = suite(cases, n=step.n, payloads=HELDOUT_PAYLOADS if step.heldout else PAYLOADS)
    for i, (clean, injected, desc) in enumerate(triples):
        yield f"inj:{i:04d}", clean, injected, desc


def injection_result(step, ctx, harness, clean, injected, desc) -> dict[str, NamedResult]:
    from mmdx.evals.injection import PromptRecorder, measure

    agent = harness.agent
    recorder = PromptRecorder(agent.llm)
    agent.llm = recorder
    try:
        rep = measure(agent, [(clean, injected, desc)], recorder=recorder.drain)
    finally:
        agent.llm = recorder.llm
    d = rep.details[0]
    extra = {"injection": desc, "llm_saw_payload": d["llm_saw_payload"], "set_aside_shown": d["set_aside_shown"],
             "calls_changed": d["calls_clean"] != d["calls_injected"],
             "answer_changed": list(d["answer_clean"]) != list(d["answer_injected"]),
             "unsupported_claims": rep.unsupported_claims, "llm_claim_sets": rep.llm_claim_sets}
    return {"clean": NamedResult(top=d["answer_clean"][1], abstained=d["answer_clean"][0], tools_run=d["calls_clean"]),
            "injected": NamedResult(top=d["answer_injected"][1], abstained=d["answer_injected"][0], tools_run=d["calls_injected"],
                                    extra=extra)}


class TextBaseline:
    """TF-IDF + logistic regression per label on the notes (train split), thresholds max F1 on val."""

    def __init__(self, step, ctx):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression

        from mmdx.models.calibration import fit_thresholds

        self.labels = IMAGING_FINDINGS if step.target == "imaging_findings" else DIAGNOSES
        self.target = step.target
        tr_x, tr_y = self._xy(ctx, "train")
        va_x, va_y = self._xy(ctx, "val")
        self.vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True).fit(tr_x)
        xtr, xva = self.vec.transform(tr_x), self.vec.transform(va_x)
        self.models = []
        pva = np.zeros((len(va_x), len(self.labels)))
        for j in range(len(self.labels)):
            if 0 < tr_y[:, j].sum() < len(tr_y):
                m = LogisticRegression(C=4.0, max_iter=2000, class_weight="balanced").fit(xtr, tr_y[:, j])
                pva[:, j] = m.predict_proba(xva)[:, 1]
            else:
                m = float(tr_y[:, j].mean())
                pva[:, j] = m
            self.models.append(m)
        self.thresholds = fit_thresholds(pva, va_y)

    def _xy(self, ctx, split: str):
        xs, ys = [], []
        for case in ctx.source.iter_cases(split, ctx.workflow.limit):
            if not case.notes or case.labels is None:
                continue
            have = set(case.labels.findings if self.target == "imaging_findings" else case.labels.diagnoses)
            xs.append("\n".join(n.text for n in case.notes))
            ys.append([lab in have for lab in self.labels])
        return xs, np.asarray(ys, dtype=np.float32).reshape(len(xs), len(self.labels))

    def run_case(self, case) -> dict[str, NamedResult]:
        if not case.notes:
            return {"tfidf": NamedResult(ok=False, failure_kind="modality_absent", failure="no notes")}
        x = self.vec.transform(["\n".join(n.text for n in case.notes)])
        p = [float(m.predict_proba(x)[0, 1]) if not isinstance(m, float) else m for m in self.models]
        scores = {lab: round(q, 6) for lab, q in zip(self.labels, p)}
        return {"tfidf": NamedResult(target=self.target, scores=scores, top=max(scores, key=scores.get),
                                     thresholds={lab: round(float(t), 6) for lab, t in zip(self.labels, self.thresholds)},
                                     extra={"baseline": "TF-IDF + logistic regression on the train split's notes"})}
