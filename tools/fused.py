"""The fused multimodal tool and the distilled unimodal students."""
from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import ClassVar

from mmdx.core.case import Modality
from mmdx.core.errors import ModalityAbsent, ToolInputError
from mmdx.core.tool import CaseInput, ClassifierOutput, FusedInput, LabelScore, Provenance, can_run, requires_of
from mmdx.tools.model_tool import ModelTool

log = logging.getLogger(__name__)
ENCODERS: tuple[str, ...] = ("cxr", "labs", "notes")  # the tools whose tokens the fused model reads


class FusedTool:
    """Fused multimodal classifier: one calibrated probability per diagnosis from the chest X-ray, lab and note encoders read together (IRENE-style bidirectional attention over their tokens), robust to a missing modality.

    Use it when the case has two or more of X-ray, labs and notes: its probabilities are the
    differential's. It reads the encoders' tokens from their outputs (run them first with
    with_encoding=True and pass them as `upstream`); called without them it runs the encoders itself.
    """

    name: ClassVar[str] = "fused"
    Input: ClassVar[type] = FusedInput
    Output: ClassVar[type] = ClassifierOutput
    requires: ClassVar[frozenset[Modality]] = frozenset()
    accepts: ClassVar[frozenset[Modality]] = frozenset({Modality.cxr, Modality.labs, Modality.notes})
    min_modalities: ClassVar[int] = 2
    depends_on: ClassVar[tuple[str, ...]] = ENCODERS

    def __init__(self, weights_dir: str | Path | None = None, device: str | None = None):
        self._weights_dir = Path(weights_dir) if weights_dir else None
        self._device = device or "cpu"
        self._model = None
        self._lock = threading.Lock()

    @property
    def model(self):
        with self._lock:
            if self._model is None:
                from mmdx.models.fused_model import load_fused

                self._model = load_fused(self._weights_dir, device=self._device)
            return self._model

    def _upstream(self, inputs: list[FusedInput]) -> list[dict[str, ClassifierOutput]]:
        """Each input's encoder outputs; for inputs that came without them, run the encoders here."""
        need = [i for i, inp in enumerate(inputs) if not inp.upstream]
        out = [dict(inp.upstream) for inp in inputs]
        if need:
            from mmdx import tools

            for m in ENCODERS:
                tool = tools.get(m)
                res = tool.batch([CaseInput(case=inputs[i].case, with_encoding=True) for i in need])
                for i, r in zip(need, res):
                    if isinstance(r, ClassifierOutput):
                        out[i][m] = r
        return out

    def batch(self, inputs: list[FusedInput]) -> list[ClassifierOutput | ToolInputError]:
        results: list = [None] * len(inputs)
        todo = []
        for i, inp in enumerate(inputs):
            if can_run(self, inp.case):
                todo.append(i)
            else:
                have = ", ".join(sorted(m.value for m in inp.case.modalities)) or "none"
                results[i] = ModalityAbsent(f"case {inp.case.case_id} has {have}; fused needs {requires_of(self)}",
                                            field="modalities")
        if not todo:
            return results
        ups = self._upstream([inputs[i] for i in todo])
        fused = self.model
        rows, keep, notes = [], [], []
        for i, up in zip(todo, ups):
            row, used, why = {}, [], []
            for m in ENCODERS:
                out = up.get(m)
                enc = getattr(out, "encoding", None)
                if out is None or enc is None:
                    if Modality(m) in inputs[i].case.modalities:
                        why.append(f"{m} present but its encoder gave no tokens (it failed or ran without with_encoding)")
                    row[m] = None
                    continue
                fused.check_encoder(m, enc.weights_sha256)
                row[m], _ = enc.tokens, used.append(m)
            if len(used) < 2:
                results[i] = ModalityAbsent(f"case {inputs[i].case.case_id}: only {', '.join(used) or 'no'} modality encoded; "
                                            f"fused needs two or more", field="modalities")
                continue
            missing = [m for m in ENCODERS if row[m] is None]
            if missing:
                why.append(f"{', '.join(missing)} missing: handled by the model's '{fused.model.config.missing}' method")
            rows.append(row)
            keep.append(i)
            notes.append(why)
        if rows:
            probs, embs = fused.predict_batch(rows)
            prov = Provenance(model_id=fused.card.model_id, weights_sha256=fused.card.weights_sha256,
                              calibration="per-label Platt scaling (temperature and bias) on the validation split; thresholds max F1",
                              temperatures=tuple(fused.card.temperatures), training_data=fused.card.data_description,
                              device=self._device, test_macro_auroc=(fused.card.metrics.get("test") or {}).get("macro_auroc"))
            for i, p, e, why in zip(keep, probs, embs, notes):
                scores = tuple(LabelScore(label=lab, probability=float(q), threshold=float(t))
                               for lab, q, t in zip(fused.labels, p, fused.card.thresholds))
                results[i] = ClassifierOutput(tool=self.name, case_id=inputs[i].case.case_id, target="diagnoses", scores=scores,
                                              embedding=tuple(float(x) for x in e), provenance=prov, notes=tuple(why))
        return results

    def __call__(self, inp: FusedInput | CaseInput) -> ClassifierOutput:
        if isinstance(inp, CaseInput):
            inp = FusedInput(case=inp.case)
        (out,) = self.batch([inp])
        if isinstance(out, ToolInputError):
            raise out
        return out


class StudentCxrTool(ModelTool):
    """Chest X-ray student: a small image model, distilled from the fused model, that gives calibrated probabilities for each diagnosis from the radiograph alone.

    Use it when the X-ray is the only modality: it was taught by the fused model what the image
    says about the diagnoses (the cxr tool reports imaging findings instead).
    """

    name = "student_cxr"
    kind = "student_cxr"
    target = "diagnoses"
    requires = frozenset({Modality.cxr})


class StudentLabsTool(ModelTool):
    """Labs student: a small lab and vital-sign model, distilled from the fused model, that gives calibrated probabilities for each diagnosis from the measurements alone.

    Use it when labs and vital signs are the only modality.
    """

    name = "student_labs"
    kind = "student_labs"
    target = "diagnoses"
    requires = frozenset({Modality.labs})


class StudentNotesTool(ModelTool):
    """Notes student: a small note model, distilled from the fused model, that gives calibrated probabilities for each diagnosis from the clinical notes alone.

    Use it when notes are the only modality.
    """

    name = "student_notes"
    kind = "student_notes"
    target = "diagnoses"
    requires = frozenset({Modality.notes})
