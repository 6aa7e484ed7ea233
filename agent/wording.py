"""How labels and tools are named to a clinician: one place, so every sentence says the same thing.

"no_acute_finding" is said as what it means, "none of the N conditions mmdx covers", never as an
all-clear ("no acute finding", "normal").
"""
from __future__ import annotations

from mmdx.core.labels import DIAGNOSES, HUMAN_NAMES

NO_ACUTE = "no_acute_finding"
COVERED: tuple[str, ...] = tuple(d for d in DIAGNOSES if d != NO_ACUTE)  # the conditions mmdx can name
TOOL_NAMES = {"cxr": "chest X-ray model", "labs": "labs model", "notes": "notes model", "fused": "fused model"}


def scope_phrase() -> str:
    return f"none of the {len(COVERED)} conditions mmdx covers"


def label_name(label: str) -> str:
    return scope_phrase() if label == NO_ACUTE else HUMAN_NAMES.get(label, label.replace("_", " "))


def tool_name(tool: str) -> str:
    if tool.startswith("student_"):
        return f"{tool.removeprefix('student_')} student model"
    return TOOL_NAMES.get(tool, f"{tool} model")


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]
