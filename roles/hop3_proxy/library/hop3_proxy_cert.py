#!/usr/bin/python3
"""Report or remove the TLS certificates of one Hop3 app."""

DOCUMENTATION = r"""
module: hop3_proxy_cert
short_description: Report (hop certs) or remove (hop destroy) an app's certificates
description:
  - C(state=info) reads <dir>/<app>/tls.json (written by hop3_proxy_host) and
    the certificate it names, and reports for each name the app serves the
    mode, whether the certificate covers it, its issuer, serial and end date.
    Never changes anything.
  - C(state=absent) deletes the app's self-signed files, its tls.json and its
    certbot lineage C(hop3-<app>) (so certbot.timer stops renewing it).
options:
  app: {description: App name (validated by the role)., type: str, required: true}
  dir: {description: Directory of the per-app TLS files., type: path, default: /etc/hop3/tls}
  state: {description: What to do., type: str, choices: [info, absent], default: info}
author: Hop3
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.hop3_proxy_tls import (
    Failed,
    app_dir,
    cert_info,
    delete_acme,
    read_json,
    record_path,
    remove,
    seconds_left,
)


def report(app, tls_dir):
    record = read_json(record_path(tls_dir, app))
    vhost = "/etc/nginx/sites-available/hop3-%s.conf" % app
    if record is None:
        return {"app": app, "exists": os.path.exists(vhost), "mode": None, "domains": []}
    info = cert_info(record["cert"]) if record.get("cert") else None
    cert = None
    if info:
        cert = dict(info, days_left=int(seconds_left(info) // 86400), path=record["cert"])
    domains = []
    for name in record.get("served") or record.get("names") or []:
        covered = bool(info) and name in info["names"]
        domains.append({
            "name": name,
            "mode": record["mode"],
            "covered": covered,
            "issuer": info["issuer"] if covered else None,
            "not_after": info["not_after"] if covered else None,
            "serial": info["serial"] if covered else None,
        })  # fmt: skip
    return {"app": app, "exists": True, "mode": record["mode"], "names": record.get("names", []),
            "certificate": cert, "domains": domains}  # fmt: skip


def main():
    module = AnsibleModule(
        argument_spec={
            "app": {"type": "str", "required": True},
            "dir": {"type": "path", "default": "/etc/hop3/tls"},
            "state": {"type": "str", "choices": ["info", "absent"], "default": "info"},
        },
        supports_check_mode=True,
    )
    app, tls_dir = module.params["app"], module.params["dir"]
    if module.params["state"] == "info":
        module.exit_json(changed=False, report=report(app, tls_dir))
    try:
        changed = delete_acme(app)
        changed |= remove(app_dir(tls_dir, app))
    except Failed as err:
        module.fail_json(msg=err.message, output_tail=err.output)
    module.exit_json(changed=changed)


if __name__ == "__main__":
    main()
