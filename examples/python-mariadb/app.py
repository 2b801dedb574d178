"""Guestbook: a small app that keeps its rows in a MariaDB database.

It connects with the parts Hop3 gives a mariadb addon (MARIADB_HOST, _PORT,
_DATABASE, _USER, _PASSWORD), the way PHP apps are configured. POST
/entries (form field `text`) stores a row; GET /entries lists them as JSON.
`python app.py` (the release step) creates the table.
"""

import os

import pymysql
from flask import Flask, jsonify, request

app = Flask(__name__)


def db():
    return pymysql.connect(
        host=os.environ["MARIADB_HOST"],
        port=int(os.environ["MARIADB_PORT"]),
        user=os.environ["MARIADB_USER"],
        password=os.environ["MARIADB_PASSWORD"],
        database=os.environ["MARIADB_DATABASE"],
        charset="utf8mb4",
        autocommit=True,
    )


def migrate():
    with db() as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TABLE IF NOT EXISTS entries "
            "(id INT AUTO_INCREMENT PRIMARY KEY, body TEXT NOT NULL) CHARACTER SET utf8mb4"
        )


@app.get("/health")
def health():
    with db() as conn, conn.cursor() as cur:
        cur.execute("SELECT 1")
    return "ok"


@app.post("/entries")
def add_entry():
    with db() as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO entries (body) VALUES (%s)", (request.form.get("text", ""),))
        return jsonify(id=cur.lastrowid), 201


@app.get("/entries")
def list_entries():
    with db() as conn, conn.cursor() as cur:
        cur.execute("SELECT id, body FROM entries ORDER BY id")
        rows = cur.fetchall()
    return jsonify(rows=[[i, b] for i, b in rows])


if __name__ == "__main__":
    migrate()
