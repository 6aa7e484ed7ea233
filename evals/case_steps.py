"""The case-by-case workflow steps that need no LLM: tools, missingness patterns and trust probes.

Each step turns one case into one `ResultRecord` (workflows/results_log.py) holding a `NamedResult` per
tool (per tool and pattern, per tool and probe). Tools run through the run's runner (in-process or
Ray, behind the output cache), dependencies first, so the fused model reads the encoders' tokens.
A tool that cannot run (an absent modality, missing weights, a crash) is a typed failure in its
result, never a crash of the run.

Trust probes destroy one input on purpose:
- `blank_image`: the radiograph replaced by a uniform grey image of the same size;
- `noise_image`: replaced by uniform noise;
- `swapped_image`: the radiograph of another patient (the next one that has one): plausible, wrong;
- `shuffled_labs`: the measurements of another patient of the split (the next one that has labs);
- `swapped_notes`: the notes of another patient (the next one that has notes).
A tool that refuses the destroyed input (its own input check, or the encoder it reads through) is
*refused* on that case, never counted. A tool that reads it *keeps its answer* when its top label is unchanged,
its top probability is at or over `confident_at` and it raised no out-of-distribution flag. For the
swaps only cases whose donor gets another answer from the same tool count (otherwise keeping the
answer is right). A tool fails a probe when it keeps its answer on `keep_rate_fails_at` or more of
the counted cases.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from mmdx.core import registry
from mmdx.core.case import MODALITY_FIELD, Modality, PatientCase
from mmdx.core.labels import IMAGING_FINDINGS
from mmdx.core.tool import ClassifierOutput
from mmdx.workflows.results_log import Cost, NamedResult
from mmdx.tools.schedule import run_with_dependencies

PATTERNS: dict[str, tuple[str, ...]] = {  # pattern -> modalities removed
    "all": (), "no_cxr": ("cxr",), "no_labs": ("labs",), "no_notes": ("notes",),
    "cxr_only": ("labs", "notes"), "labs_only": ("cxr", "notes"), "notes_only": ("cxr", "labs"),
}
PROBE_READS: dict[str, str] = {"blank_image": "cxr", "noise_image": "cxr", "swapped_image": "cxr", "shuffled_labs": "labs",
                               "swapped_notes": "notes"}
SWAPS = ("swapped_image", "shuffled_labs", "swapped_notes")  # another patient's input: counted when the donor's answer differs


def named(res, cost_ms: float = 0.0, tools_run: list[str] | None = None) -> NamedResult:
    """A tool result (ClassifierOutput or ToolFailure) as a NamedResult."""
    if isinstance(res, ClassifierOutput):
        top = max(res.scores, key=lambda s: s.probability)
        # the labels say what the scores are about (a notes tool on IU weights scores imaging findings)
        target = "imaging_findings" if {s.label for s in res.scores} <= set(IMAGING_FINDINGS) else res.target
        return NamedResult(target=target, scores={s.label: round(s.probability, 6) for s in res.scores},
                           thresholds={s.label: round(s.threshold, 6) for s in res.scores}, top=top.label,
                           ood_flag=res.ood_flag, tools_run=tools_run or [res.tool],
                           cost=Cost(tool_ms=round(cost_ms, 3), model_calls=len(tools_run or [res.tool])),
                           model_id=res.provenance.model_id, weights_sha256=res.provenance.weights_sha256,
                           extra={"ood_score": round(res.ood_score, 4)})
    return NamedResult(ok=False, failure_kind=getattr(res, "kind", type(res).__name__), failure=getattr(res, "message", str(res)),
                       tools_run=tools_run or [], cost=Cost(tool_ms=round(cost_ms, 3), model_calls=len(tools_run or [])))


def run_tools(runner, case: PatientCase, names: list[str]) -> dict[str, NamedResult]:
    """Each of `names` on the case (dependencies run once, first), with the compute each one needed:
    its own latency, plus, for a tool that reads other tools' outputs, theirs."""
    results = run_with_dependencies(runner, case, list(names))
    costs = dict(getattr(runner, "last_costs_ms", {}))
    out = {}
    for n in names:
        deps = [d for d in getattr(registry.tool_class(n), "depends_on", ()) if d in results] if n in registry.names() else []
        ms = costs.get(n, 0.0) + sum(costs.get(d, 0.0) for d in deps)
        out[n] = named(results[n], ms, tools_run=[*deps, n])
    return out


class ToolsStepRunner:
    """`weights` (tool -> folder) runs those tools from other weights (the notes model trained on the
    real IU reports: `notes: models/weights/notes_iu`), through their own runner and cache keys."""

    def __init__(self, step, ctx):
        self.step, self.ctx = step, ctx
        self.runner = ctx.runner
        if step.weights:
            from mmdx.evals.tool_cache import CachingRunner
            from mmdx.tools.runner import InProcessRunner

            repo = Path(__file__).resolve().parents[1]
            weights = {t: str((Path(w) if Path(w).exists() else repo / w).resolve()) for t, w in step.weights.items()}
            built: dict = {}

            def factory(name: str):
                if name not in built:
                    built[name] = registry.tool_class(name)(weights_dir=weights[name]) if name in weights else registry.build(name)
                return built[name]

            inner = None if ctx.replay else InProcessRunner(tool_factory=factory)
            self.runner = CachingRunner(inner, Path(ctx.replay or ctx.out) / "cache", replay=ctx.replay is not None,
                                        weights=weights)

    def run_case(self, case: PatientCase) -> dict[str, NamedResult]:
        return run_tools(self.runner, case, self.step.tools)


class MissingnessStepRunner:
    def __init__(self, step, ctx):
        self.step, self.ctx = step, ctx

    def run_case(self, case: PatientCase) -> dict[str, NamedResult]:
        out = {}
        for pattern in self.step.patterns:
            reduced = case.without(*PATTERNS[pattern]) if PATTERNS[pattern] else case
            for n, r in run_tools(self.ctx.runner, reduced, self.step.tools).items():
                r.extra["complete_case"] = len(case.modalities) == 3
                out[f"{n}|{pattern}"] = r
        return out


class ProbesStepRunner:
    def __init__(self, step, ctx):
        self.step, self.ctx = step, ctx
        self.images = Path(ctx.out) / "probe_images"

    def _image(self, case: PatientCase, probe: str) -> PatientCase:
        from PIL import Image

        src = case.image_path()
        try:
            size = Image.open(src).size
        except OSError:
            size = (128, 128)
        rng = np.random.default_rng(int(hashlib.sha256(case.case_id.encode()).hexdigest()[:8], 16))
        arr = (np.full((size[1], size[0]), 128, np.uint8) if probe == "blank_image"
               else rng.integers(0, 256, (size[1], size[0]), dtype=np.uint8))
        self.images.mkdir(parents=True, exist_ok=True)
        path = self.images / f"{case.case_id}-{probe}.png"
        Image.fromarray(arr, mode="L").save(path)
        cxr = case.cxr.model_copy(update={"path": str(path.resolve()), "sha256": None, "format": "png"})
        return case.model_copy(update={"cxr": cxr})

    def _donor(self, case: PatientCase, modality: str) -> PatientCase | None:
        for other in self.ctx.neighbours(case):
            if Modality(modality) in other.modalities and other.case_id != case.case_id:
                return other
        return None

    def run_case(self, case: PatientCase) -> dict[str, NamedResult]:
        out = {}
        originals = run_tools(self.ctx.runner, case, self.step.tools)
        for n, r in originals.items():
            out[f"{n}|original"] = r
        for probe in self.step.probes:
            m = PROBE_READS[probe]
            if Modality(m) not in case.modalities:
                continue
            donor_answers = {}
            if probe not in SWAPS:
                probed = self._image(case, probe)
            else:
                donor = self._donor(case, m)
                if donor is None:
                    continue
                field = MODALITY_FIELD[Modality(m)]
                probed = case.model_copy(update={field: getattr(donor, field)})
                donor_answers = {n: r.top for n, r in run_tools(self.ctx.runner, donor, self.step.tools).items()}
            # the modality's own encoder runs too (once, behind the cache): a tool that reads the destroyed
            # input through it (the fused model) did not read it when the encoder refused it
            probed_out = run_tools(self.ctx.runner, probed, list(dict.fromkeys([*self.step.tools, m])))
            encoder_refused = not probed_out[m].ok
            for n in self.step.tools:
                r = probed_out[n]
                reads = n in registry.names() and _reads(n, m)
                r.extra.update({"probe": probe, "reads_input": reads, "original_top": originals[n].top,
                                "donor_top": donor_answers.get(n),
                                **probe_outcome(n, m, reads, originals[n], r, encoder_refused, self.step.confident_at,
                                                donor_answers.get(n), swap=probe in SWAPS)})
                out[f"{n}|{probe}"] = r
        return out


def probe_outcome(tool: str, modality: str, reads: bool, original: NamedResult, probed: NamedResult,
                  encoder_refused: bool, confident_at: float, donor_top: str | None, swap: bool = False) -> dict:
    """How one tool met one destroyed input. `refused`: it gave no answer on it, or it answered without
    it because the modality's encoder refused it (the fused model then runs on what is left and says
    so): a visible degradation, never a kept answer. `counted`: it answered from the destroyed input
    (for a swap, only when the donor gets another answer); `kept_answer`: counted, and the same top
    label at p >= confident_at without an OOD flag."""
    refused = bool(reads and original.ok and (not probed.ok or (encoder_refused and tool != modality)))
    counted = bool(reads and original.ok and not refused and (not swap or donor_top != original.top))
    kept = bool(counted and probed.top == original.top and max(probed.scores.values()) >= confident_at
                and not probed.ood_flag)
    return {"refused": refused, "counted": counted, "kept_answer": kept}


def _reads(tool: str, modality: str) -> bool:
    """Whether `tool` reads `modality` (directly, or through the encoders it depends on)."""
    cls = registry.tool_class(tool)
    mods = {m.value for m in cls.requires} | {m.value for m in getattr(cls, "accepts", frozenset())}
    return modality in mods
