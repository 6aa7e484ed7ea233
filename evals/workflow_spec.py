"""The evaluation workflow file (`workflows/*.yaml`), validated by pydantic at the boundary.

    name: demo
    description: what this run answers
    dataset:
      cohort: {dir: cohorts/demo, seeds: [31], population: 300, start: 2024-01-01, end: 2024-06-30}
      # or  path: my_import          (a real-format import: DIR/cases/{train,val,test}/, or a flat folder)
      # or  iu_reports: {}           (the real Indiana University report texts, split as in training)
    split: test                      # the cases scored
    calibration_split: val           # conformal sets and the escalation threshold are fitted here (optional)
    limit: 200                       # first N case files of each split (sorted), optional
    steps:
      - {name: tools, kind: tools, tools: [labs, notes, fused]}
    metrics: {bootstrap: 200, conformal_alpha: 0.1, ece_bins: 10}

Every key is checked: an unknown one is an error that names it and where it is (`steps.0.toolz:
unknown key`). Step kinds are in `STEP_KINDS`; each has its own model below, and the `python` kind
is the seam for code that owns its own loop (the fusion ablation): it names an entry point
`module:function` and the parameters it is called with.
"""
from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from mmdx.core.errors import MmdxError


class WorkflowError(MmdxError):
    """A workflow file that cannot be run: unreadable YAML, an unknown key, a bad value."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CohortSpec(_Strict):
    """The embedded synthetic ED cohort, by seeds and dates (built into `dir` when it is not there)."""

    dir: str = "cohorts/default"
    seeds: list[int] = Field(default_factory=lambda: [1, 2, 3, 4, 5, 6, 7])
    population: int = Field(default=4000, ge=10)
    start: date = date(2024, 1, 1)
    end: date = date(2024, 12, 31)
    build_if_missing: bool = True


class DatasetSpec(_Strict):
    cohort: CohortSpec | None = None
    path: str | None = None  # a real-format import (cases/{split}/) or a flat folder of case files
    iu_reports: dict | None = None  # {} = the packaged IU reports; {path: FILE} another copy of NLMCXR_reports.tgz

    @model_validator(mode="after")
    def _one_source(self):
        given = [k for k in ("cohort", "path", "iu_reports") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"dataset needs exactly one of cohort, path, iu_reports (got {', '.join(given) or 'none'})")
        return self


class MetricsSpec(_Strict):
    bootstrap: int = Field(default=200, ge=0)  # resamples for the 95% CIs (0: none)
    conformal_alpha: float = Field(default=0.1, gt=0, lt=1)  # split-conformal target coverage 1 - alpha
    ece_bins: int = Field(default=10, ge=2)
    seed: int = 0


class _Step(_Strict):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_-]+$")


class ToolsStep(_Step):
    """Each named tool on every case (dependencies first; the fused model reads the encoders' tokens)."""

    kind: Literal["tools"]
    tools: list[str] = Field(min_length=1)
    weights: dict[str, str] = Field(default_factory=dict)  # tool -> weights folder (default: the shipped ones)


class MissingnessStep(_Step):
    """Each tool on every case with modalities removed: one result per (tool, pattern)."""

    kind: Literal["missingness"]
    tools: list[str] = Field(min_length=1)
    patterns: list[Literal["all", "no_cxr", "no_labs", "no_notes", "cxr_only", "labs_only", "notes_only"]] = Field(
        default_factory=lambda: ["all", "no_cxr", "no_labs", "no_notes"])


class ProbesStep(_Step):
    """Trust probes: each tool on inputs destroyed on purpose; a tool that stays confident fails."""

    kind: Literal["probes"]
    tools: list[str] = Field(min_length=1)
    probes: list[Literal["blank_image", "noise_image", "swapped_image", "shuffled_labs", "swapped_notes"]] = Field(
        default_factory=lambda: ["blank_image", "noise_image", "swapped_image", "shuffled_labs", "swapped_notes"])
    confident_at: float = Field(default=0.8, gt=0, le=1)  # a top probability at or over this is "confident"
    keep_rate_fails_at: float = Field(default=0.5, gt=0, le=1)  # a tool fails when it keeps answer + confidence this often


class AgentSpec(_Strict):
    llm: str = "qwen2.5-coder-1.5b"  # as `--llm`: a packaged name, a .gguf path, a folder or a server URL
    threads: int = 1
    claims_by_llm: bool = True  # False: mmdx writes the claims (faster; the LLM only plans)
    sample: int | None = Field(default=None, ge=1)  # run the LLM on this many cases of the split (evenly spread)
    llm_timeout_s: float = Field(default=300.0, gt=0)  # per LLM call; a call past it degrades the answer, visibly


class AgentStep(_Step):
    """The whole agent (LLM plan, guard, tools, reflection, answer) on every case, with baselines."""

    kind: Literal["agent"]
    agent: AgentSpec = Field(default_factory=AgentSpec)


class RoutingStep(_Step):
    """Routing policies on the same cases: accuracy against cost."""

    kind: Literal["routing"]
    policies: list[Literal["llm_scheduler", "every_tool", "fused_only", "students_only", "escalation", "oracle"]] = Field(
        default_factory=lambda: ["llm_scheduler", "every_tool", "fused_only", "students_only", "escalation", "oracle"])
    escalate_below: float = Field(default=0.8, gt=0, le=1)  # escalation: the student's top probability under this = uncertain
    agent: AgentSpec = Field(default_factory=lambda: AgentSpec(sample=40))


class PythonStep(_Step):
    """The seam for an experiment that owns its loop (the fusion ablation): `entry` (`module:function`)
    is called with `params` as keyword arguments, plus the dataset folder as `dataset_arg` and the
    step's own output folder as `out_arg`. It returns a list of rows (dicts of metrics), or a dict
    whose `rows_keys` hold such lists; each row becomes one result record."""

    kind: Literal["python"]
    entry: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    params: dict[str, Any] = Field(default_factory=dict)
    dataset_arg: str | None = "cohort"  # keyword that receives the dataset folder (None: not passed)
    out_arg: str | None = "out"  # keyword that receives DIR/<step name>/ (None: not passed)
    rows_keys: list[str] = Field(default_factory=lambda: ["rows"])


class InjectionStep(_Step):
    """The prompt-injection suite with the real tools and the agent."""

    kind: Literal["injection"]
    n: int = Field(default=52, ge=1)
    cases: int = Field(default=6, ge=1)
    heldout: bool = False
    agent: AgentSpec = Field(default_factory=AgentSpec)


class TextBaselineStep(_Step):
    """TF-IDF + logistic regression on the notes, trained on the train split, scored on `split`:
    the baseline a note model is read beside."""

    kind: Literal["text_baseline"]
    target: Literal["diagnoses", "imaging_findings"] = "diagnoses"


Step = Annotated[Union[ToolsStep, MissingnessStep, ProbesStep, AgentStep, RoutingStep, PythonStep, InjectionStep,
                       TextBaselineStep], Field(discriminator="kind")]
STEP_KINDS = ("tools", "missingness", "probes", "agent", "routing", "python", "injection", "text_baseline")


class Workflow(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]+$")
    description: str = ""
    dataset: DatasetSpec
    split: Literal["train", "val", "test"] = "test"
    calibration_split: Literal["train", "val", "test"] | None = None
    limit: int | None = Field(default=None, ge=1)
    runner: Literal["inprocess", "ray", "serve"] = "inprocess"
    steps: list[Step] = Field(min_length=1)
    metrics: MetricsSpec = Field(default_factory=MetricsSpec)

    @model_validator(mode="after")
    def _unique_steps(self):
        names = [s.name for s in self.steps]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"step names must be unique: {', '.join(dup)}")
        return self


def _explain(e: ValidationError, source: str) -> str:
    out = []
    for err in e.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()) if not str(p).startswith("function-after"))
        if err.get("type") == "extra_forbidden":
            out.append(f"{loc}: unknown key")
        elif err.get("type") == "union_tag_invalid":
            out.append(f"{loc or 'steps'}: unknown step kind {err.get('input', {}).get('kind')!r}; known: {', '.join(STEP_KINDS)}")
        else:
            out.append(f"{loc or '<workflow>'}: {err.get('msg')}")
    return f"{source}: " + "; ".join(out)


def parse_workflow(data: Any, source: str = "<workflow>") -> Workflow:
    if not isinstance(data, dict):
        raise WorkflowError(f"{source}: a workflow is a mapping of keys (name, dataset, steps, ...)")
    try:
        return Workflow.model_validate(data)
    except ValidationError as e:
        raise WorkflowError(_explain(e, source)) from None


def load_workflow(path: str | Path) -> Workflow:
    """Read and validate a workflow file; WorkflowError names the file and every bad key."""
    import yaml

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise WorkflowError(f"{path}: cannot read ({e.strerror})") from None
    except yaml.YAMLError as e:
        raise WorkflowError(f"{path}: not YAML ({str(e).splitlines()[0]})") from None
    return parse_workflow(data, str(path))
