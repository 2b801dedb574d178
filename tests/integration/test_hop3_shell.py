"""git push deploys and `ssh hop3@HOST COMMAND` through hop3-shell, on a real
sandbox host: users with roles (added from the controller), what each role
may and may not do, the audit entries of each, a removed key refused,
hostile command strings refused without running anything, and two pushes of
the same app at once. Everything is undone at the end (app, users)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from .conftest import HOP, hop, hop_json, ssh

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
HOST = "sandbox-1"
APP = "pushed"
OTHER_APP = "not-mine"
AUDIT_LOG = "/var/log/hop3/audit.jsonl"
SSH_OPTS = ("-o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no "
            "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")  # fmt: skip


def keygen(folder: Path, name: str) -> Path:
    key = folder / name
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(key)],
                   check=True)  # fmt: skip
    return key


@pytest.fixture(scope="module")
def env(setup_runs, sandbox_hosts, tmp_path_factory):
    """Keys of three users (admin, deployer of APP, viewer) and a spare one."""
    folder = tmp_path_factory.mktemp("keys")
    keys = {name: keygen(folder, name) for name in ("olga", "ana", "vic", "eve")}
    address = sandbox_hosts[0]["address"]
    hop("users:add", "olga", "--key", f"{keys['olga']}.pub", "--role", "admin", "-t", HOST)
    hop("users:add", "ana", "--key", f"{keys['ana']}.pub", "--role", "deployer",
        "--apps", APP, "-t", HOST)  # fmt: skip
    hop("users:add", "vic", "--key", f"{keys['vic']}.pub", "--role", "viewer", "-t", HOST)
    yield {"address": address, "keys": keys, "folder": folder}
    hop("destroy", APP, "--yes", "-t", HOST, check=False)
    for name in ("olga", "ana", "vic"):
        hop("users:remove", name, "-t", HOST, check=False)


def as_user(env, user: str, command: str) -> subprocess.CompletedProcess:
    """`ssh hop3@HOST command` with ``user``'s key (command sent as one string)."""
    args = ["ssh", "-i", str(env["keys"][user]), *shlex.split(SSH_OPTS),
            f"hop3@{env['address']}", command]  # fmt: skip
    return subprocess.run(args, capture_output=True, text=True, timeout=600)


def git(repo: Path, *args: str, key: Path | None = None, check=True) -> subprocess.CompletedProcess:
    environ = {**os.environ, "GIT_AUTHOR_NAME": "Ana", "GIT_AUTHOR_EMAIL": "ana@example.com",
               "GIT_COMMITTER_NAME": "Ana", "GIT_COMMITTER_EMAIL": "ana@example.com"}  # fmt: skip
    if key:
        environ["GIT_SSH_COMMAND"] = f"ssh -i {key} {SSH_OPTS}"
    proc = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                          env=environ, timeout=900)  # fmt: skip
    if check and proc.returncode != 0:
        pytest.fail(f"git {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


def serve(address: str, app: str = APP) -> tuple[int, str]:
    request = urllib.request.Request(f"http://{address}/", headers={"Host": f"{app}.{HOST}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, ""


def audit_entries(env) -> list[dict]:
    text = ssh(env["address"], f"cat {AUDIT_LOG}").stdout
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def set_version(repo: Path, version: str) -> None:
    """The example answers "Hello from python-flask v<VERSION>"."""
    (repo / "VERSION").write_text(version + "\n")


@pytest.fixture(scope="module")
def repo(env, tmp_path_factory):
    """The python-flask example as a git repository with the remote hop3."""
    path = tmp_path_factory.mktemp("repo") / "app"
    shutil.copytree(EXAMPLES / "python-flask", path)
    git(path, "init", "-q", "-b", "main")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    git(path, "remote", "add", "hop3", f"hop3@{env['address']}:{APP}")
    return path


@pytest.fixture(scope="module")
def first_push(env, repo):
    started = time.monotonic()
    proc = git(repo, "push", "hop3", "main", key=env["keys"]["ana"], check=False)
    return proc, time.monotonic() - started


def test_first_push_creates_and_deploys_the_app(env, repo, first_push):
    proc, seconds = first_push
    assert proc.returncode == 0, proc.stderr
    assert f"remote: hop3: deploying {APP}" in proc.stderr
    assert serve(env["address"]) == (200, "Hello from python-flask v1.0.0")
    sha = git(repo, "rev-parse", "--short=12", "HEAD").stdout.strip()
    releases = hop_json("releases", APP, "-t", HOST)
    assert f"git:{sha}" in json.dumps(releases)
    print(f"first push: {seconds:.1f} s")


def test_push_of_a_fix_serves_the_new_code(env, repo, first_push):
    set_version(repo, "1.1.0")
    git(repo, "commit", "-q", "-am", "fix")
    started = time.monotonic()
    git(repo, "push", "hop3", "main", key=env["keys"]["ana"])
    print(f"code-only push: {time.monotonic() - started:.1f} s")
    assert serve(env["address"]) == (200, "Hello from python-flask v1.1.0")


def test_failed_deploy_rejects_the_push_and_the_old_release_serves(env, repo, first_push):
    before = git(repo, "ls-remote", "hop3", "refs/heads/main", key=env["keys"]["ana"]).stdout
    (repo / "app.py").write_text((repo / "app.py").read_text() + "\nraise SystemExit(3)\n")
    git(repo, "commit", "-q", "-am", "broken")
    proc = git(repo, "push", "hop3", "main", key=env["keys"]["ana"], check=False)
    assert proc.returncode != 0
    assert "push rejected" in proc.stderr and "[remote rejected]" in proc.stderr
    assert serve(env["address"]) == (200, "Hello from python-flask v1.1.0")
    after = git(repo, "ls-remote", "hop3", "refs/heads/main", key=env["keys"]["ana"]).stdout
    assert after == before
    git(repo, "reset", "-q", "--hard", "HEAD~1")


def test_only_the_deploy_branch_deploys(env, repo, first_push):
    proc = git(repo, "push", "hop3", "HEAD:refs/heads/feature", key=env["keys"]["ana"],
               check=False)  # fmt: skip
    assert proc.returncode != 0
    assert "only branch 'main' deploys pushed" in proc.stderr
    # Per app, the config variable HOP3_DEPLOY_BRANCH names another branch.
    hop("config:set", APP, "HOP3_DEPLOY_BRANCH=production", "--no-restart", "-t", HOST)
    try:
        assert git(repo, "push", "hop3", "HEAD:refs/heads/production",
                   key=env["keys"]["ana"], check=False).returncode == 0  # fmt: skip
        git(repo, "commit", "-q", "--allow-empty", "-m", "not deployed")
        refused = git(repo, "push", "hop3", "HEAD:refs/heads/main", key=env["keys"]["ana"],
                      check=False)  # fmt: skip
        assert "only branch 'production' deploys pushed" in refused.stderr
        git(repo, "reset", "-q", "--hard", "HEAD~1")
    finally:
        hop("config:unset", APP, "HOP3_DEPLOY_BRANCH", "--no-restart", "-t", HOST)


def test_viewer_reads_and_is_denied_changes(env, first_push):
    assert APP in as_user(env, "vic", "apps").stdout
    hop("config:set", APP, "SECRET_TOKEN=s3cr3t-value", "-t", HOST)
    shown = as_user(env, "vic", f"config {APP}")
    assert shown.returncode == 0 and "SECRET_TOKEN: ********" in shown.stdout
    assert "s3cr3t-value" not in shown.stdout
    assert as_user(env, "vic", f"releases {APP}").returncode == 0
    assert as_user(env, "vic", f"logs {APP} -n 5").returncode == 0
    denied = as_user(env, "vic", f"config:set {APP} A=1")
    assert denied.returncode != 0
    assert f"permission denied: viewer 'vic' may not config:set '{APP}'" in denied.stderr
    assert as_user(env, "vic", f"config:get {APP} SECRET_TOKEN").returncode != 0


def test_deployer_changes_its_app_only(env, first_push):
    done = as_user(env, "ana", f"config:set {APP} GREETING='hi there'")
    assert done.returncode == 0, done.stderr
    assert as_user(env, "ana", f"config:get {APP} GREETING").stdout == "hi there"
    assert as_user(env, "ana", f"restart {APP}").returncode == 0
    denied = as_user(env, "ana", f"destroy {APP} --yes")
    assert denied.returncode != 0
    assert f"permission denied: deployer 'ana' may not destroy '{APP}'" in denied.stderr
    other = as_user(env, "ana", f"config:set {OTHER_APP} A=1")
    assert other.returncode != 0 and "it is not one of its apps" in other.stderr
    assert serve(env["address"]) == (200, "Hello from python-flask v1.1.0")


def test_admin_manages_users_over_ssh(env, first_push):
    listed = as_user(env, "olga", "users:list")
    assert listed.returncode == 0 and "ana" in listed.stdout and "deployer" in listed.stdout
    assert as_user(env, "ana", "users:list").returncode != 0


@pytest.mark.parametrize(
    "command",
    [
        "apps; touch /tmp/pwned",
        "$(touch /tmp/pwned)",
        "`touch /tmp/pwned`",
        "apps\ntouch /tmp/pwned",
        "apps && touch /tmp/pwned",
        "apps | touch /tmp/pwned",
        "logs 'x; touch /tmp/pwned'",
        "config:set pushed 'A=$(touch /tmp/pwned)' --no-restart; touch /tmp/pwned",
        "apps " + "A" * 20000,
        "git-receive-pack '../../etc'",
    ],
)
def test_hostile_commands_run_nothing(env, command):
    proc = as_user(env, "olga", command)
    assert proc.returncode != 0
    assert proc.stderr.strip(), "a refusal says why"
    assert ssh(env["address"], "test -e /tmp/pwned", check=False).returncode != 0


def test_every_action_and_denial_is_in_the_audit_log(env, first_push):
    entries = audit_entries(env)
    ours = [e for e in entries if e["app"] == APP]
    pushes = [e for e in ours if e["via"] == "git"]
    assert any(e["result"] == "ok" and e["release"] and e["user"] == "ana" for e in pushes)
    assert any(e["result"] == "failed" for e in pushes)
    assert any(e["result"] == "denied" and "feature" in " ".join(e["command"]) for e in pushes)
    set_by_ana = [e for e in ours if e["via"] == "ssh" and e["command"][1:2] == ["config:set"]]
    assert set_by_ana and set_by_ana[-1]["user"] == "ana" and set_by_ana[-1]["result"] == "ok"
    assert set_by_ana[-1]["key"].startswith("SHA256:")
    assert set_by_ana[-1]["source"]
    denials = [e for e in entries if e["result"] == "denied"]
    assert any(e["user"] == "vic" and "config:set" in e["command"] for e in denials)
    assert any(e["user"] == "ana" and "destroy" in e["command"] for e in denials)
    assert any(e["user"] == "olga" and "touch /tmp/pwned" in " ".join(e["command"])
               for e in denials)  # fmt: skip
    text = ssh(env["address"], f"cat {AUDIT_LOG}").stdout
    assert "s3cr3t-value" not in text


def test_remote_mode_runs_the_same_command(env, first_push, tmp_path):
    environ = {**os.environ, "HOP3_SSH_COMMAND": f"ssh -i {env['keys']['vic']} {SSH_OPTS}"}
    proc = subprocess.run(
        [HOP, "--remote", f"hop3@{env['address']}", "apps"],
        capture_output=True, text=True, env=environ, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert APP in proc.stdout


def test_two_pushes_at_once_never_disagree_with_what_runs(env, repo, first_push, tmp_path):
    clones = []
    for name in ("one", "two"):
        clone = tmp_path / name
        shutil.copytree(repo, clone)
        set_version(clone, f"2.0.{len(clones)}")
        git(clone, "commit", "-q", "-am", name)
        clones.append(clone)
    with ThreadPoolExecutor(2) as pool:
        results = list(pool.map(
            lambda c: git(c, "push", "hop3", "main", key=env["keys"]["ana"], check=False), clones
        ))  # fmt: skip
    ok = [r for r in results if r.returncode == 0]
    assert len(ok) >= 1
    for proc in results:
        if proc.returncode != 0:
            assert "rejected" in proc.stderr, proc.stderr
    head = git(repo, "ls-remote", "hop3", "refs/heads/main", key=env["keys"]["ana"]).stdout
    winner = next(c for c in clones if git(c, "rev-parse", "HEAD").stdout.split()[0] in head)
    status, body = serve(env["address"])
    assert status == 200
    assert body == f"Hello from python-flask v{(winner / 'VERSION').read_text().strip()}"


def test_a_removed_users_key_is_refused_at_once(env, first_push):
    assert as_user(env, "vic", "whoami").returncode == 0
    hop("users:remove", "vic", "-t", HOST)
    proc = as_user(env, "vic", "apps")
    assert proc.returncode == 255 and "Permission denied" in proc.stderr
    assert as_user(env, "eve", "apps").returncode == 255  # never added
