"""What an app's processes really do: the state of each wanted instance and
the app's status, from systemd and the host's listening sockets.

An app's wanted instances are those in its state.json. Each one is:
  running     active, and (web) listening on its port
  starting    active, but its web port is not listening yet
  activating  systemd is starting it
  restarting  it exited and systemd restarts it (Restart=on-failure)
  stopping    systemd is stopping it
  failed      systemd gave up (e.g. its start limit was hit)
  inactive    not running at all (stopped behind Hop3's back)
  unrouted    (web) running, but nginx's route port does not reach it: the
              host lost its nftables rule (a deploy or restart puts it back)
The app is then running (all up), degraded (some), down (none), failed (none,
and systemd gave up on at least one, or no release serves), stopped (`hop
stop`), idle (scaled to zero) or deploying (its first release is being built).

Plain Python with no Ansible import, so unit tests run it on literal inputs.
"""

from __future__ import annotations

# The properties `systemctl show` reports for each instance unit.
UNIT_PROPERTIES = ("Id", "LoadState", "ActiveState", "SubState", "Result", "NRestarts")
# Statuses in which an app is as its user wants it (`hop apps --check` passes).
SETTLED = ("running", "stopped", "idle")
TCP_LISTEN = "0A"


def parse_show(text):
    """`systemctl show -p ... UNIT...` output: one block per unit, by Id."""
    units = {}
    for block in text.split("\n\n"):
        props = dict(line.split("=", 1) for line in block.splitlines() if "=" in line)
        if props.get("Id"):
            units[props["Id"]] = props
    return units


def listening_ports(*tables):
    """Local ports in LISTEN state, from the text of /proc/net/tcp and tcp6."""
    ports = set()
    for table in tables:
        for line in table.splitlines()[1:]:
            fields = line.split()
            if len(fields) > 3 and fields[3] == TCP_LISTEN:
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def instance_state(props, port=None, listening=()):
    """The state of one instance (see the module docstring) from its unit's
    `systemctl show` properties; ``port`` is a web instance's port."""
    active = props.get("ActiveState", "inactive")
    sub = props.get("SubState", "dead")
    if active == "active":
        return "starting" if port is not None and port not in listening else "running"
    if active == "activating":
        return "restarting" if sub == "auto-restart" else "activating"
    if active == "deactivating":
        return "stopping"
    if active == "failed":
        return "failed"
    return "inactive"


def app_status(*, stopped, current, wanted, states, static=False, busy=None):
    """The app's status from the states of its ``wanted`` instances."""
    if stopped:
        return "stopped"
    if current is None:
        return "deploying" if busy == "deploy" else "failed"
    if wanted == 0:
        return "running" if static else "idle"
    up = states.count("running")
    if up >= wanted:
        return "running"
    if up:
        return "degraded"
    return "failed" if "failed" in states else "down"


def not_settled(status):
    return status not in SETTLED
