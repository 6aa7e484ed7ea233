"""What if an input were missing: rerun only the tools that read it, reuse the others' outputs.

Today "what if there were no labs?" reran the whole agent on the reduced case, and the planner then
left the notes unexamined. Here nothing is planned again: the question is about the inputs. Tools
that do not read the dropped modality keep their earlier outputs; the ones that do are rerun on the
reduced case where they still can (a fused model with fewer inputs) and dropped where they cannot.
"""
from __future__ import annotations

from mmdx.core.case import Modality, PatientCase
from mmdx.core.tool import ClassifierOutput, can_run
from mmdx.agent.diagnosis import PlannedCall


def reads(tool_cls: type) -> frozenset[Modality]:
    """The modalities a tool reads: what it requires and what it accepts (the fused model reads every
    modality it accepts, through its encoders' tokens)."""
    return frozenset(tool_cls.requires | getattr(tool_cls, "accepts", frozenset()))


def rerun_without(agent, case: PatientCase, dropped: Modality, results: dict[str, ClassifierOutput],
                  failures: dict | None = None, progress=None) -> dict:
    """The agent's final state for `case` without `dropped` (see the module docstring)."""
    tools = agent.tools
    reduced = case.without(dropped)
    keep = {t: o for t, o in results.items() if t in tools and dropped not in reads(tools[t])}
    kept_failures = {t: f for t, f in (failures or {}).items() if t in tools and dropped not in reads(tools[t])}
    rerun = [t for t in (*results, *(failures or {})) if t in tools and dropped in reads(tools[t])
             and reads(tools[t]) and can_run(tools[t], reduced)]
    plan = ([PlannedCall(tool=t, reason=f"output reused: it does not read the {dropped.value}", source="reused") for t in keep]
            + [PlannedCall(tool=t, reason=f"rerun without the {dropped.value}", source="what_if") for t in rerun])
    state = {"case": reduced, "what_if": True, "results": keep, "failures": kept_failures, "plan": plan,
             "pending": rerun, "events": [{"step": "reused", "tools": sorted(keep)}]}
    return agent.what_if_graph.invoke(state, {"recursion_limit": 25, "configurable": {"progress": progress}})
