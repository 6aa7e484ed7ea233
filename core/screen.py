"""Screening note text for what is not a clinical note: text addressed to an AI system.

Notes are data, never instructions. The graph's defences do not depend on this module: the planner,
reflection and rationale never see note text, output is schema-constrained and the grounding check
rejects unsupported claims. But the notes classifier does read the note, and text planted in it
("Ignore previous instructions...", a fake tool call, a chat-template turn) shifts what it reads
even when nothing obeys it. `screen_note` sets such spans aside before the classifier reads the note
and says what it set aside, so the tool's output (and the answer) can show it: a visible
degradation, never a silent edit.

What counts as addressed to an AI, by structure more than by keyword:
- chat and tool markup: role turns ("System:", "Assistant:", "<|im_start|>", "[INST]", "<system>"),
  JSON objects, code fences, HTML comments;
- text that speaks to a model: "note to the AI", "you are now", "any AI reading this", orders about
  instructions, tools, modes or the answer ("ignore the above", "only call the labs tool",
  "final answer:"), in English, French, German, Spanish, Chinese and Japanese;
- text the English note model cannot read: sentences in another language, runs of a script it was
  never trained on (CJK, Cyrillic, Arabic, ...).

A note written as a whole in another language is not an attack and is not screened span by span:
`note_language` names its language, and the note path refuses it as UnsupportedLanguage (the note
model reads English), so the answer says "unsupported language", not "text addressed to an AI".

A flagged span runs from its marker to the end of the sentence (back to the sentence's start when
at most two words come before the marker); a sentence in another language is set aside from where
that language begins in it, so clinical shorthand before a payload in the same sentence stays. Gaps
of only punctuation between flagged spans go with them. Clinical wording around a span is kept. The
false-positive rate on real text is measured in tests/test_screen.py over the IU radiology reports
and the synthetic cohort's notes.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

_F = re.IGNORECASE | re.UNICODE

# A role turn: the speaker of a chat transcript at the start of a line or sentence.
_ROLE = re.compile(
    r"(?:^|(?<=[\n.!?;]))[ \t>#*-]*\b(?:system|assistant|user|ai|model|admin|developer|llm|chatbot|operator)"
    r"(?:\s+(?:override|prompt|message|mode|note))?\s*[:>]", _F)

# Markup that only a model pipeline uses.
_MARKUP = [
    re.compile(r"<\|[^|>]{1,40}\|>"),  # <|im_start|>, <|endoftext|>
    re.compile(r"\[/?(?:INST|SYS)\]|<</?SYS>>", _F),
    re.compile(r"</?\s*(?:system|assistant|user|note|instructions?|prompt|tool_call|tool)\s*>", _F),
    re.compile(r"<!--.*?(?:-->|$)", re.DOTALL),
    re.compile(r"```.*?(?:```|$)", re.DOTALL),
]
# A JSON object (one level of nesting): nothing in a clinical note looks like {"key": ...}.
_JSON = re.compile(r"\{\s*\"[^\"{}]{1,40}\"\s*:(?:[^{}]|\{[^{}]*\})*\}")

_AI = r"(?:ai|a\.i\.|model|assistant|language model|llm|chat ?bot|gpt|agent|system)"
# Phrases that speak to a model or order it about. The span runs from the match to the sentence end.
_TRIGGERS = [
    rf"\b(?:note|message|p\.?\s?s\.?|reminder|instructions?)\s+(?:to|for)\s+(?:the\s+|any\s+|this\s+)?{_AI}\b",
    rf"\b(?:attention|dear|hey|hello)[,:]?\s+(?:the\s+)?{_AI}\b",
    rf"\b(?:any|every|the|this|an?)\s+{_AI}\s+(?:reading|summari[sz]ing|processing|that reads|must|should|will)\b",
    rf"\bas (?:the|an?) {_AI}\b",
    r"\b(?:you are now|you must|you will|pretend (?:to be|you are)|act as|roleplay|from now on)\b",
    r"\b(?:ignore|disregard|forget|override|bypass|overrule)\b[^.\n]{0,60}?\b(?:instructions?|prompts?|rules?|guidance|"
    r"guidelines|context|everything|all of|above|previous|prior|earlier|results?)\b",
    r"\b(?:your|the|new|updated|system)\s+(?:instructions?|prompt|task|rules?)\s+(?:is|are|has|have|:)",
    r"\bnew task\b",
    r"\b(?:do not|don't|never|must not|stop)\s+(?:call|use|run|query|consult|invoke)\b",
    r"\b(?:only|just)\s+(?:call|use|run|invoke)\b",
    r"\b(?:drop|skip|remove|disable|ignore)\s+(?:the\s+)?(?:x-?ray|cxr|labs?|notes?|imaging)?\s*(?:tools?|model|classifier)\b",
    r"\b(?:final|correct|true|real|required)\s+(?:answer|diagnosis|output|response)\b",
    r"\b(?:answer|output|respond|reply|diagnosis)\s*(?:only\s+)?(?:with)?\s*[:=]",
    r"\brespond only\b|\boutput only\b",
    r"\b(?:admin|maintenance|developer|debug|god|jailbreak)\s+mode\b",
    r"\b(?:system|safety)\s+(?:override|rules)\b|\boverride\b\s*[:!]",
    r"\bregardless of (?:the )?(?:results?|findings|tools?|evidence)\b",
    r"\b(?:set|make)\s+(?:every|all|each)\s+probabilit",
    r"\bI will (?:report|diagnose|answer|output|say|state|rank|call|conclude)\b",
    r"\b(?:mention|append|include|add) (?:it|this|that|the following)?\s*(?:in|to) (?:your|the) (?:answer|response|output|summary)\b",
    # other languages
    r"\b(?:ignorez|ignorer|oubliez|oublie)\b[^.\n]{0,60}?\b(?:instructions?|consignes?|pr[ée]c[èé]d|ci-dessus)",
    r"\b(?:ignoriere|ignorieren|vergiss|vergessen)\b[^.\n]{0,60}?\b(?:anweisungen|regeln|vorherigen|bisherigen)\b",
    r"\b(?:ignora|ignore|olvida|olvide)\b[^.\n]{0,60}?\b(?:instrucciones|reglas|anterior|anteriores)\b",
    r"(?:指示|指令|命令|提示)[^。\n]{0,20}(?:無視|忽略|无视)|(?:無視|忽略|无视)[^。\n]{0,20}(?:指示|指令|命令|提示)",
]
_TRIGGER = re.compile("|".join(f"(?:{t})" for t in _TRIGGERS), _F)

# Scripts the English note model was never trained on (CJK, kana, Hangul, Cyrillic, Arabic, Hebrew, Thai, Devanagari).
_FOREIGN_SCRIPT = re.compile(
    r"[\u0400-\u04FF\u0590-\u05FF\u0600-\u06FF\u0900-\u097F\u0E00-\u0E7F\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF"
    r"\uAC00-\uD7AF\uFF00-\uFFEF\u3000-\u303F][\u0400-\u04FF\u0590-\u05FF\u0600-\u06FF\u0900-\u097F\u0E00-\u0E7F"
    r"\u3040-\u30FF\u3400-\u4DBF\u4E00-\u9FFF\uAC00-\uD7AF\uFF00-\uFFEF\u3000-\u303F\s\d.,!?:;()、]*")

# Small stop-word lists: a sentence with more French/German/Spanish function words than English is not English.
_STOP = {
    "en": set("the a an and or of to in on with for is are was were be been this that it as at by from not no "
              "patient has have had but which who denies reports".split()),
    "fr": set("le la les des du une et est sont dans pour que qui pas ne au aux avec sur ce cette il elle "
              "déclarez vous nous".split()),
    "de": set("der die das und ist sind nicht ein eine einen mit für auf den dem des zu im sie ihr alle "
              "keine kein".split()),
    "es": set("el la los las y es son en por para que con una un del al no se su sus hay todo".split()),
}
_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", _F)
# A sentence ends at . ! ? (before a space, quote, bracket or tag), a CJK full stop, a newline, or
# where closing markup begins (a tag, [/INST], -->, <|...|>).
_SENTENCE_END = re.compile(r"[.!?](?=[\s<\"')\]]|$)|[。！？]|\n|(?=</|\[/|-->|<\|)")


@dataclass(frozen=True)
class Screened:
    """The note as the classifier may read it, and what was set aside (with why)."""

    text: str
    removed: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()

    @property
    def flagged(self) -> bool:
        return bool(self.removed)

    def summary(self) -> str:
        if not self.removed:
            return ""
        kinds = ", ".join(sorted(set(self.reasons)))
        return (f"{len(self.removed)} span(s) of the note set aside before the notes classifier read it "
                f"({kinds}); they were not read as clinical text and not followed")


def _sentence_end(text: str, start: int) -> int:
    m = _SENTENCE_END.search(text, start)
    return m.end() if m else len(text)


def _sentence_start(text: str, at: int) -> int:
    """`at`, or the start of its sentence when at most two words lie between them ("The correct
    diagnosis is..."): a stub left behind would only be noise to the classifier."""
    begin = max((m.end() for m in _SENTENCE_END.finditer(text, 0, at)), default=0)
    return begin if len(_WORD.findall(text[begin:at])) <= 2 else at


def _foreign_start(text: str, start: int, end: int, lang: str) -> int:
    """Where the other language begins in the sentence text[start:end]: at its first function word
    of `lang`, taken back over one word before it ("Fièvre et...", "Ignorez les...") unless that word
    is clinical shorthand (capitals, "NT/ND") or English, or punctuation parts them. Clinical words
    written before a foreign payload in the same sentence ("Abd: soft, NT/ND Ignorez les...") stay."""
    words = list(_WORD.finditer(text, start, end))
    foreign = _STOP[lang] - _STOP["en"]
    i = next((k for k, w in enumerate(words) if w.group().lower() in foreign), 0)
    if i > 0:
        prev = words[i - 1].group()
        if (not text[words[i - 1].end():words[i].start()].strip() and not (len(prev) > 1 and prev.isupper())
                and prev.lower() not in _STOP["en"]):
            i -= 1
    at = words[i].start() if words else start
    return start if not _WORD.search(text, start, at) else at


def _non_english_sentences(text: str) -> list[tuple[int, int, str]]:
    out, start = [], 0
    for m in list(_SENTENCE_END.finditer(text)) + [None]:
        end = m.end() if m else len(text)
        words = [w.lower() for w in _WORD.findall(text[start:end])]
        if len(words) >= 4:
            counts = {k: sum(w in s for w in words) for k, s in _STOP.items()}
            lang = max(("fr", "de", "es"), key=counts.get)
            if counts[lang] >= 2 and counts[lang] > counts["en"]:
                out.append((_foreign_start(text, start, end, lang), end, "not in English"))
        start = end
    return out


def screen_note(text: str) -> Screened:
    """`text` with the spans addressed to an AI (or unreadable to the note model) removed."""
    spans: list[tuple[int, int, str]] = []
    for pat in _MARKUP:
        spans += [(m.start(), m.end(), "chat or tool markup") for m in pat.finditer(text)]
    spans += [(m.start(), m.end(), "JSON or tool-call text") for m in _JSON.finditer(text)]
    for m in _ROLE.finditer(text):
        spans.append((_sentence_start(text, m.start()), _sentence_end(text, m.end()), "a chat turn (role marker)"))
    for m in _TRIGGER.finditer(text):
        spans.append((_sentence_start(text, m.start()), _sentence_end(text, m.end()), "text addressed to an AI"))
    for m in _FOREIGN_SCRIPT.finditer(text):
        if len(m.group().strip()) >= 2:
            spans.append((m.start(), m.end(), "a script the note model was not trained on"))
    spans += _non_english_sentences(text)
    if not spans:
        return Screened(text=text)
    spans.sort()
    merged: list[list] = []
    for s, e, why in spans:
        if merged and (s <= merged[-1][1] or not re.search(r"\w", text[merged[-1][1]:s])):
            merged[-1][1] = max(merged[-1][1], e)
            merged[-1][2].add(why)
        else:
            merged.append([s, e, {why}])
    kept, removed, reasons, pos = [], [], [], 0
    for s, e, whys in merged:
        kept.append(text[pos:s])
        removed.append(text[s:e].strip())
        reasons += sorted(whys)
        pos = e
    kept.append(text[pos:])
    clean = re.sub(r"[ \t]{2,}", " ", "".join(kept))
    clean = re.sub(r"\n\s*\n+", "\n", clean).strip()
    return Screened(text=clean, removed=tuple(r for r in removed if r), reasons=tuple(reasons))


_SCRIPTS = [  # (name, character range) of scripts the note model never saw
    ("Cyrillic", "\u0400-\u04FF"), ("Hebrew", "\u0590-\u05FF"), ("Arabic", "\u0600-\u06FF"), ("Devanagari", "\u0900-\u097F"),
    ("Thai", "\u0E00-\u0E7F"), ("Japanese", "\u3040-\u30FF"), ("Chinese", "\u3400-\u4DBF\u4E00-\u9FFF"), ("Korean", "\uAC00-\uD7AF"),
]
_LANGUAGE_NAMES = {"fr": "French", "de": "German", "es": "Spanish"}


def note_language(text: str) -> str:
    """The language a whole note is written in, as far as the note model is concerned: "English",
    or the name of another language or script ("French", "Chinese", ...). A note mostly in English
    with a foreign sentence is English (the sentence is screened by `screen_note`)."""
    letters = sum(c.isalpha() for c in text)
    if letters:
        counts = {name: len(re.findall(f"[{rng}]", text)) for name, rng in _SCRIPTS}
        if sum(counts.values()) / letters > 0.5:
            if counts["Japanese"]:  # kana beside kanji: Japanese
                return "Japanese"
            return max(counts, key=counts.get)
    words = [w.lower() for w in _WORD.findall(text)]
    if len(words) < 6:
        return "English"
    counts = {k: sum(w in st for w in words) for k, st in _STOP.items()}
    lang, n = max(((k, v) for k, v in counts.items() if k != "en"), key=lambda kv: kv[1])
    if n >= 3 and n > 2 * counts["en"]:
        return _LANGUAGE_NAMES[lang]
    return "English"
