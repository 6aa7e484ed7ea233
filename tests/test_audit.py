"""The hash-chained audit log: any edited, removed, inserted or reordered entry is detected."""
from __future__ import annotations

import json

from mmdx.core.audit import AuditLog, verify
from mmdx.cli import main


def _log(tmp_path, n=5):
    log = AuditLog(tmp_path / "audit.jsonl")
    for i in range(n):
        log.append("tool_call", f"c{i}", tool="labs", latency_s=0.1 * i, output={"pneumonia": 0.1 * i})
    return tmp_path / "audit.jsonl"


def _lines(p):
    return p.read_text().splitlines(keepends=True)


def test_intact_chain_and_cli(tmp_path):
    p = _log(tmp_path)
    assert verify(p) == (True, 5, "ok: 5 entries, chain intact, reaches its head")
    assert main(["audit", "verify", str(p)]) == 0


def test_edit_remove_reorder_insert_are_detected(tmp_path):
    p = _log(tmp_path)
    lines = _lines(p)
    cases = {
        "edited": lines[:2] + [lines[2].replace('"tool": "labs"', '"tool": "cxr"')] + lines[3:],
        "removed": lines[:2] + lines[3:],
        "reordered": lines[:1] + [lines[2], lines[1]] + lines[3:],
        "inserted": lines[:3] + [lines[1]] + lines[3:],
        "truncated_last": lines[:-1] + [lines[-1][:40]],
    }
    for name, content in cases.items():
        bad = tmp_path / f"{name}.jsonl"
        bad.write_text("".join(content))
        (tmp_path / f"{name}.jsonl.head").write_text((tmp_path / "audit.jsonl.head").read_text())  # fails by the chain, not a missing head
        ok, _, msg = verify(bad)
        assert not ok, name
        assert main(["audit", "verify", str(bad)]) == 1


def test_reopened_log_continues_the_chain(tmp_path):
    p = _log(tmp_path, 2)
    AuditLog(p).append("diagnosis", "c9", top="pneumonia")
    assert verify(p)[0] and verify(p)[1] == 3
    assert json.loads(_lines(p)[-1])["prev"] == json.loads(_lines(p)[-2])["hash"]


def test_deleting_the_last_entries_is_detected(tmp_path):
    p = _log(tmp_path)
    p.write_text("".join(_lines(p)[:-2]))  # a valid, shorter chain
    ok, n, msg = verify(p)
    assert not ok and n == 3 and "truncated" in msg and "last 2 removed" in msg
    assert main(["audit", "verify", str(p)]) == 1


def test_a_missing_head_fails_and_a_head_kept_apart_is_used(tmp_path):
    p = _log(tmp_path)
    kept = tmp_path / "elsewhere.head"
    kept.write_text((tmp_path / "audit.jsonl.head").read_text())
    (tmp_path / "audit.jsonl.head").unlink()
    assert not verify(p)[0] and "no head anchor" in verify(p)[2]
    assert verify(p, head=kept)[0]
    p.write_text("".join(_lines(p)[:-1]))
    assert main(["audit", "verify", str(p), "--head", str(kept)]) == 1


def test_with_a_key_a_rewritten_head_is_caught(tmp_path, monkeypatch):
    monkeypatch.setenv("MMDX_AUDIT_KEY", "the user's secret")
    p = _log(tmp_path)
    assert verify(p) == (True, 5, "ok: 5 entries, chain intact, reaches its head (HMAC checked)")
    lines = _lines(p)[:-1]
    p.write_text("".join(lines))
    last = json.loads(lines[-1])["hash"]
    forged = {"entries": 4, "hash": last, "hmac": "0" * 64}  # whoever truncates cannot sign without the key
    (tmp_path / "audit.jsonl.head").write_text(json.dumps(forged))
    ok, _, msg = verify(p)
    assert not ok and "HMAC" in msg
    monkeypatch.delenv("MMDX_AUDIT_KEY")
    assert not verify(p)[0] and "signed" in verify(p)[2]


def test_the_log_lives_in_the_data_directory(tmp_path, monkeypatch):
    from mmdx.agent.cli import add_agent_args
    import argparse

    monkeypatch.setenv("MMDX_DATA_HOME", str(tmp_path / "data"))
    parser = argparse.ArgumentParser()
    add_agent_args(parser)
    assert parser.parse_args([]).audit_log == str(tmp_path / "data" / "audit.jsonl")
    monkeypatch.delenv("MMDX_DATA_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    from mmdx.core.config import data_home

    assert data_home() == tmp_path / "xdg" / "mmdx" and ".cache" not in str(data_home())
