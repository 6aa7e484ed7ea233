"""`mmdx serve`: the chat on a web page (FastAPI + one static page), same ChatSession as the terminal.

Uploads (case JSON, chest X-ray, labs CSV) are stored under $MMDX_HOME/uploads/<thread>/ and never
deleted by the server; the tool trace of every turn is shown beside the conversation.
"""
import argparse
import re
import uuid
from pathlib import Path

from fastapi import FastAPI, File, Form, UploadFile
from fastapi.responses import FileResponse, JSONResponse

from mmdx.core.config import home

STATIC = Path(__file__).parent / "static"
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def create_app(session, upload_dir: Path | None = None) -> FastAPI:
    app = FastAPI(title="mmdx chat")
    uploads = upload_dir or home() / "uploads"

    @app.get("/")
    def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/api/threads/{thread_id}")
    def thread(thread_id: str):
        return session.history(_SAFE.sub("_", thread_id))

    @app.post("/api/chat")
    async def chat(
        thread_id: str = Form(...), message: str = Form(""), age: str = Form(""), sex: str = Form(""), note: str = Form(""),
        case_file: UploadFile | None = File(None), image: UploadFile | None = File(None), labs: UploadFile | None = File(None),
    ):
        tid = _SAFE.sub("_", thread_id)[:64] or uuid.uuid4().hex[:12]
        folder = uploads / tid
        attach: dict = {}
        if case_file is not None and case_file.filename:
            raw = await case_file.read()
            try:
                attach["case_json"] = raw.decode("utf-8")
            except UnicodeDecodeError:
                return JSONResponse({"reply": "I could not use that input:\n  case_file: not UTF-8 text", "thread_id": tid})
            attach["case_dir"] = str(folder)
        if image is not None and image.filename:
            folder.mkdir(parents=True, exist_ok=True)
            dest = folder / (uuid.uuid4().hex[:8] + "-" + _SAFE.sub("_", image.filename)[-80:])
            dest.write_bytes(await image.read())
            attach["image_path"] = str(dest)
        if labs is not None and labs.filename:
            attach["labs_csv"] = (await labs.read()).decode("utf-8", "replace")
        if note.strip():
            attach["note"] = note
        if age.strip():
            try:
                attach["age"] = float(age)
            except ValueError:
                return JSONResponse({"reply": f"I could not use that input:\n  demographics.age: not a number: {age!r}", "thread_id": tid})
            attach["sex"] = sex or "unknown"
        reply = session.send(tid, message or "diagnose", attach=attach or None)
        hist = session.history(tid)
        return {"reply": reply, "thread_id": tid, "trace": hist["trace"][-1:] if hist["trace"] else [], "diagnosis": hist["diagnosis"]}

    return app


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="mmdx serve", description="Serve the chat web page on localhost.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--db", default=str(home() / "chat.sqlite"))
    from mmdx.agent.cli import add_agent_args, build_agent

    add_agent_args(p)
    args = p.parse_args(argv)
    import uvicorn

    from mmdx.agent.chat import ChatSession

    session = ChatSession(build_agent(args), args.db)
    print(f"mmdx serve: http://{args.host}:{args.port}/  (conversations in {args.db})", flush=True)
    uvicorn.run(create_app(session), host=args.host, port=args.port, log_level="warning")
    return 0
