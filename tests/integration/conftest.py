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

from sreops_fleet import Fleet, FleetConfig, on_test_net

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


def host_url(fleet: Fleet, host: str, path: str = "/") -> str:
    """The demo app's URL on a fleet host, e.g. http://127.0.2.12:8080/healthz."""
    address = {h.name: h.address for h in fleet.hosts()}[host]
    return f"http://{address}:{fleet.config.app_port}{path}"


def ssh(fleet: Fleet, host: str, command: str) -> subprocess.CompletedProcess:
    """Run a shell command on a fleet host through the same SSH settings ansible uses."""
    return subprocess.run(fleet.ssh_argv(host, command), capture_output=True, text=True, timeout=60, check=False)


_NET = os.environ.get("SREOPS_TEST_NET", "0") or "0"
_WORKER = os.environ.get("PYTEST_XDIST_WORKER", "")
TEST_FLEETS_DIR = os.path.join(
    os.environ.get("SREOPS_TEST_FLEETS_DIR", "/tmp/sre-ops-test-fleets" + ("" if _NET == "0" else f"-{_NET}")),
    *([_WORKER] if _WORKER else []),
)


def make_fleet(name: str, address_base: str, **kwargs: t.Any) -> Fleet:
    """A fleet with a stable run directory per name, so one left by a killed test run is found and ended.

    ``address_base`` is a 127.0.x.y address; $SREOPS_TEST_NET moves it (see sreops_fleet.on_test_net).
    """
    if os.geteuid() != 0:
        pytest.skip("the fleet needs root")
    fleet = Fleet(FleetConfig(run_dir=os.path.join(TEST_FLEETS_DIR, name), address_base=on_test_net(address_base), http_port=8000, **kwargs))
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


def run_module(
    fleet: Fleet,
    hosts: str,
    module: str,
    args: dict[str, t.Any],
    *ansible_args: str,
    delegate_to: str | None = None,
    tmp_dir: str,
) -> tuple[PlaybookRun, dict[str, dict[str, t.Any]]]:
    """Run one module task with ansible-playbook on the fleet; return the run and each host's result.

    The task's result is written to a JSON file per host by a second task (never in check mode), so the
    test asserts on exactly what the module returned, whatever the output callback shows.
    """
    import json  # pylint: disable=import-outside-toplevel

    out_dir = os.path.join(tmp_dir, "results")
    os.makedirs(out_dir, exist_ok=True)
    task: dict[str, t.Any] = {"name": "module under test", module: args, "register": "module_result", "ignore_errors": True}
    if delegate_to:
        task["delegate_to"] = delegate_to
    playbook = [{
        "name": f"run {module}",
        "hosts": hosts,
        "gather_facts": False,
        "tasks": [
            task,
            {
                "name": "save the result",
                "ansible.builtin.copy": {"content": "{{ module_result | to_json }}", "dest": f"{out_dir}/{{{{ inventory_hostname }}}}.json", "mode": "0600"},
                "delegate_to": "localhost",
                "check_mode": False,
            },
        ],
    }]
    path = os.path.join(tmp_dir, "playbook.yml")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(playbook, handle)
    for stale in os.listdir(out_dir):
        os.unlink(os.path.join(out_dir, stale))
    run = run_playbook(fleet, path, *ansible_args)
    results = {}
    for name in os.listdir(out_dir):
        with open(os.path.join(out_dir, name), encoding="utf-8") as handle:
            results[name[: -len(".json")]] = json.load(handle)
    return run, results


def deploy_demo(fleet: Fleet, releases: str, version: str, limit: str = "app") -> None:
    """Put a demo release on hosts with the demo playbook (plain tasks), and wait until HAProxy sees them UP."""
    run = run_playbook(fleet, "sre.ops.demo", "--limit", f"{limit}:lb", extra_vars={
        "demo_release_dir": releases, "demo_version": version, "demo_verify_lb": str(limit == "app").lower()})
    assert run.rc == 0, run.output


@pytest.fixture(scope="session")
def v1_everywhere(fleet: Fleet, releases_dir: str) -> Fleet:
    """The fleet with demo-app v1 on every app host, all servers UP in HAProxy."""
    deploy_demo(fleet, releases_dir, "v1")
    return fleet
