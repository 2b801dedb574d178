"""Catalog apps that run on PHP from Debian packages: install with one
command on sandbox-1, smoke-check through nginx with the WAF on, keep data
across a reboot, back up and restore onto sandbox-2, uninstall with
`hop destroy`. Each probe logs in as the generated admin and writes a page
the way a browser or an API client would."""

from __future__ import annotations

import http.client
import json
import re
import urllib.parse

from .catalog_support import APP_HOST, CatalogTests, Client, Probe
from .conftest import hop, ssh

PAGE_TEXT = "Hop3 probe page: the quick brown fox."


class Session:
    """A browser-like client of one app: keeps cookies, follows no redirects."""

    def __init__(self, client: Client):
        self.client, self.cookies = client, {}

    def request(
        self,
        method: str,
        path: str,
        form: dict | None = None,
        body: bytes | None = None,
        headers: dict | None = None,
    ) -> tuple[int, str]:
        headers = {"Host": self.client.domain, "User-Agent": "hop3-tests", **(headers or {})}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection = http.client.HTTPConnection(self.client.address, timeout=60)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            for header in response.headers.get_all("Set-Cookie") or []:
                name, _, rest = header.partition("=")
                value = rest.split(";", 1)[0]
                if value == "deleted":
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = value
            return response.status, response.read().decode("utf-8", "replace")
        finally:
            connection.close()

    def get(self, path: str, expect=(200,)) -> str:
        status, text = self.request("GET", path)
        assert status in expect, f"GET {path}: {status} {text[:300]}"
        return text

    def post(self, path: str, form: dict, expect=(200, 302, 303)) -> str:
        status, text = self.request("POST", path, form)
        assert status in expect, f"POST {path}: {status} {text[:300]}"
        return text


def admin_password(app: str, key: str) -> str:
    return hop("config:get", app, key, "-t", APP_HOST).stdout.strip()


def hidden_fields(html: str, form_id: str) -> dict[str, str]:
    """The hidden inputs of the form with this id."""
    form = re.search(rf'<form[^>]*id="{form_id}".*?</form>', html, re.S)
    assert form, f"no form {form_id} in the page"
    fields = {}
    for tag in re.findall(r"<input[^>]*>", form.group(0)):
        if 'type="hidden"' in tag:
            name = re.search(r'name="([^"]*)"', tag).group(1)
            value = re.search(r'value="([^"]*)"', tag)
            fields[name] = value.group(1) if value else ""
    return fields


# DokuWiki: log in through the form (with its CSRF token), save a page
# through the editor's form, read it back anonymously as raw text.
def dokuwiki_write(c: Client):
    session = Session(c)
    page = session.get("/doku.php?id=start&do=login")
    login = {**hidden_fields(page, "dw__login"), "u": "admin"}
    login["p"] = admin_password("dokuwiki", "DOKUWIKI_ADMIN_PASSWORD")
    session.post("/doku.php?id=start&do=login", login)
    editor = session.get("/doku.php?id=hop3:probe&do=edit")
    fields = hidden_fields(editor, "dw__editform")
    fields.update({"wikitext": PAGE_TEXT, "summary": "probe", "do[save]": "1"})
    session.post("/doku.php?id=hop3:probe", fields)
    return dokuwiki_read(c)


def dokuwiki_read(c: Client):
    return c.text("/doku.php?id=hop3:probe&do=export_raw").strip()


# MediaWiki: log in through the action API (login token, then CSRF token),
# create a page with action=edit, read its wikitext back anonymously.
def mediawiki_write(c: Client):
    session = Session(c)

    def api(method: str, **params):
        params["format"] = "json"
        if method == "GET":
            text = session.get("/api.php?" + urllib.parse.urlencode(params))
        else:
            text = session.post("/api.php", params, expect=(200,))
        data = json.loads(text)
        assert "error" not in data, data
        return data

    token = api("GET", action="query", meta="tokens", type="login")
    password = admin_password("mediawiki", "MEDIAWIKI_ADMIN_PASSWORD")
    login = api("POST", action="login", lgname="Admin", lgpassword=password,
                lgtoken=token["query"]["tokens"]["logintoken"])  # fmt: skip
    assert login["login"]["result"] == "Success", login
    csrf = api("GET", action="query", meta="tokens")["query"]["tokens"]["csrftoken"]
    edit = api("POST", action="edit", title="Hop3 probe", text=PAGE_TEXT, token=csrf)
    assert edit["edit"]["result"] == "Success", edit
    return mediawiki_read(c)


def mediawiki_read(c: Client):
    return c.text("/index.php?title=Hop3_probe&action=raw").strip()


# WordPress: log in through wp-login.php, then publish a post through the
# REST API with the nonce the block editor uses; read it back anonymously
# through the REST API, by its slug (so a restored copy is found too).
def wordpress_write(c: Client):
    session = Session(c)
    session.get("/wp-login.php")  # sets the test cookie the login form wants
    login = {"log": "admin", "pwd": admin_password("wordpress", "WORDPRESS_ADMIN_PASSWORD"),
             "wp-submit": "Log In", "redirect_to": "/wp-admin/", "testcookie": "1"}  # fmt: skip
    session.post("/wp-login.php", login, expect=(302,))
    nonce = session.get("/wp-admin/admin-ajax.php?action=rest-nonce").strip()
    post = {"title": "Hop3 probe", "slug": "hop3-probe", "status": "publish",
            "content": PAGE_TEXT}  # fmt: skip
    status, text = session.request("POST", "/?rest_route=/wp/v2/posts",
                                   body=json.dumps(post).encode(),
                                   headers={"Content-Type": "application/json",
                                            "X-WP-Nonce": nonce})  # fmt: skip
    assert status == 201, f"POST /wp/v2/posts: {status} {text[:300]}"
    return wordpress_read(c)


def wordpress_read(c: Client):
    posts = json.loads(c.text("/?rest_route=/wp/v2/posts&slug=hop3-probe"))
    assert len(posts) == 1, posts
    return re.sub(r"<[^>]+>", "", posts[0]["content"]["rendered"]).strip()


PROBES = {
    "dokuwiki": Probe(dokuwiki_write, dokuwiki_read),
    "mediawiki": Probe(mediawiki_write, mediawiki_read),
    "wordpress": Probe(wordpress_write, wordpress_read),
}


class TestPhpApps(CatalogTests):
    probes = PROBES

    def test_each_instance_keeps_its_files_to_itself(self, installed):
        """DokuWiki's pages and accounts are in the app's shared dir, not in
        the Debian package's /etc or /var/lib tree; the probes wrote pages."""
        assert all(installed[app]["data"] == PAGE_TEXT for app in PROBES)
        address = installed["dokuwiki"]["client"].address
        pages = ssh(address, "ls /srv/hop3/apps/dokuwiki/shared/data/pages/hop3").stdout
        assert "probe.txt" in pages
        assert "probe" not in ssh(address, "ls -R /var/lib/dokuwiki/data/pages").stdout
        users = ssh(address, "cat /srv/hop3/apps/dokuwiki/shared/conf/users.auth.php").stdout
        assert users.startswith("admin:$2y$")
