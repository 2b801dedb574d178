"""Keep Ansible's built module payloads (AnsiballZ) from one hop run to the next.

Ansible builds each Python module's payload (the module and the
module_utils it imports, zipped) once per process, in a cache under its
per-process local temp dir, which it removes at exit. Building one takes
about 0.3 s of controller CPU (it parses the module_utils it finds), so
every run paid that again for every module it called.

hop points HOP3_ANSIBALLZ_CACHE at a directory of its cache dir whose name
is a digest of everything a payload is made of: the ansible-core and Python
versions and the source of every module and module_utils file Hop3 ships
(hop3/ansiballz.py). When the playbook starts, this callback links Ansible's
per-process cache to it. A changed source means another directory, so a
payload is never reused across a change. The link goes with the temp dir at
exit (rmtree removes a link, not what it points to).
"""

from __future__ import annotations

import os

from ansible import constants as C
from ansible.plugins.callback import CallbackBase

DOCUMENTATION = r"""
name: hop3_ansiballz_cache
type: aggregate
short_description: Reuse built module payloads across hop runs
description:
  - Links Ansible's per-process AnsiballZ cache to the directory named by
    the HOP3_ANSIBALLZ_CACHE environment variable (made by hop).
requirements:
  - enabled in callbacks_enabled
"""


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "hop3_ansiballz_cache"
    CALLBACK_NEEDS_ENABLED = True

    def v2_playbook_on_start(self, playbook):
        shared = os.environ.get("HOP3_ANSIBALLZ_CACHE", "")
        if not shared or not os.path.isdir(shared):
            return
        link = os.path.join(C.DEFAULT_LOCAL_TMP, "ansiballz_cache")
        try:
            os.symlink(shared, link)
        except OSError as err:  # already built into, or an odd temp dir: keep Ansible's own
            self._display.vvv("hop3_ansiballz_cache: not linked (%s)" % err)
