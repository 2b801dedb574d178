"""Packing app sources: reproducible archives, .gitignore honoured, no .git."""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile

import pytest

from hop3.errors import HopError
from hop3.source import pack


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("HOP3_CACHE_DIR", str(tmp_path / "cache"))


def names(archive):
    with tarfile.open(archive) as tar:
        return sorted(tar.getnames())


def make_app(root):
    (root / "app").mkdir(parents=True)
    (root / "app/app.py").write_text("print('hi')\n")
    (root / "app/run.sh").write_text("#!/bin/sh\n")
    (root / "app/run.sh").chmod(0o755)
    (root / "app/.git").mkdir()
    (root / "app/.git/config").write_text("x")
    return root / "app"


def test_plain_directory_is_packed_without_git_and_reproducibly(tmp_path):
    app = make_app(tmp_path)
    first = pack(app)
    assert names(first.archive) == ["app.py", "run.sh"]
    assert first.rev == "dir:" + first.digest[:12]
    (app / "app.py").touch()  # a new mtime alone changes nothing
    assert pack(app).digest == first.digest
    (app / "app.py").write_text("print('changed')\n")
    assert pack(app).digest != first.digest
    with tarfile.open(first.archive) as tar:
        modes = {m.name: m.mode for m in tar.getmembers()}
    assert modes == {"app.py": 0o644, "run.sh": 0o755}


def test_git_work_tree_honours_gitignore(tmp_path):
    app = tmp_path / "repo"
    app.mkdir()
    git = ["git", "-C", str(app), "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run([*git, "init", "-q"], check=True)
    (app / ".gitignore").write_text("node_modules/\n*.log\n")
    (app / "index.js").write_text("x")
    (app / "debug.log").write_text("x")
    (app / "node_modules").mkdir()
    (app / "node_modules/dep.js").write_text("x")
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "init"], check=True)
    (app / "new.js").write_text("untracked but not ignored")
    packed = pack(app)
    assert names(packed.archive) == [".gitignore", "index.js", "new.js"]
    assert packed.rev.startswith("git:") and packed.rev.endswith("-dirty")
    by_ref = pack(app, ref="HEAD")
    assert "new.js" not in names(by_ref.archive) and "index.js" in names(by_ref.archive)
    with pytest.raises(HopError):
        pack(app, ref="no-such-ref")


def test_packing_the_same_source_at_once_never_fails(tmp_path):
    """Two deploys of one source at the same time (e.g. two apps from one example),
    as separate processes: each gets the archive, none trips on another's file."""
    make_app(tmp_path)
    # Incompressible data: writing the archive takes long enough to overlap.
    (tmp_path / "app" / "blob.bin").write_bytes(os.urandom(4 << 20))
    script = (
        "import sys, pathlib; from hop3.source import pack; "
        "print(pack(pathlib.Path(sys.argv[1])).digest)"
    )
    runs = [
        subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "app")],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(8)
    ]  # fmt: skip
    results = [(run.wait(), *run.communicate()) for run in runs]
    assert [code for code, _, _ in results] == [0] * 8, [err for _, _, err in results]
    assert len({out for _, out, _ in results}) == 1
    assert not list((tmp_path / "cache" / "uploads").glob("*.tmp"))


def symlinked_app(root, links):
    app = make_app(root)
    (app / "static").mkdir()
    (app / "static/logo.txt").write_text("logo")
    for name, target in links.items():
        (app / name).symlink_to(target)
    return app


@pytest.mark.parametrize(
    "links, bad",
    [
        ({"static/passwd": "/etc/passwd"}, "static/passwd -> /etc/passwd"),
        ({"up": "../.."}, "up -> ../.."),
        ({"static/out": "../../secret.txt"}, "static/out -> ../../secret.txt"),
        # Each link alone stays inside; followed, the second one leaves the tree.
        ({"static/top": "..", "climb": "static/top/.."}, "climb -> static/top/.."),
    ],
)
def test_links_leaving_the_tree_are_refused_by_name(tmp_path, links, bad):
    app = symlinked_app(tmp_path, links)
    with pytest.raises(HopError) as err:
        pack(app)
    assert bad in err.value.message
    assert "outside the app's directory" in err.value.message
    assert "relative link" in err.value.hint


def test_links_inside_the_tree_are_packed(tmp_path):
    app = symlinked_app(
        tmp_path, {"logo.txt": "static/logo.txt", "assets": "static", "again": "assets/../app.py"}
    )
    packed = pack(app)
    with tarfile.open(packed.archive) as tar:
        links = {m.name: m.linkname for m in tar.getmembers() if m.issym()}
    assert links == {"logo.txt": "static/logo.txt", "assets": "static", "again": "assets/../app.py"}


def test_links_leaving_the_tree_are_refused_in_a_git_ref(tmp_path):
    app = symlinked_app(tmp_path, {"static/passwd": "/etc/passwd"})
    git = ["git", "-C", str(app), "-c", "user.email=t@t", "-c", "user.name=t"]
    (app / ".git/config").unlink()
    (app / ".git").rmdir()
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    subprocess.run([*git, "commit", "-qm", "x"], check=True)
    with pytest.raises(HopError) as err:
        pack(app, ref="HEAD")
    assert "static/passwd -> /etc/passwd" in err.value.message
