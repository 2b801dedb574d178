"""Crash-loop recovery: start an app instance again after systemd gave up.

Instances restart on failure (Restart=on-failure), but after StartLimitBurst
starts within StartLimitIntervalSec systemd marks the unit failed and stops
trying (systemd 252 has no RestartSteps= back-off). Each instance unit names
``hop3-recover@<its unit>.service`` in OnFailure=; that unit waits
RECOVER_DELAY seconds, then resets and starts the instance if it is still
wanted. Wanted means enabled: a deploy, `hop stop`, a scale-down or a pruned
release disable the instances they stop on purpose, and `hop destroy`
removes the units, so none of those is ever started again by this. A unit
that fails again hits its start limit again and is retried after another
delay: one burst of starts per RECOVER_DELAY plus a burst, not a tight loop.

Plain Python with no Ansible import: the unit text is data.
"""

from __future__ import annotations

import os

RECOVER_DELAY = 45
RECOVER_TEMPLATE = "hop3-recover@.service"

# $$1 is the shell's $1 (systemd would expand $1 itself); %i is the failed
# unit's name, passed as an argument and never parsed by the shell.
RECOVER_UNIT = "\n".join([
    "# Managed by Hop3: starts an app instance again after systemd gave up on it.",
    "[Unit]",
    "Description=Hop3: start %i again after its crash loop",
    "",
    "[Service]",
    "Type=oneshot",
    "ExecStart=/bin/sleep %d" % RECOVER_DELAY,
    "ExecStart=/bin/sh -c 'systemctl -q is-enabled \"$$1\" && systemctl -q is-failed \"$$1\" "
    "|| exit 0; systemctl reset-failed \"$$1\" && exec systemctl start --no-block \"$$1\"' "
    "hop3-recover %i",
    "",
])  # fmt: skip


def recover_unit(unit):
    """The recovery unit of an instance unit."""
    return "hop3-recover@%s.service" % unit


def write_recover_template(unit_dir, write_file):
    """Install the template unit; True when it changed (then daemon-reload)."""
    return write_file(os.path.join(unit_dir, RECOVER_TEMPLATE), RECOVER_UNIT + "\n")
