"""Backups that restore, on real sandbox hosts.

The notes example keeps rows in PostgreSQL, keys in Redis and files in
shared/. It runs on sandbox-3 and is backed up to a repository on sandbox-2
over SFTP; sandbox-3 is then destroyed and the app restored onto a fresh
sandbox-4, which must serve the same rows, keys and file checksums. On
sandbox-4 then: scheduled backups with retention, and the failures (failing
pg_dump, wrong key, missing repository, full disk) that must leave existing
snapshots alone.
"""

from __future__ import annotations

import json
import shutil
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from .conftest import hop, hop_failure, hop_json, secrets_in_runs, ssh

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "python-notes"
APP = "notes"
SOURCE, REPO, TARGET = "sandbox-3", "sandbox-2", "sandbox-4"
# Ordinary text: the WAF (on by default) refuses notes that look like attacks.
NOTES = ["first note", 'second: with "quotes" & an ampersand', "third ✓ unicode"]


def http(address: str, path: str, data: dict | None = None) -> dict:
    body = urllib.parse.urlencode(data).encode() if data is not None else None
    request = urllib.request.Request(
        f"http://{address}{path}", data=body, headers={"Host": f"{APP}.{host_of(address)}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def host_of(address: str) -> str:
    return f"sandbox-{address.rsplit('.', 1)[1][-1]}"


def snapshot_ids(*args: str) -> list[str]:
    reports = hop_json("backups", APP, *args)
    return sorted({s["id"] for r in reports.values() for s in r["snapshots"]})


@pytest.fixture(scope="module")
def hosts(setup_runs, sandbox_hosts):
    """sandbox-3 and sandbox-4 beside the shared two, set up; removed afterwards."""
    up = hop_json("sandbox", "up", "-n", "4", "--image", "converged")
    booted = {h["name"]: h["address"] for h in up}
    hop("setup", "-t", f"{SOURCE},{TARGET}")
    yield booted
    for name in (SOURCE, TARGET):  # sandbox-3 is already gone when the DR test ran
        hop("sandbox", "down", name, check=False)
    assert [h["name"] for h in hop_json("sandbox", "status")] == ["sandbox-1", "sandbox-2"]


@pytest.fixture(scope="module")
def notes(hosts, tmp_path_factory):
    """The notes app on sandbox-3 with three notes; what it serves."""
    app_dir = tmp_path_factory.mktemp("notes") / "python-notes"
    shutil.copytree(EXAMPLE, app_dir)
    hop("deploy", str(app_dir), "-t", SOURCE)
    for text in NOTES:
        http(hosts[SOURCE], "/notes", {"text": text})
    return http(hosts[SOURCE], "/notes")


@pytest.fixture(scope="module")
def key_file(notes, tmp_path_factory):
    """First backup to sandbox-2 (makes the key); the key as the admin saved it."""
    result = hop_json("backup", APP, "-t", SOURCE, "--repo", REPO)
    report = result["reports"][SOURCE]
    assert report["key_created"] is True
    assert report["databases"] == [APP] and report["redis"] == [APP]
    key = hop_json("backup:key", "-t", SOURCE)[SOURCE]
    path = tmp_path_factory.mktemp("key") / "hop3-backup.key"
    path.write_text(key + "\n")
    return path


def test_the_app_keeps_data_in_postgres_redis_and_files(notes, hosts):
    assert [body for _, body in notes["rows"]] == NOTES
    assert notes["count"] == 3
    assert sorted(notes["redis"].values()) == sorted(NOTES)
    assert len(notes["files"]) == 3
    hop("restart", APP, "-t", SOURCE)
    assert http(hosts[SOURCE], "/notes") == notes


def test_backup_is_encrypted_and_its_key_stays_on_hosts(key_file, hosts):
    key = key_file.read_text().strip()
    stored = ssh(hosts[SOURCE], "stat -c %a /etc/hop3/backup/key; cat /etc/hop3/backup/key").stdout
    assert stored.split() == ["600", key]
    # The repository on sandbox-2 is restic's: encrypted, no note text in it.
    found = ssh(hosts[REPO], "grep -rl 'second: with' /srv/hop3/backup-store/restic", check=False)
    assert found.returncode == 1 and not found.stdout
    assert secrets_in_runs(key) == []
    # A second backup adds a snapshot; no new key.
    again = hop_json("backup", APP, "-t", SOURCE, "--repo", REPO)["reports"][SOURCE]
    assert again["key_created"] is False
    assert len(snapshot_ids("-t", SOURCE, "--repo", REPO)) == 2


def test_disaster_recovery_onto_a_fresh_host(key_file, notes, hosts):
    files_before = ssh(hosts[SOURCE], f"cd /srv/hop3/apps/{APP}/shared && sha256sum notes/*").stdout
    hop("sandbox", "down", SOURCE)  # host 1 is gone, with its disk
    no_key = hop_failure("restore", APP, "-t", TARGET, "--from", SOURCE, "--repo", REPO)
    assert "has no key for the repository" in no_key and "--key-file" in no_key
    hop("restore", APP, "-t", TARGET, "--from", SOURCE, "--repo", REPO, "--key-file", str(key_file))
    assert http(hosts[TARGET], "/notes") == notes
    assert secrets_in_runs(key_file.read_text().strip()) == []
    files_after = ssh(hosts[TARGET], f"cd /srv/hop3/apps/{APP}/shared && sha256sum notes/*").stdout
    assert files_after == files_before
    owner = ssh(hosts[TARGET], f"stat -c %U /srv/hop3/apps/{APP}/shared/notes/1.txt").stdout
    assert owner.strip() == APP
    # The restored app keeps working: a new note lands in all three places.
    http(hosts[TARGET], "/notes", {"text": "after the restore"})
    after = http(hosts[TARGET], "/notes")
    assert after["count"] == 4 and len(after["rows"]) == 4 and len(after["files"]) == 4


def test_schedule_installs_a_timer_with_retention(key_file, hosts):
    args = ("backup:schedule", APP, "hourly", "--keep-last", "2", "-t", TARGET)
    hop(*args)
    second = hop_json(*args)
    assert second["stats"][TARGET]["changed"] == 0
    timer = ssh(
        hosts[TARGET],
        f"systemctl is-enabled hop3-backup-{APP}.timer; "
        f"systemctl is-active hop3-backup-{APP}.timer",
    ).stdout
    assert timer.split() == ["enabled", "active"]
    for _ in range(3):
        ssh(hosts[TARGET], f"systemctl start hop3-backup@{APP}.service")
    assert len(snapshot_ids("-t", TARGET, "--from", TARGET)) == 2
    hop("backup:check", "-t", TARGET)
    hop("backup:unschedule", APP, "-t", TARGET)
    gone = ssh(hosts[TARGET], f"systemctl is-enabled hop3-backup-{APP}.timer", check=False)
    assert gone.returncode != 0


def test_failing_pg_dump_keeps_snapshots(key_file, hosts):
    before = snapshot_ids("-t", TARGET)
    ssh(hosts[TARGET], "systemctl stop postgresql@15-main")
    try:
        text = hop_failure("backup", APP, "-t", TARGET)
    finally:
        ssh(hosts[TARGET], "systemctl start postgresql@15-main")
    assert "pg_dump of database notes failed, so no snapshot was made" in text
    assert snapshot_ids("-t", TARGET) == before
    staging = ssh(hosts[TARGET], "ls -A /srv/hop3/backups/staging").stdout
    assert staging.strip() == ""


def test_wrong_key_is_refused_and_changes_nothing(key_file, hosts):
    before = snapshot_ids("-t", TARGET)
    ssh(
        hosts[TARGET],
        "cp -p /etc/hop3/backup/key /root/key.saved && "
        "echo not-the-platform-key-at-all > /etc/hop3/backup/key",
    )
    try:
        text = hop_failure("backup", APP, "-t", TARGET)
    finally:
        ssh(hosts[TARGET], "cp -p /root/key.saved /etc/hop3/backup/key")
    assert "refused this host's key" in text
    assert snapshot_ids("-t", TARGET) == before


def test_missing_repository_is_reported_not_recreated(key_file, hosts):
    store = "/srv/hop3/backup-store/restic"
    ssh(hosts[REPO], f"mv {store} {store}.moved")
    try:
        text = hop_failure("backup", APP, "-t", TARGET, "--repo", REPO)
        recreated = ssh(hosts[REPO], f"test -e {store}", check=False).returncode == 0
        # Starting over is explicit, and gives an empty repository with the same key.
        hop("backup:init", "--new", "-t", TARGET, "--repo", REPO)
        fresh = snapshot_ids("-t", TARGET, "--repo", REPO)
    finally:
        ssh(hosts[REPO], f"rm -rf {store} && mv {store}.moved {store}")
    assert "there is no restic repository" in text and "backup:init --new" in text
    assert not recreated
    assert fresh == []
    assert len(snapshot_ids("-t", TARGET, "--repo", REPO, "--from", SOURCE)) == 2


def test_full_disk_is_reported_and_keeps_snapshots(key_file, hosts):
    repo = "/srv/hop3/backups/restic"
    before = snapshot_ids("-t", TARGET)
    ssh(
        hosts[TARGET],
        f"cp -a {repo} /root/repo.copy && mount -t tmpfs -o size=2m tmpfs {repo} "
        f"&& cp -a /root/repo.copy/. {repo}/ && head -c 4000000 /dev/urandom "
        f"> /srv/hop3/apps/{APP}/shared/notes/big.bin",
    )
    try:
        text = hop_failure("backup", APP, "-t", TARGET)
        during = snapshot_ids("-t", TARGET)
    finally:
        ssh(hosts[TARGET], f"umount {repo}; rm -f /srv/hop3/apps/{APP}/shared/notes/big.bin")
    assert "is full" in text
    assert during == before
    hop("backup:check", "-t", TARGET)
