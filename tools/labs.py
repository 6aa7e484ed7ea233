from __future__ import annotations

from mmdx.core.case import Modality
from mmdx.tools.model_tool import ModelTool


class LabsTool(ModelTool):
    """Labs and vital-signs model: a temporal transformer over the irregular series of lab results and vital signs (real timestamps, Time2Vec) that returns calibrated probabilities for each diagnosis.

    Use it whenever the case has lab or vital-sign measurements. Values arrive in canonical units;
    it was trained on the emergency-department stay (triage to about 5 hours) of a synthetic ED cohort.
    """

    name = "labs"
    kind = "labs"
    target = "diagnoses"
    requires = frozenset({Modality.labs})
