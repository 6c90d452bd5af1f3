# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.haproxy_server, haproxy_map and haproxy_info over SSH on lb1, against the fleet's real HAProxy."""

from __future__ import annotations

import hashlib
import socket
import time

import pytest

from sreops_fleet.traffic import TrafficGenerator

from .conftest import run_module

pytestmark = pytest.mark.fleet

APP = ["web1", "web2", "web3", "web4"]
SOCKET = "{{ haproxy_socket }}"


def api(fleet, command):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(fleet.haproxy_socket)
        sock.sendall(command.encode() + b"\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode()


def lb_fingerprint(fleet):
    """Admin states, weights and maps: everything the modules may change (not counters, not health)."""
    state = [" ".join(line.split()[:9][1:4] + line.split()[6:9]) for line in api(fleet, "show servers state").splitlines()[2:] if line]
    maps = api(fleet, f"show map {fleet.path('hosts.map')}")
    with open(fleet.path("hosts.map"), "rb") as handle:
        map_file = handle.read()
    return hashlib.sha256(("\n".join(state) + maps).encode() + map_file).hexdigest()


def admin(fleet, backend, server):
    for line in api(fleet, "show servers state").splitlines():
        parts = line.split()
        if len(parts) > 8 and parts[1] == backend and parts[3] == server:
            return int(parts[6]), int(parts[7])
    raise AssertionError(f"{backend}/{server} not found")


def server_task(fleet, tmp_path, args, *flags, name="run"):
    run, results = run_module(fleet, "lb1", "sre.ops.haproxy_server", {"socket": SOCKET, **args}, *flags, tmp_dir=str(tmp_path / name))
    assert run.rc == 0, run.output
    return results["lb1"]


def wait_up(fleet, backend, servers, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        rows = [line.split(",") for line in api(fleet, "show stat").splitlines()]
        if all(any(r[0] == backend and r[1] == s and r[17].startswith("UP") and r[17] != "UP 1/2" for r in rows) for s in servers):
            return
        time.sleep(0.05)
    raise AssertionError(f"{servers} not UP in {backend}")


@pytest.fixture
def lb(v1_everywhere):
    """The fleet, with every server ready at full weight and the default map restored afterwards."""
    yield v1_everywhere
    fleet = v1_everywhere
    for backend in ("be_app", "be_blue", "be_green", "be_static"):
        for line in api(fleet, "show servers state").splitlines():
            parts = line.split()
            if len(parts) > 8 and parts[1] == backend:
                api(fleet, f"set server {backend}/{parts[3]} weight {parts[8]}")
                api(fleet, f"set server {backend}/{parts[3]} state ready")
    api(fleet, f"set map {fleet.path('hosts.map')} www.test be_blue")
    wait_up(fleet, "be_app", APP)


def test_info_reads_every_backend_and_server(lb, tmp_path):
    run, results = run_module(lb, "lb1", "sre.ops.haproxy_info", {"socket": SOCKET, "maps": ["{{ haproxy_map_file }}"]}, "--check",
                              tmp_dir=str(tmp_path))
    assert run.rc == 0, run.output
    info = results["lb1"]
    assert set(info["backends"]) == {"be_app", "be_blue", "be_green", "be_static"}
    servers = info["backends"]["be_app"]["servers"]
    assert sorted(servers) == APP
    assert all(s["status"] == "UP" and s["admin_state"] == "ready" and s["serving"] and s["weight"] == 100 for s in servers.values())
    assert info["backends"]["be_static"]["algorithm"] == "source"
    assert info["frontends"]["fe_http"]["status"] == "OPEN"
    assert len(info["servers"]) == 4 + 2 + 2 + 4
    assert info["maps"] == {lb.path("hosts.map"): {"app.test": "be_app", "www.test": "be_blue"}}


def test_maint_ready_round_trip_check_apply_apply_check(lb, tmp_path):
    args = {"backend": "be_app", "servers": ["web2"], "state": "maint"}
    before = lb_fingerprint(lb)
    check = server_task(lb, tmp_path, args, "--check", "--diff", name="c1")
    assert check["changed"] and check["commands"] == [] and lb_fingerprint(lb) == before
    assert check["diff"]["after"] == {"web2": {"state": "maint", "weight": 100}}
    apply = server_task(lb, tmp_path, args, name="a1")
    assert apply["changed"] and apply["commands"] == ["set server be_app/web2 state maint"]
    assert admin(lb, "be_app", "web2")[0] & 0x01
    again = server_task(lb, tmp_path, args, name="a2")
    assert not again["changed"] and again["commands"] == []
    check_again = server_task(lb, tmp_path, args, "--check", name="c2")
    assert not check_again["changed"]
    back = server_task(lb, tmp_path, {**args, "state": "ready"}, name="a3")
    assert back["changed"] and admin(lb, "be_app", "web2")[0] == 0
    assert not server_task(lb, tmp_path, {**args, "state": "ready"}, name="a4")["changed"]


def test_drain_with_live_traffic_reaches_zero_sessions_and_no_client_errors(lb, tmp_path):
    traffic = TrafficGenerator(lb.lb_url, rate=40, duration=60).start()
    try:
        time.sleep(0.5)
        drained = server_task(lb, tmp_path, {"backend": "be_app", "servers": ["web1"], "state": "drain", "wait": True,
                                             "wait_timeout": 20, "min_ready": 3}, name="drain")
        assert drained["changed"] and drained["sessions_remaining"] == {}
        during = TrafficGenerator(lb.lb_url, rate=40, duration=1.0).run()
        assert "web1" not in during["by_server"] and during["errors"] == 0
        server_task(lb, tmp_path, {"backend": "be_app", "servers": ["web1"], "state": "ready"}, name="ready")
        wait_up(lb, "be_app", ["web1"])
    finally:
        report = traffic.stop()
    assert report["requests"] > 40
    assert report["errors"] == 0, report
    # draining an already drained server does not wait or change
    assert not server_task(lb, tmp_path, {"backend": "be_app", "servers": ["web2"], "state": "ready", "wait": True}, name="noop")["changed"]


def test_weights_90_10_split_the_traffic(lb, tmp_path):
    server_task(lb, tmp_path, {"backend": "be_app", "servers": ["web3", "web4"], "state": "maint"}, name="m")
    server_task(lb, tmp_path, {"backend": "be_app", "servers": ["web1"], "weight": "90%"}, name="w1")
    result = server_task(lb, tmp_path, {"backend": "be_app", "servers": ["web2"], "weight": "10"}, name="w2")
    assert result["servers"][0]["after"] == {"state": "ready", "weight": 10}
    report = TrafficGenerator(lb.lb_url, rate=100, duration=2.0).run()
    assert report["errors"] == 0 and set(report["by_server"]) == {"web1", "web2"}
    share = report["by_server"]["web1"] / report["requests"]
    assert 0.85 <= share <= 0.95, report["by_server"]


def test_map_switch_moves_traffic_and_check_mode_changes_nothing(lb, tmp_path):
    args = {"socket": SOCKET, "map": "{{ haproxy_map_file }}", "entries": {"www.test": "be_green"}, "persist": True}
    before = lb_fingerprint(lb)
    run, check = run_module(lb, "lb1", "sre.ops.haproxy_map", args, "--check", "--diff", tmp_dir=str(tmp_path / "c"))
    assert run.rc == 0 and check["lb1"]["changed"] and check["lb1"]["file_changed"]
    assert lb_fingerprint(lb) == before
    run, applied = run_module(lb, "lb1", "sre.ops.haproxy_map", args, tmp_dir=str(tmp_path / "a"))
    assert run.rc == 0 and applied["lb1"]["changed"]
    assert applied["lb1"]["commands"] == [f"set map {lb.path('hosts.map')} www.test be_green"]
    green = TrafficGenerator(lb.lb_url, rate=50, duration=0.8, host_header="www.test").run()
    assert set(green["by_server"]) == {"web3", "web4"} and green["errors"] == 0
    with open(lb.path("hosts.map"), encoding="utf-8") as handle:
        assert "www.test be_green" in handle.read()
    run, again = run_module(lb, "lb1", "sre.ops.haproxy_map", args, tmp_dir=str(tmp_path / "b"))
    assert run.rc == 0 and not again["lb1"]["changed"]
    run, back = run_module(lb, "lb1", "sre.ops.haproxy_map", {**args, "entries": {"www.test": "be_blue"}}, tmp_dir=str(tmp_path / "d"))
    assert back["lb1"]["changed"]
    blue = TrafficGenerator(lb.lb_url, rate=50, duration=0.8, host_header="www.test").run()
    assert set(blue["by_server"]) == {"web1", "web2"}


def test_min_ready_refuses_and_nothing_changes(lb, tmp_path):
    before = lb_fingerprint(lb)
    for flags in ((), ("--check",)):
        result = server_task(lb, tmp_path, {"backend": "be_app", "servers": ["web1", "web2"], "state": "drain", "min_ready": "3"},
                             *flags, name=f"r{len(flags)}")
        assert result["failed"] and result["msg"].startswith("refusing: web1, web2 out of service would leave 2 of 4 servers")
    assert lb_fingerprint(lb) == before


def test_static_algorithm_weight_is_refused_with_an_explanation(lb, tmp_path):
    for flags in ((), ("--check",)):
        result = server_task(lb, tmp_path, {"backend": "be_static", "servers": ["web1"], "weight": "50%"}, *flags, name=f"s{len(flags)}")
        assert result["failed"] and "static algorithm" in result["msg"] and "0% and 100%" in result["msg"]
    result = server_task(lb, tmp_path, {"backend": "be_static", "servers": ["web1"], "weight": "0%"}, name="zero")
    assert result["changed"] and admin(lb, "be_static", "web1")[1] == 0


def test_tcp_endpoint_and_clear_errors(lb, tmp_path):
    run, results = run_module(lb, "lb1", "sre.ops.haproxy_info", {"socket": "{{ haproxy_api_address }}", "backends": ["be_blue"]},
                              tmp_dir=str(tmp_path / "tcp"))
    assert run.rc == 0 and sorted(results["lb1"]["backends"]["be_blue"]["servers"]) == ["web1", "web2"]
    run, results = run_module(lb, "lb1", "sre.ops.haproxy_server", {"socket": "/run/nowhere.sock", "backend": "be_app", "state": "ready"},
                              tmp_dir=str(tmp_path / "missing"))
    assert results["lb1"]["msg"] == "cannot reach the HAProxy runtime API at /run/nowhere.sock to send 'show stat': No such file or directory"
    run, results = run_module(lb, "lb1", "sre.ops.haproxy_server", {"socket": SOCKET, "backend": "be_app", "servers": ["web9"], "state": "drain"},
                              tmp_dir=str(tmp_path / "unknown"))
    assert results["lb1"]["msg"] == "backend be_app has no server web9 (it has web1, web2, web3, web4)"
