"""A sandbox host's disk (hop3/sandbox/disk.py): mountinfo parsing, overlay
options, and attach/detach/wipe with a mount table of our own instead of the
kernel's (no root needed)."""

from __future__ import annotations

import subprocess

import pytest

from hop3.errors import HopError
from hop3.sandbox import disk, network

_STATE = r"/tmp/my\040state/disks/m-1"
MOUNTINFO = (
    "22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard\n"
    f"98 22 0:52 / {_STATE}/root rw,relatime shared:60 - overlay overlay rw,"
    f"lowerdir=/cache/images/abc,upperdir={_STATE}/upper,workdir={_STATE}/work\n"
    "99 22 0:53 / /var/lib/x rw - overlay overlay rw,lowerdir=/l1:/l2,upperdir=/u,workdir=/w\n"
    "100 22 0:54 / /proc/fs rw - proc proc rw\n"
)


def test_parse_mountinfo_reads_points_types_and_escaped_paths():
    mounts = disk.parse_mountinfo(MOUNTINFO)
    assert [(point, fstype) for point, fstype, _ in mounts] == [
        ("/", "ext4"),
        ("/tmp/my state/disks/m-1/root", "overlay"),
        ("/var/lib/x", "overlay"),
        ("/proc/fs", "proc"),
    ]
    assert mounts[1][2]["upperdir"] == "/tmp/my state/disks/m-1/upper"


def test_overlay_lower_dirs_lists_every_layer():
    assert disk.overlay_lower_dirs(MOUNTINFO) == {"/cache/images/abc", "/l1", "/l2"}
    assert disk.overlay_lower_dirs("garbage\n\n") == set()


def test_overlay_options(tmp_path):
    d = disk.Disk(tmp_path / "m-1")
    assert disk.overlay_options(d, tmp_path / "image") == (
        f"lowerdir={tmp_path}/image,upperdir={tmp_path}/m-1/upper,workdir={tmp_path}/m-1/work"
    )


@pytest.mark.parametrize("bad", ["a,b", "a:b", "a=b"])
def test_overlay_options_refuse_paths_overlayfs_cannot_take(tmp_path, bad):
    with pytest.raises(HopError) as err:
        disk.overlay_options(disk.Disk(tmp_path / bad), tmp_path / "image")
    assert "overlayfs does not accept" in err.value.message
    assert "HOP3_STATE_DIR" in err.value.hint


def test_disks_live_under_the_state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("HOP3_STATE_DIR", str(tmp_path))
    assert disk.disk_for("hop3-sandbox5-2").root == tmp_path / "sandbox/disks/hop3-sandbox5-2/root"


class FakeMounts:
    """The mount table and the mount/umount commands, kept in memory."""

    def __init__(self):
        self.points: dict[str, str] = {}  # mount point -> options
        self.calls: list[tuple[str, ...]] = []
        self.busy = 0  # how many plain umounts fail before one succeeds

    def mountinfo(self) -> str:
        return "".join(
            f"9{i} 1 0:5{i} / {point} rw - overlay overlay rw,{options}\n"
            for i, (point, options) in enumerate(self.points.items())
        )

    def run(self, *args, check=True, input=None):
        self.calls.append(args)
        if args[0] == "mount":
            self.points[args[-1]] = args[-2]
        elif args[:2] == ("umount", "--lazy") or (args[0] == "umount" and not self.busy):
            self.points.pop(args[-1])
        else:
            self.busy -= 1
            return subprocess.CompletedProcess(args, 32, "", "target is busy")
        return subprocess.CompletedProcess(args, 0, "", "")


@pytest.fixture
def mounts(monkeypatch, tmp_path):
    monkeypatch.setenv("HOP3_STATE_DIR", str(tmp_path / "state"))
    fake = FakeMounts()
    monkeypatch.setattr(disk, "run", fake.run)
    monkeypatch.setattr(disk, "mountinfo", fake.mountinfo)
    monkeypatch.setattr(disk.time, "sleep", lambda _s: None)
    return fake


def test_attach_mounts_the_disk_over_the_image(mounts, tmp_path):
    d = disk.disk_for("m-1")
    root = disk.attach(d, tmp_path / "image")
    assert root == d.root and d.upper.is_dir() and d.work.is_dir()
    assert disk.is_mounted(d.root)
    assert d.recorded_image() == str(tmp_path / "image")
    assert mounts.calls == [
        ("mount", "-t", "overlay", "overlay", "-o", disk.overlay_options(d, tmp_path / "image"),
         str(d.root)),
    ]  # fmt: skip


def test_attach_keeps_changes_made_over_the_same_image(mounts, tmp_path):
    d = disk.disk_for("m-1")
    disk.attach(d, tmp_path / "image")
    (d.upper / "kept").write_text("data")
    disk.detach(d)
    disk.attach(d, tmp_path / "image")
    assert (d.upper / "kept").read_text() == "data"


def test_attach_drops_changes_made_over_another_image(mounts, tmp_path):
    d = disk.disk_for("m-1")
    disk.attach(d, tmp_path / "old-image")
    (d.upper / "stale").write_text("data")
    disk.attach(d, tmp_path / "new-image")
    assert not (d.upper / "stale").exists()
    assert d.recorded_image() == str(tmp_path / "new-image")


def test_attach_replaces_a_mount_left_by_a_crash(mounts, tmp_path):
    d = disk.disk_for("m-1")
    disk.attach(d, tmp_path / "image")
    mounts.calls.clear()
    disk.attach(d, tmp_path / "image")
    assert [c[0] for c in mounts.calls] == ["umount", "mount"]
    assert list(mounts.points) == [str(d.root)]


def test_detach_waits_for_a_busy_mount_then_detaches_it_lazily(mounts, tmp_path, monkeypatch):
    d = disk.disk_for("m-1")
    disk.attach(d, tmp_path / "image")
    mounts.busy = 10**6
    clock = iter(range(0, 100))
    monkeypatch.setattr(disk.time, "monotonic", lambda: next(clock))
    disk.detach(d)
    assert not disk.is_mounted(d.root)
    assert mounts.calls[-1] == ("umount", "--lazy", str(d.root))


def test_wipe_unmounts_and_removes_everything(mounts, tmp_path):
    d = disk.disk_for("m-1")
    disk.attach(d, tmp_path / "image")
    (d.upper / "file").write_text("data")
    disk.wipe(d)
    assert not disk.is_mounted(d.root)
    assert not d.base.exists()
    disk.wipe(d)  # nothing left: nothing to do


def test_machines_with_disks(mounts):
    assert disk.machines_with_disks() == []
    for machine in ("hop3-sandbox5-2", "hop3-sandbox5-10"):
        disk.disk_for(machine).base.mkdir(parents=True)
    assert disk.machines_with_disks() == ["hop3-sandbox5-10", "hop3-sandbox5-2"]


def test_index_of_only_matches_this_network(monkeypatch):
    monkeypatch.setenv("HOP3_SANDBOX_NET", "5")
    assert network.index_of("hop3-sandbox5-12") == 12
    assert network.index_of("hop3-sandbox6-12") is None
    assert network.index_of("hop3-sandbox5-x") is None
    monkeypatch.setenv("HOP3_SANDBOX_NET", "0")
    assert network.index_of("hop3-sandbox-3") == 3
    assert network.index_of("hop3-sandbox5-3") is None
