"""Minimal FastAPI app following the Hop3 example-app contract."""

import os
import pwd
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import PlainTextResponse

NAME = "python-fastapi"
VERSION = (Path(__file__).parent / "VERSION").read_text().strip()

app = FastAPI(title=NAME, version=VERSION)


@app.get("/", response_class=PlainTextResponse)
def index() -> str:
    return f"Hello from {NAME} v{VERSION}"


@app.get("/health", response_class=PlainTextResponse)
def health() -> str:
    return "ok"


@app.get("/config/{name}", response_class=PlainTextResponse)
def config(name: str) -> str:
    value = os.environ.get(f"APP_{name}")
    if value is None:
        raise HTTPException(status_code=404, detail=f"APP_{name} is not set")
    return value


@app.get("/whoami")
def whoami() -> dict:
    return {
        "pid": os.getpid(),
        "port": int(os.environ["PORT"]),
        "user": pwd.getpwuid(os.getuid()).pw_name,
        "release": os.environ.get("HOP3_RELEASE"),
    }
