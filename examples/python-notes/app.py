"""Notes: a small app that keeps its data in all three places Hop3 backs up.

POST /notes (form field `text`) stores a note as a PostgreSQL row, bumps a
Redis counter and writes the note as a file under shared/notes/. GET /notes
returns all three views as JSON, so a restored copy can be compared.
"""

import hashlib
import os
from pathlib import Path

import psycopg
import redis
from flask import Flask, jsonify, request

app = Flask(__name__)
NOTES_DIR = Path(os.environ.get("HOP3_SHARED_DIR", "/tmp")) / "notes"
PREFIX = os.environ.get("REDIS_KEY_PREFIX", "")


def db():
    return psycopg.connect(os.environ["DATABASE_URL"], autocommit=True)


def cache():
    return redis.Redis.from_url(os.environ["REDIS_URL"])


def migrate():
    with db() as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS notes (id serial PRIMARY KEY, body text NOT NULL)")


@app.get("/health")
def health():
    with db() as conn:
        conn.execute("SELECT 1")
    cache().ping()
    return "ok"


@app.post("/notes")
def add_note():
    body = request.form.get("text", "")
    with db() as conn:
        note_id = conn.execute("INSERT INTO notes (body) VALUES (%s) RETURNING id", (body,)).fetchone()[0]
    cache().incr(PREFIX + "notes:count")
    cache().hset(PREFIX + "notes:bodies", str(note_id), body)
    NOTES_DIR.mkdir(parents=True, exist_ok=True)
    (NOTES_DIR / f"{note_id}.txt").write_text(body)
    return jsonify(id=note_id), 201


@app.get("/notes")
def list_notes():
    with db() as conn:
        rows = conn.execute("SELECT id, body FROM notes ORDER BY id").fetchall()
    files = {}
    if NOTES_DIR.is_dir():
        for path in sorted(NOTES_DIR.iterdir()):
            files[path.name] = hashlib.sha256(path.read_bytes()).hexdigest()
    bodies = cache().hgetall(PREFIX + "notes:bodies")
    return jsonify(
        rows=[[i, b] for i, b in rows],
        count=int(cache().get(PREFIX + "notes:count") or 0),
        redis={k.decode(): v.decode() for k, v in bodies.items()},
        files=files,
    )


if __name__ == "__main__":
    migrate()
