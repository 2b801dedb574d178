"""Install Piku, from its unmodified source, on a sandbox host."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

PIKU_SOURCE = Path("/work/shared/anchors/piku")
PIKU_FILES = ("piku.py", "uwsgi-piku.service", "piku-nginx.path", "piku-nginx.service",
              "nginx.default.dist", "LICENSE", "REVISION")  # fmt: skip
INSTALL_SCRIPT = Path(__file__).with_name("piku_install.sh")
REMOTE_DIR = "/tmp/bench-piku"


def ensure_key(path: Path) -> Path:
    """The controller's key for `piku@host` (made once, kept in the state dir)."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "hop3-bench",
                        "-f", str(path)], check=True)  # fmt: skip
    return path


def _bundle(source: Path, public_key: Path) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name in PIKU_FILES:
            tar.add(source / name, arcname=name)
        tar.add(INSTALL_SCRIPT, arcname="install.sh")
        tar.add(public_key, arcname="controller.pub")
    return buffer.getvalue()


def revision(source: Path = PIKU_SOURCE) -> str:
    return (source / "REVISION").read_text().strip()


def install(hop: str, host: str, key: Path, source: Path = PIKU_SOURCE) -> None:
    """Copy Piku's files and our install script to ``host`` and run it as root."""
    missing = [name for name in PIKU_FILES if not (source / name).exists()]
    if missing:
        raise FileNotFoundError(f"Piku's source in {source} lacks {', '.join(missing)}")
    remote = (
        f"rm -rf {REMOTE_DIR} && mkdir -m 0755 {REMOTE_DIR} && tar -C {REMOTE_DIR} "
        f"--no-same-owner -x && sh {REMOTE_DIR}/install.sh {REMOTE_DIR}"
    )
    done = subprocess.run([hop, "sandbox", "ssh", host, "--", remote],
                          input=_bundle(source, key.with_suffix(".pub")),
                          capture_output=True, timeout=1200)  # fmt: skip
    if done.returncode != 0:
        tail = (done.stdout + done.stderr).decode(errors="replace")[-1500:]
        raise RuntimeError(f"Installing Piku on {host} failed:\n{tail}")
