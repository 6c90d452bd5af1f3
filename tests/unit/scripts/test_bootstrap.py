# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""scripts/bootstrap leaves the machine's services alone: run it with systemctl, dpkg-query and apt-get recorded."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
# The venvs bootstrap makes, and the files their stamps are made of (as scripts/bootstrap computes them).
VENVS = {
    ".venv": ("requirements.txt", "requirements-dev.txt", "constraints.txt", "tests/requirements-collections.txt"),
    ".venv-ansible-2.16": ("tests/compat/requirements-ansible-2.16.txt",),
}
FILES = ("scripts/bootstrap", "tests/utils/get_pip_standin.py", "tests/compat/requirements-ansible-newest.txt")
FAKE = """#!/bin/sh
echo "$(basename "$0") $*" >> "{log}"
case "$(basename "$0") $1" in
  "systemctl is-system-running") echo running ;;
  "dpkg-query "*) printf 'install ok installed' ;;
  python3.1*) exit 1 ;;
esac
exit 0
"""


def stamp(names: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in names:
        with open(os.path.join(ROOT, name), "rb") as handle:
            digest.update(handle.read())
    return f".bootstrap-{digest.hexdigest()[:16]}"


def test_bootstrap_never_stops_or_disables_a_service(tmp_path):
    """Every step of bootstrap runs (the venvs it would make are this checkout's, already made): the systemctl,
    service and apt tools it reaches are recorded, and none may start, stop, enable or disable anything."""
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(sys.executable)))
    made = {venv: os.path.join(checkout, venv) for venv in VENVS}
    if not all(os.path.exists(os.path.join(path, stamp(VENVS[venv]))) for venv, path in made.items()):
        pytest.skip("runs with the venvs scripts/bootstrap made for these requirements in this checkout")
    repo = tmp_path / "repo"
    for name in FILES + tuple(n for names in VENVS.values() for n in names):
        os.makedirs(repo / os.path.dirname(name), exist_ok=True)
        shutil.copy2(os.path.join(ROOT, name), repo / name)
    for venv, path in made.items():
        os.symlink(path, repo / venv)
    fake_bin, log = tmp_path / "bin", tmp_path / "calls.log"
    fake_bin.mkdir()
    # python3.12/3.13 fail here, so bootstrap does not look for the newest-ansible venv this checkout may lack
    for tool in ("systemctl", "dpkg-query", "apt-get", "service", "invoke-rc.d", "deb-systemd-invoke", "python3.12", "python3.13"):
        (fake_bin / tool).write_text(FAKE.format(log=log))
        (fake_bin / tool).chmod(0o755)
    env = dict(os.environ, PATH=f"{fake_bin}:{os.environ['PATH']}", HOME=str(tmp_path / "home"))
    proc = subprocess.run([str(repo / "scripts" / "bootstrap")], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "bootstrap: ready (ansible-core 2." in proc.stdout
    calls = log.read_text().splitlines() if log.exists() else []
    assert any(c.startswith("dpkg-query") for c in calls), "the fakes were used"
    touched = [c for c in calls if not c.startswith(("dpkg-query", "systemctl is-", "python3.1"))]
    assert touched == [], f"bootstrap must not start, stop, enable or disable services: {touched}"
