#!/usr/bin/python3
"""Tell whether a host is still as its last `hop setup` left it, in one call."""

import hashlib
import json
import os
import stat
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hop3_setup_state
short_description: Record what a setup converged; tell whether it still holds
description:
  - O(state=record), at the end of a successful setup, observes what the setup
    manages (files, packages, units and the output of probe commands) and
    writes those observations to O(path) with the O(fingerprint) of the
    setup's inputs (Hop3's roles and every variable they read).
  - O(state=begin), at the start of a setup, observes the recorded items
    again. When the fingerprint is the same and every observation matches,
    returns C(unchanged=true): running the roles would change nothing. In
    every other case (no record, new inputs, drift, O(full)) it removes the
    record, so that a setup that fails or is interrupted leaves none, and
    returns C(unchanged=false) with the C(reason).
  - Neither state counts as a change of the host; the record is Hop3's own
    bookkeeping (root only, mode 0600).
  - O(state=begin) returns the O(fingerprint) it was given, for the record
    at the end of the play: the variables it is computed from then include
    the play's registered results. It sets the fact C(hop3_report) (C(setup) is C(unchanged) or
    C(converging), C(reason) says why), which C(hop setup) prints.
options:
  state: {description: begin or record., type: str, required: true, choices: [begin, record]}
  fingerprint: {description: Digest of the setup's inputs., type: str, required: true}
  path: {description: The record., type: path, default: /var/lib/hop3/setup-state.json}
  full: {description: With begin, run every step whatever the record says., type: bool, default: false}
  paths:
    description: >-
      With record, entries of C(path) and C(state) (as hop3_files returns them
      in C(managed)): C(file), C(link) and C(absent) are watched with their
      content; any other state (C(directory), C(touch), C(present)) by type,
      owner, group and mode only.
    type: list
    elements: dict
    default: []
  packages: {description: With record, Debian packages whose install status is watched., type: list, elements: str, default: []}
  units: {description: With record, systemd units whose load, enablement and activity are watched., type: list, elements: str, default: []}
  probes:
    description: With record, commands (argv lists) whose exit code and output are watched.
    type: list
    elements: list
    default: []
author: Hop3
"""

VERSION = 1
WITH_CONTENT = ("file", "link", "absent")
UNIT_PROPERTIES = ("Id", "LoadState", "UnitFileState", "ActiveState")


def digest(data):
    return hashlib.sha256(data).hexdigest()


def observe_path(path, with_content):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return "absent"
    attributes = f"{stat.S_IMODE(st.st_mode):o} {st.st_uid}:{st.st_gid}"
    if stat.S_ISLNK(st.st_mode):
        return f"link {os.readlink(path)}"
    if stat.S_ISDIR(st.st_mode):
        return f"directory {attributes}"
    if not stat.S_ISREG(st.st_mode):
        return f"special {attributes}"
    if not with_content:
        return f"file {attributes}"
    with open(path, "rb") as f:
        return f"file {attributes} {digest(f.read())}"


def run(argv):
    try:
        proc = subprocess.run(argv, capture_output=True, check=False)
    except OSError as err:
        return 127, str(err).encode()
    return proc.returncode, proc.stdout


def observe_packages(names):
    if not names:
        return {}
    _, out = run(["dpkg-query", "--show", "--showformat=${db:Status-Abbrev}\t${Package}\n", *names])
    found = {}
    for line in out.decode("utf-8", "replace").splitlines():
        status, _, name = line.partition("\t")
        found[name.split(":")[0]] = status.strip()
    return {f"package {n}": found.get(n, "not installed") for n in names}


def observe_units(names):
    if not names:
        return {}
    _, out = run(["systemctl", "show", "--property=" + ",".join(UNIT_PROPERTIES), "--", *names])
    seen, current = {}, {}
    for line in out.decode("utf-8", "replace").splitlines() + [""]:
        if not line:
            if current.get("Id"):
                seen[current["Id"]] = " ".join(current.get(p, "") for p in UNIT_PROPERTIES[1:])
            current = {}
            continue
        key, _, value = line.partition("=")
        current[key] = value
    return {f"unit {n}": seen.get(n, "unknown") for n in names}


def observe_probe(argv):
    code, out = run(argv)
    return f"exit {code} {digest(out)}"


def observe(manifest):
    """{item: what it is now} for every item of the manifest."""
    seen = {}
    for entry in manifest["paths"]:
        seen[f"path {entry['path']}"] = observe_path(entry["path"], entry["state"] in WITH_CONTENT)
    seen.update(observe_packages(manifest["packages"]))
    seen.update(observe_units(manifest["units"]))
    for argv in manifest["probes"]:
        seen["probe " + " ".join(argv)] = observe_probe(argv)
    return seen


def manifest_of(params):
    paths = []
    for entry in params["paths"]:
        if not isinstance(entry, dict) or not entry.get("path"):
            raise ValueError(f"paths entry {entry!r} has no path")
        paths.append({"path": str(entry["path"]), "state": str(entry.get("state") or "file")})
    return {
        "paths": paths,
        "packages": [str(p) for p in params["packages"]],
        "units": [str(u) for u in params["units"]],
        "probes": [[str(a) for a in argv] for argv in params["probes"]],
    }


def load(path):
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError:
        return None, "there is no record of an earlier setup"
    except (OSError, ValueError):
        return None, "the record of the last setup is unreadable"
    if not isinstance(record, dict) or record.get("version") != VERSION:
        return None, "the record of the last setup is from another Hop3 version"
    return record, ""


def drift(record):
    """Why the host differs from the record ("" when it does not)."""
    try:
        now = observe(record["manifest"])
    except (KeyError, TypeError):
        return "the record of the last setup is unreadable"
    differ = [item for item, was in record["observed"].items() if now.get(item) != was]
    if not differ:
        return ""
    more = f" (and {len(differ) - 1} more)" if len(differ) > 1 else ""
    return f"{worded(differ[0])} changed since the last setup{more}"


def worded(item):
    """An observed item as a user reads it: "/etc/x", "package nginx", "the output of `nft ...`"."""
    kind, _, name = item.partition(" ")
    if kind == "path":
        return name
    if kind == "probe":
        return f"the output of `{name}`"
    return item


def begin(params):
    record, why = load(params["path"])
    if params["full"]:
        why = "every step was asked for (--full)"
    elif record is not None:
        if record.get("fingerprint") != params["fingerprint"]:
            why = "Hop3, its roles or the host's variables changed since the last setup"
        else:
            why = drift(record)
    if not why:
        return {"unchanged": True, "reason": "nothing changed since the last setup"}
    try:
        os.unlink(params["path"])
    except FileNotFoundError:
        pass
    return {"unchanged": False, "reason": why}


def record(params):
    manifest = manifest_of(params)
    content = {
        "version": VERSION,
        "fingerprint": params["fingerprint"],
        "manifest": manifest,
        "observed": observe(manifest),
    }
    folder = os.path.dirname(params["path"])
    os.makedirs(folder, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".setup-state.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(content, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, params["path"])
    except BaseException:
        os.unlink(tmp)
        raise
    return {"unchanged": True, "reason": f"recorded {len(content['observed'])} items"}


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {"type": "str", "required": True, "choices": ["begin", "record"]},
            "fingerprint": {"type": "str", "required": True},
            "path": {"type": "path", "default": "/var/lib/hop3/setup-state.json"},
            "full": {"type": "bool", "default": False},
            "paths": {"type": "list", "elements": "dict", "default": []},
            "packages": {"type": "list", "elements": "str", "default": []},
            "units": {"type": "list", "elements": "str", "default": []},
            "probes": {"type": "list", "elements": "list", "default": []},
        },
        supports_check_mode=False,
    )
    params = module.params
    try:
        result = begin(params) if params["state"] == "begin" else record(params)
    except (OSError, ValueError) as err:
        module.fail_json(msg=f"Cannot {params['state']} the setup record {params['path']}: {err}.")
    if params["state"] == "record":
        module.exit_json(changed=False, **result)
    report = {"setup": "unchanged" if result["unchanged"] else "converging", "reason": result["reason"]}
    module.exit_json(
        changed=False,
        fingerprint=params["fingerprint"],
        ansible_facts={"hop3_report": report},
        **result,
    )


if __name__ == "__main__":
    main()
