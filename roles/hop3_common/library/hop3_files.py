#!/usr/bin/python3
"""Converge many small files, directories and links in one module call."""

import grp
import os
import pwd
import shlex
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hop3_files
short_description: Converge many small files, directories and links in one call
description:
  - Each entry of O(files) is one path with its wanted state. A path already
    right is left alone (its content, owner, group and mode are compared), so
    a converged host costs one module call for the whole list.
  - A file is written to a temporary file next to it, checked with its
    C(validate) command (C(%s) is the temporary file), then renamed over the
    old one: a file that fails its check never replaces the old one.
  - C(touch) creates an empty file when there is none and otherwise only
    corrects its owner, group and mode: its content (a log) is never touched.
  - Returns the paths that changed and the C(tag)s of the entries that
    changed, so the role reloads only the services whose files changed, and
    C(managed), every entry's path and state (what C(hop3_setup_state)
    watches between two setups).
options:
  files:
    description: >-
      Entries of C(path), C(state) (directory, file, touch, link, absent),
      C(content) (file), C(src) (link), C(owner), C(group) (default root), C(mode) (a
      string, e.g. "0644"), C(validate) (a command with %s), C(tag).
    type: list
    elements: dict
    required: true
author: Hop3
"""

STATES = ("directory", "file", "touch", "link", "absent")


class EntryError(ValueError):
    pass


def ids_of(entry):
    owner, group = entry.get("owner") or "root", entry.get("group") or "root"
    try:
        return pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
    except KeyError as err:
        raise EntryError(f"{entry['path']}: no such user or group ({err})") from None


def mode_of(entry, default):
    mode = entry.get("mode")
    if mode in (None, ""):
        return default
    try:
        return int(str(mode), 8)
    except ValueError:
        raise EntryError(f"{entry['path']}: mode {mode!r} is not octal") from None


def fix_attributes(path, uid, gid, mode, check_mode):
    """Set owner, group and mode when they differ; whether they did."""
    st = os.lstat(path)
    changed = False
    if (st.st_uid, st.st_gid) != (uid, gid):
        changed = True
        if not check_mode:
            os.chown(path, uid, gid)
    if mode is not None and (st.st_mode & 0o7777) != mode:
        changed = True
        if not check_mode:
            os.chmod(path, mode)
    return changed


def converge_directory(entry, check_mode):
    path = entry["path"]
    uid, gid = ids_of(entry)
    mode = mode_of(entry, 0o755)
    if os.path.isdir(path) and not os.path.islink(path):
        return fix_attributes(path, uid, gid, mode, check_mode)
    if os.path.lexists(path):
        raise EntryError(f"{path} exists and is not a directory")
    if not check_mode:
        os.makedirs(path, mode=mode)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return True


def read_bytes(path):
    try:
        with open(path, "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def validate(command, tmp):
    argv = [tmp if arg == "%s" else arg.replace("%s", tmp) for arg in shlex.split(command)]
    proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        said = (proc.stderr or proc.stdout).strip()
        raise EntryError(f"the new {command.split()[0]} check failed: {said}")


def converge_file(entry, check_mode):
    path = entry["path"]
    uid, gid = ids_of(entry)
    mode = mode_of(entry, 0o644)
    content = str(entry.get("content") or "").encode("utf-8")
    if os.path.islink(path) or (os.path.lexists(path) and not os.path.isfile(path)):
        raise EntryError(f"{path} exists and is not a regular file")
    if read_bytes(path) == content:
        return fix_attributes(path, uid, gid, mode, check_mode)
    if check_mode:
        return True
    fd, tmp = tempfile.mkstemp(prefix=".hop3-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.chown(tmp, uid, gid)
        os.chmod(tmp, mode)
        if entry.get("validate"):
            validate(entry["validate"], tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return True


def converge_touch(entry, check_mode):
    path = entry["path"]
    uid, gid = ids_of(entry)
    mode = mode_of(entry, 0o644)
    if os.path.lexists(path):
        if os.path.islink(path) or not os.path.isfile(path):
            raise EntryError(f"{path} exists and is not a regular file")
        return fix_attributes(path, uid, gid, mode, check_mode)
    if not check_mode:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        os.close(fd)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
    return True


def converge_link(entry, check_mode):
    path, src = entry["path"], entry.get("src")
    if not src:
        raise EntryError(f"{path}: a link needs src")
    if os.path.islink(path) and os.readlink(path) == src:
        return False
    if os.path.lexists(path) and not os.path.islink(path):
        raise EntryError(f"{path} exists and is not a link")
    if not check_mode:
        tmp = f"{path}.hop3-tmp"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(src, tmp)
        os.replace(tmp, path)
    return True


def converge_absent(entry, check_mode):
    path = entry["path"]
    if not os.path.lexists(path):
        return False
    if os.path.isdir(path) and not os.path.islink(path):
        raise EntryError(f"{path} is a directory: this module removes files and links only")
    if not check_mode:
        os.unlink(path)
    return True


CONVERGE = {
    "directory": converge_directory,
    "file": converge_file,
    "touch": converge_touch,
    "link": converge_link,
    "absent": converge_absent,
}


def converge(entries, check_mode):
    """Converge every entry in order; (changed paths, their tags)."""
    paths, tags = [], []
    for entry in entries:
        state = entry.get("state") or "file"
        if not entry.get("path") or state not in STATES:
            raise EntryError(f"entry {entry!r} needs a path and a state among {', '.join(STATES)}")
        if CONVERGE[state](entry, check_mode):
            paths.append(entry["path"])
            tag = entry.get("tag")
            if tag and tag not in tags:
                tags.append(tag)
    return paths, tags


def main():
    module = AnsibleModule(
        argument_spec={"files": {"type": "list", "elements": "dict", "required": True}},
        supports_check_mode=True,
    )
    try:
        paths, tags = converge(module.params["files"], module.check_mode)
    except (EntryError, OSError) as err:
        module.fail_json(msg=f"Cannot converge the files: {err}.")
    managed = [{"path": e["path"], "state": e.get("state") or "file"} for e in module.params["files"]]
    module.exit_json(changed=bool(paths), updated_paths=paths, updated_tags=tags, managed=managed)


if __name__ == "__main__":
    main()
