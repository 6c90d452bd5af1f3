# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import threading

import pytest

from sreops_fleet import Fleet, FleetConfig, FleetError, can_bind, core, haproxy, pid_alive, on_test_net
from sreops_fleet.__main__ import main as fleet_cli


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"hosts": 0}, "hosts must be between"),
        ({"address_base": "10.0.0.1"}, "must be a loopback address"),
        ({"address_base": "127.255.255.250", "hosts": 10}, "leaves no room"),
        ({"run_dir": "/root/.cache/fleet"}, "under /root, which every host mounts privately"),
    ],
)
def test_config_rejects_bad_settings(tmp_path, kwargs, message):
    with pytest.raises(FleetError, match=message):
        FleetConfig(**{"run_dir": str(tmp_path), **kwargs})


def test_addresses_follow_the_base(tmp_path):
    cfg = FleetConfig(run_dir=str(tmp_path), address_base="127.0.1.20", hosts=3)
    assert cfg.lb_address == "127.0.1.20"
    assert [cfg.host_address(i) for i in (1, 2, 3)] == ["127.0.1.21", "127.0.1.22", "127.0.1.23"]
    assert [h.name for h in Fleet(cfg).hosts()] == ["lb1", "web1", "web2", "web3"]


def test_up_refuses_over_a_stale_state_file(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "fleet.json").write_text('{"processes": {"web1": 999999}}')
    fleet = Fleet(FleetConfig(run_dir=str(run_dir), address_base="127.0.9.10"))
    with pytest.raises(FleetError, match="fleet down --run-dir"):
        fleet.up()
    assert fleet.status()["state"] == "stale"
    fleet.down()
    assert not run_dir.exists()


def test_pid_alive_treats_zombies_as_gone():
    proc = subprocess.Popen(["true"])  # pylint: disable=consider-using-with
    # Wait for the exit without reaping it: the child stays a zombie (state Z in /proc) until it is reaped.
    os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
    with open(f"/proc/{proc.pid}/stat", encoding="ascii") as handle:
        assert handle.read().rsplit(")", 1)[-1].split()[0] == "Z"
    assert not pid_alive(proc.pid), "a zombie has ended"
    assert not os.path.exists(f"/proc/{proc.pid}"), "and pid_alive reaped its own child"
    proc.wait()
    assert not pid_alive(None)


def test_automatic_ports_skip_one_a_wildcard_listener_holds(tmp_path, monkeypatch):
    """A service on 0.0.0.0:P (like the machine's own sshd on 0.0.0.0:22) blocks P on every 127.x address."""
    with socket.socket() as taken, socket.socket() as spare:
        taken.bind(("0.0.0.0", 0))
        taken.listen(1)
        spare.bind(("127.0.0.1", 0))
        free = spare.getsockname()[1]
        spare.close()
        busy = taken.getsockname()[1]
        monkeypatch.setitem(core.AUTO_PORTS, "ssh_port", (busy, free))
        monkeypatch.setitem(core.AUTO_PORTS, "http_port", (busy, free))
        cfg = FleetConfig(run_dir=str(tmp_path), address_base=on_test_net("127.0.22.10"), hosts=2)
        assert not can_bind(cfg.host_address(1), busy)
        chosen = cfg.with_ports_chosen()
        assert (chosen.ssh_port, chosen.http_port) == (free, free)
        assert FleetConfig(run_dir=str(tmp_path), ssh_port=2200, http_port=81).with_ports_chosen().ssh_port == 2200, "a port given is kept"
        monkeypatch.setitem(core.AUTO_PORTS, "ssh_port", (busy,))
        with pytest.raises(FleetError, match="no free ssh port .* choose one with --ssh-port"):
            cfg.with_ports_chosen()


@pytest.fixture
def recorded_fleet(tmp_path):
    """A run directory whose fleet.json records a fleet on another address and port than the defaults, with an
    HTTP server standing in for its load balancer."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("X-Served-By", "recorded")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    address = on_test_net("127.0.22.40")
    server = http.server.ThreadingHTTPServer((address, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    config = {"run_dir": str(tmp_path), "hosts": 2, "address_base": address, "ssh_port": 2222, "http_port": server.server_address[1]}
    (tmp_path / "fleet.json").write_text(json.dumps({"config": config, "processes": {}}))
    yield str(tmp_path), config
    server.shutdown()
    server.server_close()


def test_commands_use_the_fleet_recorded_in_the_run_dir(recorded_fleet, capsys):
    run_dir, config = recorded_fleet
    assert Fleet.attach(run_dir).lb_url == f"http://{config['address_base']}:{config['http_port']}/"
    assert fleet_cli(["--run-dir", run_dir, "traffic", "--rate", "20", "--duration", "0.5"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["by_server"] == {"recorded": 10}, "traffic goes to the fleet in --run-dir, not to the default address"
    assert fleet_cli(["--run-dir", run_dir, "--address-base", "127.0.0.10", "traffic", "--duration", "0.1"]) == 2
    assert f"does not match --address-base 127.0.0.10 (it uses {config['address_base']})" in capsys.readouterr().err
    # the options may also follow the command, as the hints `up` and its errors print (`fleet down --run-dir DIR`)
    assert fleet_cli(["traffic", "--run-dir", run_dir, "--rate", "20", "--duration", "0.5"]) == 0
    assert json.loads(capsys.readouterr().out)["by_server"] == {"recorded": 10}
    assert fleet_cli(["--run-dir", "/nonexistent", "status", "--run-dir", run_dir]) == 3, "given after the command, it wins"
    assert json.loads(capsys.readouterr().out)["state"] != "down"


@pytest.mark.skipif(not shutil.which("haproxy"), reason="haproxy not installed")
def test_rendered_haproxy_config_is_valid(tmp_path):
    map_path = tmp_path / "hosts.map"
    map_path.write_text(haproxy.render_map())
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        haproxy.render_config(
            lb_address="127.0.9.10", http_port=8081, stats_port=8405, api_port=9998,
            socket_path=str(tmp_path / "s.sock"), map_path=str(map_path),
            servers=[("web1", "127.0.9.11", 8080), ("web2", "127.0.9.12", 8080)],
            log_socket=str(tmp_path / "log.sock"),
        )
    )
    result = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    text = cfg.read_text()
    # every request is logged (option httplog) to stdout and to the canary analysis socket
    assert "option httplog" in text and "log stdout format raw" in text and f"log {tmp_path / 'log.sock'} " in text
    assert "server web1 127.0.9.11:8080 check" in text
    assert "map(" + str(map_path) in text
    assert os.path.basename(str(map_path)) in text


@pytest.mark.parametrize("net, address, expected", [
    ("", "127.0.2.10", "127.0.2.10"),
    ("0", "127.0.8.14", "127.0.8.14"),
    ("3", "127.0.2.10", "127.3.2.10"),
    ("255", "127.0.4.200", "127.255.4.200"),
])
def test_test_address_moves_to_the_test_network(monkeypatch, net, address, expected):
    monkeypatch.setenv("SREOPS_TEST_NET", net)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    assert on_test_net(address) == expected


@pytest.mark.parametrize("worker, address, expected", [
    ("gw0", "127.0.2.10", "127.5.2.10"),
    ("gw1", "127.0.2.10", "127.5.66.10"),
    ("gw2", "127.0.39.14", "127.5.167.14"),
    ("master", "127.0.8.14", "127.5.8.14"),
])
def test_each_xdist_worker_gets_its_own_addresses(monkeypatch, worker, address, expected):
    monkeypatch.setenv("SREOPS_TEST_NET", "5")
    monkeypatch.setenv("PYTEST_XDIST_WORKER", worker)
    assert on_test_net(address) == expected


def test_a_worker_shift_past_the_range_is_refused(monkeypatch):
    monkeypatch.setenv("PYTEST_XDIST_WORKER", "gw4")
    with pytest.raises(FleetError, match="leaves the 127.x.y.z range"):
        on_test_net("127.0.2.10")


@pytest.mark.parametrize("net, address, message", [
    ("256", "127.0.2.10", "SREOPS_TEST_NET must be a number from 0 to 255"),
    ("x", "127.0.2.10", "SREOPS_TEST_NET must be a number from 0 to 255"),
    ("1", "10.0.2.10", "loopback addresses"),
])
def test_test_address_refuses_bad_settings(monkeypatch, net, address, message):
    monkeypatch.setenv("SREOPS_TEST_NET", net)
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)
    with pytest.raises(FleetError, match=message):
        on_test_net(address)
