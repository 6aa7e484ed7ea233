"""What a chat message asks for: an explicit slash command, or a schema-constrained LLM call.

No keyword matching: "Why is there no pneumonia given the labs?" mentions labs and a negation, and
is an explanation, not a what-if. The LLM answers under a schema whose fields are enums (the
intent, the modality a what-if drops, the labels the question is about); its answer is validated,
and when the LLM fails the chat says so and lists the slash commands instead of guessing.

Intents:
- explain: why a diagnosis or finding is or is not likely, what a tool found (from stored outputs);
- what_if: the answer without one modality (`modality`), rerunning only the tools that read it;
- new_case: start over with a new patient (needs an attached case) or rerun this one;
- compare: the answers so far side by side (the full case and each what-if);
- general: anything else; answered only if every clause passes the prose check.
"""
from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from mmdx.core.case import Modality
from mmdx.core.labels import DIAGNOSES, IMAGING_FINDINGS
from mmdx.agent.prompts import intent_request  # noqa: F401 (re-exported: the chat asks through it)

INTENTS = ("explain", "what_if", "new_case", "compare", "general")
MODALITY_WORDS = {"cxr": "cxr", "xray": "cxr", "x-ray": "cxr", "image": "cxr", "imaging": "cxr", "labs": "labs", "lab": "labs",
                  "vitals": "labs", "notes": "notes", "note": "notes"}
SLASH_HELP = ("/diagnose (run the agent on this case again), /explain [LABEL] (why LABEL is or is not likely), "
              "/whatif cxr|labs|notes (the answer without that input), /compare (the answers so far), /ask TEXT (a general question)")


class Intent(BaseModel):
    intent: Literal["explain", "what_if", "new_case", "compare", "general"]
    modality: Literal["cxr", "labs", "notes", "none"] = "none"
    labels: list[str] = Field(default_factory=list, max_length=3)
    source: Literal["slash", "llm", "rule"] = "llm"

    def dropped(self) -> Modality | None:
        return None if self.modality == "none" else Modality(self.modality)


def intent_schema() -> dict:
    return {
        "type": "object",
        "properties": {
            "intent": {"type": "string", "enum": list(INTENTS)},
            "modality": {"type": "string", "enum": ["cxr", "labs", "notes", "none"]},
            "labels": {"type": "array", "maxItems": 3, "items": {"type": "string", "enum": [*DIAGNOSES, *IMAGING_FINDINGS]}},
        },
        "required": ["intent", "modality", "labels"], "additionalProperties": False,
    }


def parse_slash(text: str) -> Intent | str | None:
    """An Intent for a slash command, the string "diagnose" for /diagnose, an error string for a bad
    one (starting "!"), or None when `text` is not a command."""
    if not text.startswith("/"):
        return None
    cmd, _, rest = text.strip().partition(" ")
    rest = rest.strip()
    if cmd == "/diagnose":
        return "diagnose"
    if cmd == "/explain":
        labels = [w for w in rest.lower().replace(",", " ").split() if w in (*DIAGNOSES, *IMAGING_FINDINGS)]
        if rest and not labels:
            return f"!unknown label {rest!r}; labels: {', '.join((*DIAGNOSES, *IMAGING_FINDINGS))}"
        return Intent(intent="explain", labels=labels, source="slash")
    if cmd in ("/whatif", "/without"):
        mod = MODALITY_WORDS.get(rest.lower())
        if mod is None:
            return "!say which input to drop: /whatif cxr, /whatif labs or /whatif notes"
        return Intent(intent="what_if", modality=mod, source="slash")
    if cmd == "/compare":
        return Intent(intent="compare", source="slash")
    if cmd == "/ask":
        return Intent(intent="general", source="slash")
    return f"!unknown command {cmd}; commands: {SLASH_HELP}"
