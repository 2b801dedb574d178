"""Hop3 on the hosts: the same Hop3 installed offline in /opt/hop3 by `hop setup`,
the host-side CLI, and the hop3 SSH user (forced commands, no forwarding, no pty)."""

from __future__ import annotations

import hashlib
import json
import socket
import subprocess
import time
from pathlib import Path

import pytest
import yaml

import hop3
from hop3 import wheelhouse

from .conftest import hop, hop_json, ssh

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
KEYS_FILE = "/etc/hop3/ssh/authorized_keys"
KEPT_LINE = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKeep me@test"
SITE = "/opt/hop3/lib/python3.11/site-packages"


@pytest.fixture(scope="module")
def other_host(setup_runs, sandbox_hosts):
    return sandbox_hosts[1]["address"]


def test_hosts_run_the_controllers_hop3(host):
    installed = f"{SITE}/hop3/wheelhouse.py {SITE}/hop3/cli/platform.py"
    out = ssh(host, "/opt/hop3/bin/hop --version; readlink /usr/local/bin/hop;"
                    f" cat /opt/hop3/.wheelhouse-sha256; sha256sum {installed}").stdout  # fmt: skip
    lines = out.splitlines()
    assert lines[0] == f"hop, version {hop3.__version__}"
    assert lines[1] == "/opt/hop3/bin/hop"
    assert lines[2] == wheelhouse.ensure_wheelhouse()[1]
    # The very code running here, not just the same version number.
    here = Path(hop3.__file__).parent
    for line, local in zip(lines[3:], ("wheelhouse.py", "cli/platform.py"), strict=True):
        assert line.split()[0] == hashlib.sha256((here / local).read_bytes()).hexdigest()


def test_install_needs_no_network(other_host):
    """With every new outbound connection of the host dropped, a reinstall from
    the wheelhouse still works, and pip was told --no-index."""
    ssh(other_host, "apt-get update -qq")  # so that no apt task needs the network below
    ssh(other_host, "nft -f - <<'EOF'\n"
                    "table inet hop3_test_offline {\n"
                    "  chain out { type filter hook output priority 0; policy drop;\n"
                    "    ct state established,related accept; oif lo accept; }\n"
                    "}\nEOF\n"
                    "rm /opt/hop3/.wheelhouse-sha256; /opt/hop3/bin/pip uninstall -q -y hop3;"
                    f" echo '{KEPT_LINE}' > {KEYS_FILE}")  # fmt: skip
    try:
        offline = ssh(other_host, "curl -sS -o /dev/null --max-time 5 https://pypi.org/simple/",
                      check=False)  # fmt: skip
        assert offline.returncode != 0, "the host still reaches PyPI: the block does not work"
        result = hop_json("setup", "-t", "sandbox-2")
        assert result["status"] == "successful", result["failures"]
        assert result["changed"] >= 1
    finally:
        ssh(other_host, "nft delete table inet hop3_test_offline", check=False)
    log = "/opt/hop3/.wheelhouse-install.log"
    out = ssh(other_host, f"/opt/hop3/bin/hop --version; grep -c 'Ignoring indexes' {log};"
                          f" grep -c -E 'Downloading|Starting new HTTPS connection' {log};"
                          f" cat {KEYS_FILE}", check=False).stdout.splitlines()  # fmt: skip
    assert out[0] == f"hop, version {hop3.__version__}"
    assert int(out[1]) >= 2 and out[2] == "0"  # --no-index, nothing fetched
    assert out[3] == KEPT_LINE  # the keys file is never overwritten
    ssh(other_host, f": > {KEYS_FILE}")
    assert hop_json("setup", "-t", "sandbox-2", "--full")["changed"] == 0


def test_host_side_cli_lists_apps_deployed_from_the_controller(host):
    hop("deploy", str(EXAMPLES / "static-site"), "--app", "hostcli", "-t", "sandbox-1")
    try:
        inventory = yaml.safe_load(ssh(host, "cat /etc/hop3/cli/inventory.yml").stdout)
        assert inventory["all"]["hosts"]["sandbox-1"]["ansible_connection"] == "local"
        listed = json.loads(ssh(host, "env $(cat /etc/hop3/cli/env) hop apps --json").stdout)
        # Other test modules may have apps of their own on the shared host.
        assert "hostcli" in [app["app"] for app in listed["sandbox-1"]]
        assert listed["sandbox-1"][0]["status"] == "running"
    finally:
        hop("destroy", "hostcli", "--yes", "-t", "sandbox-1")


# --------------------------------------------------------------------------- the hop3 user


def _keygen(path: Path) -> str:
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path.with_suffix(".pub").read_text().strip()


def _hop3_ssh_args(address: str, key: Path, *options: str) -> list[str]:
    return ["ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
            "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
            "-o", "LogLevel=ERROR", *options, f"hop3@{address}"]  # fmt: skip


def _ssh_hop3(address: str, key: Path) -> subprocess.CompletedProcess:
    """Log in as hop3 asking for some other command than the forced one."""
    args = [*_hop3_ssh_args(address, key), "cat", "/etc/shadow"]
    return subprocess.run(args, capture_output=True, text=True, timeout=30)


@pytest.fixture(scope="module")
def keys(host, tmp_path_factory):
    """A key the host does not know, one with the brief's restricted forced
    command, and one with a forced command but no `restrict` (sshd alone must
    then refuse forwarding and the pty)."""
    tmp = tmp_path_factory.mktemp("keys")
    stranger, restricted, loose = tmp / "stranger", tmp / "restricted", tmp / "loose"
    _keygen(stranger)
    lines = [f'restrict,command="/bin/echo forced" {_keygen(restricted)}',
             f'command="env; tty; echo end" {_keygen(loose)}']  # fmt: skip
    before = ssh(host, f"cat {KEYS_FILE}").stdout
    ssh(host, f"cat >> {KEYS_FILE} <<'EOF'\n" + "\n".join(lines) + "\nEOF")
    yield {"stranger": stranger, "restricted": restricted, "loose": loose}
    ssh(host, f"cat > {KEYS_FILE} <<'EOF'\n{before}EOF" if before else f": > {KEYS_FILE}")


def test_unknown_key_is_refused(host, keys):
    proc = _ssh_hop3(host, keys["stranger"])
    assert proc.returncode == 255 and "Permission denied" in proc.stderr


def test_forced_command_runs_instead_of_the_asked_one(host, keys):
    proc = _ssh_hop3(host, keys["restricted"])
    assert proc.returncode == 0 and proc.stdout == "forced\n"


def test_no_agent_forwarding_and_no_pty_even_without_restrict(host, keys, tmp_path):
    agent = subprocess.run(["ssh-agent", "-s"], capture_output=True, text=True, check=True)
    sock = agent.stdout.split("SSH_AUTH_SOCK=", 1)[1].split(";", 1)[0]
    pid = agent.stdout.split("SSH_AGENT_PID=", 1)[1].split(";", 1)[0]
    try:
        env = {"SSH_AUTH_SOCK": sock, "PATH": "/usr/bin:/bin"}
        subprocess.run(["ssh-add", "-q", str(keys["loose"])], env=env, check=True)
        command = [*_hop3_ssh_args(host, keys["loose"], "-A"), "x"]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=30, env=env)
        # -tt makes a refused pty fatal to the client: the command never runs.
        forced = [*_hop3_ssh_args(host, keys["loose"], "-tt"), "x"]
        tty = subprocess.run(forced, capture_output=True, text=True, timeout=30, env=env)
    finally:
        subprocess.run(["kill", pid], check=False)
    assert "end" in proc.stdout, proc.stderr
    assert "SSH_AUTH_SOCK" not in proc.stdout
    assert "not a tty" in proc.stdout
    assert "SSH_USER_AUTH=" in proc.stdout  # ExposeAuthInfo, for the audit log
    assert "PTY allocation request failed" in tty.stderr and "end" not in tty.stdout


@pytest.mark.parametrize("key", ["restricted", "loose"])
def test_port_forwarding_is_refused(host, keys, key):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    command = _hop3_ssh_args(host, keys[key], "-N", "-L", f"127.0.0.1:{port}:127.0.0.1:22")
    tunnel = subprocess.Popen(command, stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        data = None
        for _ in range(50):
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
                    conn.settimeout(5)
                    data = conn.recv(64)
                break
            except ConnectionRefusedError:
                time.sleep(0.2)
        # An open tunnel would carry sshd's banner; a refused one closes at once.
        assert data == b"", f"the tunnel carried {data!r}"
    finally:
        tunnel.terminate()
        try:
            tunnel.wait(timeout=5)
        except subprocess.TimeoutExpired:  # the verdict is in; ssh may linger in its loop
            tunnel.kill()
            tunnel.wait(timeout=10)


def test_hop3_may_sudo_only_hop3_shell(host):
    listing = ssh(host, "runuser -u hop3 -- sudo -n -l").stdout
    allowed = listing.split("may run the following commands", 1)[1].strip().splitlines()[1:]
    assert [line.strip() for line in allowed] == ["(root) NOPASSWD: /opt/hop3/bin/hop3-shell"]
    assert ssh(host, "runuser -u hop3 -- sudo -n /bin/true", check=False).returncode != 0


def test_ssh_config_is_valid_and_keys_file_is_root_owned(host):
    out = ssh(host, f"sshd -t && echo valid; stat -c '%U %a' {KEYS_FILE}; "
                    f"runuser -u hop3 -- sh -c 'echo x >> {KEYS_FILE}' 2>/dev/null || echo denied; "
                    "sshd -T -C user=hop3,host=x,addr=192.0.2.1 | grep -E "
                    "'^(permittty|allowtcpforwarding|allowagentforwarding|exposeauthinfo) '"
                    ).stdout.splitlines()  # fmt: skip
    assert out[:3] == ["valid", "root 644", "denied"]
    assert sorted(out[3:]) == ["allowagentforwarding no", "allowtcpforwarding no",
                               "exposeauthinfo yes", "permittty no"]  # fmt: skip
    # Root (and everyone else) keeps the global settings.
    root = ssh(host, "sshd -T -C user=root,host=x,addr=192.0.2.1 | grep '^permittty '").stdout
    assert root.strip() == "permittty yes"


def test_second_setup_changes_nothing(setup_runs):
    _, second = setup_runs
    assert {h: s["changed"] for h, s in second["stats"].items()} == {h: 0 for h in second["stats"]}
