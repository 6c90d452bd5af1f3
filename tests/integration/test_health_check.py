# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.health_check over SSH against the fleet's demo app, HAProxy and sshd."""

from __future__ import annotations

import socket
import threading

import pytest

from ansible_collections.sre.ops.plugins.module_utils._health import DEADLINE_MARGIN_S
from sreops_fleet import servers, on_test_net
from .conftest import deploy_demo, host_url, run_module, ssh

pytestmark = pytest.mark.fleet

APP = ["web1", "web2", "web3", "web4"]


def self_probes():
    return [
        {"name": "healthz", "url": "http://{{ app_listen_address }}:{{ app_port }}/healthz",
         "json_conditions": [{"path": "status", "value": "ok"}, {"path": "host", "value": "{{ inventory_hostname }}"}]},
        {"name": "main", "url": "http://{{ app_listen_address }}:{{ app_port }}/", "success_threshold": 5, "interval": 0.01},
        {"name": "port", "type": "tcp", "host": "{{ app_listen_address }}", "port": "{{ app_port }}"},
        {"name": "sshd banner", "type": "tcp", "host": "{{ ansible_host }}", "port": "{{ ansible_port }}", "expect": "^SSH-2\\.0"},
        {"name": "process", "type": "command", "command": ["/srv/app/current/bin/appctl", "status"]},
    ]


def test_healthy_release_passes_on_every_host_probing_itself(v1_everywhere, tmp_path):
    run, results = run_module(v1_everywhere, "app", "sre.ops.health_check", {"probes": self_probes()}, tmp_dir=str(tmp_path))
    assert run.rc == 0, run.output
    assert sorted(results) == APP
    assert not any(r.get("failed") for r in results.values())
    for host, result in results.items():
        assert result["healthy"] is True and result["changed"] is False, result
        assert result["summary"]["healthy"] == 5
        main = next(p for p in result["probes"] if p["name"] == "main")
        assert main["attempts"] == 5 and main["consecutive_passes"] == 5
        assert main["latency_ms"]["p50"] <= main["latency_ms"]["max"]
        assert host in result["probes"][0]["target"] or result["probes"][0]["target"].startswith("http://127.")


def test_check_mode_really_probes_and_agrees(v1_everywhere, tmp_path):
    args = {"probes": self_probes() + [{"name": "closed", "type": "tcp", "host": "{{ ansible_host }}", "port": 1}], "report_only": True}
    normal, normal_results = run_module(v1_everywhere, "web1", "sre.ops.health_check", args, tmp_dir=str(tmp_path / "n"))
    check, check_results = run_module(v1_everywhere, "web1", "sre.ops.health_check", args, "--check", tmp_dir=str(tmp_path / "c"))
    assert normal.rc == check.rc == 0

    def summarize(results):
        return [(p["name"], p["healthy"], p["reason"], p["attempts"]) for p in results["web1"]["probes"]]

    assert summarize(check_results) == summarize(normal_results)
    assert ("closed", False, "connection refused", 1) in summarize(check_results)
    assert check_results["web1"]["changed"] is False


def test_bad_releases_fail_for_the_right_reason(v1_everywhere, releases_dir, tmp_path):
    fleet = v1_everywhere
    deploy_demo(fleet, releases_dir, "v3", limit="web2")
    deploy_demo(fleet, releases_dir, "v4", limit="web3")
    try:
        probes = [
            {"name": "web2 healthz", "url": host_url(fleet, "web2", "/healthz")},
            {"name": "web2 main", "url": host_url(fleet, "web2", "/"), "success_threshold": 20, "interval": 0.01},
            {"name": "web3 main", "url": host_url(fleet, "web3", "/"), "max_latency": 0.2},
            {"name": "web1 main", "url": host_url(fleet, "web1", "/"), "max_latency": 0.2},
        ]
        run, results = run_module(fleet, "localhost", "sre.ops.health_check", {"probes": probes}, tmp_dir=str(tmp_path))
        assert run.rc == 0, run.output
        result = results["localhost"]
        assert result["failed"] is True, "an unhealthy probe must fail the task"
        by_name = {p["name"]: p for p in result["probes"]}
        assert by_name["web2 healthz"]["healthy"] and by_name["web1 main"]["healthy"]
        assert by_name["web2 main"]["reason"] == "status 500 not in [2xx]"
        assert by_name["web2 main"]["attempts"] <= 5, "v3 fails one request in five"
        assert by_name["web3 main"]["reason"].startswith("latency 0.3") and by_name["web3 main"]["reason"].endswith("over max 0.2s")
        assert result["msg"].startswith("2 of 4 probes unhealthy: web2 main (status 500 not in [2xx]); web3 main (latency 0.3")
        assert result["failed_probes"] == ["web2 main", "web3 main"]
    finally:
        deploy_demo(fleet, releases_dir, "v1", limit="web2,web3")


def test_stopped_app_fails_within_its_deadline(v1_everywhere, tmp_path):
    fleet = v1_everywhere
    assert ssh(fleet, "web4", "/srv/app/current/bin/appctl stop").returncode == 0
    try:
        args = {"mode": "wait", "deadline": 2, "interval": 0.2,
                "probes": [{"name": "app", "url": "http://{{ app_listen_address }}:{{ app_port }}/healthz"}]}
        run, results = run_module(fleet, "web4", "sre.ops.health_check", args, tmp_dir=str(tmp_path))
        assert run.rc == 0 and results["web4"]["failed"] is True
        probe = results["web4"]["probes"][0]
        assert not probe["healthy"] and probe["reason"].startswith("not healthy within the deadline after")
        assert probe["reason"].endswith("connection refused")
        assert probe["attempts"] >= 5
        # The module's own clock (never the playbook's wall time): it retried until the next attempt would have
        # started past the deadline, and ended within the deadline plus the documented margin.
        assert 2.0 - args["interval"] <= results["web4"]["summary"]["elapsed_s"] <= 2.0 + DEADLINE_MARGIN_S
    finally:
        assert ssh(fleet, "web4", "/srv/app/current/bin/appctl start").returncode == 0


@pytest.fixture
def slow_loris():
    """An endpoint on the shared loopback that never finishes its response."""
    address = on_test_net("127.0.2.200")
    with servers.slow_loris(address, every=0.2) as port:
        yield f"http://{address}:{port}/"


def test_slow_loris_endpoint_is_bounded_by_its_timeout(v1_everywhere, slow_loris, tmp_path):
    args = {
        "timeout": 1,
        "probes": [
            {"name": "loris", "url": slow_loris},
            {"name": "lb", "url": "{{ haproxy_frontend_url }}", "headers": {"Host": "app.test"}},
        ],
    }
    run, results = run_module(v1_everywhere, "lb1", "sre.ops.health_check", args, tmp_dir=str(tmp_path))
    result = results["lb1"]
    assert run.rc == 0 and result["failed"] is True
    assert result["msg"] == "1 of 2 probes unhealthy: loris (timeout after 1s)"
    assert 1.0 <= result["summary"]["elapsed_s"] <= 1.0 + DEADLINE_MARGIN_S


def test_header_secrets_never_reach_the_output(v1_everywhere, tmp_path):
    args = {"probes": [{"name": "lb", "url": "{{ haproxy_frontend_url }}",
                        "headers": {"Host": "app.test", "Authorization": "Bearer sup3r-s3cret-t0ken"}}]}
    run, results = run_module(v1_everywhere, "lb1", "sre.ops.health_check", args, "-vvv", tmp_dir=str(tmp_path))
    assert run.rc == 0, run.output
    assert results["lb1"]["healthy"]
    assert "sup3r-s3cret-t0ken" not in run.output
    assert "sup3r-s3cret-t0ken" not in str(results)


@pytest.fixture
def silent_network():
    """A resolver that reads queries and never answers (UDP port 53) and an HTTPS port that accepts connections
    and never says a word, both on the fleet's shared loopback."""
    dns_address, tls_address = on_test_net("127.0.22.53"), on_test_net("127.0.22.54")
    resolver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    resolver.bind((dns_address, 53))
    queries = []

    def swallow():
        while True:
            try:
                queries.append(resolver.recv(512))
            except OSError:
                return

    threading.Thread(target=swallow, daemon=True).start()
    tls = socket.socket()
    tls.bind((tls_address, 0))
    tls.listen(256)
    yield {"resolver": dns_address, "https": f"https://{tls_address}:{tls.getsockname()[1]}/", "queries": queries}
    resolver.close()
    tls.close()


def test_deadline_holds_against_silent_https_and_a_resolver_that_never_answers(v1_everywhere, silent_network, tmp_path):
    """web3's own /etc/resolv.conf names the silent resolver; 64 HTTPS probes verify certificates against a silent port."""
    fleet = v1_everywhere
    setup = (f"mv /etc/resolv.conf /etc/resolv.conf.sreops-saved && "
             f"printf 'nameserver {silent_network['resolver']}\\noptions timeout:5 attempts:2\\n' > /etc/resolv.conf")
    assert ssh(fleet, "web3", setup).returncode == 0
    try:
        probes = [{"name": f"tls{i}", "url": silent_network["https"]} for i in range(64)]
        probes += [{"name": "dns http", "url": "http://app.never-answers.sreops.test:8080/healthz"},
                   {"name": "dns tcp", "type": "tcp", "host": "app.never-answers.sreops.test", "port": 8080}]
        args = {"mode": "wait", "timeout": 1, "deadline": 3, "concurrency": 66, "probes": probes}
        run, results = run_module(fleet, "web3", "sre.ops.health_check", args, tmp_dir=str(tmp_path))
    finally:
        assert ssh(fleet, "web3", "mv /etc/resolv.conf.sreops-saved /etc/resolv.conf").returncode == 0
    assert run.rc == 0, run.output
    result = results["web3"]
    assert result["failed"] and result["summary"]["unhealthy"] == 66 and result["summary"]["not_run"] == 0
    assert result["summary"]["elapsed_s"] <= 3 + DEADLINE_MARGIN_S, "the deadline holds through TLS set-up and name resolution"
    by_name = {p["name"]: p for p in result["probes"]}
    assert by_name["dns http"]["last_reason"].startswith("no answer from the resolver for app.never-answers.sreops.test")
    assert by_name["dns tcp"]["last_reason"].startswith("no answer from the resolver for app.never-answers.sreops.test")
    assert silent_network["queries"], "the probes really asked the silent resolver"
    assert all(by_name[f"tls{i}"]["attempts"] >= 1 and by_name[f"tls{i}"]["last_reason"].startswith(("timeout after 1s", "no answer in the"))
               for i in range(64))
