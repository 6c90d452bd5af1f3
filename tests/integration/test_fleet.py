# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet foundation, end to end: deploy v1 over SSH, prove it through HAProxy, isolation, clean teardown."""

from __future__ import annotations

import os
import socket

import pytest

from sreops_fleet import Fleet, FleetError, pid_alive
from sreops_fleet.traffic import TrafficGenerator

from .conftest import make_fleet, run_playbook, ssh

pytestmark = pytest.mark.fleet


@pytest.fixture(scope="module")
def fleet():
    """A fleet of this module's own: these tests start from fresh hosts, whatever other modules did before."""
    instance = make_fleet("foundation", "127.0.5.10")
    instance.up()
    try:
        yield instance
    finally:
        instance.down()


APP_HOSTS = ["web1", "web2", "web3", "web4"]
HASH_HOST_FILES = "find /srv /etc/app -xdev -type f -o -type l 2>/dev/null | sort | xargs -r sha256sum; readlink /srv/app/current || true"


def host_fingerprints(fleet: Fleet) -> dict[str, str]:
    result = {}
    for host in APP_HOSTS:
        proc = ssh(fleet, host, HASH_HOST_FILES)
        assert proc.returncode == 0, proc.stderr
        result[host] = proc.stdout
    return result


def test_every_host_is_reachable_with_host_key_checking(fleet):
    for host in ["lb1", *APP_HOSTS]:
        proc = ssh(fleet, host, "hostname")
        assert proc.returncode == 0, proc.stderr
        assert proc.stdout.strip() == host
    with open(fleet.ansible_cfg, encoding="utf-8") as handle:
        cfg = handle.read()
    assert "host_key_checking = True" in cfg and "pipelining = True" in cfg and "StrictHostKeyChecking=yes" in cfg


def test_demo_check_mode_changes_nothing(fleet, releases_dir):
    before = host_fingerprints(fleet)
    run = run_playbook(fleet, "sre.ops.demo", "--check", "--diff", extra_vars={"demo_release_dir": releases_dir})
    assert run.rc == 0, run.output
    assert all(run.changed()[h] > 0 for h in APP_HOSTS), "check mode must predict the deploy"
    assert host_fingerprints(fleet) == before


def test_demo_deploys_v1_and_every_host_answers_through_the_load_balancer(fleet, releases_dir):
    run = run_playbook(fleet, "sre.ops.demo", extra_vars={"demo_release_dir": releases_dir})
    assert run.rc == 0, run.output
    assert all(run.changed()[h] > 0 for h in APP_HOSTS)

    report = TrafficGenerator(fleet.lb_url, rate=80, duration=2.0).run()
    assert report["errors"] == 0, report
    assert report["by_version"] == {"v1": report["requests"]}
    assert sorted(report["by_server"]) == APP_HOSTS
    # roundrobin over equal weights: every server gets its share
    assert min(report["by_server"].values()) >= report["requests"] // 4 - 2


def test_demo_second_run_changes_nothing_and_check_agrees(fleet, releases_dir):
    again = run_playbook(fleet, "sre.ops.demo", extra_vars={"demo_release_dir": releases_dir})
    assert again.rc == 0, again.output
    assert set(again.changed().values()) == {0}, again.output
    check = run_playbook(fleet, "sre.ops.demo", "--check", extra_vars={"demo_release_dir": releases_dir})
    assert check.rc == 0, check.output
    assert set(check.changed().values()) == {0}, check.output


def test_hosts_are_isolated_from_each_other_and_the_controller(fleet):
    probe = f"isolation-{os.getpid()}"
    assert ssh(fleet, "web1", f"echo {probe} > /srv/{probe} && echo {probe} > /etc/app/{probe}").returncode == 0
    assert ssh(fleet, "web1", f"cat /srv/{probe} /etc/app/{probe}").stdout.split() == [probe, probe]
    for host in APP_HOSTS[1:]:
        proc = ssh(fleet, host, f"ls /srv/{probe} /etc/app/{probe}")
        assert proc.returncode != 0 and "No such file" in proc.stderr
    assert not os.path.exists(f"/srv/{probe}") and not os.path.exists(f"/etc/app/{probe}")


def test_traffic_generator_reports_by_status_server_and_latency(fleet):
    report = TrafficGenerator(fleet.lb_url, rate=50, duration=1.0).run()
    assert report["requests"] == 50
    assert report["by_status"] == {"200": 50}
    assert report["latency_ms"]["p50"] is not None and report["latency_ms"]["p50"] <= report["latency_ms"]["max"]


def test_prometheus_exporter_and_runtime_api_are_there(fleet):
    import http.client  # pylint: disable=import-outside-toplevel

    conn = http.client.HTTPConnection(fleet.config.lb_address, fleet.config.stats_port, timeout=5)
    conn.request("GET", "/metrics")
    metrics = conn.getresponse().read().decode()
    assert 'haproxy_server_status{proxy="be_app",server="web1",state="UP"} 1' in metrics
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(fleet.haproxy_socket)
        sock.sendall(b"show map " + fleet.path("hosts.map").encode() + b"\n")
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert b"app.test be_app" in answer and b"www.test be_blue" in answer


def test_killed_run_is_recoverable_and_down_leaves_nothing(releases_dir):
    fleet = make_fleet("teardown", "127.0.3.10")
    fleet.up()
    try:
        run = run_playbook(fleet, "sre.ops.demo", extra_vars={"demo_release_dir": releases_dir})
        assert run.rc == 0, run.output
        # A test runner killed here leaves the fleet running; a new one must refuse, then recover with down.
        again = Fleet(fleet.config)
        with pytest.raises(FleetError, match="fleet down --run-dir"):
            again.up()
        namespaces = {os.readlink(f"/proc/{pid}/ns/pid") for pid in _children_of(fleet)}
        members = _processes_in(namespaces)
        assert any("app.py" in cmd for cmd in members.values()), "the demo app must run inside the hosts"
    finally:
        ended = Fleet(fleet.config).down()
    assert sorted(ended) == ["haproxy", "lb1", *APP_HOSTS]
    assert not [pid for pid in members if pid_alive(pid)], "processes left behind"
    with open("/proc/self/mountinfo", encoding="utf-8") as handle:
        assert fleet.run_dir not in handle.read()
    assert not os.path.exists(fleet.run_dir)
    fleet.up()
    fleet.down()


def _children_of(fleet: Fleet) -> list[int]:
    """PIDs (in our namespace) of each host's PID 1: the child of each recorded unshare process."""
    pids = []
    for name, info in fleet.status()["processes"].items():
        if name == "haproxy":
            continue
        with open(f"/proc/{info['pid']}/task/{info['pid']}/children", encoding="ascii") as handle:
            pids += [int(p) for p in handle.read().split()]
    return pids


def _processes_in(pid_namespaces: set[str]) -> dict[int, str]:
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry}/ns/pid") in pid_namespaces:
                with open(f"/proc/{entry}/cmdline", "rb") as handle:
                    found[int(entry)] = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
    return found
