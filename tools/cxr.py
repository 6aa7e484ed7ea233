from __future__ import annotations

from mmdx.core.case import Modality
from mmdx.tools.model_tool import ModelTool


class CxrTool(ModelTool):
    """Chest X-ray classifier: a Vision Transformer reads the frontal radiograph and returns calibrated probabilities for consolidation, pleural effusion, cardiomegaly, hyperinflation, pulmonary edema and no finding.

    Use it whenever the case has a chest X-ray. Imaging findings are evidence for diagnoses
    (consolidation for pneumonia; cardiomegaly, edema and effusion for heart failure; hyperinflation
    for COPD), not diagnoses themselves. The default weights were trained on synthetic radiographs.
    """

    name = "cxr"
    kind = "cxr"
    target = "imaging_findings"
    requires = frozenset({Modality.cxr})
