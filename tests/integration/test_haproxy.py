# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.haproxy_server, haproxy_map and haproxy_info over SSH on lb1, against the fleet's real HAProxy."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import pwd
import socket
import sys
import time
import traceback

import pytest
from ansible.module_utils.testing import patch_module_args

from ansible_collections.sre.ops.plugins.module_utils._haproxy import parse_map
from ansible_collections.sre.ops.plugins.modules import haproxy_map, haproxy_server
from sreops_fleet import haproxy
from sreops_fleet.traffic import TrafficGenerator

from .conftest import run_module, run_playbook

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
    map_file = fleet.path("hosts.map")
    with open(map_file, encoding="utf-8") as handle:
        content = handle.read()
    if os.path.islink(map_file) or content != haproxy.render_map():
        os.unlink(map_file)
        with open(map_file, "w", encoding="utf-8") as handle:
            handle.write(haproxy.render_map())
    if dict(parse_map(api(fleet, f"show map {map_file}"))) != haproxy.DEFAULT_MAP:
        api(fleet, f"clear map {map_file}")
        for key, value in haproxy.DEFAULT_MAP.items():
            api(fleet, f"add map {map_file} {key} {value}")
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


def test_put_back_hands_over_from_one_wave_to_the_next_check_apply_apply_check(lb, tmp_path):
    # web1 left drained at half weight by "the wave before"; the next wave's drain puts it back first, in one step
    api(lb, "set server be_app/web1 state drain")
    api(lb, "set server be_app/web1 weight 50")
    args = {"backend": "be_app", "servers": ["web2"], "state": "drain", "put_back": ["web1"], "min_ready": "3"}
    before = lb_fingerprint(lb)
    check = server_task(lb, tmp_path, args, "--check", "--diff", name="c1")
    assert check["changed"] and check["commands"] == [] and lb_fingerprint(lb) == before
    assert check["diff"]["after"] == {"web1": {"state": "ready", "weight": 100}, "web2": {"state": "drain", "weight": 100}}
    apply = server_task(lb, tmp_path, args, name="a1")
    assert apply["changed"] and apply["commands"] == [
        "set server be_app/web1 weight 100", "set server be_app/web1 state ready", "set server be_app/web2 state drain"]
    assert (apply["ready_before"], apply["ready_after"]) == (3, 3) and apply["diff"] == check["diff"]
    assert admin(lb, "be_app", "web1") == (0, 100) and admin(lb, "be_app", "web2")[0] & 0x08
    again = server_task(lb, tmp_path, args, name="a2")
    assert not again["changed"] and again["commands"] == []
    assert not server_task(lb, tmp_path, args, "--check", name="c2")["changed"]
    # a change min_ready refuses still puts the wave before back, and says so
    api(lb, "set server be_app/web1 state drain")
    run, results = run_module(lb, "lb1", "sre.ops.haproxy_server", {"socket": SOCKET, "backend": "be_app", "servers": ["web3", "web4"],
                              "state": "drain", "put_back": ["web1"], "min_ready": "3"}, tmp_dir=str(tmp_path / "refused"))
    refused = results["lb1"]
    assert refused["failed"] and refused["changed"] and "(put back: web1)" in refused["msg"], run.output
    assert admin(lb, "be_app", "web1")[0] == 0 and admin(lb, "be_app", "web3")[0] == 0 == admin(lb, "be_app", "web4")[0]


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


def test_static_algorithm_weight_is_asked_of_haproxy_and_a_refusal_changes_nothing(lb, tmp_path):
    """be_static balances with 'source', map-based: the runtime API cannot tell, so HAProxy is asked first."""
    args = {"backend": "be_static", "servers": ["web1", "web2"], "state": "drain", "weight": "50%"}
    check = server_task(lb, tmp_path, args, "--check", name="check")
    assert check["changed"] and "hash-type consistent" in " ".join(check["warnings"]), "check mode cannot ask, and says so"
    before = lb_fingerprint(lb)
    result = server_task(lb, tmp_path, args, name="apply")
    assert result["failed"] and not result["changed"]
    assert "a static algorithm here" in result["msg"] and "0% and 100%" in result["msg"] and "nothing was changed" in result["msg"]
    assert lb_fingerprint(lb) == before, "web1 is not left drained: nothing is half applied"
    result = server_task(lb, tmp_path, {"backend": "be_static", "servers": ["web1"], "weight": "0%"}, name="zero")
    assert result["changed"] and admin(lb, "be_static", "web1")[1] == 0


def test_share_check_apply_apply_check_and_the_traffic_it_gives(lb, tmp_path):
    args = {"backend": "be_app", "servers": ["web4"], "share": 10}
    before = lb_fingerprint(lb)
    check = server_task(lb, tmp_path, args, "--check", "--diff", name="c1")
    assert check["changed"] and lb_fingerprint(lb) == before
    assert check["share"] == {"requested": 10.0, "effective": 9.91, "weight": 33, "others_weight": 300}
    apply = server_task(lb, tmp_path, args, name="a1")
    assert apply["changed"] and apply["commands"] == ["set server be_app/web4 weight 33"] and apply["share"] == check["share"]
    assert not server_task(lb, tmp_path, args, name="a2")["changed"]
    assert not server_task(lb, tmp_path, args, "--check", name="c2")["changed"]
    report = TrafficGenerator(lb.lb_url, rate=150, duration=2.0).run()
    assert report["errors"] == 0 and 0.06 <= report["by_server"].get("web4", 0) / report["requests"] <= 0.14, report["by_server"]


# ----- concurrency: the patterns of a play on the app hosts delegated to the load balancer -----------
ROUNDS = 30


def run_at_once(calls, out_dir):
    """Run module main()s in forked processes that all start at the same moment; return their results.

    Each process has its own connections and its own lock file descriptor, like the module processes
    ansible starts on the load balancer for each host of a play.
    """
    start_read, start_write = os.pipe()
    pids = []
    for index, (module, args) in enumerate(calls):
        pid = os.fork()
        if pid == 0:  # the child: exit_json/fail_json print the result and raise SystemExit
            os.close(start_write)
            os.read(start_read, 1)  # returns when the parent closes its end: every child starts at once
            with open(os.path.join(out_dir, f"{index}.json"), "w", encoding="utf-8") as out:
                sys.stdout = out
                try:
                    with patch_module_args(args):
                        module.main()
                except SystemExit:
                    pass
                except Exception:  # pylint: disable=broad-except
                    print(json.dumps({"exception": traceback.format_exc()}))
            os._exit(0)  # pylint: disable=protected-access
        pids.append(pid)
    os.close(start_read)
    os.close(start_write)
    for pid in pids:
        os.waitpid(pid, 0)
    results = []
    for index in range(len(calls)):
        with open(os.path.join(out_dir, f"{index}.json"), encoding="utf-8") as handle:
            results.append(json.loads(handle.read().strip().splitlines()[-1]))
    return results


def test_concurrent_drains_never_break_min_ready(lb, tmp_path):
    """Four hosts drain themselves at once with min_ready 2, thirty times: exactly two may go, never three."""
    for round_no in range(ROUNDS):
        for server in APP:
            api(lb, f"set server be_app/{server} state ready")
        calls = [(haproxy_server, {"socket": lb.haproxy_socket, "backend": "be_app", "servers": [s], "state": "drain", "min_ready": "2"})
                 for s in APP]
        results = run_at_once(calls, str(tmp_path))
        drained = [s for s in APP if admin(lb, "be_app", s)[0] & 0x08]
        assert len(drained) == 2, f"round {round_no}: {drained} drained; results {results}"
        assert sorted(r.get("ready_before") for r in results if r.get("changed")) == [3, 4], f"round {round_no}: {results}"
        refused = [r for r in results if r.get("failed")]
        assert len(refused) == 2 and all(r["msg"].startswith("refusing:") for r in refused), f"round {round_no}: {results}"


def test_concurrent_map_updates_of_distinct_keys_never_lose_one(lb, tmp_path):
    """Four hosts set two keys each at once (each a prepare/commit of the whole map), thirty times: all eight stay."""
    map_file = lb.path("hosts.map")
    for round_no in range(ROUNDS):
        api(lb, f"clear map {map_file}")
        for key, value in haproxy.DEFAULT_MAP.items():
            api(lb, f"add map {map_file} {key} {value}")
        calls = [(haproxy_map, {"socket": lb.haproxy_socket, "map": map_file,
                                "entries": {f"{s}-a.test": "be_app", f"{s}-b.test": "be_blue"}}) for s in APP]
        results = run_at_once(calls, str(tmp_path))
        entries = dict(parse_map(api(lb, f"show map {map_file}")))
        expected = dict(haproxy.DEFAULT_MAP, **{f"{s}-{k}.test": v for s in APP for k, v in (("a", "be_app"), ("b", "be_blue"))})
        assert entries == expected, f"round {round_no}: lost {sorted(set(expected) - set(entries))}; results {results}"
        assert all(r["changed"] for r in results)


PLAY = [
    {
        "name": "Every app host drains itself at once and sets its own keys, delegated to the load balancer",
        "hosts": "app",
        "gather_facts": False,
        "module_defaults": {"group/sre.ops.haproxy": {"socket": "{{ hostvars['lb1'].haproxy_socket }}"}},
        "tasks": [
            {"name": "Drain this host unless that leaves fewer than 2 ready", "register": "drain", "ignore_errors": True,
             "delegate_to": "lb1",
             "sre.ops.haproxy_server": {"backend": "be_app", "servers": ["{{ inventory_hostname }}"], "state": "drain", "min_ready": 2}},
            {"name": "Set two keys of this host's own", "delegate_to": "lb1",
             "sre.ops.haproxy_map": {"map": "{{ hostvars['lb1'].haproxy_map_file }}",
                                     "entries": "{{ {inventory_hostname ~ '-a.test': 'be_app', inventory_hostname ~ '-b.test': 'be_app'} }}"}},
            {"name": "Read the backend with the group's socket", "delegate_to": "lb1", "run_once": True, "register": "info",
             "sre.ops.haproxy_info": {"backends": ["be_app"]}},
            {"name": "Keep the results", "delegate_to": "localhost",
             "ansible.builtin.copy": {"content": "{{ {'drain': drain, 'info_servers': info.backends.be_app.servers | length} | to_json }}",
                                      "dest": "{{ out_dir }}/{{ inventory_hostname }}.json", "mode": "0600"}},
        ],
    }
]


def test_the_play_pattern_holds_min_ready_and_keeps_every_key(lb, tmp_path):
    playbook = tmp_path / "play.yml"
    playbook.write_text(json.dumps(PLAY))
    map_file = lb.path("hosts.map")
    for round_no in range(3):
        for server in APP:
            api(lb, f"set server be_app/{server} state ready")
        run = run_playbook(lb, str(playbook), extra_vars={"out_dir": str(tmp_path)})
        assert run.rc == 0, run.output
        drained = [s for s in APP if admin(lb, "be_app", s)[0] & 0x08]
        assert len(drained) == 2, f"round {round_no}: {drained} drained\n{run.output}"
        results = {}
        for host in APP:
            with open(tmp_path / f"{host}.json", encoding="utf-8") as handle:
                results[host] = json.load(handle)
        assert sorted(h for h, r in results.items() if r["drain"].get("changed")) == sorted(drained)
        assert all(r["drain"]["msg"].startswith("refusing:") for h, r in results.items() if h not in drained)
        assert results["web1"]["info_servers"] == 4, "haproxy_info got its socket from module_defaults"
        entries = dict(parse_map(api(lb, f"show map {map_file}")))
        assert all(entries.get(f"{s}-{k}.test") == "be_app" for s in APP for k in "ab"), f"round {round_no}: {entries}"


def test_persist_writes_through_a_symlinked_map_file_and_keeps_its_owner(lb, tmp_path):
    """The map file is a link to a file owned by nobody:nogroup, mode 0640; values with spaces converge."""
    map_file = lb.path("hosts.map")
    real_dir = lb.path("maps")
    os.makedirs(real_dir, exist_ok=True)
    real = os.path.join(real_dir, "hosts.map")
    with open(real, "w", encoding="utf-8") as handle:
        handle.write(haproxy.render_map())
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    os.chown(real, nobody, nogroup)
    os.chmod(real, 0o640)
    os.unlink(map_file)
    os.symlink(real, map_file)
    args = {"socket": SOCKET, "map": "{{ haproxy_map_file }}", "entries": {"www.test": "be_green", "note.test": "green since the switch"},
            "persist": True}
    run, results = run_module(lb, "lb1", "sre.ops.haproxy_map", args, tmp_dir=str(tmp_path / "a"))
    assert run.rc == 0 and results["lb1"]["changed"] and results["lb1"]["file_changed"], run.output
    assert os.path.islink(map_file) and os.readlink(map_file) == real
    with open(real, encoding="utf-8") as handle:
        assert handle.read() == "app.test be_app\nwww.test be_green\nnote.test green since the switch\n"
    status = os.stat(real)
    assert (status.st_uid, status.st_gid, status.st_mode & 0o7777) == (nobody, nogroup, 0o640)
    assert dict(parse_map(api(lb, f"show map {map_file}")))["note.test"] == "green since the switch"
    run, again = run_module(lb, "lb1", "sre.ops.haproxy_map", args, tmp_dir=str(tmp_path / "b"))
    assert run.rc == 0 and not again["lb1"]["changed"], "the value with spaces converges"


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
