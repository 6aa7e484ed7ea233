"""Bring your own LLM: any GGUF file, any transformers folder, or an OpenAI-compatible endpoint.

Fast tier: how a spec picks a backend, and the HTTP client against a small stdlib server that
speaks the protocol (one honouring response_format, one refusing it, so the validated retry runs).
Slow tier (`-m "llm and slow"`): a real llama.cpp HTTP server started by the test, driven through
the same client, and the agent end to end on it.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jsonschema
import pytest

from mmdx.agent.llm import LLMConfig, LLMError, LLMOutputError, config_from_spec, load_llm
from mmdx.agent.llm.openai_compat import OpenAICompatLLM

SCHEMA = {"type": "object", "properties": {"tool": {"type": "string", "enum": ["cxr", "labs", "notes"]}}, "required": ["tool"]}
MSGS = [{"role": "user", "content": "Pick a tool for a chest radiograph."}]


def test_a_spec_picks_its_backend(tmp_path):
    assert config_from_spec("qwen2.5-coder-0.5b").resolved_backend() == "llamacpp"
    gguf = tmp_path / "mine.gguf"
    gguf.write_bytes(b"GGUF")
    assert config_from_spec(str(gguf)).resolved_backend() == "llamacpp"
    (tmp_path / "hf").mkdir()
    assert config_from_spec(str(tmp_path / "hf")).resolved_backend() == "transformers"
    cfg = config_from_spec("http://127.0.0.1:9/v1", name="qwen", api_key="k")
    assert (cfg.resolved_backend(), cfg.endpoint, cfg.model, cfg.api_key) == ("openai", "http://127.0.0.1:9/v1", "qwen", "k")
    with pytest.raises(LLMError, match="not a packaged model"):
        config_from_spec("gpt-17").resolved_backend()


def test_flag_and_environment_choose_the_llm(monkeypatch):
    import argparse

    from mmdx.agent.cli import add_agent_args, llm_config

    p = argparse.ArgumentParser()
    monkeypatch.setenv("MMDX_LLM", "http://10.0.0.5:8000/v1")
    monkeypatch.setenv("MMDX_LLM_API_KEY", "from-env")
    add_agent_args(p)
    cfg = llm_config(p.parse_args([]))
    assert cfg.endpoint == "http://10.0.0.5:8000/v1" and cfg.api_key == "from-env"
    cfg = llm_config(p.parse_args(["--llm", "/models/my.gguf", "--threads", "2"]))
    assert cfg.model == "/models/my.gguf" and cfg.n_threads == 2 and cfg.resolved_backend() == "llamacpp"


class _Fake(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint: `refuse_format` servers answer response_format with HTTP 400;
    `answers` are returned in turn as the assistant's content."""

    server_version = "fake"

    def log_message(self, *args):
        pass

    def do_GET(self):
        self._send(200, {"object": "list", "data": [{"id": "served-model"}]})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append({"body": body, "auth": self.headers.get("Authorization")})
        if self.server.refuse_format and "response_format" in body:
            return self._send(400, {"error": {"message": "response_format json_schema is not supported"}})
        text = self.server.answers.pop(0)
        if body.get("stream"):
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.end_headers()
            for word in text.split(" "):
                self.wfile.write(f"data: {json.dumps({'choices': [{'delta': {'content': word + ' '}}]})}\n\n".encode())
            self.wfile.write(b"data: [DONE]\n\n")
            return
        self._send(200, {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}]})

    def _send(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def endpoint():
    def start(answers, refuse_format=False):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Fake)
        srv.answers, srv.refuse_format, srv.requests = list(answers), refuse_format, []
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
        return srv, f"http://127.0.0.1:{srv.server_address[1]}/v1"

    servers: list = []
    yield start
    for s in servers:
        s.shutdown()


def test_endpoint_with_response_format(endpoint):
    srv, url = endpoint(['{"tool": "cxr"}', "Pneumonia is likely."])
    llm = load_llm(config_from_spec(url, api_key="secret"))
    assert llm.name == "served-model" and "openai-compatible" in llm.model_id
    assert json.loads(llm.complete_json(MSGS, SCHEMA)) == {"tool": "cxr"}
    req = srv.requests[0]
    assert req["body"]["response_format"]["json_schema"]["schema"] == SCHEMA and req["auth"] == "Bearer secret"
    assert "".join(llm.stream(MSGS)).strip() == "Pneumonia is likely."


def test_endpoint_without_response_format_gets_a_validated_retry(endpoint):
    srv, url = endpoint(['Sure! {"tool": "cxr"}', '{"tool": "xray"}', '{"tool": "labs"}'], refuse_format=True)
    llm = OpenAICompatLLM(LLMConfig(endpoint=url, model="m", json_retries=2))
    assert json.loads(llm.complete_json(MSGS, SCHEMA)) == {"tool": "labs"}
    assert llm.schema_mode == "prompt"
    posts = [r["body"] for r in srv.requests if "response_format" not in r["body"]]
    assert len(posts) == 3 and "JSON schema" in posts[0]["messages"][-1]["content"]
    assert "rejected" in posts[2]["messages"][-1]["content"]  # the model is shown why
    srv.answers[:] = ["no", "still no", "never"]
    with pytest.raises(LLMOutputError):
        llm.complete_json(MSGS, SCHEMA)


def test_unreachable_endpoint_is_a_typed_error():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(LLMError, match="cannot reach"):
        OpenAICompatLLM(LLMConfig(endpoint=f"http://127.0.0.1:{port}/v1", model="m")).complete_json(MSGS, SCHEMA)


# ---------------------------------------------------------------------------------------------
# a real llama.cpp server (xllamacpp's HTTP server, in its own process, started by the test)

SERVER = textwrap.dedent('''
    import sys, xllamacpp as x
    from mmdx.agent.llm import ensure_gguf
    p = x.CommonParams()
    p.model.path = str(ensure_gguf("qwen2.5-coder-0.5b"))
    p.n_ctx, p.n_parallel, p.warmup, p.verbosity = 4096, 1, False, 0
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = 1
    p.port = int(sys.argv[1])
    s = x.Server(p)
    print("ready", flush=True)
    sys.stdin.read()
''')


@pytest.fixture(scope="module")
def llama_server():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        assert proc.stdout.readline().strip() == "ready"
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        proc.stdin.close()
        proc.terminate()
        proc.wait(30)


@pytest.mark.slow
@pytest.mark.llm
def test_real_llamacpp_server_gives_schema_valid_json(llama_server):
    llm = load_llm(config_from_spec(llama_server, timeout_s=300))
    for _ in range(2):
        value = json.loads(llm.complete_json(MSGS, SCHEMA, max_tokens=40))
        jsonschema.validate(value, SCHEMA)
    assert llm.schema_mode == "response_format"  # llama.cpp honours the schema: no retry needed
    assert "".join(llm.stream([{"role": "user", "content": "Name one lung disease."}], max_tokens=12)).strip()


@pytest.mark.slow
@pytest.mark.llm
def test_the_agent_runs_on_a_real_llamacpp_server(llama_server):
    from mmdx.agent.graph import DiagnosticAgent
    from mmdx.tools.runner import InProcessRunner

    from agent_fakes import FAKE_TOOLS, make_case

    agent = DiagnosticAgent(load_llm(config_from_spec(llama_server, timeout_s=300)), tools=FAKE_TOOLS,
                            runner=InProcessRunner(tool_factory=lambda n: FAKE_TOOLS[n]()))
    final = agent.run(make_case(cxr=False))
    llm_events = [e for e in final["events"] if "schema_valid" in e]
    assert llm_events and all(e["schema_valid"] for e in llm_events)
    dx = final["diagnosis"]
    assert dx.grounding.ok and dx.differential[0].diagnosis == "pneumonia"


@pytest.mark.slow
@pytest.mark.llm
def test_any_gguf_file_by_path(tmp_path):
    from mmdx.agent.llm import ensure_gguf

    mine = tmp_path / "my-model.gguf"
    os.symlink(ensure_gguf("qwen2.5-coder-0.5b"), mine)
    llm = load_llm(LLMConfig(model=str(mine), n_ctx=2048))
    assert llm.model_id.startswith("my-model@sha256:1d9614638d18")  # the file's own digest names it
    jsonschema.validate(json.loads(llm.complete_json(MSGS, SCHEMA, max_tokens=40)), SCHEMA)


@pytest.mark.slow
@pytest.mark.llm
def test_any_transformers_folder_by_path():
    from mmdx.agent.llm.hf_convert import convert_gguf_to_hf

    folder = convert_gguf_to_hf("qwen2.5-coder-0.5b")  # a plain transformers folder, as any HF model is
    cfg = LLMConfig(model=str(folder), n_threads=1, timeout_s=600)
    assert cfg.resolved_backend() == "transformers"
    llm = load_llm(cfg)
    assert "@config:" in llm.model_id and "transformers" in llm.model_id
    jsonschema.validate(json.loads(llm.complete_json(MSGS, SCHEMA, max_tokens=40)), SCHEMA)
