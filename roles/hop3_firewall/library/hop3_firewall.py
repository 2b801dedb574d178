#!/usr/bin/python3
"""Hop3's firewall on one host: the rules, their guarded application, a report."""

import contextlib
import fcntl
import hashlib
import ipaddress
import json
import os
import shlex
import shutil
import subprocess
import tempfile

from ansible.module_utils.basic import AnsibleModule

DOCUMENTATION = r"""
module: hop3_firewall
short_description: Rules, guarded application and report of Hop3's nftables table
description:
  - C(rules) reads the rules the admin added with C(hop firewall:allow) from
    I(state_file) and returns the effective rules (SSH, web ports, inventory
    rules, then those), validated and in a stable order. C(allow) and C(deny)
    first add or remove O(rule) in I(state_file).
  - C(apply) writes O(content) to I(path) (an nft script that replaces only
    C(table inet hop3)) when it differs, checked first with C(nft -c), and the
    boot unit O(unit) to I(unit_path); then loads I(path) unless the live table
    is already the one loaded from this file. Before, it arms a guard (a
    systemd timer, I(guard_seconds)) that restores the previous table and
    file unless C(confirm) runs in time. C(confirm) cancels the guard; it
    fails when the guard already fired. The guard and C(confirm) take one
    lock, so a rollback never runs half-way beside a confirmation. It also
    reports whether the boot unit is enabled and active.
  - C(show) reports the rules of the applied file, whether the live table is
    the one loaded from it, the admin's rules and, with O(raw), the live table.
options:
  state:
    description: What to do.
    type: str
    default: rules
    choices: [rules, allow, deny, apply, confirm, show]
  rule:
    description: The rule to allow or deny, C(port), C(proto) (tcp or udp), C(source) (or null).
    type: dict
  ssh_port: {description: Port of sshd., type: int, default: 22}
  ssh_sources:
    description: Networks allowed to reach SSH (empty means any).
    type: list
    elements: str
    default: []
  web_ports:
    description: TCP ports open to any source.
    type: list
    elements: int
    default: [80, 443]
  rules:
    description: Rules from the inventory (port, proto, source).
    type: list
    elements: dict
    default: []
  state_file:
    description: JSON file of the admin's rules.
    type: path
    default: /etc/hop3/firewall.json
  path: {description: The nft script of the table., type: path, default: /etc/hop3/firewall.nft}
  content: {description: The nft script to write to I(path) (apply)., type: str}
  unit: {description: The systemd unit that loads I(path) at boot (apply)., type: str}
  unit_path:
    description: Where the unit goes.
    type: path
    default: /etc/systemd/system/hop3-firewall.service
  guard_seconds:
    description: Seconds before an unconfirmed change is undone (5 to 3600).
    type: int
    default: 60
  raw: {description: Return the live table as nft lists it., type: bool, default: false}
author: Hop3
"""

TABLE = "inet hop3"
RUN_DIR = "/run/hop3-firewall"
GUARD_UNIT = "hop3-firewall-guard"
BOOT_UNIT = "hop3-firewall.service"
LOCK = "lock"
NFT = "/usr/sbin/nft"
HEADER = "# hop3-rules: "
PROTOS = ("tcp", "udp")

ROLLBACK_SCRIPT = """#!/bin/sh
# Armed by Hop3 before it applied new firewall rules: unless Hop3 confirmed them
# over a new SSH connection in time, restore the previous table and file. The
# lock is the one `confirm` takes: a rollback and a confirmation never overlap.
dir={run_dir}
exec 9>>"$dir/{lock}"
flock 9
[ -e "$dir/pending" ] || exit 0
{nft} -f "$dir/rollback.nft" || {nft} delete table {table}
if [ -e "$dir/previous.nft" ]; then cp "$dir/previous.nft" {path}; else rm -f {path}; fi
# The next `hop setup` loads the file again (guarded), whatever the table was.
rm -f "$dir/pending" "$dir/applied" "$dir/rollback.nft" "$dir/previous.nft" "$0"
echo "new firewall rules were not confirmed in time: previous rules restored"
"""


class RuleError(ValueError):
    pass


def port_of(value):
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise RuleError(f"port {value!r} is not a number")
    text = str(value).strip()
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise RuleError(f"port {value!r} is not a number from 1 to 65535")
    return int(text)


def proto_of(value):
    proto = str(value or "tcp").lower()
    if proto not in PROTOS:
        raise RuleError(f"protocol {value!r} is not tcp or udp")
    return proto


def network_of(value):
    """A network in its canonical text form; one address (/32, /128) without prefix."""
    try:
        network = ipaddress.ip_network(str(value).strip(), strict=True)
    except ValueError as err:
        raise RuleError(f"source {value!r} is not an IP address or network ({err})") from None
    if network.prefixlen == network.max_prefixlen:
        return str(network.network_address)
    return str(network)


def normalize(rule):
    """A CLI or inventory rule as {port, proto, source}."""
    if not isinstance(rule, dict):
        raise RuleError(f"rule {rule!r} is not a mapping of port, proto and source")
    unknown = sorted(set(rule) - {"port", "proto", "source"})
    if unknown:
        raise RuleError(f"rule {rule!r} has unknown keys: {', '.join(unknown)}")
    source = rule.get("source")
    return {
        "port": port_of(rule.get("port")),
        "proto": proto_of(rule.get("proto")),
        "source": network_of(source) if source not in (None, "") else None,
    }


def sort_key(rule):
    return (rule["port"], rule["proto"], rule["source"] or "")


def effective_rules(ssh_port, ssh_sources, web_ports, inventory, extra):
    """All accept rules in order: [{port, proto, sources, origin}] (empty sources: any)."""
    rules = [{"port": port_of(ssh_port), "proto": "tcp",
              "sources": [network_of(s) for s in ssh_sources], "origin": "ssh"}]  # fmt: skip
    for port in dict.fromkeys(port_of(p) for p in web_ports):
        rules.append({"port": port, "proto": "tcp", "sources": [], "origin": "web"})
    for origin, group in (("inventory", inventory), ("cli", extra)):
        for rule in group:
            rules.append({"port": rule["port"], "proto": rule["proto"],
                          "sources": [rule["source"]] if rule["source"] else [],
                          "origin": origin})  # fmt: skip
    return rules


def base_rule(rule, ssh_port, web_ports):
    """What a rule on a base port would override ("SSH", "web"), or None."""
    if rule["proto"] != "tcp":
        return None
    if rule["port"] == ssh_port:
        return "SSH"
    return "web" if rule["port"] in web_ports else None


def read_state(path):
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except FileNotFoundError:
        return []
    except (OSError, ValueError) as err:
        raise RuleError(f"cannot read {path}: {err}") from None
    rules = data.get("rules") if isinstance(data, dict) else None
    if not isinstance(rules, list):
        raise RuleError(f"{path} has no list of rules")
    try:
        return sorted((normalize(r) for r in rules), key=sort_key)
    except RuleError as err:
        raise RuleError(f"{path}: {err}") from None


def write_state(path, rules):
    tmp = path + ".tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump({"version": 1, "rules": rules}, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def nft(*args):
    return subprocess.run([NFT, *args], capture_output=True, text=True, check=False)


def live_table():
    """The live table as `nft list` prints it, or "" when there is none."""
    if not os.path.exists(NFT):
        return ""
    proc = nft("list", "table", *TABLE.split())
    return proc.stdout if proc.returncode == 0 else ""


def file_digest(path):
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except FileNotFoundError:
        return None


def record_of(digest, listing):
    """What RUN_DIR/applied holds once the file with this digest is loaded (the
    systemd unit writes the same after loading the file at boot)."""
    return f"{digest}\n{listing}"


def in_sync(path):
    """The live table is the one loaded from PATH, unchanged since."""
    digest, listing = file_digest(path), live_table()
    if not digest or not listing:
        return False
    try:
        with open(os.path.join(RUN_DIR, "applied"), encoding="utf-8") as f:
            return f.read() == record_of(digest, listing)
    except FileNotFoundError:
        return False


def applied_rules(path):
    """The rules written in the header of the applied file, or None."""
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                if line.startswith(HEADER):
                    return json.loads(line[len(HEADER) :])
    except (OSError, ValueError):
        return None
    return None


def systemctl(*args):
    return subprocess.run(["systemctl", *args], capture_output=True, text=True, check=False)


def write_file(path, content, mode=0o600):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(content)


def cancel_guard():
    """Stop the guard's timer; a rollback already running finishes first (it holds
    the lock: the service of a fired timer is "active" while its script runs)."""
    systemctl("stop", f"{GUARD_UNIT}.timer")
    with guard_lock():
        pass
    systemctl("reset-failed", f"{GUARD_UNIT}.timer", f"{GUARD_UNIT}.service")


@contextlib.contextmanager
def guard_lock():
    """The lock the rollback script takes (flock): while it is held, no rollback runs."""
    os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
    fd = os.open(os.path.join(RUN_DIR, LOCK), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def write_rules(module, path, content):
    """Write CONTENT to PATH when it differs, checked by nft -c first; the old
    file's copy (for the rollback guard), or None when there was none."""
    fd, tmp = tempfile.mkstemp(prefix=".hop3-firewall-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(content)
        os.chmod(tmp, 0o640)
        check = nft("-c", "-f", tmp)
        if check.returncode != 0:
            module.fail_json(msg="The new firewall rules do not pass `nft -c`; nothing changed.",
                             output_tail=check.stderr)  # fmt: skip
        previous = None
        if os.path.exists(path):
            previous = tmp + ".previous"
            shutil.copyfile(path, previous)
        os.replace(tmp, path)
        return previous
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_unit(path, content):
    """Write the boot unit when it differs; whether it did."""
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == content:
                return False
    except FileNotFoundError:
        pass
    write_file(path + ".tmp", content, 0o644)
    os.replace(path + ".tmp", path)
    return True


def unit_state():
    """Whether the boot unit is enabled and active (one systemctl call)."""
    proc = systemctl("show", "--property=UnitFileState,ActiveState", "--", BOOT_UNIT)
    props = dict(line.partition("=")[::2] for line in proc.stdout.splitlines() if "=" in line)
    return props.get("UnitFileState") == "enabled", props.get("ActiveState") == "active"


def file_differs(path, content):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read() != content
    except FileNotFoundError:
        return True


def apply(module):
    p = module.params
    path = p["path"]
    result = {"changed": False, "applied": False, "unit_changed": False}
    if p["unit"] is not None and file_differs(p["unit_path"], p["unit"]):
        result.update(changed=True, unit_changed=True)
        if not module.check_mode:
            write_unit(p["unit_path"], p["unit"])
    changed = p["content"] is not None and file_differs(path, p["content"])
    if not changed and in_sync(path):
        result["unit_enabled"], result["unit_active"] = unit_state()
        return result
    if module.check_mode:
        return {**result, "changed": True}
    require_nft(module)
    backup = write_rules(module, path, p["content"]) if changed else None
    os.makedirs(RUN_DIR, mode=0o700, exist_ok=True)
    cancel_guard()  # a guard left by an interrupted run: this run decides now
    listing = live_table()
    write_file(os.path.join(RUN_DIR, "rollback.nft"),
               f"table {TABLE}\ndelete table {TABLE}\n{listing}")  # fmt: skip
    previous = os.path.join(RUN_DIR, "previous.nft")
    if backup:
        shutil.move(backup, previous)
    elif not changed and os.path.exists(path):
        shutil.copyfile(path, previous)
    elif os.path.exists(previous):
        os.unlink(previous)
    script = os.path.join(RUN_DIR, "rollback.sh")
    content = ROLLBACK_SCRIPT.format(
        run_dir=shlex.quote(RUN_DIR), nft=NFT, table=TABLE, path=shlex.quote(path), lock=LOCK
    )
    write_file(script, content, 0o700)
    write_file(os.path.join(RUN_DIR, "pending"), "")
    guard = subprocess.run(
        ["systemd-run", f"--unit={GUARD_UNIT}", f"--on-active={p['guard_seconds']}s",
         "--timer-property=AccuracySec=1s",
         "--description=Hop3: restore the previous firewall rules unless confirmed",
         "/bin/sh", script],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if guard.returncode != 0:
        restore_now(script)
        module.fail_json(msg=f"cannot arm the firewall's rollback guard: {guard.stderr.strip()}")
    loaded = nft("-f", path)
    if loaded.returncode != 0:
        cancel_guard()
        restore_now(script)
        module.fail_json(msg="nft could not load the new rules; the previous ones stay",
                         output_tail=loaded.stderr)  # fmt: skip
    write_file(os.path.join(RUN_DIR, "applied"), record_of(file_digest(path), live_table()))
    result.update(changed=True, applied=True, guard_seconds=p["guard_seconds"])
    result["unit_enabled"], result["unit_active"] = unit_state()
    return result


def require_nft(module):
    """Fail with the fix when this host does not let Hop3 manage nftables."""
    probe = nft("list", "tables")
    if probe.returncode != 0:
        reason = (probe.stderr.strip() or "no output").splitlines()[-1]
        module.fail_json(
            msg="This host does not let Hop3 manage its firewall: `nft list tables` failed "
            f"({reason})."
            " A container needs the CAP_NET_ADMIN capability (sandbox hosts booted by an "
            "older Hop3 get it with `hop sandbox up --fresh`)."
        )


def restore_now(script):
    subprocess.run(["/bin/sh", script], capture_output=True, check=False)


def confirm(module):
    pending = os.path.join(RUN_DIR, "pending")
    if module.check_mode:
        return {"changed": os.path.exists(pending)}
    cancel_guard()
    with guard_lock():
        return confirm_locked(module, pending)


def confirm_locked(module, pending):
    if not os.path.exists(pending):
        module.fail_json(
            msg="The firewall's rollback guard fired before the new rules were confirmed: "
            "the previous rules are back. Raise hop3_firewall_guard_seconds if the host "
            "is slow to answer a new SSH connection."
        )
    for name in ("pending", "rollback.nft", "previous.nft", "rollback.sh"):
        path = os.path.join(RUN_DIR, name)
        if os.path.exists(path):
            os.unlink(path)
    return {"changed": True}


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {
                "type": "str",
                "default": "rules",
                "choices": ["rules", "allow", "deny", "apply", "confirm", "show"],
            },
            "rule": {"type": "dict"},
            "ssh_port": {"type": "int", "default": 22},
            "ssh_sources": {"type": "list", "elements": "str", "default": []},
            "web_ports": {"type": "list", "elements": "int", "default": [80, 443]},
            "rules": {"type": "list", "elements": "dict", "default": []},
            "state_file": {"type": "path", "default": "/etc/hop3/firewall.json"},
            "path": {"type": "path", "default": "/etc/hop3/firewall.nft"},
            "content": {"type": "str"},
            "unit": {"type": "str"},
            "unit_path": {"type": "path", "default": "/etc/systemd/system/hop3-firewall.service"},
            "guard_seconds": {"type": "int", "default": 60},
            "raw": {"type": "bool", "default": False},
        },
        required_if=[("state", "allow", ["rule"]), ("state", "deny", ["rule"])],
        supports_check_mode=True,
    )
    p = module.params
    state = p["state"]
    if state == "apply":
        if not 5 <= p["guard_seconds"] <= 3600:
            module.fail_json(msg="guard_seconds must be from 5 to 3600")
        module.exit_json(**apply(module))
    if state == "confirm":
        module.exit_json(**confirm(module))
    try:
        ssh_port = port_of(p["ssh_port"])
        web_ports = [port_of(port) for port in p["web_ports"]]
        inventory = sorted((normalize(r) for r in p["rules"]), key=sort_key)
        extra = read_state(p["state_file"])
        rule = normalize(p["rule"]) if state in ("allow", "deny") else None
        effective_rules(ssh_port, p["ssh_sources"], web_ports, inventory, [])
    except RuleError as err:
        module.fail_json(msg=f"Invalid firewall settings: {err}.")
    if state != "show" and os.path.exists(NFT):
        require_nft(module)
    result = {"changed": False, "installed": os.path.exists(NFT)}
    if state != "show":
        for directory in {os.path.dirname(p["state_file"]), os.path.dirname(p["path"])}:
            if not os.path.isdir(directory):
                result["changed"] = True
                if not module.check_mode:
                    os.makedirs(directory, mode=0o755)
    if rule is not None:
        base = base_rule(rule, ssh_port, web_ports)
        if base:
            module.fail_json(
                msg=f"{rule['port']}/tcp is a base rule of Hop3's firewall ({base}): "
                f"`hop firewall:{state}` does not change it. Set "
                f"{'hop3_firewall_ssh_sources' if base == 'SSH' else 'hop3_firewall_web_ports'}"
                " in the inventory, then run `hop setup`."
            )
        result["rule"] = rule
        result["found"] = rule in extra
        result["in_inventory"] = rule in inventory
        if state == "allow":
            new_extra = extra if rule in extra else sorted([*extra, rule], key=sort_key)
        else:
            new_extra = [r for r in extra if r != rule]
        result["rule_changed"] = new_extra != extra
        if new_extra != extra:
            result["changed"] = True
            if not module.check_mode:
                write_state(p["state_file"], new_extra)
            extra = new_extra
    rules = effective_rules(ssh_port, p["ssh_sources"], web_ports, inventory, extra)
    result.update({"rules": rules, "extra": extra, "header": HEADER + json.dumps(rules)})
    if state == "show":
        applied = applied_rules(p["path"])
        listing = live_table()
        result.update({
            "installed": os.path.exists(NFT),
            "loaded": bool(listing),
            "in_sync": in_sync(p["path"]),
            "applied_rules": applied,
            "pending": applied is not None and applied != rules,
            "guard": os.path.exists(os.path.join(RUN_DIR, "pending")),
            "ssh_port": ssh_port,
        })  # fmt: skip
        if p["raw"]:
            result["raw"] = listing
    module.exit_json(**result)


if __name__ == "__main__":
    main()
