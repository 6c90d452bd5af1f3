# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.canary_analysis on lb1, judging demo releases under real traffic through the fleet's HAProxy."""

from __future__ import annotations

import pytest

from sreops_fleet.traffic import TrafficGenerator

from .conftest import deploy_demo, host_url, run_module

pytestmark = pytest.mark.fleet

# HAProxy gives one response-time average per server and interval: a 4 s window at 1 s gives ~4 samples.
BASE = {"socket": "{{ haproxy_socket }}", "backend": "be_app", "window": 4, "interval": 1, "min_requests": 50, "min_samples": 3,
        "fail_on": []}


def analyse(fleet, tmp_path, name, *flags, traffic=True, **args):
    generator = TrafficGenerator(fleet.lb_url, rate=100, duration=8).start() if traffic else None
    try:
        run, results = run_module(fleet, "lb1", "sre.ops.canary_analysis", {**BASE, **args}, *flags, tmp_dir=str(tmp_path / name))
    finally:
        report = generator.stop() if generator else None
    assert run.rc == 0, run.output
    return results["lb1"], report


@pytest.fixture(scope="module")
def bad_canaries(v1_everywhere, releases_dir):
    deploy_demo(v1_everywhere, releases_dir, "v3", limit="web2")
    deploy_demo(v1_everywhere, releases_dir, "v4", limit="web3")
    yield v1_everywhere
    deploy_demo(v1_everywhere, releases_dir, "v1", limit="web2,web3")


def test_error_canary_fails_on_errors(bad_canaries, tmp_path):
    result, traffic = analyse(bad_canaries, tmp_path, "v3", canary=["web2"], baseline=["web1", "web4"])
    assert result["verdict"] == "fail" and not result["passed"], result
    errors = next(m for m in result["metrics"] if m["metric"] == "error_ratio")
    assert errors["verdict"] == "fail" and errors["p_value"] < 0.05
    assert 0.15 <= errors["canary"]["ratio"] <= 0.25 and errors["baseline"]["errors"] == 0
    assert result["reasons"][0].startswith("error_ratio: canary error ratio")
    # what clients saw: the errors came from the canary only
    assert set(traffic["errors_by_server"]) <= {"web2"}


def test_slow_canary_fails_on_latency_from_probes(bad_canaries, tmp_path):
    result, _traffic = analyse(
        bad_canaries, tmp_path, "v4", canary=["web3"], baseline=["web1", "web4"], min_samples=20,
        canary_urls=[host_url(bad_canaries, "web3", "/")],
        baseline_urls=[host_url(bad_canaries, "web1", "/"), host_url(bad_canaries, "web4", "/")],
    )
    latency = next(m for m in result["metrics"] if m["metric"] == "latency")
    assert latency["verdict"] == "fail" and latency["canary"]["p50_ms"] >= 300 and latency["baseline"]["p50_ms"] < 100
    assert result["verdict"] == "fail"


def test_healthy_canary_passes_and_check_mode_judges_too(bad_canaries, tmp_path):
    for flags in ((), ("--check",)):
        result, _traffic = analyse(bad_canaries, tmp_path, f"ok{len(flags)}", *flags, canary=["web1"], baseline=["web4"])
        assert result["verdict"] == "pass", result["reasons"]
        assert result["measurements"]["haproxy"]["canary"]["requests"] >= 50


def test_too_little_traffic_is_inconclusive_and_fails_the_task_by_default(bad_canaries, tmp_path):
    result, _traffic = analyse(bad_canaries, tmp_path, "quiet", traffic=False, canary=["web1"], window=1.5, fail_on=["fail", "inconclusive"])
    assert result["failed"] and result["verdict"] == "inconclusive"
    assert result["msg"].startswith("canary analysis: inconclusive: error_ratio: too few requests to judge errors")
