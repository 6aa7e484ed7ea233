"""Check free prose against the tool outputs: a closed-world reader, not a negation regex.

Any text shown to a clinician that mmdx did not build itself from checked claims (an LLM's answer to
a general question, say) passes through here first, and is shown only when every clause reads as a
claim the tools support. The reader is closed-world: it knows a small vocabulary (label names and
their synonyms, the tools, numbers, a few fixed phrases for "likely" and "unlikely", and connective
words that carry no claim) and rejects a clause holding any other word. That is what makes it hard
to talk past: a disease it does not know ("tamponade"), an instruction ("treat"), a hedge ("may"),
an all-clear ("no acute finding", "normal") or a stray negation ("not unlikely", "cannot be
excluded") is not something it tries to understand, it is a reason to refuse.

Per clause (sentences split at . ; ! ? and at "but", "while", "whereas", "although", "however"):
- every word must be known; a label outside mmdx's set, a hedge or an overclaim is named;
- polarity comes from one fixed phrase ("is likely", "is unlikely", "finds no", "below its
  threshold"...); two negations, or "likely" beside "unlikely", is refused, not resolved;
- a label called likely must be supported, one called unlikely must not be; a clause naming a
  label without either must cite its probability;
- every number must be a probability or threshold a tool gave for a label in the clause (or the
  combined one), to its printed precision; a named tool must score the label, and a tool named
  outside brackets must agree with the polarity itself.
A sentence mmdx writes from accepted claims always passes (tests/test_grounding.py checks it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from mmdx.core.labels import HUMAN_NAMES, OUTSIDE_TERMS, SYNONYMS
from mmdx.agent.facts import Facts
from mmdx.agent.wording import COVERED, NO_ACUTE

# ---- the vocabulary: phrase -> token kind. Multi-word phrases win over their words (longest first).
NEG_OPS = ("unlikely", "is unlikely", "are unlikely", "not likely", "is not likely", "are not likely", "no",
           "there is no", "no evidence of", "finds no", "found no", "shows no", "show no", "does not find",
           "did not find", "do not find", "not found", "is not found", "was not found", "were not found",
           "not seen", "not supported", "is not supported", "are not supported", "negative for", "is negative",
           "absent", "is absent", "are absent", "not present", "is not present")
NEG_QUALIFIERS = ("below its threshold", "below the threshold", "below threshold", "below their thresholds",
                  "below its decision threshold", "under its threshold", "below its threshold of",
                  "below the threshold of", "below its", "below")
POS_OPS = ("likely", "is likely", "are likely", "most likely", "is the most likely", "the most likely",
           "favoured", "favored", "is favoured", "is favored", "supported", "is supported", "present",
           "is present", "positive for", "is positive", "finds", "found", "shows", "detected", "reports")
POS_QUALIFIERS = ("above its threshold", "over its threshold", "reaches its threshold", "reaches the threshold",
                  "meets its threshold", "exceeds its threshold", "at or above its threshold", "above threshold")
HEDGES = ("may", "might", "could", "possibly", "possible", "perhaps", "probably", "probable", "cannot be excluded",
          "can not be excluded", "cannot be ruled out", "cannot", "can't", "suspect", "suspected", "suspicious",
          "consider", "considered", "concerning for", "concern for", "suggests", "suggestive", "suggest",
          "borderline", "equivocal", "uncertain", "query", "questionable", "appears", "seems", "likely to be",
          "would", "should")
NEUTRAL_PHRASES = ("has probability", "has a probability of", "has a probability", "with probability",
                   "with a probability of", "at probability", "a probability of")
OVERCLAIMS = ("ruled out", "rule out", "rules out", "excluded", "exclude", "excludes", "confirmed", "confirms",
              "confirm", "diagnosed", "definite", "definitely", "certain", "certainly", "proven", "proves",
              "established", "all clear", "all-clear", "no acute finding", "no acute findings", "nothing acute",
              "normal", "healthy", "unremarkable", "reassuring", "nothing wrong", "no abnormality", "fine")
# words that connect a claim without making one ("is" and "has" are kept out: "the patient has X")
FILLER = frozenset("""
the a an of for from by at with in on to its their this these it and or as than also both each only
model models tool tools probability probabilities score scores combined calibrated mean threshold thresholds
decision p diagnosis diagnoses finding findings imaging differential value case figure figures estimate
is are was were be
""".split())
NEGATORS = frozenset("no not never none nothing without nor neither cannot isn't aren't wasn't doesn't don't didn't "
                     "absence absent lack lacks lacking against negative unlikely below less lower low".split())
NEUTRAL_CUES = frozenset({"probability", "probabilities", "score", "scores", "p", "estimate", "figure"})
TOOL_ALIASES: dict[str, tuple[str, ...]] = {
    "cxr": ("chest xray model", "chest xray", "xray model", "xray", "cxr model", "cxr", "chest radiograph model",
            "image model", "imaging model"),
    "labs": ("labs model", "lab model", "laboratory model", "labs"),
    "notes": ("notes model", "note model", "clinical notes model", "notes"),
    "fused": ("fused model", "fused", "multimodal model"),
}
CLAUSE_BREAK = re.compile(r"(?:[.!?](?=\s|$)|;|\n)+|,?\s+\b(?:but|while|whereas|although|however)\b,?", re.I)
_NUMBER = re.compile(r"(?<![a-z0-9.])(\d+(?:\.\d+)?|\.\d+)\s*(%)?")
_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")
_SCOPE = re.compile(r"none of the (\d+) conditions mmdx covers")


@dataclass(frozen=True)
class Token:
    kind: str  # LAB OUT TOOL NEG QNEG POS QPOS HEDGE OVER PROB NUM W
    value: str
    in_paren: bool = False
    decimals: int = 0  # NUM only


@dataclass(frozen=True)
class ClauseVerdict:
    text: str
    labels: tuple[str, ...] = ()
    polarity: str | None = None  # "likely" | "unlikely" | None (a figure only)
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class ProseReport:
    ok: bool
    clauses: tuple[ClauseVerdict, ...] = ()
    problems: tuple[str, ...] = field(default=())


def _normalise(text: str) -> str:
    t = text.lower().replace("x-ray", "xray").replace("x ray", "xray")
    return re.sub(r"[\u2010-\u2015\u2212]", "-", t).replace("\u2019", "'")


def _phrase_table(tools: list[str]) -> dict[str, tuple[str, str]]:
    table: dict[str, tuple[str, str]] = {}
    for kind, phrases in (("NEG", NEG_OPS), ("QNEG", NEG_QUALIFIERS), ("POS", POS_OPS), ("QPOS", POS_QUALIFIERS),
                          ("HEDGE", HEDGES), ("OVER", OVERCLAIMS), ("PROB", NEUTRAL_PHRASES)):
        for p in phrases:
            table[p] = (kind, p)
    for t in OUTSIDE_TERMS:
        table[t.lower()] = ("OUT", t)
    for label, syns in SYNONYMS.items():
        for s in syns:
            table[_normalise(s)] = ("LAB", label)
    for label, name in HUMAN_NAMES.items():
        if label != NO_ACUTE and label != "no_finding":
            table[_normalise(name)] = ("LAB", label)
            table[label.replace("_", " ")] = ("LAB", label)
    for tool in tools:
        student = tool.removeprefix("student_") if tool.startswith("student_") else None
        extra = (f"{student} student model", f"{student} student") if student else ()  # agent/wording.tool_name
        for alias in (*TOOL_ALIASES.get(tool, ()), *extra, f"{tool} model", tool.replace("_", " ")):
            table[alias] = ("TOOL", tool)
    return table


def _phrase_regex(table: dict[str, tuple[str, str]]) -> re.Pattern:
    alts = sorted(table, key=lambda p: (-len(p), p))
    body = "|".join(re.escape(p).replace(r"\ ", r"\s+") for p in alts)
    return re.compile(r"(?<![a-z0-9'])(?:" + body + r")(?![a-z0-9'])")


def tokenise(clause: str, table: dict[str, tuple[str, str]], phrases: re.Pattern) -> list[Token]:
    text = _normalise(clause)
    out: list[Token] = []
    depth, i = 0, 0
    while i < len(text):
        ch = text[i]
        if ch in "([":
            depth += 1
            i += 1
            continue
        if ch in ")]":
            depth = max(0, depth - 1)
            i += 1
            continue
        if ch.isspace() or ch in ",:-/=\"'":
            i += 1
            continue
        if m := _SCOPE.match(text, i):
            ok = int(m.group(1)) == len(COVERED)
            out.append(Token("LAB", NO_ACUTE, depth > 0) if ok else Token("W", m.group(0), depth > 0))
            i = m.end()
            continue
        if m := phrases.match(text, i):
            kind, value = table[re.sub(r"\s+", " ", m.group(0))]
            out.append(Token(kind, value, depth > 0))
            i = m.end()
            continue
        if m := _NUMBER.match(text, i):
            raw, pct = m.group(1), m.group(2)
            decimals = len(raw.split(".")[1]) if "." in raw else 0
            value = float(raw) / (100 if pct else 1)
            out.append(Token("NUM", repr(value), depth > 0, decimals + (2 if pct else 0)))
            i = m.end()
            continue
        if m := _WORD.match(text, i):
            out.append(Token("W", m.group(0), depth > 0))
            i = m.end()
            continue
        out.append(Token("W", ch, depth > 0))  # any other symbol (<, >, ?, +) is not in the vocabulary
        i += 1
    return out


def _number_matches(tok: Token, candidates: list[float]) -> bool:
    if tok.decimals == 0:
        return False  # a bare integer is not a probability (0 and 1 included: a tool never says "certain")
    tol = 0.5 * 10 ** -tok.decimals + 1e-9
    return any(abs(float(tok.value) - c) <= tol for c in candidates)


def check_clause(clause: str, facts: Facts, table, phrases) -> ClauseVerdict:
    toks = tokenise(clause, table, phrases)
    problems: list[str] = []
    for t in toks:
        if t.kind == "OUT":
            problems.append(f"names {t.value}, which no mmdx tool assesses")
        elif t.kind == "HEDGE":
            problems.append(f"hedges ('{t.value}'): a claim says likely or unlikely, with the tool's number")
        elif t.kind == "OVER":
            problems.append(f"'{t.value}' claims more than a probability supports (no all-clear, no ruling out)")
        elif t.kind == "W" and t.value not in FILLER:
            if t.value in NEGATORS:
                problems.append(f"'{t.value}' is a negation that attaches to no claim (double negative, or wording the check cannot read)")
            else:
                problems.append(f"'{t.value}' is not wording the check can verify")
    labels = list(dict.fromkeys(t.value for t in toks if t.kind == "LAB"))
    tools = {t.value for t in toks if t.kind == "TOOL"}
    outside_tools = {t.value for t in toks if t.kind == "TOOL" and not t.in_paren}
    neg = [t for t in toks if t.kind == "NEG"]
    pos = [t for t in toks if t.kind in ("POS", "QPOS")]
    qneg = [t for t in toks if t.kind == "QNEG"]
    polarity = None
    if len(neg) > 1:
        problems.append("two negations in one clause (" + ", ".join(f"'{t.value}'" for t in neg) + "): a double negative is refused")
    if (neg or qneg) and pos:
        problems.append("says likely and unlikely in one clause")
    elif neg or qneg:
        polarity = "unlikely"
    elif pos:
        polarity = "likely"
    if polarity and not labels:
        problems.append(f"says {polarity} without naming a finding or diagnosis mmdx scores")
    nums = [t for t in toks if t.kind == "NUM"]
    if labels and polarity is None:
        has_cue = any(t.kind == "PROB" or (t.kind == "W" and t.value in NEUTRAL_CUES) for t in toks)
        if not (has_cue and nums):
            problems.append("names " + ", ".join(labels) + " without saying likely or unlikely (or citing its probability)")
    for lab in labels:
        if not facts.scored_by(lab) and lab not in facts.entries:
            problems.append(f"names {lab}, which no tool that ran scored")
            continue
        if polarity == "likely" and not facts.supported(lab):
            problems.append(f"calls {lab} likely, but no tool supports it")
        if polarity == "unlikely" and facts.supported(lab):
            problems.append(f"calls {lab} unlikely, but it reaches its threshold")
        if tools and not (set(facts.scored_by(lab)) & tools) and lab != NO_ACUTE:
            problems.append(f"attributes {lab} to {', '.join(sorted(tools))}, which does not score it")
        if len(outside_tools) == 1 and polarity:
            (tool,) = outside_tools
            s = facts.scores.get((tool, lab))
            if s is not None and (s.positive != (polarity == "likely")):
                problems.append(f"says the {tool} model finds {lab} {polarity}, but that model says otherwise")
    for n in nums:
        allowed = [x for lab in labels for x in facts.numbers(lab, tools or None)]
        if not labels:
            problems.append(f"cites {n.value} without a finding or diagnosis to attach it to")
        elif not _number_matches(n, allowed):
            problems.append(f"cites {float(n.value):g}, which is not a figure any tool gave for {', '.join(labels)}")
    return ClauseVerdict(text=clause.strip(), labels=tuple(labels), polarity=polarity, problems=tuple(problems))


def split_clauses(text: str) -> list[str]:
    # keep decimal points: split at a full stop only when followed by space or the end
    parts = CLAUSE_BREAK.split(text)
    return [p.strip() for p in parts if p and p.strip(" ,.")]


def check_prose(text: str, facts: Facts) -> ProseReport:
    """Every clause of `text` must read as a claim the tools support (see the module docstring)."""
    table = _phrase_table(facts.tools)
    phrases = _phrase_regex(table)
    verdicts = tuple(check_clause(c, facts, table, phrases) for c in split_clauses(text))
    problems = tuple(f"'{v.text}': {p}" for v in verdicts for p in v.problems)
    if not verdicts:
        problems = ("no claim to check",)
    return ProseReport(ok=not problems, clauses=verdicts, problems=problems)
