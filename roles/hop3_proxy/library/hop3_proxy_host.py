#!/usr/bin/python3
"""Prepare a host for one app's vhost: packages, shared files, the app's certificate."""

DOCUMENTATION = r"""
module: hop3_proxy_host
short_description: Packages, shared files and the TLS certificate behind one Hop3 vhost
description:
  - One call per deploy does what role hop3_proxy needs on the host before it
    writes the app's vhost, so the path where nothing changed costs a single
    module invocation (a dpkg query, a few file reads, one openssl call for an
    app with TLS).
  - Installs the missing packages of O(packages) (ModSecurity and the OWASP
    CRS, certbot); nothing is installed when they are all there.
  - Writes the files of O(files) whose content differs and makes the
    directories of O(directories); runs C(systemctl daemon-reload) when a file
    under /etc/systemd/ changed.
  - Keeps the app's certificate as O(tls.mode) asks. C(self-signed) makes a key
    and certificate with openssl when there is none, when it does not cover
    O(tls.names) or when it ends within 30 days. C(acme) reports whether
    certbot's lineage C(hop3-<app>) covers O(tls.names) and, with O(issue),
    runs certbot (HTTP-01 through nginx's webroot) when it does not. C(off)
    and a change of mode remove the other mode's files (and certbot's lineage).
    In every mode <tls.dir>/<app>/tls.json records the mode and the names.
options:
  packages: {description: Debian packages that must be installed., type: list, elements: str, default: []}
  directories:
    description: Directories to make (owner root) with their mode.
    type: list
    elements: dict
    default: []
  files:
    description: Files to keep as given (path, content, mode); C(content=null) removes the file.
    type: list
    elements: dict
    default: []
  tls:
    description: The app's certificate (app, mode, names, served, dir, days); omit for none.
    type: dict
  acme:
    description: ACME settings (directory, email, ca_bundle, webroot).
    type: dict
    default: {}
  issue: {description: Run certbot when the acme certificate is missing or does not cover the names., type: bool, default: false}
author: Hop3
"""

import json
import os
import subprocess

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_proxy_tls import (
    RENEW_BEFORE_DAYS,
    Failed,
    acme_files,
    app_dir,
    cert_info,
    covers,
    delete_acme,
    ensure_dir,
    install_packages,
    issue_acme,
    make_self_signed,
    missing_packages,
    read_json,
    record_path,
    remove,
    seconds_left,
    self_signed_files,
    write_file,
)


def ensure_files(module, result):
    changed = []
    for item in module.params["directories"]:
        if ensure_dir(item["path"], int(str(item.get("mode", "0755")), 8)):
            changed.append(item["path"])
    for item in module.params["files"]:
        path = item["path"]
        if item.get("content") is None:
            if remove(path):
                changed.append(path)
        elif write_file(path, item["content"], int(str(item.get("mode", "0644")), 8)):
            changed.append(path)
    if any(path.startswith("/etc/systemd/") for path in changed):
        subprocess.run(["systemctl", "daemon-reload"], check=True)
    result["files_changed"] = changed
    return bool(changed)


def ensure_tls(module, tls, result):
    """The app's certificate as asked; returns whether anything changed."""
    app, mode, names, tls_dir = tls["app"], tls["mode"], list(tls["names"]), tls["dir"]
    changed = False
    state = {"mode": mode, "names": names, "present": False, "covers": False,
             "changed": False, "issued": False, "cert": None, "key": None, "info": None}  # fmt: skip
    if mode != "acme":
        changed |= delete_acme(app)
    if mode != "self-signed":
        for path in self_signed_files(tls_dir, app):
            changed |= remove(path)
    if mode == "self-signed":
        cert, key = self_signed_files(tls_dir, app)
        info = cert_info(cert)
        if (
            not covers(info, names)
            or set(info["names"]) != set(names)
            or not os.path.exists(key)
            or seconds_left(info) < RENEW_BEFORE_DAYS * 86400
        ):
            make_self_signed(tls_dir, app, names, int(tls.get("days") or 397))
            info = cert_info(cert)
            changed = state["changed"] = True
        state.update(cert=cert, key=key, info=info, present=True, covers=True)
    elif mode == "acme":
        cert, key = acme_files(app)
        info = cert_info(cert)
        good = covers(info, names) and seconds_left(info) > 0
        if not good and module.params["issue"] and names:
            issue_acme(app, names, module.params["acme"])
            info = cert_info(cert)
            good = covers(info, names)
            changed = state["changed"] = state["issued"] = True
        state.update(cert=cert, key=key, info=info, present=bool(info) and os.path.exists(key),
                     covers=good)  # fmt: skip
    record = {"app": app, "mode": mode, "served": list(tls.get("served") or names),
              "names": names, "cert": state["cert"], "key": state["key"]}  # fmt: skip
    if read_json(record_path(tls_dir, app)) != record:
        ensure_dir(app_dir(tls_dir, app), 0o700)
        write_file(record_path(tls_dir, app), json.dumps(record, indent=2) + "\n", 0o600)
        changed = True
    result["tls"] = state
    return changed


def main():
    module = AnsibleModule(
        argument_spec={
            "packages": {"type": "list", "elements": "str", "default": []},
            "directories": {"type": "list", "elements": "dict", "default": []},
            "files": {"type": "list", "elements": "dict", "default": []},
            "tls": {"type": "dict"},
            "acme": {"type": "dict", "default": {}},
            "issue": {"type": "bool", "default": False},
        },
    )
    result = {"installed": [], "files_changed": [], "tls": None}
    changed = False
    try:
        missing = missing_packages(module.params["packages"])
        if missing:
            install_packages(missing)
            result["installed"] = missing
            changed = True
        changed |= ensure_files(module, result)
        if module.params["tls"]:
            changed |= ensure_tls(module, module.params["tls"], result)
    except Failed as err:
        module.fail_json(msg=err.message, output_tail=err.output, **result)
    module.exit_json(changed=changed, **result)


if __name__ == "__main__":
    main()
