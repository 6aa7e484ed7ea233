"""A hash-chained, append-only audit log (JSON lines).

Every tool call and LLM decision appends one entry: time, case id, event kind, input digest, model
id and weights digest, the output (digests, not note text or images, unless the user opted in) and
latency. Each entry carries the hash of the previous one and its own hash over its canonical JSON,
so `verify` detects any edited, removed or reordered entry. Appends are flushed and fsynced.

A chain alone cannot show that entries were cut off its end: the shorter log is a valid chain. So
the log is anchored: after each append the head (entry count and last hash) is written to a file
kept apart from the log (`<log>.head` unless given), and `verify` checks the log reaches it. With a
key under the user's control ($MMDX_AUDIT_KEY, or a file named by $MMDX_AUDIT_KEY_FILE) the head
also carries an HMAC, so whoever truncates the log cannot write a matching head without the key.
Keep a copy of the head elsewhere (or the key) for the anchor to hold against someone who can
rewrite both files.

The log lives in the data directory (core/config.data_home: ~/.local/share/mmdx), not a cache.

`mmdx audit verify [FILE] [--head HEAD]` exits 0 when the chain is intact and reaches its head, 1
with the first problem otherwise.
"""
from __future__ import annotations

import argparse
import hashlib
import hmac
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


def head_path(log: str | Path) -> Path:
    return Path(str(log) + ".head")


def audit_key() -> bytes | None:
    """The user's HMAC key for the head, if one is configured."""
    key_file = os.environ.get("MMDX_AUDIT_KEY_FILE")
    if key_file:
        return Path(key_file).read_bytes().strip()
    key = os.environ.get("MMDX_AUDIT_KEY")
    return key.encode() if key else None


def _mac(key: bytes, entries: int, last: str) -> str:
    return hmac.new(key, f"{entries}:{last}".encode(), hashlib.sha256).hexdigest()


def _write_head(path: Path, entries: int, last: str, key: bytes | None) -> None:
    head = {"entries": entries, "hash": last}
    if key is not None:
        head["hmac"] = _mac(key, entries, last)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8") as f:
        f.write(json.dumps(head, sort_keys=True) + "\n")
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


class AuditLog:
    """`include_content=True` is the user's opt-in to also record note text and the case inputs
    (for a local research log); by default entries hold digests only. `head` is where the anchor
    goes (default `<path>.head`); `key` signs it (default: `audit_key()`)."""

    def __init__(self, path: str | Path, include_content: bool = False, head: str | Path | None = None,
                 key: bytes | None = None):
        self.path = Path(path)
        self.include_content = include_content
        self.head = Path(head) if head is not None else head_path(self.path)
        self.key = key if key is not None else audit_key()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._prev = self._last_hash()
        self._count = self._entries()
        if self._count and not self.head.exists():  # a log from before anchoring, or a lost head: anchor what is there
            _write_head(self.head, self._count, self._prev, self.key)

    def _entries(self) -> int:
        if not self.path.exists():
            return 0
        n = 0
        with self.path.open("rb") as f:
            for line in f:
                try:
                    json.loads(line)["hash"]
                    n += 1
                except (ValueError, KeyError, TypeError):
                    continue
        return n

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
            self._count += 1
            _write_head(self.head, self._count, self._prev, self.key)
            return entry


def verify(path: str | Path, head: str | Path | None = None, key: bytes | None = None) -> tuple[bool, int, str]:
    """(ok, entries checked, message). Detects edits, removals, insertions, reordering, and
    truncation (entries cut off the end: the log must reach its head)."""
    ok, n, last, msg = _verify_chain(path)
    if not ok:
        return ok, n, msg
    head = Path(head) if head is not None else head_path(path)
    key = key if key is not None else audit_key()
    if not head.exists():
        if n == 0:
            return True, 0, "ok: empty log"
        return False, n, f"no head anchor at {head}: entries cut off the end could not be detected (chain of {n} entries)"
    try:
        anchor = json.loads(head.read_text())
        want_n, want_hash = int(anchor["entries"]), str(anchor["hash"])
    except (ValueError, KeyError, TypeError) as e:
        return False, n, f"head anchor {head} is unreadable ({type(e).__name__})"
    if "hmac" in anchor:
        if key is None:
            return False, n, f"head anchor {head} is signed; set MMDX_AUDIT_KEY (or MMDX_AUDIT_KEY_FILE) to check it"
        if not hmac.compare_digest(str(anchor["hmac"]), _mac(key, want_n, want_hash)):
            return False, n, f"head anchor {head} does not match its HMAC (rewritten, or another key)"
    if want_n > n:
        return False, n, f"log truncated: the head records {want_n} entries, the log holds {n} (last {want_n - n} removed)"
    if want_n != n or want_hash != last:
        return False, n, f"log does not end at its head ({want_n} entries, hash {want_hash[:12]}...; log: {n}, {last[:12]}...)"
    return True, n, f"ok: {n} entries, chain intact, reaches its head" + (" (HMAC checked)" if "hmac" in anchor else "")


def _verify_chain(path: str | Path) -> tuple[bool, int, str, str]:
    """(ok, entries, last hash, message) for the chain alone."""
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
                return False, n, prev, f"line {lineno}: not a valid audit entry"
            if p != prev:
                return False, n, prev, f"line {lineno}: chain broken (entry removed, inserted or reordered before it)"
            if _digest(p, entry) != h:
                return False, n, prev, f"line {lineno}: entry content does not match its hash (edited)"
            prev = h
            n += 1
    return True, n, prev, f"ok: {n} entries, chain intact"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx audit", description="Verify a hash-chained audit log.")
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify", help="check every entry's hash and the chain")
    v.add_argument("file", nargs="?", help="audit log (default: the data directory's audit.jsonl, "
                                            "$MMDX_DATA_HOME or ~/.local/share/mmdx)")
    v.add_argument("--head", help="the head anchor (default FILE.head); pass a copy kept elsewhere")
    args = p.parse_args(argv)
    from mmdx.core.config import data_home

    path = Path(args.file) if args.file else data_home() / "audit.jsonl"
    if not path.exists():
        print(f"mmdx audit: no audit log at {path}", file=sys.stderr)
        return 1
    try:
        ok, n, msg = verify(path, head=args.head)
    except OSError as e:  # a directory, no permission
        print(f"mmdx audit: cannot read {path}: {e.strerror}", file=sys.stderr)
        return 1
    print(msg)
    return 0 if ok else 1
