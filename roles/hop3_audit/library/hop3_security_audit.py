#!/usr/bin/python3
"""Check a Hop3 host's security settings; read-only."""

import glob
import os
import re
import stat
import subprocess
import time

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hop3_security_audit
short_description: Report the security checks of a Hop3 host (hop audit)
description:
  - Runs every check of C(hop audit) in one call and changes nothing. Each
    check has an id, a title, a status (pass, warn or fail), what was found,
    and the fix when it is not a pass.
  - Checks the Hop3 firewall table, SSH password and root logins (from
    C(sshd -T)), unattended upgrades, pending security updates (from the
    package lists on the host, not refreshed), certificate expiry and the
    WAF of each app's vhost, and the modes of files that hold secrets.
options:
  cert_warn_days: {description: Days before expiry that warn., type: int, default: 30}
  cert_fail_days: {description: Days before expiry that fail., type: int, default: 7}
  firewall_table: {description: The nftables table of role hop3_firewall., type: str, default: inet hop3}
  vhosts_glob: {description: The apps' vhost files., type: str, default: /etc/nginx/sites-enabled/hop3-*.conf}
author: Hop3
"""

SECRET_GLOBS = [
    "/srv/hop3/apps/*/env",
    "/srv/hop3/services/*/*.json",
    "/etc/hop3/backup/key",
    "/etc/hop3/backup/id_ed25519",
    "/etc/redis/hop3-admin.pass",
]


def run(argv):
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, cwd="/", timeout=60)
    except FileNotFoundError:
        return 127, ""
    return proc.returncode, proc.stdout


def check(id_, title, status, found, fix=""):
    return {"id": id_, "title": title, "status": status, "found": found,
            "fix": "" if status == "pass" else fix}  # fmt: skip


def firewall(table):
    code, out = run(["nft", "list", "table"] + table.split())
    title = "Firewall active (inbound default deny)"
    fix = "Run `hop setup` on this host: it installs the Hop3 firewall (role hop3_firewall)."
    if code != 0:
        return check("firewall", title, "fail", "no nftables table '%s'" % table, fix)
    if not re.search(r"type filter hook input .*policy drop", out):
        return check("firewall", title, "fail", "the input chain does not drop by default", fix)
    return check("firewall", title, "pass", "table %s drops unsolicited inbound traffic" % table)


def sshd_settings():
    code, out = run(["sshd", "-T"])
    settings = {}
    for line in out.splitlines() if code == 0 else []:
        key, _, value = line.partition(" ")
        settings[key.lower()] = value.strip().lower()
    return settings


def ssh_checks(settings):
    fix_pw = ("Set PasswordAuthentication no and KbdInteractiveAuthentication no "
              "(role hop3_base does: run `hop setup`).")  # fmt: skip
    if not settings:
        return [
            check("ssh_password", "SSH password login off", "warn", "cannot read `sshd -T`", fix_pw)
        ]
    password = settings.get("passwordauthentication", "yes")
    kbd = settings.get("kbdinteractiveauthentication", "yes")
    pw_off = password == "no" and kbd == "no"
    root = settings.get("permitrootlogin", "yes")
    if root == "no":
        root_check = check("ssh_root", "SSH root login policy", "pass", "root cannot log in")
    elif root in ("prohibit-password", "without-password", "forced-commands-only"):
        root_check = check(
            "ssh_root", "SSH root login policy", "warn", "root may log in with a key (%s)" % root,
            "Once an admin user with sudo exists, set hop3_base_ssh_permit_root_login: 'no' "
            "in the inventory and run `hop setup`.",
        )  # fmt: skip
    else:
        root_check = check("ssh_root", "SSH root login policy", "fail",
                           "root may log in with a password", fix_pw)  # fmt: skip
    return [
        check(
            "ssh_password",
            "SSH password login off",
            "pass" if pw_off else "fail",
            "PasswordAuthentication %s, KbdInteractiveAuthentication %s" % (password, kbd),
            fix_pw,
        ),  # fmt: skip
        root_check,
    ]


def unattended_upgrades():
    title = "Unattended security upgrades on"
    fix = "Run `hop setup`: role hop3_base installs and enables unattended-upgrades."
    code, _ = run(["dpkg-query", "-W", "-f=${Status}", "unattended-upgrades"])
    enabled = False
    for path in glob.glob("/etc/apt/apt.conf.d/*"):
        try:
            with open(path) as f:
                text = f.read()
        except OSError:
            continue
        if re.search(r'APT::Periodic::Unattended-Upgrade\s+"1"', text):
            enabled = True
    if code == 0 and enabled:
        return check("unattended_upgrades", title, "pass", "installed and enabled")
    return check("unattended_upgrades", title, "fail",
                 "not installed" if code != 0 else "installed but not enabled", fix)  # fmt: skip


def pending_security_updates():
    title = "No pending security updates"
    code, out = run(["apt-get", "-s", "-o", "Debug::NoLocking=1", "upgrade"])
    if code != 0:
        return check("security_updates", title, "warn", "cannot simulate an upgrade",
                     "Run `apt-get update` on the host and audit again.")  # fmt: skip
    pending = sorted({line.split()[1] for line in out.splitlines()
                      if line.startswith("Inst ") and "security" in line.lower()})  # fmt: skip
    lists = glob.glob("/var/lib/apt/lists/*_InRelease")
    age = (time.time() - max(os.path.getmtime(p) for p in lists)) / 86400 if lists else None
    if pending:
        shown = ", ".join(pending[:8]) + (" ..." if len(pending) > 8 else "")
        return check("security_updates", title, "warn", "%d pending: %s" % (len(pending), shown),
                     "Unattended upgrades install them within a day; now: `apt-get upgrade`.")  # fmt: skip
    if age is None or age > 7:
        return check("security_updates", title, "warn", "package lists are older than 7 days",
                     "Run `apt-get update` (unattended upgrades refresh them daily).")  # fmt: skip
    return check("security_updates", title, "pass", "none (lists %.1f days old)" % age)


def vhost_checks(pattern, warn_days, fail_days):
    results = []
    for path in sorted(glob.glob(pattern)):
        app = os.path.basename(path)[len("hop3-") : -len(".conf")]
        with open(path) as f:
            text = f.read()
        certs = sorted(set(re.findall(r"^\s*ssl_certificate\s+([^;\s]+);", text, re.M)))
        if not certs:
            results.append(check("tls:" + app, "TLS for app %s" % app, "warn", "served over plain HTTP",
                                 'Set [tls] mode = "acme" (or "self-signed") in hop3.toml and deploy.'))  # fmt: skip
        for cert in certs:
            results.append(cert_check(app, cert, warn_days, fail_days))
        waf = re.search(r"^\s*modsecurity\s+on;", text, re.M)
        detect = re.search(r"SecRuleEngine\s+DetectionOnly", waf_rules(text))
        if waf and not detect:
            results.append(
                check("waf:" + app, "WAF for app %s" % app, "pass", "ModSecurity blocks")
            )
        else:
            found = "ModSecurity only logs (detect mode)" if waf else "no WAF"
            results.append(check("waf:" + app, "WAF for app %s" % app, "warn", found,
                                 'Set [waf] enabled = true, mode = "block" in hop3.toml and deploy.'))  # fmt: skip
    return results


def waf_rules(vhost_text):
    match = re.search(r"^\s*modsecurity_rules_file\s+([^;\s]+);", vhost_text, re.M)
    if not match:
        return ""
    try:
        with open(match.group(1)) as f:
            return f.read()
    except OSError:
        return ""


def cert_check(app, cert, warn_days, fail_days):
    title = "Certificate of app %s" % app
    code, out = run(["openssl", "x509", "-noout", "-enddate", "-issuer", "-in", cert])
    if code != 0:
        return check("cert:" + app, title, "fail", "cannot read %s" % cert, "Deploy the app again.")
    end = re.search(r"notAfter=(.+)", out).group(1).strip()
    days = (
        time.mktime(time.strptime(end, "%b %d %H:%M:%S %Y GMT")) - time.mktime(time.gmtime())
    ) / 86400
    found = "%s expires in %d days (%s)" % (cert, days, end)
    fix = "Check the renewal: `systemctl status certbot.timer`, then `hop certs %s`." % app
    status = "fail" if days < fail_days else "warn" if days < warn_days else "pass"
    return check("cert:" + app, title, status, found, fix)


def secret_modes():
    title = "Secrets readable by their owner only"
    loose = []
    for pattern in SECRET_GLOBS:
        for path in sorted(glob.glob(pattern)):
            mode = stat.S_IMODE(os.stat(path).st_mode)
            if mode & 0o077:
                loose.append("%s (%o)" % (path, mode))
    if loose:
        return check("secret_modes", title, "fail", "group/other can read: " + ", ".join(loose),
                     "chmod 600 each file listed (Hop3 writes them 0600; something changed them).")  # fmt: skip
    return check("secret_modes", title, "pass", "every env, credential and key file is 0600")


def main():
    module = AnsibleModule(
        argument_spec={
            "cert_warn_days": {"type": "int", "default": 30},
            "cert_fail_days": {"type": "int", "default": 7},
            "firewall_table": {"type": "str", "default": "inet hop3"},
            "vhosts_glob": {"type": "str", "default": "/etc/nginx/sites-enabled/hop3-*.conf"},
        },
        supports_check_mode=True,
    )
    p = module.params
    checks = [firewall(p["firewall_table"])]
    checks += ssh_checks(sshd_settings())
    checks += [unattended_upgrades(), pending_security_updates()]
    checks += vhost_checks(p["vhosts_glob"], p["cert_warn_days"], p["cert_fail_days"])
    checks.append(secret_modes())
    counts = {s: sum(c["status"] == s for c in checks) for s in ("pass", "warn", "fail")}
    module.exit_json(changed=False, checks=checks, counts=counts)


if __name__ == "__main__":
    main()
