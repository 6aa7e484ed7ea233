"""The LLM's answer as data: claims, each checked against the tool outputs, and prose built from them.

The answer step does not ask the LLM for prose. It asks for a short list of claims under a JSON
schema: the label (one of what the tools that ran scored), what it says about it ("likely" or
"unlikely"), the tool it cites (one of the tools that ran) and that tool's number. The schema
already allows only the (label, verdict, tool, number) tuples the outputs support
(`claims_schema`), and each claim is still checked against `Facts`, since a server may not honour
a grammar: the tool must score the label, the number must be the tool's own, and
"likely" needs a supported label (a diagnosis at or over its threshold, a finding a tool called
positive). A set of claims that leaves out the best-supported diagnosis fails too. Accepted claims
are rendered to sentences by `render_claims`; the wording is ours, so there is no prose to talk
past. `template_claims` is the same list made without the LLM (the fallback, and the
`rationale_by_llm=False` path).
"""
from __future__ import annotations

from pydantic import BaseModel, Field

from mmdx.agent.diagnosis import Claim
from mmdx.agent.facts import Facts
from mmdx.agent.wording import NO_ACUTE, capitalised, label_name, tool_name

MAX_CLAIMS = 3  # the most a claim set may hold (AgentConfig.max_claims asks for fewer: each costs ~22 tokens)
NUMBER_TOLERANCE = 0.006  # a cited probability may differ from the tool's by its 2-decimal rounding


class ClaimSet(BaseModel):
    claims: list[Claim] = Field(min_length=1, max_length=MAX_CLAIMS)


def claimable(facts: Facts) -> list[str]:
    """Labels a claim may name: every scored label but the two "none of the others" labels, which
    the scope sentence states by rule."""
    return [lab for lab in facts.labels() if lab not in (NO_ACUTE, "no_finding")]


def _claim_item(pairs: list[tuple[str, str, str, float]]) -> dict:
    return {"anyOf": [{"type": "object", "properties": {
        "label": {"const": label}, "says": {"const": says}, "tool": {"const": tool}, "p": {"const": p}},
        "required": ["label", "says", "tool", "p"], "additionalProperties": False} for label, says, tool, p in pairs]}


def claims_schema(facts: Facts, max_claims: int = MAX_CLAIMS) -> dict:
    """Grammar for the answer step, built from this case's tool outputs.

    Each claim is one of the (label, verdict, tool, number) tuples the outputs allow: a label a tool
    that ran scored, that tool, the verdict the numbers give ("likely" only for a supported label)
    and the tool's probability to 2 decimals. When a diagnosis is supported, the first claim must be
    it. What is left to the LLM is which claims to make, in what order: it never types a number (the
    1.5B model copied the neighbouring label's figure). A server that ignores the grammar is caught
    by `check_claims`. Property order is generation order; every token costs ~0.15 s on this CPU."""
    pairs = [(lab, "likely" if facts.supported(lab) else "unlikely", tool, round(facts.scores[(tool, lab)].probability, 2))
             for lab in claimable(facts) for tool in facts.scored_by(lab)]
    if not pairs:
        return {"type": "object", "properties": {"claims": {"type": "array", "maxItems": 0}}, "required": ["claims"]}
    array: dict = {"type": "array", "minItems": 1, "maxItems": max_claims, "items": _claim_item(pairs)}
    best = top_supported(facts)
    if best is not None:
        array["prefixItems"] = [_claim_item([p for p in pairs if p[0] == best])]
    return {"type": "object", "properties": {"claims": array}, "required": ["claims"], "additionalProperties": False}


def check_claim(c: Claim, facts: Facts) -> str | None:
    """Why `c` is not supported by the tool outputs, or None when it is."""
    name = label_name(c.label)
    if c.tool not in facts.targets:
        return f"cites the {c.tool} tool, which did not run"
    score = facts.scores.get((c.tool, c.label))
    if score is None:
        return f"cites the {tool_name(c.tool)} for {name}, which it does not score"
    if c.label not in claimable(facts):
        return f"makes a claim about {name}, which the scope rule states"
    if abs(c.p - score.probability) > NUMBER_TOLERANCE:
        return f"cites {c.p:.2f} for {name} from the {tool_name(c.tool)}, which gave {score.probability:.2f}"
    supported = facts.supported(c.label)
    if c.says == "likely" and not supported:
        return f"calls {name} likely, but it is below its threshold"
    if c.says == "unlikely" and supported:
        return f"calls {name} unlikely, but it reaches its threshold"
    return None


def check_claims(claims: list[Claim], facts: Facts) -> tuple[list[Claim], list[str]]:
    """(accepted claims, problems). Any problem fails the whole answer: a partly wrong answer is
    not shown with the wrong part cut out, it is replaced."""
    problems = []
    accepted = []
    seen: dict[str, str] = {}
    for c in claims:
        why = check_claim(c, facts)
        if why:
            problems.append(why)
            continue
        if seen.get(c.label, c.says) != c.says:
            problems.append(f"calls {label_name(c.label)} both likely and unlikely")
            continue
        seen[c.label] = c.says
        if c not in accepted:
            accepted.append(c)
    best = top_supported(facts)
    if best and not any(c.label == best and c.says == "likely" for c in accepted):
        problems.append(f"leaves out {label_name(best)}, the best-supported diagnosis")
    return accepted, problems


def top_supported(facts: Facts) -> str | None:
    likely = [e for d, e in facts.entries.items() if e.likely and d != NO_ACUTE]
    return max(likely, key=lambda e: e.probability).diagnosis if likely else None


def _best_tool(facts: Facts, label: str) -> str:
    return max(facts.scored_by(label), key=lambda t: facts.scores[(t, label)].probability)


def template_claims(facts: Facts, max_unlikely: int = 2) -> list[Claim]:
    """The claims written without the LLM: every likely diagnosis, the strongest unlikely ones,
    every finding called positive (or, when none is, every finding as absent)."""
    out = []
    ranked = sorted((e for d, e in facts.entries.items() if d != NO_ACUTE), key=lambda e: -e.probability)
    for e in ranked:
        if e.likely:
            t = _best_tool(facts, e.diagnosis)
            out.append(Claim(label=e.diagnosis, says="likely", tool=t, p=facts.scores[(t, e.diagnosis)].probability))
    for e in [e for e in ranked if not e.likely][:max_unlikely]:
        t = _best_tool(facts, e.diagnosis)
        out.append(Claim(label=e.diagnosis, says="unlikely", tool=t, p=facts.scores[(t, e.diagnosis)].probability))
    findings = [lab for lab in claimable(facts) if facts.is_finding(lab)]
    positive = [lab for lab in findings if facts.supported(lab)]
    for lab in positive or findings:
        t = _best_tool(facts, lab)
        s = facts.scores[(t, lab)]
        out.append(Claim(label=lab, says="likely" if s.positive else "unlikely", tool=t, p=s.probability))
    return out


def render_claim(c: Claim, facts: Facts) -> str:
    """One sentence, every figure taken from `facts` (the claim's own number was checked equal)."""
    name = label_name(c.label)
    s = facts.scores[(c.tool, c.label)]
    if facts.is_finding(c.label):
        if c.says == "likely":
            return f"The {tool_name(c.tool)} finds {name} ({s.probability:.2f}, threshold {s.threshold:.2f})."
        return f"The {tool_name(c.tool)} finds no {name} ({s.probability:.2f}, below its threshold of {s.threshold:.2f})."
    e = facts.entries.get(c.label)
    cite = f"{tool_name(c.tool)} {s.probability:.2f}"
    if e is None:
        e_p, e_t = s.probability, s.threshold
    else:
        e_p, e_t = e.probability, e.threshold
    name = capitalised(name)
    if c.says == "likely":
        return f"{name} is likely: {e_p:.2f}, threshold {e_t:.2f} ({cite})."
    return f"{name} is unlikely: {e_p:.2f}, below its threshold of {e_t:.2f} ({cite})."


def render_claims(claims: list[Claim], facts: Facts) -> list[str]:
    """Sentences for the accepted claims, findings grouped after diagnoses, in the order given."""
    dx = [c for c in claims if not facts.is_finding(c.label)]
    img = [c for c in claims if facts.is_finding(c.label)]
    return [render_claim(c, facts) for c in dx + img]
