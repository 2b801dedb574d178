"""The end of a run, done by its last module when nothing follows it on the host.

A redeploy whose vhost is unchanged, or a config change without domain
changes, makes all its changes in one module call (hop3_app_release with
``start``, hop3_app_config with ``restart``). The playbook then used to make
three more calls: the deploy record (tasks/record.yml), the lock's release
(tasks/unlock.yml) and the audit entry (role hop3_auditlog), ~0.8 s of a
redeploy. Given ``finish``, the module does those itself, after its last
change and only if it succeeded:

- ``record``: the controller's two fingerprints; the module writes the deploy
  record that hop3/deployed.py reads (the same format as tasks/record.yml);
- ``audit``: the runner's hop3_audit; the module appends the entry
  (module_utils/hop3_auditlog.py, of role hop3_auditlog, which every playbook
  that passes ``audit`` imports; without it the entry is left to that role's
  task, and the result says ``audited: false``).

The lock is released by the module's ``lock.release``, which the same
playbooks set along with ``finish``.
"""

import hashlib
import os

from ansible.module_utils.hop3_app_host import write_file

try:
    from ansible.module_utils.hop3_auditlog import record_run
except ImportError:  # role hop3_auditlog is not part of this playbook
    record_run = None

RECORD = ".hop3-deployed"

FINISH_OPTION = {
    "type": "dict",
    "options": {
        "record": {"type": "list", "elements": "str"},
        "audit": {"type": "dict"},
    },
}


def _sha256_line(path, name):
    """One line of `sha256sum`'s output for ``path``, or "" when it is missing."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(65536), b""):
                digest.update(block)
    except OSError:
        return ""
    return "%s  %s\n" % (digest.hexdigest(), name)


def write_deployed_record(app_dir, prints):
    """The deploy record: both fingerprints, then the digests of state.json
    and env as the run leaves them (what `sha256sum state.json env` prints)."""
    text = "%s\n%s\n" % (prints[0], prints[1])
    text += _sha256_line(os.path.join(app_dir, "state.json"), "state.json")
    text += _sha256_line(os.path.join(app_dir, "env"), "env")
    write_file(os.path.join(app_dir, RECORD), text)


def finish_run(app_dir, options, **audit_dirs):
    """Do what ``options`` (the module's ``finish``) asks; what was done.
    ``audit_dirs``: record_run's log_dir and apps_root, for tests."""
    done = {"recorded": False, "audited": False}
    if not options:
        return done
    prints = options.get("record") or []
    if len(prints) == 2:
        write_deployed_record(app_dir, prints)
        done["recorded"] = True
    if options.get("audit") and record_run is not None:
        try:
            record_run(options["audit"], **audit_dirs)
            done["audited"] = True
        except (OSError, ValueError) as err:
            done["audit_error"] = str(err)  # the playbook's audit task tries again
    return done
