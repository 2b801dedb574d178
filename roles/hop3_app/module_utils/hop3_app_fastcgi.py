"""A small FastCGI client: one GET request to a PHP-FPM instance, the way
nginx sends it (hop3_proxy's PHP vhost), so that the health check of a PHP
app's web process sees what a visitor would.

Protocol: https://fastcgi-archives.github.io/FastCGI_Specification.html
(records of an 8-byte header and a body; the request is BEGIN_REQUEST,
PARAMS, an empty PARAMS, an empty STDIN; the answer is STDOUT/STDERR
records, then END_REQUEST).
"""

from __future__ import annotations

import os
import socket
import struct

VERSION = 1
BEGIN_REQUEST, END_REQUEST, PARAMS, STDIN, STDOUT, STDERR = 1, 3, 4, 5, 6, 7
RESPONDER = 1
REQUEST_ID = 1
HEADER = struct.Struct("!BBHHBx")  # version, type, request id, content length, padding
MAX_BODY = 65535


class FastCGIError(Exception):
    """The instance does not answer FastCGI (refused, closed, garbled)."""


def record(kind, body=b""):
    return HEADER.pack(VERSION, kind, REQUEST_ID, len(body), 0) + body


def _length(size):
    return struct.pack("!B", size) if size < 128 else struct.pack("!I", size | 0x80000000)


def encode_params(params):
    out = b""
    for name, value in params.items():
        name, value = name.encode(), value.encode()
        out += _length(len(name)) + _length(len(value)) + name + value
    return out


def script_for(document_root, path):
    """(script name, path info) that nginx's PHP vhost would run for ``path``:
    an existing .php file, a directory's index.php, else /index.php (try_files
    $uri $uri/ /index.php)."""
    marker = path.find(".php/")
    if path.endswith(".php") or marker > 0:
        script = path if marker < 0 else path[: marker + 4]
        if os.path.isfile(os.path.join(document_root, script.lstrip("/"))):
            return script, "" if marker < 0 else path[marker + 4 :]
    index = path.rstrip("/") + "/index.php"
    if os.path.isfile(os.path.join(document_root, index.lstrip("/"))):
        return index, ""
    return "/index.php", ""


def request_params(document_root, url_path):
    path, _, query = url_path.partition("?")
    script, path_info = script_for(document_root, path)
    return {
        "GATEWAY_INTERFACE": "CGI/1.1",
        "SERVER_SOFTWARE": "hop3-health-check",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_ADDR": "127.0.0.1",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "0",
        "REQUEST_SCHEME": "http",
        "REQUEST_METHOD": "GET",
        "REQUEST_URI": url_path,
        "DOCUMENT_URI": script,
        "QUERY_STRING": query,
        "SCRIPT_NAME": script,
        "SCRIPT_FILENAME": document_root.rstrip("/") + script,
        "PATH_INFO": path_info,
        "DOCUMENT_ROOT": document_root,
        "CONTENT_LENGTH": "",
        "CONTENT_TYPE": "",
        "HTTP_HOST": "localhost",
        "HTTP_USER_AGENT": "hop3-health-check",
    }


def parse_response(stdout):
    """(status, body) of a CGI response: headers, a blank line, the body."""
    for separator in (b"\r\n\r\n", b"\n\n"):
        head, found, body = stdout.partition(separator)
        if found:
            break
    else:
        head, body = stdout, b""
    status = 200
    for line in head.decode("latin-1").splitlines():
        name, _, value = line.partition(":")
        if name.strip().lower() == "status":
            try:
                status = int(value.split()[0])
            except (IndexError, ValueError) as err:
                raise FastCGIError("bad Status header %r" % line) from err
        elif name.strip().lower() == "location" and status == 200:
            status = 302
    return status, body


def get(port, document_root, url_path, timeout=5):
    """GET ``url_path`` from the FastCGI server on 127.0.0.1:``port``: (status, body)."""
    params = encode_params(request_params(document_root, url_path))
    message = record(BEGIN_REQUEST, struct.pack("!HB5x", RESPONDER, 0))
    for start in range(0, len(params), MAX_BODY):
        message += record(PARAMS, params[start : start + MAX_BODY])
    message += record(PARAMS) + record(STDIN)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(message)
            return parse_response(_read_stdout(sock))
    except OSError as err:
        raise FastCGIError(str(err)) from err


def _read_exactly(sock, size):
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise FastCGIError("the connection closed in the middle of a record")
        data += chunk
    return data


def _read_stdout(sock):
    stdout = b""
    while True:
        version, kind, _, length, padding = HEADER.unpack(_read_exactly(sock, HEADER.size))
        if version != VERSION:
            raise FastCGIError("not a FastCGI answer")
        body = _read_exactly(sock, length + padding)[:length]
        if kind == STDOUT:
            stdout += body
        elif kind == END_REQUEST:
            return stdout
