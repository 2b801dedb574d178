"""A non-editable install carries the Ansible content and `hop` finds it there."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_bundles_content_and_resources_find_it(tmp_path):
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path)]
    subprocess.run([*build, str(ROOT)], check=True)
    wheel = next(tmp_path.glob("hop3-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "hop3/_content/playbooks/setup.yml" in names
    assert any(n.startswith("hop3/_content/roles/hop3_base/tasks/") for n in names)
    assert "hop3/_content/plugins/callback/hop3_ansiballz_cache.py" in names

    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--quiet", "--target", str(target),
         str(wheel)],
        check=True,
    )  # fmt: skip
    found = subprocess.run(
        [sys.executable, "-c", "from hop3 import resources; print(resources.playbook('setup'))"],
        env={"PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    ).stdout.strip()
    assert found == str(target / "hop3/_content/playbooks/setup.yml")
    assert Path(found).is_file()
