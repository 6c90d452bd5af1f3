# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.canary_analysis on lb1, judging demo releases under real traffic through the fleet's HAProxy.

HAProxy logs every request (option httplog) to a file and to a socket the analysis binds for its window; the
tests judge from both, from HAProxy's counters, and from probes. Releases are put on a host the way the demo
playbook does it (unpack, switch `current`, restart), with a few shell commands to keep the tests quick.
"""

from __future__ import annotations

import socket
import time

import pytest

from sreops_fleet.traffic import TrafficGenerator

from .conftest import host_url, run_module, ssh

pytestmark = pytest.mark.fleet

# Short windows (about 100 requests a group): the rise that must be caught is 20 points, not the default 5.
BASE = {"socket": "{{ haproxy_socket }}", "backend": "be_app", "window": 4, "min_requests": 50, "min_samples": 20, "error_detect": 0.2,
        "fail_on": []}
LOG_FILE = {"log_path": "{{ haproxy_request_log }}"}
LOG_SOCKET = {"log_socket": "{{ haproxy_log_socket }}"}


def analyse(fleet, tmp_path, name, *flags, traffic=True, **args):
    generator = TrafficGenerator(fleet.lb_url, rate=100, duration=30).start() if traffic else None
    try:
        run, results = run_module(fleet, "lb1", "sre.ops.canary_analysis", {**BASE, **args}, *flags, tmp_dir=str(tmp_path / name))
    finally:
        report = generator.stop() if generator else None
    assert run.rc == 0, run.output
    return results["lb1"], report


def haproxy_stat(fleet, server, field):
    """One field of be_app/<server> in HAProxy's `show stat` (the runtime API socket is on this machine)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(fleet.haproxy_socket)
        sock.sendall(b"show stat\n")
        out = b"".join(iter(lambda: sock.recv(65536), b"")).decode()
    header = out.splitlines()[0].lstrip("# ").split(",")
    for row in out.splitlines()[1:]:
        cells = row.split(",")
        if cells[:2] == ["be_app", server]:
            return cells[header.index(field)]
    raise AssertionError(f"no be_app/{server} in show stat")


def put_release(fleet, releases_dir, host, version):
    """Unpack (once) and run `version` on host, then wait until HAProxy has it UP again."""
    ssh(fleet, host, f"set -e; d=/srv/app/releases/{version}; [ -f $d/release.json ] || {{ mkdir -p $d; "
                     f"tar -xzf {releases_dir}/demo-app-{version}.tar.gz -C $d; }}; cd /srv/app; ln -sfn releases/{version} current.new; "
                     "mv -T current.new current; current/bin/appctl restart >/dev/null")
    deadline = time.monotonic() + 30
    while haproxy_stat(fleet, host, "status") != "UP" or version not in ssh(fleet, host, "cat /srv/app/current/VERSION").stdout:
        assert time.monotonic() < deadline, f"{host} did not come back UP on {version}"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def canaries(v1_everywhere, releases_dir):
    """web2 answers 1 in 5 requests with 500 (v3), web3 is 300 ms slower (v4); web1 and web4 run v1."""
    put_release(v1_everywhere, releases_dir, "web2", "v3")
    put_release(v1_everywhere, releases_dir, "web3", "v4")
    yield v1_everywhere
    for host in ("web2", "web3", "web4"):
        put_release(v1_everywhere, releases_dir, host, "v1")


def test_every_request_is_in_the_request_log_with_server_status_and_timing(canaries):
    before = int(ssh(canaries, "lb1", f"wc -l < {canaries.request_log}").stdout)
    report = TrafficGenerator(canaries.lb_url, rate=50, duration=1).run()
    lines = ssh(canaries, "lb1", f"tail -n +{before + 1} {canaries.request_log}").stdout.splitlines()
    served = [line for line in lines if " be_app/" in line]
    assert len(served) == report["requests"] == 50
    assert {line.split(" be_app/")[1].split()[0] for line in served} == {"web1", "web2", "web3", "web4"}
    assert any(" 500 " in line for line in served if "be_app/web2 " in line), "v3's 500s are logged with their server"


def test_error_canary_fails_on_errors_from_counter_deltas(canaries, tmp_path):
    result, traffic = analyse(canaries, tmp_path, "v3", canary=["web2"], baseline=["web1", "web4"])
    assert result["verdict"] == "fail" and not result["passed"], result
    errors = next(m for m in result["metrics"] if m["metric"] == "error_ratio")
    assert errors["verdict"] == "fail" and errors["p_value"] < 0.05 and errors["source"] == "haproxy counters"
    assert 0.15 <= errors["canary"]["ratio"] <= 0.25 and errors["baseline"]["errors"] == 0
    assert result["reasons"][0].startswith("error_ratio: canary error ratio")
    assert any("latency was not judged" in w for w in result["warnings"]), "counters carry no per-request timing"
    # what clients saw: the errors came from the canary only
    assert set(traffic["errors_by_server"]) <= {"web2"}


def test_slow_canary_fails_on_latency_from_probes_with_equal_probe_load(canaries, tmp_path):
    result, _traffic = analyse(
        canaries, tmp_path, "v4", canary=["web3"], baseline=["web1", "web4"], probe_rate=5,
        canary_urls=[host_url(canaries, "web3", "/")], baseline_urls=[host_url(canaries, "web1", "/"), host_url(canaries, "web4", "/")],
    )
    latency = next(m for m in result["metrics"] if m["metric"] == "latency" and m["source"] == "probes")
    assert latency["verdict"] == "fail" and latency["canary"]["p50_ms"] >= 300 and latency["baseline"]["p50_ms"] < 100
    assert result["verdict"] == "fail"
    probes = result["measurements"]["probes"]
    # the single canary URL gets exactly the probes each baseline URL gets (a tick at most apart)
    assert probes["canary"]["urls"] == 1 and probes["baseline"]["urls"] == 2
    assert abs(probes["baseline"]["requests"] - 2 * probes["canary"]["requests"]) <= 2 and probes["canary"]["requests"] >= 15


def test_subtle_canary_fails_from_the_request_log_socket(canaries, releases_dir, tmp_path):
    """6% 5xx and +60 ms, from the lines HAProxy sends to the socket the analysis binds for its window."""
    put_release(canaries, releases_dir, "web4", "subtle")
    try:
        result, _traffic = analyse(canaries, tmp_path, "subtle", canary=["web4"], baseline=["web1"], **LOG_SOCKET)
    finally:
        put_release(canaries, releases_dir, "web4", "v1")
    assert result["verdict"] == "fail"
    errors, latency = result["metrics"]
    assert errors["source"] == latency["source"] == "haproxy log"
    assert latency["verdict"] == "fail" and 60 <= latency["canary"]["p50_ms"] < 100 and latency["baseline"]["p50_ms"] < 20
    assert errors["canary"]["requests"] >= 50 and errors["baseline"]["errors"] == 0
    assert result["detectable"][1].startswith("latency (haproxy log): with ")
    assert result["measurements"]["haproxy"]["source"] == f"request log {canaries.request_log_socket}"


def test_clean_canary_right_after_a_rolled_back_slow_release_passes(canaries, releases_dir, tmp_path):
    """HAProxy's response time for web3 still averages its slow requests; the window holds only the clean ones."""
    TrafficGenerator(canaries.lb_url, rate=100, duration=3).run()  # web3 serves slow requests (v4)
    put_release(canaries, releases_dir, "web3", "v1")  # rolled back
    try:
        history = int(haproxy_stat(canaries, "web3", "rtime"))
        result, _traffic = analyse(canaries, tmp_path, "after-slow", canary=["web3"], baseline=["web1"], **LOG_FILE)
    finally:
        put_release(canaries, releases_dir, "web3", "v4")
    assert result["verdict"] == "pass", result["reasons"]
    latency = next(m for m in result["metrics"] if m["metric"] == "latency")
    assert latency["canary"]["p50_ms"] < 20 and latency["power"]["sufficient"]
    # HAProxy's own response time for web3 still averages the slow requests: what the old analysis judged from
    assert history >= latency["canary"]["p50_ms"] + 20, (history, latency["canary"])


def test_clean_canary_right_after_a_rolled_back_erroring_release_passes_on_counter_deltas(canaries, releases_dir, tmp_path):
    """HAProxy's counters for web2 hold v3's 500s; differenced over the window they hold none."""
    TrafficGenerator(canaries.lb_url, rate=100, duration=3).run()  # web2 answers 1 in 5 with 500 (v3)
    put_release(canaries, releases_dir, "web2", "v1")  # rolled back
    try:
        history = int(haproxy_stat(canaries, "web2", "hrsp_5xx"))
        result, _traffic = analyse(canaries, tmp_path, "after-errors", canary=["web2"], baseline=["web1"])
    finally:
        put_release(canaries, releases_dir, "web2", "v3")
    assert history > 0, "v3 served errors before the rollback"
    assert result["verdict"] == "pass", result["reasons"]
    errors = result["metrics"][0]
    assert errors["source"] == "haproxy counters" and errors["canary"]["errors"] == 0 and errors["canary"]["requests"] >= 50


def test_healthy_canary_passes_states_its_power_and_check_mode_judges_too(canaries, tmp_path):
    for flags in ((), ("--check",)):
        result, _traffic = analyse(canaries, tmp_path, f"ok{len(flags)}", *flags, canary=["web1"], baseline=["web4"], **LOG_FILE)
        assert result["verdict"] == "pass", result["reasons"]
        assert result["measurements"]["haproxy"]["canary"]["requests"] >= 50
        errors = result["metrics"][0]
        assert errors["power"]["sufficient"] and 0 < errors["power"]["minimum_detectable_rise"] < 0.2
        assert result["detectable"][0].startswith("error_ratio (haproxy log): with ")


def test_too_little_power_for_the_rise_to_catch_is_inconclusive(canaries, tmp_path):
    result, _traffic = analyse(canaries, tmp_path, "weak", canary=["web1"], baseline=["web4"], error_detect=0.01, **LOG_SOCKET)
    assert result["verdict"] == "inconclusive"
    assert result["reasons"][0].startswith("error_ratio: too little traffic to rule out a rise of 1 points")


def test_plan_states_what_a_window_would_detect_at_the_current_traffic(canaries, tmp_path):
    result, _traffic = analyse(canaries, tmp_path, "plan", "--check", mode="plan", canary=["web1"], baseline=["web4"], window=30,
                               canary_share=0.5, plan_sample=2, **LOG_FILE)
    assert result["verdict"] == "planned" and result["sufficient"]
    errors, latency = result["metrics"]
    # 100 requests a second, a quarter each to web1 and web4: about 50 a second between them, half to the canary
    assert 500 <= errors["expected"]["canary_requests"] <= 1000 and errors["expected"]["canary_share"] == 0.5
    assert errors["power"]["minimum_detectable_rise"] < 0.05 and latency["power"]["minimum_detectable_shift_ms"] >= 10
    assert "would be caught with 80% probability" in result["detectable"][0]
    # the filter a rollout plan uses, through ansible on lb1, states the same for the same expected traffic
    expected = errors["expected"]
    options = {**BASE, **LOG_FILE, "window": 30}
    traffic = ", ".join(f"{k}={expected[k]!r}" for k in ("canary_requests", "baseline_requests", "baseline_error_ratio"))
    run, stated = run_module(canaries, "lb1", "ansible.builtin.debug", {"msg": f"{{{{ {options!r} | sre.ops.canary_power({traffic}) }}}}"},
                             tmp_dir=str(tmp_path / "filter"))
    assert run.rc == 0, run.output
    power = stated["lb1"]["msg"]
    assert power["metrics"][0]["power"] == errors["power"] and power["detectable"][0] == result["detectable"][0]
    assert power["metrics"][1]["power"] is None and not power["sufficient"], "no latency spread given: latency power unknown"


def test_too_little_traffic_is_inconclusive_and_fails_the_task_by_default(canaries, tmp_path):
    result, _traffic = analyse(canaries, tmp_path, "quiet", traffic=False, canary=["web1"], window=1.5, fail_on=["fail", "inconclusive"])
    assert result["failed"] and result["verdict"] == "inconclusive"
    assert result["msg"].startswith("canary analysis: inconclusive: error_ratio: too few requests to judge errors")
