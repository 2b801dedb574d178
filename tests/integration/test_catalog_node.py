"""Catalog apps that run on Node.js: install with one command on sandbox-1,
smoke-check through nginx with the WAF on, keep data across a reboot, back up
and restore onto sandbox-2, uninstall with `hop destroy`."""

from __future__ import annotations

import base64
import hashlib
import io
import json
import tarfile
import urllib.request

from .catalog_support import (
    CatalogTests,
    Client,
    Probe,
    addresses,
)
from .conftest import hop


def config_value(c: Client, app: str, key: str) -> str:
    """A generated secret of APP, from the config of the host ``c`` talks to."""
    host = next(name for name, address in addresses().items() if address == c.address)
    return hop("config:get", app, key, "-t", host).stdout.strip()


def call(c: Client, method: str, path: str, data=None, headers=None, auth=None, expect=(200,)):
    body = json.dumps(data).encode() if data is not None else None
    headers = {"Content-Type": "application/json", **(headers or {})}
    status, text = c.request(method, path, body, headers, auth)
    assert status in expect, f"{method} {path}: {status} {text[:300]}"
    return json.loads(text) if text and status < 300 else text


# --- Node-RED: deploy a flow through the admin API, read it back ------------

NODE_RED_FLOW = [
    {"id": "f1a0", "type": "tab", "label": "Greenhouse"},
    {"id": "f1a1", "type": "inject", "z": "f1a0", "name": "every minute", "repeat": "60",
     "payload": "", "payloadType": "date", "wires": [["f1a2"]]},
    {"id": "f1a2", "type": "debug", "z": "f1a0", "name": "log the time", "wires": []},
]  # fmt: skip


def node_red_token(c: Client) -> dict:
    password = config_value(c, "node-red", "NODE_RED_ADMIN_PASSWORD")
    grant = {"client_id": "node-red-admin", "grant_type": "password", "scope": "*",
             "username": "admin", "password": password}  # fmt: skip
    token = call(c, "POST", "/auth/token", grant)["access_token"]
    return {"Authorization": f"Bearer {token}"}


def node_red_write(c: Client):
    call(c, "GET", "/flows", expect=(401,))  # the admin API needs a login
    deploy = {**node_red_token(c), "Node-RED-Deployment-Type": "full"}
    call(c, "POST", "/flows", NODE_RED_FLOW, deploy, expect=(200, 204))
    return node_red_read(c)


def node_red_read(c: Client):
    flows = call(c, "GET", "/flows", headers=node_red_token(c))
    return sorted((n["id"], n["type"], n.get("name") or n.get("label")) for n in flows)


# --- TiddlyWiki: PUT a tiddler as the wiki's writer, GET it -----------------

TIDDLER = "/recipes/default/tiddlers/Seed%20order"
TIDDLYWIKI_HEADERS = {"X-Requested-With": "TiddlyWiki"}  # TiddlyWiki's CSRF check


def tiddlywiki_write(c: Client):
    tiddler = {"title": "Seed order", "text": "Tomatoes: 3 packets", "tags": "garden"}
    call(c, "PUT", TIDDLER, tiddler, TIDDLYWIKI_HEADERS, expect=(401,))  # anonymous
    password = config_value(c, "tiddlywiki", "TIDDLYWIKI_PASSWORD")
    call(c, "PUT", TIDDLER, tiddler, TIDDLYWIKI_HEADERS, ("admin", password), expect=(204,))
    return tiddlywiki_read(c)


def tiddlywiki_read(c: Client):
    tiddler = call(c, "GET", TIDDLER)
    return tiddler["title"], tiddler["text"], tiddler["tags"]


# --- Verdaccio: add a user, publish a package, read it back -----------------

VERDACCIO_USER = ("ada", "correct-horse-battery")
PACKAGE, PACKAGE_VERSION = "hop3-probe", "1.0.0"
PACKAGE_CODE = b"module.exports = () => 'hello from hop3';\n"


def package_tarball() -> bytes:
    """A tiny npm package (package/package.json + package/index.js), as npm packs it."""
    manifest = json.dumps({"name": PACKAGE, "version": PACKAGE_VERSION, "main": "index.js"})
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in (("package.json", manifest.encode()), ("index.js", PACKAGE_CODE)):
            info = tarfile.TarInfo(f"package/{name}")
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def publish_document(tarball: bytes, domain: str) -> dict:
    """The body of `npm publish` (PUT /PACKAGE), built by hand."""
    filename = f"{PACKAGE}-{PACKAGE_VERSION}.tgz"
    integrity = "sha512-" + base64.b64encode(hashlib.sha512(tarball).digest()).decode()
    version = {
        "name": PACKAGE, "version": PACKAGE_VERSION, "main": "index.js",
        "description": "Published by the Hop3 catalog tests.",
        "_id": f"{PACKAGE}@{PACKAGE_VERSION}",
        "dist": {"shasum": hashlib.sha1(tarball).hexdigest(), "integrity": integrity,
                 "tarball": f"http://{domain}/{PACKAGE}/-/{filename}"},
    }  # fmt: skip
    return {
        "_id": PACKAGE, "name": PACKAGE, "description": version["description"],
        "dist-tags": {"latest": PACKAGE_VERSION},
        "versions": {PACKAGE_VERSION: version},
        "_attachments": {filename: {"content_type": "application/octet-stream",
                                    "data": base64.b64encode(tarball).decode(),
                                    "length": len(tarball)}},
    }  # fmt: skip


def verdaccio_write(c: Client):
    name, password = VERDACCIO_USER
    user = {"name": name, "password": password, "type": "user", "roles": []}
    token = call(c, "PUT", f"/-/user/org.couchdb.user:{name}", user, expect=(201,))["token"]
    # max_users = 1: the registry's one account is taken.
    intruder = {**user, "name": "mallory"}
    call(c, "PUT", "/-/user/org.couchdb.user:mallory", intruder, expect=(403, 409))
    document = publish_document(package_tarball(), c.domain)
    call(c, "PUT", f"/{PACKAGE}", document, {"Authorization": f"Bearer {token}"}, expect=(201,))
    return verdaccio_read(c)


def verdaccio_read(c: Client):
    call(c, "GET", f"/{PACKAGE}", expect=(401,))  # a private registry
    package = call(c, "GET", f"/{PACKAGE}", auth=VERDACCIO_USER)
    version = package["versions"][PACKAGE_VERSION]
    path = "/" + version["dist"]["tarball"].split("/", 3)[3]  # its URL names the host asked
    token = base64.b64encode(":".join(VERDACCIO_USER).encode()).decode()
    headers = {"Host": c.domain, "User-Agent": "hop3-tests", "Authorization": f"Basic {token}"}
    request = urllib.request.Request(f"http://{c.address}{path}", headers=headers)
    with urllib.request.urlopen(request, timeout=30) as response:
        tarball = response.read()
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        code = tar.extractfile("package/index.js").read()
    return package["dist-tags"], version["description"], code


PROBES = {
    "node-red": Probe(node_red_write, node_red_read),
    "tiddlywiki": Probe(tiddlywiki_write, tiddlywiki_read),
    "verdaccio": Probe(verdaccio_write, verdaccio_read),
}


class TestNodeApps(CatalogTests):
    probes = PROBES
