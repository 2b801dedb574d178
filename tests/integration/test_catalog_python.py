"""Catalog apps that run on Python: install with one command on sandbox-1,
smoke-check through nginx with the WAF on, keep data across a reboot, back up
and restore onto sandbox-2, uninstall with `hop destroy`."""

from __future__ import annotations

import hashlib
import hmac
import json

from .catalog_support import (
    CatalogTests,
    Client,
    Probe,
)
from .conftest import hop

KINTO_USER = ("ada", "correct-horse-battery")


def kinto_write(c: Client):
    c.json("POST", "/v1/accounts", {"data": {"id": KINTO_USER[0], "password": KINTO_USER[1]}})
    c.json("POST", "/v1/buckets", {"data": {"id": "notes"}}, auth=KINTO_USER)
    c.json("POST", "/v1/buckets/notes/collections", {"data": {"id": "todo"}}, auth=KINTO_USER)
    record = {"data": {"title": "buy milk", "done": False}}
    c.json("POST", "/v1/buckets/notes/collections/todo/records", record, auth=KINTO_USER)
    return kinto_read(c)


def kinto_read(c: Client):
    data = c.json("GET", "/v1/buckets/notes/collections/todo/records", auth=KINTO_USER)["data"]
    return sorted((r["title"], r["done"]) for r in data)


def radicale_password(c: Client) -> tuple[str, str]:
    host = c.domain.split(".", 1)[1]
    password = hop("config:get", "radicale", "RADICALE_ADMIN_PASSWORD", "-t", host).stdout
    return ("admin", password.strip())


EVENT = "\r\n".join([
    "BEGIN:VCALENDAR", "VERSION:2.0", "PRODID:-//hop3//tests//EN", "BEGIN:VEVENT",
    "UID:standup-1@hop3", "DTSTAMP:20261127T090000Z", "DTSTART:20261130T090000Z",
    "SUMMARY:Team standup", "END:VEVENT", "END:VCALENDAR", "",
])  # fmt: skip


def radicale_write(c: Client):
    auth = radicale_password(c)
    status, _ = c.request("MKCALENDAR", "/admin/work/", auth=auth)
    assert status == 201
    status, text = c.request("PUT", "/admin/work/standup.ics", EVENT.encode(),
                             {"Content-Type": "text/calendar"}, auth)  # fmt: skip
    assert status == 201, text
    return radicale_read(c)


def radicale_read(c: Client):
    auth = radicale_password(c)
    status, text = c.request("PROPFIND", "/admin/", headers={"Depth": "1"}, auth=auth)
    assert status == 207 and "/admin/work/" in text
    summary = [
        x for x in c.text("/admin/work/standup.ics", auth=auth).splitlines() if "SUMMARY" in x
    ]
    assert c.request("GET", "/admin/work/standup.ics")[0] == 401  # not without a login
    return summary


def datasette_write(c: Client):
    host = c.domain.split(".", 1)[1]
    script = ("import sqlite3; db = sqlite3.connect('main.db'); "
              "db.execute('create table stock (item text, count int)'); "
              "db.executemany('insert into stock values (?, ?)', [('pens', 12), ('paper', 500)]); "
              "db.commit()")  # fmt: skip
    hop("run", "datasette", "-t", host, "--", "sh", "-c",
        f'cd "$HOP3_SHARED_DIR/data" && python -c "{script}"')  # fmt: skip
    return datasette_read(c)


def datasette_read(c: Client):
    return c.json("GET", "/main/stock.json?_shape=array&_sort=item")


def synapse_secret(c: Client) -> str:
    app, host = c.domain.split(".", 1)
    return hop("config:get", app, "SYNAPSE_REGISTRATION_SECRET", "-t", host).stdout.strip()


SYNAPSE_USER = ("ada", "a-long-matrix-passphrase")


def synapse_login(c: Client) -> str:
    login = {"type": "m.login.password", "password": SYNAPSE_USER[1],
             "identifier": {"type": "m.id.user", "user": SYNAPSE_USER[0]}}  # fmt: skip
    return c.json("POST", "/_matrix/client/v3/login", login)["access_token"]


def synapse_write(c: Client):
    # A user made with the shared secret (what register_new_matrix_user does).
    nonce = c.json("GET", "/_synapse/admin/v1/register")["nonce"]
    user, password = SYNAPSE_USER
    mac = hmac.new(synapse_secret(c).encode(), digestmod=hashlib.sha1)
    mac.update(b"\x00".join([nonce.encode(), user.encode(), password.encode(), b"notadmin"]))
    form = {"nonce": nonce, "username": user, "password": password, "mac": mac.hexdigest()}
    c.json("POST", "/_synapse/admin/v1/register", form)
    token = {"Authorization": f"Bearer {synapse_login(c)}"}
    status, text = c.request("POST", "/_matrix/client/v3/createRoom",
                             json.dumps({"name": "ops", "room_alias_name": "ops"}).encode(),
                             {"Content-Type": "application/json", **token})  # fmt: skip
    assert status == 200, text
    room = json.loads(text)["room_id"]
    path = f"/_matrix/client/v3/rooms/{room}/send/m.room.message/txn1"
    status, text = c.request("PUT", path, json.dumps({"msgtype": "m.text", "body": "deploy at 5"})
                             .encode(), {"Content-Type": "application/json", **token})  # fmt: skip
    assert status == 200, text
    return synapse_read(c)


def synapse_read(c: Client):
    token = {"Authorization": f"Bearer {synapse_login(c)}"}
    status, text = c.request("GET", "/_matrix/client/v3/joined_rooms", headers=token)
    assert status == 200, text
    (room,) = json.loads(text)["joined_rooms"]
    status, text = c.request("GET", f"/_matrix/client/v3/rooms/{room}/messages?dir=b&limit=20",
                             headers=token)  # fmt: skip
    assert status == 200, text
    events = json.loads(text)["chunk"]
    return [e["content"]["body"] for e in events if e["type"] == "m.room.message"]


def isso_write(c: Client):
    # A title lets Isso open the thread without fetching the page from the site.
    comment = {"text": "Great post, thanks!", "author": "ada", "title": "Hello"}
    c.json("POST", "/new?uri=%2Fblog%2Fhello", comment)
    return isso_read(c)


def isso_read(c: Client):
    thread = c.json("GET", "/?uri=%2Fblog%2Fhello")
    return [(r["author"], r["text"]) for r in thread["replies"]]


PROBES = {
    "kinto": Probe(kinto_write, kinto_read),
    "radicale": Probe(radicale_write, radicale_read),
    "datasette": Probe(datasette_write, datasette_read),
    "synapse": Probe(synapse_write, synapse_read),
    "isso": Probe(isso_write, isso_read),
}


class TestPythonApps(CatalogTests):
    probes = PROBES
