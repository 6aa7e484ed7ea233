"""The shared shape of the modality classifier tools (cxr, labs, notes).

Each tool wraps one trained model from mmdx.models: it checks the case has the modality, runs one
batched forward pass (`batch`) and returns a typed `ClassifierOutput` with calibrated probabilities,
the decision thresholds from the model card, the pooled embedding, an out-of-distribution score and
provenance. Per-case input errors come back in place as `ToolInputError`s from `batch`; `__call__`
raises them. The three tools differ only in name, modality and target, so they share this class.
"""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import ClassVar

from mmdx.core.case import Modality
from mmdx.core.errors import ToolInputError
from mmdx.core.tool import (CaseInput, ClassifierOutput, Encoding, LabelScore, Provenance, partition_prepared,
                            partition_runnable)

log = logging.getLogger(__name__)

OOD_FLAG_AT = 1.5  # ood_score is scaled so 1.0 is the 95th percentile of validation cases


class ModelTool:
    name: ClassVar[str]
    kind: ClassVar[str]  # which model in mmdx.models (cxr, labs, notes)
    target: ClassVar[str]  # "imaging_findings" or "diagnoses"
    requires: ClassVar[frozenset[Modality]]
    Input: ClassVar[type] = CaseInput
    Output: ClassVar[type] = ClassifierOutput

    def __init__(self, weights_dir: str | Path | None = None, device: str | None = None):
        self._weights_dir = Path(weights_dir) if weights_dir else None
        self._device = device
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        """The loaded model, loaded once on first use (weights digest checked by the loader)."""
        with self._lock:
            if self._model is None:
                from mmdx.models.inference import load_model

                self._model = load_model(self.kind, self._weights_dir, device=self._device)
            return self._model

    def provenance(self) -> Provenance:
        card = self.model.card
        return Provenance(
            model_id=card.model_id,
            weights_sha256=card.weights_sha256,
            calibration="per-label Platt scaling (temperature and bias) fitted on the validation split; thresholds max F1 on validation",
            temperatures=tuple(card.temperatures),
            training_data=card.data_description,
            device=str(getattr(self.model, "device", "cpu")),
            test_macro_auroc=(card.metrics.get("test") or {}).get("macro_auroc"),
        )

    def batch(self, inputs: list[CaseInput]) -> list[ClassifierOutput | ToolInputError]:
        """One forward pass over every input that has the modality; errors come back in place."""
        return self.infer(inputs, self.prepare(inputs))

    # The two stages of `batch`, for runners that overlap them (see core.tool.StagedTool): `prepare`
    # is CPU work per input (decode, resize, tokenise) and may run in several threads on parts of a
    # batch; `infer` is the batched forward pass.

    def prepare(self, inputs: list[CaseInput]) -> list:
        """Per input: the model's featurized input, or the ToolInputError that stops it."""
        prepared, todo = partition_runnable(self, inputs)
        model = self.model
        for i in todo:
            try:
                prepared[i] = model.featurize(inputs[i].case)
            except ToolInputError as e:
                prepared[i] = e
        return prepared

    def infer(self, inputs: list[CaseInput], prepared: list) -> list[ClassifierOutput | ToolInputError]:
        """Outputs for `inputs` from their `prepare`d items: one batched forward pass."""
        results, todo = partition_prepared(prepared)
        if todo:
            with_tokens = any(getattr(inputs[i], "with_encoding", False) for i in todo)
            preds = self.model.predict_items([prepared[i] for i in todo], with_tokens=with_tokens)
            prov = self.provenance()
            card = self.model.card
            for i, pred in zip(todo, preds):
                scores = tuple(
                    LabelScore(label=lab, probability=float(p), threshold=float(thr))
                    for lab, p, thr in zip(card.labels, pred.probs, card.thresholds)
                )
                ood = float(pred.ood_score)
                notes = list(pred.notes)
                if ood > OOD_FLAG_AT:
                    notes.append(f"input is unlike the training data (OOD score {ood:.2f} > {OOD_FLAG_AT}); treat with caution")
                results[i] = ClassifierOutput(
                    tool=self.name, case_id=inputs[i].case.case_id, target=self.target, scores=scores,
                    embedding=tuple(float(x) for x in pred.embedding), ood_score=ood, ood_flag=ood > OOD_FLAG_AT,
                    provenance=prov, notes=tuple(notes),
                    encoding=(Encoding(tool=self.name, weights_sha256=card.weights_sha256, tokens=pred.tokens)
                              if getattr(inputs[i], "with_encoding", False) and pred.tokens is not None else None),
                )
        return results

    def __call__(self, inp: CaseInput) -> ClassifierOutput:
        (out,) = self.batch([inp])
        if isinstance(out, ToolInputError):
            raise out
        return out
