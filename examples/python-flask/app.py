"""Minimal Flask app following the Hop3 example-app contract."""

import os
import pwd
from pathlib import Path

from flask import Flask, Response, abort, jsonify, request

NAME = "python-flask"
VERSION = (Path(__file__).parent / "VERSION").read_text().strip()

app = Flask(__name__)


def text(body: str) -> Response:
    return Response(body, mimetype="text/plain")


@app.get("/")
def index():
    return text(f"Hello from {NAME} v{VERSION}")


@app.get("/health")
def health():
    return text("ok")


@app.get("/config/<name>")
def config(name: str):
    value = os.environ.get(f"APP_{name}")
    if value is None:
        abort(404)
    return text(value)


@app.get("/whoami")
def whoami():
    return jsonify(
        pid=os.getpid(),
        port=int(os.environ["PORT"]),
        user=pwd.getpwuid(os.getuid()).pw_name,
        release=os.environ.get("HOP3_RELEASE"),
    )


@app.post("/echo")
def echo():
    """What the request carried: form fields, a JSON body, uploaded files (name -> size).
    Not part of the example contract: the WAF tests post ordinary bodies here."""
    return jsonify(
        form=request.form.to_dict(),
        json=request.get_json(silent=True),
        files={name: len(upload.read()) for name, upload in request.files.items()},
    )
