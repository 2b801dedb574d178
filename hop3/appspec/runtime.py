"""Tell how to build an app from the files in its directory.

Order: ``[build] runtime`` if given; requirements.txt or pyproject.toml ->
python; package.json -> node; go.mod -> go; index.php -> php; a static dir (``[build]
static-dir``, a ``static:`` Procfile entry, or ``public/index.html`` when there
is no web process) -> static; build commands or processes -> generic.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from hop3.appspec.model import Problems
from hop3.appspec.validate import show

MAX_FILE_SIZE = 1024 * 1024  # spec files larger than this are refused

PYTHON_MARKERS = ("requirements.txt", "pyproject.toml")
NODE_LOCKFILES = ("package-lock.json", "npm-shrinkwrap.json")
AUTO_STATIC_DIR = "public"
PHP_MARKER = "index.php"

CANNOT_TELL = (
    "cannot tell how to build this app: add requirements.txt/pyproject.toml (Python), "
    "package.json (Node), go.mod (Go), a public/ dir (static) or a Procfile"
)


def _inside(root: Path, path: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except (ValueError, OSError):
        return False
    return True


def app_file_exists(root: Path, name: str) -> bool:
    """A regular file in the app (a symlink only if it stays inside the app directory)."""
    path = root / name
    return path.is_file() and _inside(root, path)


def read_app_file(root: Path, name: str, problems: Problems) -> str | None:
    """The text of ``root/name``, or None if absent; problems for unreadable files."""
    path = root / name
    if not path.exists() and not path.is_symlink():
        return None
    if not _inside(root, path):
        problems.add(name, "", "is a symlink to outside the app directory", incomplete=True)
        return None
    if not path.is_file():
        problems.add(name, "", "must be a regular file", incomplete=True)
        return None
    try:
        size = path.stat().st_size
        if size > MAX_FILE_SIZE:
            problems.add(name, "", f"is too large ({size} bytes, at most 1 MiB)", incomplete=True)
            return None
        data = path.read_bytes()
    except OSError as exc:
        problems.add(name, "", f"cannot be read: {exc.strerror}", incomplete=True)
        return None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        problems.add(
            name, "", f"is not UTF-8 text (bad byte at offset {exc.start})", incomplete=True
        )
        return None


@dataclass
class NodeInfo:
    build_script: bool = False
    start_script: bool = False
    lockfile: bool = False


def read_package_json(root: Path, problems: Problems) -> NodeInfo:
    info = NodeInfo(lockfile=any(app_file_exists(root, name) for name in NODE_LOCKFILES))
    text = read_app_file(root, "package.json", problems)
    if text is None:
        return info
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.add(
            "package.json",
            f"line {exc.lineno}",
            f"invalid JSON: {exc.msg} (column {exc.colno})",
            incomplete=True,
        )
        return info
    if not isinstance(data, dict):
        problems.add("package.json", "", f"must be a JSON object, got {show(data)}")
        return info
    scripts = data.get("scripts", {})
    if not isinstance(scripts, dict):
        problems.add("package.json", "scripts", f"must be an object, got {show(scripts)}")
        return info
    info.build_script = isinstance(scripts.get("build"), str) and bool(scripts["build"].strip())
    info.start_script = isinstance(scripts.get("start"), str) and bool(scripts["start"].strip())
    return info


def detect_runtime(
    root: Path,
    *,
    override: str | None,
    static_dir: str | None,
    has_web: bool,
    has_work: bool,
) -> tuple[str | None, str | None]:
    """Return (runtime, auto static dir); runtime None means "cannot tell".

    ``has_work``: there are build commands or processes. The auto static dir is
    'public' when a static site is detected (or asked for) from public/index.html.
    """
    auto_static = None
    if not static_dir and not has_web and app_file_exists(root, f"{AUTO_STATIC_DIR}/index.html"):
        auto_static = AUTO_STATIC_DIR
    if override:
        return override, auto_static if override == "static" else None
    if any(app_file_exists(root, name) for name in PYTHON_MARKERS):
        return "python", None
    if app_file_exists(root, "package.json"):
        return "node", None
    if app_file_exists(root, "go.mod"):
        return "go", None
    if app_file_exists(root, PHP_MARKER):
        return "php", None
    if static_dir or auto_static:
        return "static", auto_static
    if has_work:
        return "generic", None
    return None, None
