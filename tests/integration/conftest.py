# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fixtures that bring up the test fleet and run ansible-playbook against it.

The fleet here uses its own address range and run directory, so a fleet someone keeps running for
experiments (make fleet-up, 127.0.0.10+) is not disturbed.
"""

from __future__ import annotations

import dataclasses
import os
import re
import subprocess
import sys
import typing as t

import pytest

from sreops_fleet import Fleet, FleetConfig

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The ansible-playbook of the Python running the tests (the project's venv), else the one on PATH.
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
if not os.path.exists(ANSIBLE_PLAYBOOK):
    ANSIBLE_PLAYBOOK = "ansible-playbook"
RELEASES_DIR = os.environ.get("SREOPS_RELEASES", "")
RECAP = re.compile(
    r"^(?P<host>\S+)\s+:\s+ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+unreachable=(?P<unreachable>\d+)\s+"
    r"failed=(?P<failed>\d+)\s+skipped=(?P<skipped>\d+)",
    re.M,
)


@dataclasses.dataclass
class PlaybookRun:
    rc: int
    output: str
    recap: dict[str, dict[str, int]]

    def changed(self) -> dict[str, int]:
        return {host: counts["changed"] for host, counts in self.recap.items()}


def run_playbook(fleet: Fleet, playbook: str, *args: str, extra_vars: dict[str, t.Any] | None = None) -> PlaybookRun:
    cmd = [ANSIBLE_PLAYBOOK, playbook, *args]
    for key, value in (extra_vars or {}).items():
        cmd += ["-e", f"{key}={value}"]
    proc = subprocess.run(cmd, env=fleet.env(), capture_output=True, text=True, timeout=600, check=False, cwd=COLLECTION_ROOT)
    output = proc.stdout + proc.stderr
    recap = {
        m["host"]: {k: int(m[k]) for k in ("ok", "changed", "unreachable", "failed", "skipped")}
        for m in RECAP.finditer(proc.stdout)
    }
    return PlaybookRun(proc.returncode, output, recap)


def ssh(fleet: Fleet, host: str, command: str) -> subprocess.CompletedProcess:
    """Run a shell command on a fleet host through the same SSH settings ansible uses."""
    address = {h.name: h for h in fleet.hosts()}[host]
    cmd = [
        "ssh", "-F", "/dev/null", "-i", fleet.path("id_ed25519"), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={fleet.path('known_hosts')}", "-o", "StrictHostKeyChecking=yes",
        "-p", str(address.ssh_port), f"root@{address.address}", command,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)


TEST_FLEETS_DIR = os.environ.get("SREOPS_TEST_FLEETS_DIR", "/tmp/sre-ops-test-fleets")


def make_fleet(name: str, address_base: str, **kwargs: t.Any) -> Fleet:
    """A fleet with a stable run directory per name, so one left by a killed test run is found and ended."""
    if os.geteuid() != 0:
        pytest.skip("the fleet needs root")
    fleet = Fleet(FleetConfig(run_dir=os.path.join(TEST_FLEETS_DIR, name), address_base=address_base, http_port=8000, **kwargs))
    if fleet.status()["state"] != "down":
        ended = fleet.down()
        print(f"ended a fleet left behind by an earlier run in {fleet.run_dir}: {', '.join(ended) or 'nothing alive'}")
    return fleet


@pytest.fixture(scope="session")
def fleet() -> t.Iterator[Fleet]:
    instance = make_fleet("integration", "127.0.2.10")
    instance.up()
    try:
        yield instance
    finally:
        instance.down()


@pytest.fixture(scope="session")
def releases_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    if RELEASES_DIR and os.path.isdir(RELEASES_DIR):
        return RELEASES_DIR
    from sreops_fleet.releases import build_all  # pylint: disable=import-outside-toplevel

    out = str(tmp_path_factory.mktemp("releases"))
    build_all(out)
    return out
