"""A hash-chained, append-only audit log (JSON lines).

Every tool call and LLM decision appends one entry: time, case id, event kind, input digest, model
id and weights digest, the output (digests, not note text or images, unless the user opted in) and
latency. Each entry carries the hash of the previous one and its own hash over its canonical JSON,
so `verify` detects any edited, removed or reordered entry. Appends are flushed and fsynced.

`mmdx audit verify FILE` exits 0 when the chain is intact, 1 with the first broken line otherwise.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

GENESIS = "0" * 64


def _digest(prev: str, body: dict) -> str:
    canon = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev + canon).encode()).hexdigest()


def text_digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


class AuditLog:
    """`include_content=True` is the user's opt-in to also record note text and the case inputs
    (for a local research log); by default entries hold digests only."""

    def __init__(self, path: str | Path, include_content: bool = False):
        self.path = Path(path)
        self.include_content = include_content
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._prev = self._last_hash()

    def _last_hash(self) -> str:
        if not self.path.exists() or self.path.stat().st_size == 0:
            return GENESIS
        last = None
        with self.path.open("rb") as f:
            for line in f:
                if line.strip():
                    last = line
        if last is None:
            return GENESIS
        try:
            return json.loads(last)["hash"]
        except (json.JSONDecodeError, KeyError):
            # a torn last line (killed mid-write): the chain continues from the last good entry;
            # `verify` still reports the torn line.
            good = GENESIS
            with self.path.open("rb") as f:
                for line in f:
                    try:
                        good = json.loads(line)["hash"]
                    except (json.JSONDecodeError, KeyError):
                        break
            return good

    def append(self, kind: str, case_id: str | None = None, **fields) -> dict:
        with self._lock:
            body = {"time": datetime.now(timezone.utc).isoformat(), "kind": kind, "case_id": case_id, **fields}
            entry = {**body, "prev": self._prev, "hash": _digest(self._prev, body)}
            line = json.dumps(entry, sort_keys=True, default=str) + "\n"
            with self.path.open("a", encoding="utf-8") as f:
                f.write(line)
                f.flush()
                os.fsync(f.fileno())
            self._prev = entry["hash"]
            return entry


def verify(path: str | Path) -> tuple[bool, int, str]:
    """(ok, entries checked, message). Detects edits, removals, insertions and reordering."""
    prev = GENESIS
    n = 0
    with Path(path).open("rb") as f:  # bytes: a line that is not UTF-8 is a broken entry, not a crash
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                h, p = entry.pop("hash"), entry.pop("prev")
            except (ValueError, KeyError, AttributeError):  # ValueError: bad JSON or bad UTF-8
                return False, n, f"line {lineno}: not a valid audit entry"
            if p != prev:
                return False, n, f"line {lineno}: chain broken (entry removed, inserted or reordered before it)"
            if _digest(p, entry) != h:
                return False, n, f"line {lineno}: entry content does not match its hash (edited)"
            prev = h
            n += 1
    return True, n, f"ok: {n} entries, chain intact"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx audit", description="Verify a hash-chained audit log.")
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="check every entry's hash and the chain")
    v.add_argument("file", nargs="?", help="audit log (default: $MMDX_HOME/audit.jsonl)")
    args = p.parse_args(argv)
    from mmdx.core.config import home

    path = Path(args.file) if args.file else home() / "audit.jsonl"
    if not path.exists():
        print(f"mmdx audit: no audit log at {path}")
        return 1
    try:
        ok, n, msg = verify(path)
    except OSError as e:  # a directory, no permission
        print(f"mmdx audit: cannot read {path}: {e.strerror}", file=sys.stderr)
        return 1
    print(msg)
    return 0 if ok else 1
