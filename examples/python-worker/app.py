"""Web process: the Hop3 example-app contract plus views on the other processes."""

import os
import pwd
import time

from flask import Flask, Response, abort, jsonify

from common import VERSION, heartbeat_file, shared_dir

NAME = "python-worker"

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


@app.get("/heartbeat")
def heartbeat():
    """What the worker wrote last, and how many seconds ago."""
    path = heartbeat_file()
    try:
        content = path.read_text()
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return jsonify(error="no heartbeat yet"), 404
    return jsonify(content=content.strip(), age=round(age, 3))


@app.get("/releases")
def releases():
    """Files written by the release command, one per deployed VERSION."""
    return jsonify(sorted(p.name for p in shared_dir().glob("release-*.txt")))
