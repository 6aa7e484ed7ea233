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
    assert verify(p) == (True, 5, "ok: 5 entries, chain intact")
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
        ok, _, msg = verify(bad)
        assert not ok, name
        assert main(["audit", "verify", str(bad)]) == 1


def test_reopened_log_continues_the_chain(tmp_path):
    p = _log(tmp_path, 2)
    AuditLog(p).append("diagnosis", "c9", top="pneumonia")
    assert verify(p)[0] and verify(p)[1] == 3
    assert json.loads(_lines(p)[-1])["prev"] == json.loads(_lines(p)[-2])["hash"]
