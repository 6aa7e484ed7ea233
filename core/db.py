"""SQLite opened the one way mmdx stores what it must not lose (chat threads, evaluation and scoring runs)."""
from __future__ import annotations

import sqlite3
from pathlib import Path


def connect_durable(db: str | Path, schema: str | None = None, check_same_thread: bool = True) -> sqlite3.Connection:
    """A connection to `db` (its folder made) in WAL mode with synchronous=FULL, so each committed
    transaction survives a killed process; `schema` (CREATE ... IF NOT EXISTS) is applied."""
    Path(db).parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(str(db), check_same_thread=check_same_thread)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    if schema:
        conn.executescript(schema)
    return conn
