"""Shared types: the patient case, units, labels, the tool protocol and registry, config, the CLI."""
from mmdx.core.case import Modality, PatientCase
from mmdx.core.errors import CaseValidationError, MmdxError, ToolInputError

__all__ = ["Modality", "PatientCase", "CaseValidationError", "MmdxError", "ToolInputError"]
