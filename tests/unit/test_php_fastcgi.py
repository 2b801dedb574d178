"""The FastCGI client of the PHP health check (roles/hop3_app/module_utils):
its encoding and how it picks the script, without a PHP-FPM (the
integration tests run it against a real one)."""

from __future__ import annotations

import importlib.util
import socket
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parents[2] / "roles/hop3_app/module_utils/hop3_app_fastcgi.py"
spec = importlib.util.spec_from_file_location("hop3_app_fastcgi", PATH)
fastcgi = importlib.util.module_from_spec(spec)
spec.loader.exec_module(fastcgi)


def test_params_use_one_or_four_byte_lengths():
    short = fastcgi.encode_params({"A": "b"})
    assert short == b"\x01\x01Ab"
    long_value = "x" * 200
    encoded = fastcgi.encode_params({"K": long_value})
    assert encoded[:5] == b"\x01\x80\x00\x00\xc8" and encoded[5:6] == b"K"


def test_records_have_the_fastcgi_header():
    assert fastcgi.record(fastcgi.STDIN) == b"\x01\x05\x00\x01\x00\x00\x00\x00"


@pytest.mark.parametrize(
    ("path", "script", "info"),
    [
        ("/health", "/index.php", ""),  # front controller
        ("/", "/index.php", ""),
        ("/status.php", "/status.php", ""),
        ("/status.php/extra/x", "/status.php", "/extra/x"),
        ("/missing.php", "/index.php", ""),
        ("/admin/", "/admin/index.php", ""),
    ],
)
def test_script_is_chosen_like_nginx_try_files(tmp_path, path, script, info):
    (tmp_path / "admin").mkdir()
    for name in ("index.php", "status.php", "admin/index.php"):
        (tmp_path / name).write_text("<?php")
    assert fastcgi.script_for(str(tmp_path), path) == (script, info)


def test_request_params_point_into_the_document_root(tmp_path):
    (tmp_path / "index.php").write_text("<?php")
    params = fastcgi.request_params(str(tmp_path), "/health?deep=1")
    assert params["SCRIPT_FILENAME"] == f"{tmp_path}/index.php"
    assert params["DOCUMENT_ROOT"] == str(tmp_path)
    assert (params["REQUEST_URI"], params["QUERY_STRING"]) == ("/health?deep=1", "deep=1")


@pytest.mark.parametrize(
    ("stdout", "expected"),
    [
        (b"Content-type: text/html\r\n\r\nok", (200, b"ok")),
        (b"Status: 404 Not Found\r\nContent-type: text/plain\r\n\r\nnope", (404, b"nope")),
        (b"Location: /x\r\n\r\n", (302, b"")),
        (b"Status: 503\n\nbusy", (503, b"busy")),
    ],
)
def test_cgi_responses_are_parsed(stdout, expected):
    assert fastcgi.parse_response(stdout) == expected


def test_a_closed_port_is_no_answer():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(fastcgi.FastCGIError):
        fastcgi.get(port, "/srv", "/health", timeout=1)


def test_an_http_server_is_not_mistaken_for_php_fpm():
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            conn, _ = server.accept()
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            conn.close()
            with pytest.raises(fastcgi.FastCGIError):
                fastcgi._read_stdout(client)
