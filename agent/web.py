"""`mmdx serve`: the chat on a web page (FastAPI + one static page), the same ChatSession as the terminal.

Patients are kept apart:
- a thread id is random (128 bits) and made by the server; each thread has its own token (256 bits,
  stored hashed), which only the browser that created the thread holds; every thread endpoint wants
  it (header `X-Thread-Token`) and answers 404 without it, as for a thread that does not exist;
- uploads go to `uploads/<thread>/`, and a case's image path must stay inside that folder: absolute
  paths and `..` are refused with a clear message (agent/attachments.py);
- uploads have size limits (`Limits`), checked on the declared length before anything is read;
- beyond localhost the server refuses to start without an access token (`--token`, or
  MMDX_SERVE_TOKEN; `--token generate` makes one), printed at start as notebook servers do; with a
  token every request needs it (a cookie set by `/?token=...`, or `Authorization: Bearer ...`);
- nothing the server sends names a server path (upload and data folders are scrubbed from replies).

The agent runs off the event loop, one worker thread per turn, so sessions do not wait on each
other; a turn's stages stream back to the page as NDJSON lines while it runs.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import io
import json
import logging
import os
import re
import secrets
import shutil
import sys
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse

from mmdx.core.config import home
from mmdx.core.db import connect_durable

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
TOKEN_ENV = "MMDX_SERVE_TOKEN"
_SAFE_NAME = re.compile(r"[^A-Za-z0-9._-]")
_THREAD_ID = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


@dataclass(frozen=True)
class Limits:
    request_bytes: int = 40 * 1024 * 1024  # a whole turn (all files and fields)
    case_bytes: int = 2 * 1024 * 1024  # a case file
    image_bytes: int = 30 * 1024 * 1024  # a chest X-ray (PNG, JPEG or DICOM)
    labs_bytes: int = 2 * 1024 * 1024  # a labs CSV
    text_chars: int = 200_000  # a pasted note (the case format's own limit) or a message


class ThreadStore:
    """Which threads exist and the hash of each one's token (a table beside the conversations)."""

    SCHEMA = "CREATE TABLE IF NOT EXISTS web_threads (id TEXT PRIMARY KEY, token_sha256 TEXT NOT NULL, created TEXT NOT NULL);"

    def __init__(self, db: Path):
        self._conn = connect_durable(db, self.SCHEMA, check_same_thread=False)
        self._lock = threading.Lock()

    def create(self) -> tuple[str, str]:
        tid, token = secrets.token_urlsafe(16), secrets.token_urlsafe(32)
        with self._lock, self._conn:
            self._conn.execute("INSERT INTO web_threads VALUES (?, ?, ?)",
                               (tid, hashlib.sha256(token.encode()).hexdigest(), datetime.now(timezone.utc).isoformat()))
        return tid, token

    def allowed(self, tid: str, token: str | None) -> bool:
        if not token or not _THREAD_ID.match(tid):
            return False
        with self._lock:
            row = self._conn.execute("SELECT token_sha256 FROM web_threads WHERE id = ?", (tid,)).fetchone()
        return row is not None and hmac.compare_digest(row[0], hashlib.sha256(token.encode()).hexdigest())

    def delete(self, tid: str) -> None:
        with self._lock, self._conn:
            self._conn.execute("DELETE FROM web_threads WHERE id = ?", (tid,))

    def close(self) -> None:
        self._conn.close()


def _scrubber(*roots: Path):
    """A function replacing every server folder in a JSON-able value with a neutral name."""
    pairs = []
    for root, name in roots:
        for form in {str(root), str(root.resolve())}:
            pairs.append((form, name))
    pairs.sort(key=lambda p: -len(p[0]))

    def scrub(value):
        if isinstance(value, str):
            for form, name in pairs:
                value = value.replace(form, name)
            return value
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return scrub


def create_app(session, upload_dir: Path | None = None, access_token: str | None = None, limits: Limits = Limits(),
               threads: ThreadStore | None = None) -> FastAPI:
    """The app around a ChatSession. The session must confine uploads to `upload_dir/<thread>/`:
    `create_app` sets `session.confine_uploads` so."""
    app = FastAPI(title="mmdx chat", docs_url=None, redoc_url=None, openapi_url=None)
    uploads = (upload_dir or home() / "uploads").resolve()
    uploads.mkdir(parents=True, exist_ok=True)
    store = threads or ThreadStore(session.db_path.with_name(session.db_path.stem + "-web.sqlite"))
    session.confine_uploads = lambda tid: uploads / tid
    scrub = _scrubber((uploads, "uploads"), (home(), "$MMDX_HOME"), (session.db_path.parent, "data"), (Path.cwd(), "."))
    turn_locks: dict[str, threading.Lock] = {}
    app.state.threads = store

    def no_thread() -> JSONResponse:
        return JSONResponse({"error": "no such thread (or not yours)"}, status_code=404)

    def too_large(what: str, limit: int) -> JSONResponse:
        return JSONResponse({"error": f"{what} is larger than the {limit // (1024 * 1024)} MB limit"}, status_code=413)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if access_token is not None:
            given = request.cookies.get("mmdx_access") or request.headers.get("authorization", "").removeprefix("Bearer ").strip()
            query = request.query_params.get("token")
            if request.url.path == "/" and query is not None and hmac.compare_digest(query, access_token):
                resp = RedirectResponse("/", status_code=303)
                resp.set_cookie("mmdx_access", access_token, httponly=True, samesite="strict")
                return resp
            if not (given and hmac.compare_digest(given, access_token)):
                return JSONResponse({"error": "this server needs its access token: open the URL it printed at start "
                                              "(/?token=...)"}, status_code=401)
        if request.method in ("POST", "PUT") and request.url.path.endswith("/turns"):
            length = request.headers.get("content-length")
            if length is None:
                return JSONResponse({"error": "uploads need a Content-Length"}, status_code=411)
            if not length.isdigit() or int(length) > limits.request_bytes:
                return too_large("the upload", limits.request_bytes)
        return await call_next(request)

    @app.get("/")
    def index():
        return FileResponse(STATIC / "index.html")

    @app.post("/api/threads")
    def new_thread():
        tid, token = store.create()
        return {"thread_id": tid, "thread_token": token}

    @app.get("/api/threads/{tid}")
    def thread(tid: str, request: Request):
        if not store.allowed(tid, request.headers.get("x-thread-token")):
            return no_thread()
        hist = session.history(tid)
        return scrub({**hist, "thread_id": tid})

    @app.get("/api/threads/{tid}/image")
    def image(tid: str, request: Request):
        if not store.allowed(tid, request.headers.get("x-thread-token")):
            return no_thread()
        path = session.image_path(tid)
        if path is None or not path.resolve().is_relative_to(uploads / tid):
            return JSONResponse({"error": "this thread has no uploaded X-ray"}, status_code=404)
        from PIL import Image

        from mmdx.core.errors import CorruptInput
        from mmdx.core.images import load_image

        try:
            arr = load_image(path)  # (H, W) in [0, 1]; DICOM too
        except CorruptInput as e:
            return JSONResponse({"error": scrub(str(e))}, status_code=422)
        im = Image.fromarray((arr * 255).astype("uint8"))
        im.thumbnail((768, 768))
        buf = io.BytesIO()
        im.save(buf, format="PNG")
        return Response(buf.getvalue(), media_type="image/png", headers={"Cache-Control": "no-store"})

    @app.delete("/api/threads/{tid}")
    def delete(tid: str, request: Request):
        if not store.allowed(tid, request.headers.get("x-thread-token")):
            return no_thread()
        session.delete_thread(tid)
        shutil.rmtree(uploads / tid, ignore_errors=True)
        store.delete(tid)
        return {"deleted": tid}

    async def read_limited(f: UploadFile | None, limit: int) -> bytes | None:
        if f is None or not f.filename:
            return None
        return await f.read(limit + 1)  # one byte over the limit is enough to refuse

    @app.post("/api/threads/{tid}/turns")
    async def turn(
        tid: str, request: Request, message: str = Form(""), age: str = Form(""), sex: str = Form(""), note: str = Form(""),
        view: str = Form(""), case_file: UploadFile | None = File(None), image: UploadFile | None = File(None),
        labs: UploadFile | None = File(None),
    ):
        if not store.allowed(tid, request.headers.get("x-thread-token")):
            return no_thread()
        if len(message) > limits.text_chars or len(note) > limits.text_chars:
            return too_large("the text", limits.text_chars)
        folder = uploads / tid
        attach: dict = {}
        raw_case = await read_limited(case_file, limits.case_bytes)
        raw_image = await read_limited(image, limits.image_bytes)
        raw_labs = await read_limited(labs, limits.labs_bytes)
        for what, data, limit in (("the case file", raw_case, limits.case_bytes), ("the image", raw_image, limits.image_bytes),
                                  ("the labs file", raw_labs, limits.labs_bytes)):
            if data is not None and len(data) > limit:
                return too_large(what, limit)
        problems = []
        if raw_case is not None:
            try:
                attach["case_json"] = raw_case.decode("utf-8")
                attach["case_dir"] = str(folder)
            except UnicodeDecodeError:
                problems.append("  case_file: not UTF-8 text")
        if raw_image is not None:
            folder.mkdir(parents=True, exist_ok=True)
            name = _SAFE_NAME.sub("_", Path(image.filename).name)[-80:].lstrip(".") or "image"
            (folder / name).write_bytes(raw_image)
            attach["image_path"] = name  # relative to the thread's folder: the case is confined to it
            if view in ("PA", "AP", "LATERAL"):
                attach["view"] = view
        if raw_labs is not None:
            attach["labs_csv"] = raw_labs.decode("utf-8", "replace")
        if note.strip():
            attach["note"] = note
        if age.strip():
            try:
                attach["age"] = float(age)
            except ValueError:
                problems.append(f"  demographics.age: not a number: {age[:20]!r}")
            attach["sex"] = sex if sex in ("female", "male", "other") else "unknown"
        if problems:
            return {"reply": "I could not use that input:\n" + "\n".join(problems)}
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()

        def emit(item) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def work() -> None:
            lock = turn_locks.setdefault(tid, threading.Lock())
            try:
                with lock:  # one turn at a time per thread; other threads run in parallel
                    reply = session.send(tid, message.strip() or "/diagnose", attach=attach or None,
                                         on_event=lambda e: emit(scrub(e)))
                    hist = session.history(tid)
                emit(scrub({"reply": reply, "history": {**hist, "thread_id": tid}}))
            except Exception:  # noqa: BLE001 - a bug in a turn: logged with its traceback, the page told
                log.exception("turn on thread %s failed", tid)
                emit({"error": "the server failed on this turn (logged); the thread is kept"})
            finally:
                emit(None)

        loop.run_in_executor(None, work)  # off the event loop: other sessions keep being served

        async def lines():
            while (item := await queue.get()) is not None:
                yield json.dumps(item) + "\n"

        return StreamingResponse(lines(), media_type="application/x-ndjson", headers={"Cache-Control": "no-store"})

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx serve", description="Serve the chat web page (localhost unless given a token).")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on; anything but localhost needs --token")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--token", default=os.environ.get(TOKEN_ENV),
                   help=f"access token every request must carry ('generate' makes one); env {TOKEN_ENV}")
    p.add_argument("--db", default=str(home() / "chat.sqlite"), help="SQLite file of the conversations (patient data)")
    p.add_argument("--uploads", default=str(home() / "uploads"), help="folder of uploaded files, one subfolder per thread")
    from mmdx.agent.cli import add_agent_args, build_agent

    add_agent_args(p)
    args = p.parse_args(argv)
    token = secrets.token_urlsafe(24) if args.token == "generate" else args.token
    if args.host not in LOOPBACK and not token:
        print(f"mmdx serve: refusing to listen on {args.host} without an access token: conversations hold patient data. "
              f"Pass --token TOKEN (or --token generate), or set {TOKEN_ENV}.", file=sys.stderr)
        return 2
    import uvicorn

    from mmdx.agent.chat import ChatSession

    session = ChatSession(build_agent(args), args.db)
    url = f"http://{args.host}:{args.port}/" + (f"?token={token}" if token else "")
    print(f"mmdx serve: {url}\n  conversations: {args.db} (patient data; delete a thread from its page, or the file)\n"
          f"  uploads: {args.uploads}", flush=True)
    uvicorn.run(create_app(session, Path(args.uploads), access_token=token), host=args.host, port=args.port, log_level="warning")
    return 0
