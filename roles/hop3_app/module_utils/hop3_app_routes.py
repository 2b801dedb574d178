"""The port nginx reaches an app's web instances through, and its switch.

nginx's upstream for an app lists one port, the app's *route port*, which no
process listens on. An nftables rule (table ip hop3_routes, hook output)
forwards each new local connection to that port to one of the app's web
instances, in turn. A swap rewrites the rule in one nft transaction (a few
milliseconds): connections already made stay with the instance they reached,
new ones go to the new instances. nginx is not reloaded, so its keep-alive
connections to clients are never closed by a deploy, a config change or a
scale (a reload closes every idle one, and a client that sends on one as it
closes sees a reset).

The host's rules: /etc/hop3/routes.nft (the table) includes one file per app
in /etc/hop3/routes.d/, and hop3-routes.service loads them at boot, before
nginx.
"""

import os
import re
import subprocess

NFT = "/usr/sbin/nft"
TABLE = "ip hop3_routes"
ROUTES_FILE = "/etc/hop3/routes.nft"
ROUTES_DIR = "/etc/hop3/routes.d"
ROUTES_UNIT = "/etc/systemd/system/hop3-routes.service"
ROUTES_WANTS = "/etc/systemd/system/multi-user.target.wants/hop3-routes.service"

BASE = """#!/usr/sbin/nft -f
# Managed by Hop3 (role hop3_app): each app's route port, the one port its
# nginx upstream names, forwarded to its web instances. One file per app in
# routes.d/, rewritten by each deploy; loading this file replaces the table.
table ip hop3_routes
delete table ip hop3_routes
table ip hop3_routes {
	map apps {
		type inet_service : verdict
	}
	chain output {
		type nat hook output priority -100; policy accept;
		ip daddr 127.0.0.1 tcp dport vmap @apps
	}
}
include "%s/*.nft"
""" % ROUTES_DIR

UNIT = """# Managed by Hop3 (role hop3_app): loads the apps' route ports, which
# nginx reaches the apps through, before nginx starts.
[Unit]
Description=Hop3 app routes (nftables table ip hop3_routes)
Before=nginx.service
DefaultDependencies=no
After=local-fs.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=%s -f %s

[Install]
WantedBy=multi-user.target
""" % (NFT, ROUTES_FILE)


class RoutesFailed(Exception):
    pass


def chain_name(app):
    # App names have letters, digits and '-'; nft identifiers take '_'.
    return "app_" + app.replace("-", "_")


def app_file(app):
    return os.path.join(ROUTES_DIR, app + ".nft")


def rule(ports):
    """The nft statement that forwards to ``ports`` in turn (none: nothing)."""
    ports = sorted(int(p) for p in ports)
    if not ports:
        return ""
    if len(ports) == 1:
        target = "127.0.0.1 : %d" % ports[0]
    else:
        elements = ", ".join("%d : %d" % (i, p) for i, p in enumerate(ports))
        target = "127.0.0.1 : numgen inc mod %d map { %s }" % (len(ports), elements)
    return "meta l4proto tcp dnat ip to " + target


def app_text(app, route_port, ports):
    """The app's file: empty its chain, then fill it, in one transaction."""
    chain = chain_name(app)
    statement = rule(ports)
    lines = [
        "# Managed by Hop3: route port %d of app '%s' -> its web instances %s."
        % (route_port, app, ", ".join(str(p) for p in sorted(ports)) or "(none)"),
        "table ip hop3_routes {",
        "\tchain %s {" % chain,
        "\t}",
        "}",
        "flush chain ip hop3_routes %s" % chain,
        "table ip hop3_routes {",
        "\tchain %s {" % chain,
    ]
    if statement:
        lines.append("\t\t" + statement)
    lines += ["\t}", "}", "add element ip hop3_routes apps { %d : jump %s }" % (route_port, chain), ""]
    return "\n".join(lines)


def nft(*args, stdin=None):
    proc = subprocess.run([NFT, *args], input=stdin, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RoutesFailed("nft %s: %s" % (" ".join(args), (proc.stderr or proc.stdout).strip()))
    return proc.stdout


def ensure_base(write_file):
    """The table, its file and its boot unit; whether anything changed."""
    os.makedirs(ROUTES_DIR, exist_ok=True)
    changed = write_file(ROUTES_FILE, BASE)
    if write_file(ROUTES_UNIT, UNIT):
        # Once per host: systemd knows the unit (`systemctl restart
        # hop3-routes` reloads every app's route from its file).
        subprocess.run(["systemctl", "daemon-reload"], capture_output=True)
        changed = True
    if not os.path.islink(ROUTES_WANTS):
        os.makedirs(os.path.dirname(ROUTES_WANTS), exist_ok=True)
        os.symlink(ROUTES_UNIT, ROUTES_WANTS)
        changed = True
    if changed or subprocess.run([NFT, "list", "table", *TABLE.split()],
                                 capture_output=True).returncode != 0:  # fmt: skip
        nft("-f", ROUTES_FILE)
        changed = True
    return changed


def loaded_ports(app):
    """The instance ports the kernel forwards the app's route port to now
    (none when the rule or the table is gone)."""
    proc = subprocess.run([NFT, "list", "chain", *TABLE.split(), chain_name(app)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0 or "dnat" not in proc.stdout:
        return []
    return sorted(int(p) for p in re.findall(r":\s*(\d+)\b", proc.stdout.split("dnat", 1)[1]))


def switch(app, route_port, ports, write_file):
    """Forward the route port to ``ports`` (the file, then the kernel); whether
    anything changed. A kernel that lost the rule (nft flush) gets it back."""
    text = app_text(app, route_port, ports)
    changed = write_file(app_file(app), text)
    if changed or loaded_ports(app) != sorted(int(p) for p in ports):
        nft("-f", app_file(app))
        changed = True
    return changed


def restore(app, text):
    """Put the app's file back as it was (None: it had none) and load it."""
    path = app_file(app)
    if text is None:
        remove(app)
        return
    with open(path, "w") as handle:
        handle.write(text)
    nft("-f", path)


def remove(app):
    """Forget the app's route: its file, its map element and its chain."""
    path = app_file(app)
    if os.path.exists(path):
        os.unlink(path)
    listing = subprocess.run([NFT, "list", "map", *TABLE.split(), "apps"],
                             capture_output=True, text=True).stdout  # fmt: skip
    chain = chain_name(app)
    for port in re.findall(r"(\d+)\s*:\s*jump\s+%s\b" % re.escape(chain), listing):
        subprocess.run([NFT, "delete", "element", *TABLE.split(), "apps", "{ %s }" % port],
                       capture_output=True)  # fmt: skip
    subprocess.run([NFT, "delete", "chain", *TABLE.split(), chain], capture_output=True)
