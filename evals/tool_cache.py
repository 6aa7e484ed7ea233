"""Tool outputs and LLM answers cached by what determines them, so a run can be replayed.

- Tool outputs are keyed by (tool, the case's input digest, the weights digest): the same inputs
  through the same weights give the same output. Each entry keeps the latency measured when it was
  computed, which is the cost every later read reports (a replay costs what the run cost).
- LLM answers are keyed by the sha256 of (model id, messages, schema); with greedy decoding the
  same prompt gives the same answer. Each keeps its measured latency and token counts.

`CachingRunner` wraps any ToolRunner (in-process or Ray): hits come from the cache, misses run
and are appended to `DIR/cache/tools.jsonl`. With `replay=True` it loads no model: a miss is a
`ReplayMiss` error (the replay cannot be exact). `CachingLLM` is the same for the LLM. Requests that
ask for the encoder's tokens (`with_encoding`) always run live, since tokens are not stored; in a
replay the tool that reads them (the fused model) is itself a hit.
"""
from __future__ import annotations

import hashlib
import json
import threading
import time
from pathlib import Path
from typing import Sequence

from mmdx.agent.llm.protocol import LLMError
from mmdx.core.errors import MmdxError
from mmdx.core.tool import ClassifierOutput
from mmdx.tools.runner import ToolFailure, ToolResult


class ReplayMiss(MmdxError):
    """A replay needed a tool output or LLM answer that the recorded run never computed."""


def weights_digest(tool: str, weights: dict[str, str] | None = None) -> str:
    """The digest a tool's outputs depend on, read from model cards only (no model loads): each card's
    whole text, so a card recalibrated on the same weights (`mmdx train --recalibrate`: new
    temperatures, thresholds, OOD statistics) is another digest, not a stale cache hit. The fused
    model's digest includes the encoders' it reads. Missing weights: 'missing'."""
    from mmdx.core import registry

    root = Path(__file__).resolve().parents[1] / "models" / "weights"
    names = [tool] + list(getattr(registry.tool_class(tool), "depends_on", ()) if tool in registry.names() else ())
    parts = []
    for n in names:
        card = Path((weights or {}).get(n) or root / n) / "card.json"
        try:
            text = card.read_text()
            json.loads(text)["weights_sha256"]  # a card, not any JSON file
            parts.append(hashlib.sha256(text.encode()).hexdigest())
        except (OSError, ValueError, KeyError):
            parts.append("missing")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def _result_json(res: ToolResult) -> dict:
    return {"type": "output" if isinstance(res, ClassifierOutput) else "failure", "value": res.model_dump(mode="json")}


def _result_from(d: dict) -> ToolResult:
    return ClassifierOutput.model_validate(d["value"]) if d["type"] == "output" else ToolFailure.model_validate(d["value"])


class _JsonlCache:
    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries: dict[str, dict] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    e = json.loads(line)
                except json.JSONDecodeError:  # a torn last line from a killed run
                    continue
                self.entries[e["key"]] = e
        self._lock = threading.Lock()
        self._f = None

    def put(self, key: str, entry: dict) -> None:
        with self._lock:
            self.entries[key] = {"key": key, **entry}
            if self._f is None:
                self._f = open(self.path, "a", encoding="utf-8")
            self._f.write(json.dumps(self.entries[key], sort_keys=True) + "\n")
            self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class CachingRunner:
    """A ToolRunner that serves and records tool outputs by (tool, input digest, weights digest).
    `last_costs_ms` holds, per tool, the recorded latency of the last result it returned."""

    def __init__(self, inner, cache_dir: str | Path, replay: bool = False, weights: dict[str, str] | None = None):
        self.inner = inner
        self.replay = replay
        self.cache = _JsonlCache(Path(cache_dir) / "tools.jsonl")
        self._weights = weights or {}
        self._digests: dict[str, str] = {}
        self.hits = 0
        self.misses = 0
        self._local = threading.local()  # cases may run in several threads (--runner ray)

    @property
    def last_costs_ms(self) -> dict[str, float]:
        """Per tool, the recorded latency of the last result this thread got."""
        if not hasattr(self._local, "costs"):
            self._local.costs = {}
        return self._local.costs

    def _key(self, tool: str, inp) -> str:
        if tool not in self._digests:
            self._digests[tool] = weights_digest(tool, self._weights)
        return hashlib.sha256(f"{tool}|{inp.case.inputs_digest()}|{self._digests[tool]}".encode()).hexdigest()

    def missing_weights(self, tool: str) -> str | None:
        """The card a tool's weights need and lack (no model load), or None."""
        from mmdx.core import registry

        root = Path(__file__).resolve().parents[1] / "models" / "weights"
        if tool not in registry.names():
            return None
        for n in [tool, *getattr(registry.tool_class(tool), "depends_on", ())]:
            card = Path(self._weights.get(n) or root / n) / "card.json"
            if not card.is_file():
                return str(card)
        return None

    def run(self, requests: Sequence[tuple[str, object]], timeout_s: float | None = None) -> list[ToolResult]:
        out: list = [None] * len(requests)
        todo = []
        keys = [self._key(t, inp) for t, inp in requests]
        for i, ((tool, inp), key) in enumerate(zip(requests, keys)):
            if not self.replay and (card := self.missing_weights(tool)):
                # a typed failure per case, without calling the tool (it would log a traceback per case)
                out[i] = ToolFailure(tool=tool, case_id=inp.case.case_id, kind="tool_error",
                                     message=f"WeightsError: no model card at {card} (weights not shipped yet)")
                self.last_costs_ms[tool] = 0.0
                if key not in self.cache.entries:  # recorded, so a replay fails the same way
                    self.cache.put(key, {"tool": tool, "case_id": inp.case.case_id, "ms": 0.0, "result": _result_json(out[i])})
                continue
            hit = self.cache.entries.get(key)
            if hit is not None and (self.replay or not getattr(inp, "with_encoding", False)):
                out[i] = _result_from(hit["result"])
                self.last_costs_ms[tool] = hit["ms"]
                self.hits += 1
            elif self.replay and hit is None:
                raise ReplayMiss(f"replay: no recorded output of {tool} for case {inp.case.case_id}")
            else:
                todo.append(i)
        if todo:
            t0 = time.perf_counter()
            res = self.inner.run([requests[i] for i in todo], timeout_s=timeout_s)
            wall_ms = (time.perf_counter() - t0) * 1000
            per_tool = getattr(self.inner, "last_latency_s", {}) or {}
            for i, r in zip(todo, res):
                tool = requests[i][0]
                out[i] = r
                self.misses += 1
                known = self.cache.entries.get(keys[i])
                if known is not None:  # re-run only for its tokens: the recorded output and cost stand
                    self.last_costs_ms[tool] = known["ms"]
                    rec = _result_from(known["result"])
                    if isinstance(rec, ClassifierOutput) and isinstance(r, ClassifierOutput):
                        out[i] = rec.model_copy(update={"encoding": r.encoding})
                    continue
                ms = round(per_tool[tool] * 1000 if tool in per_tool else wall_ms / len(todo), 3)
                self.last_costs_ms[tool] = ms
                self.cache.put(keys[i], {"tool": tool, "case_id": requests[i][1].case.case_id, "ms": ms,
                                         "result": _result_json(r)})
        return out

    def warm(self, tools: list[str]) -> None:
        """Load the in-process models before anything is timed (a first call would pay for the load)."""
        from mmdx.core.errors import WeightsError
        from mmdx.tools import runner as runner_mod

        if self.replay or getattr(self.inner, "_factory", None) is not runner_mod._shared_tool:
            return  # Ray actors load their models when they start; a caller's own factory is its business
        from mmdx import tools as registry_tools

        for t in tools:
            if self.missing_weights(t):
                continue
            try:
                _ = registry_tools.get(t).model
            except (WeightsError, AttributeError):  # reported per case when it is called
                pass

    def close(self) -> None:
        self.cache.close()
        if self.inner is not None:
            self.inner.close()


class CachingLLM:
    """Wraps an LLM (or nothing, in a replay): answers by prompt digest, recorded with their latency.
    `drain_ms()` returns the recorded milliseconds and the number of calls since the last drain."""

    def __init__(self, llm, cache_dir: str | Path, model_id: str | None = None, replay: bool = False):
        self.llm = llm
        self.replay = replay
        self.model_id = model_id or getattr(llm, "model_id", "?")
        self.cache = _JsonlCache(Path(cache_dir) / "llm.jsonl")
        self.last_timings: dict | None = None
        self._ms = 0.0
        self._calls = 0
        self._per_call: list[float] = []
        self.last_calls_ms: list[float] = []  # the recorded ms of each call up to the last drain, in order

    def _key(self, messages, schema) -> str:
        return hashlib.sha256(json.dumps([self.model_id, messages, schema], sort_keys=True).encode()).hexdigest()

    def complete_json(self, messages, schema, **kw):
        key = self._key(messages, schema)
        hit = self.cache.entries.get(key)
        if hit is None:
            if self.replay or self.llm is None:
                raise ReplayMiss("replay: the LLM was asked a prompt the recorded run never asked")
            t0 = time.perf_counter()
            error = None
            try:
                text = self.llm.complete_json(messages, schema, **kw)
            except LLMError as e:  # recorded and re-raised: a replay must degrade the same way
                text, error = None, {"type": type(e).__name__, "message": str(e)}
            hit = {"text": text, "error": error, "ms": round((time.perf_counter() - t0) * 1000, 3),
                   "timings": getattr(self.llm, "last_timings", None)}
            self.cache.put(key, hit)
        self._ms += hit["ms"]
        self._calls += 1
        self._per_call.append(hit["ms"])
        self.last_timings = hit.get("timings")
        if hit.get("error"):
            raise _rebuild_error(hit["error"])
        return hit["text"]

    def stream(self, messages, **kw):
        raise NotImplementedError("evaluations ask the LLM for JSON only")

    def drain_ms(self) -> tuple[float, int]:
        out = (self._ms, self._calls)
        self.last_calls_ms, self._per_call = self._per_call, []
        self._ms, self._calls = 0.0, 0
        return out


def _rebuild_error(err: dict) -> Exception:
    """The recorded LLM error as the same typed error (LLMTimeout, LLMOutputError...), so a replayed
    agent degrades exactly as the recorded one did."""
    from mmdx.agent import llm as llm_mod

    cls = getattr(llm_mod, err["type"], None)
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            return cls(err["message"])
        except TypeError:
            pass
    return llm_mod.LLMError(f"{err['type']}: {err['message']}")
