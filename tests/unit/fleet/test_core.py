# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from sreops_fleet import Fleet, FleetConfig, FleetError, haproxy, pid_alive, on_test_net


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
    try:
        assert pid_alive(proc.pid) or proc.poll() is not None
    finally:
        proc.wait()
    assert not pid_alive(proc.pid)
    assert not pid_alive(None)


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
        )
    )
    result = subprocess.run(["haproxy", "-c", "-f", str(cfg)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    text = cfg.read_text()
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
