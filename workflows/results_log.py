"""One results schema for every kind of evaluation run, appended to `results.jsonl` as it goes.

A run writes one `ResultRecord` line per (step, unit): a unit is a case for the case-by-case steps
(tools, missingness, probes, agent, routing), a row for a `python` step, an injected note for the
injection suite. Inside a record, `results` holds one `NamedResult` per thing compared on that unit
(a tool, a policy, a probe x tool, a baseline), so a case's results are written, and resumed, whole.

Durability: each line is written with one write() and flushed and fsync'd before the next unit. A
run killed mid-line leaves a torn last line; `ResultsLog` drops it (truncating the file to the last
whole line) and the same command carries on with the units not yet in the file.
"""
from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, Iterator

from pydantic import BaseModel, ConfigDict, Field

log = logging.getLogger(__name__)
SCHEMA_VERSION = 1


class Cost(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tool_ms: float = 0.0  # model compute, summed over the tool calls made
    llm_ms: float = 0.0
    model_calls: int = 0  # tool calls + LLM calls


class NamedResult(BaseModel):
    """One tool's, policy's or baseline's result on a unit; a failure is typed, never dropped."""

    model_config = ConfigDict(extra="forbid")
    ok: bool = True
    failure_kind: str | None = None  # a ToolFailure kind (modality_absent, tool_error, ...)
    failure: str | None = None  # its message
    target: str | None = None  # "diagnoses" or "imaging_findings"
    scores: dict[str, float] = Field(default_factory=dict)  # calibrated probability per label
    thresholds: dict[str, float] = Field(default_factory=dict)
    top: str | None = None  # the top label (for an answer: the top diagnosis)
    abstained: bool | None = None
    ood_flag: bool | None = None
    tools_run: list[str] = Field(default_factory=list)
    cost: Cost = Field(default_factory=Cost)
    model_id: str | None = None
    weights_sha256: str | None = None
    extra: dict[str, Any] = Field(default_factory=dict)  # kind-specific (proposed tools, relevance, probe...)


class ResultRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: int = SCHEMA_VERSION
    workflow: str
    step: str
    kind: str  # the step kind
    key: str  # unique within the step: the case id, or a row / injection id
    case_id: str | None = None
    split: str | None = None
    truth: dict[str, list[str]] | None = None  # {"diagnoses": [...], "findings": [...]}: recorded labels (synthetic)
    results: dict[str, NamedResult] = Field(default_factory=dict)
    row: dict[str, Any] | None = None  # a python step's row of metrics, as returned


class ResultsLog:
    """`results.jsonl` in a run folder: append records, know which units are done, read them back."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._drop_torn_tail()
        self._done: set[tuple[str, str]] = {(r.step, r.key) for r in self.records()}
        self._f = open(self.path, "a", encoding="utf-8")

    def _drop_torn_tail(self) -> None:
        if not self.path.is_file():
            return
        data = self.path.read_bytes()
        if not data or data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        log.warning("%s: dropping a torn last line (%d bytes) from a run that was killed mid-write", self.path, len(data) - keep)
        with open(self.path, "r+b") as f:
            f.truncate(keep)

    def done(self, step: str, key: str) -> bool:
        return (step, key) in self._done

    def count(self, step: str) -> int:
        return sum(1 for s, _ in self._done if s == step)

    def append(self, record: ResultRecord) -> None:
        self._f.write(record.model_dump_json() + "\n")
        self._f.flush()
        os.fsync(self._f.fileno())
        self._done.add((record.step, record.key))

    def records(self, step: str | None = None) -> Iterator[ResultRecord]:
        """Every record (of one step), in file order, one at a time (the file is never held whole)."""
        if not self.path.is_file():
            return
        with open(self.path, encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    rec = ResultRecord.model_validate(json.loads(line))
                    if step is None or rec.step == step:
                        yield rec

    def close(self) -> None:
        self._f.close()
