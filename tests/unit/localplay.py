"""Run a role's own modules on this machine through a real `ansible-playbook`
(local connection), for unit tests that keep every file under tmp_path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROLES = Path(__file__).resolve().parents[2] / "roles"


def run_tasks(tmp_path: Path, tasks: list[dict], role: str) -> dict:
    """Run the tasks with ``role``'s library and module_utils; return what each
    registered (by name)."""
    names = [task["register"] for task in tasks if "register" in task]
    out = tmp_path / "results.json"
    dump = {name: f"{{{{ {name} }}}}" for name in names}
    play = [{
        "name": "Modules",
        "hosts": "localhost",
        "gather_facts": False,
        "tasks": [*tasks, {
            "name": "Save the results",
            "ansible.builtin.copy": {"content": "{{ results | to_json }}", "dest": str(out),
                                     "mode": "0600"},
            "vars": {"results": dump},
        }],
    }]  # fmt: skip
    playbook = tmp_path / "play.yml"
    playbook.write_text(yaml.safe_dump(play, sort_keys=False))
    env = {
        **os.environ,
        "ANSIBLE_LIBRARY": str(ROLES / role / "library"),
        "ANSIBLE_MODULE_UTILS": str(ROLES / role / "module_utils"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "tmp"),
        "ANSIBLE_LOCALHOST_WARNING": "false",
        "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false",
    }
    proc = subprocess.run(
        [str(Path(sys.executable).with_name("ansible-playbook")), "-c", "local",
         "-i", "localhost,", "-e", f"ansible_python_interpreter={sys.executable}",
         str(playbook)],
        capture_output=True, text=True, env=env, check=False, timeout=180,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


def run_module(path: Path, args: dict) -> dict:
    """Run a module file as Ansible does (a process with its arguments on stdin); its result."""
    proc = subprocess.run(
        [sys.executable, str(path)],
        input=json.dumps({"ANSIBLE_MODULE_ARGS": args}),
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return json.loads(proc.stdout)
