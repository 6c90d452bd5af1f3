# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sre.ops.deploy role and playbooks on a fleet of their own, with traffic flowing through HAProxy."""

from __future__ import annotations

import glob
import hashlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from sreops_fleet import on_test_net
from sreops_fleet.traffic import TrafficGenerator

from .conftest import ANSIBLE_PLAYBOOK, COLLECTION_ROOT, deploy_demo, make_fleet, run_playbook, ssh

pytestmark = pytest.mark.fleet

APP = ["web1", "web2", "web3", "web4"]
VARS = os.path.join(COLLECTION_ROOT, "playbooks", "vars", "demo-fleet.yml")


@pytest.fixture(scope="module")
def dfleet(releases_dir, tmp_path_factory):
    fleet = make_fleet("deploy", "127.0.8.10")
    fleet.up()
    # Artifacts in a directory only the controller sees (every fleet host mounts its own /root), so anything
    # that reads the artifact on a managed host instead of the controller fails here.
    artifacts = tempfile.mkdtemp(prefix="sre-ops-artifacts-", dir="/root")
    try:
        for name in os.listdir(releases_dir):
            shutil.copy(os.path.join(releases_dir, name), artifacts)
        deploy_demo(fleet, releases_dir, "v1")
        fleet.reports = str(tmp_path_factory.mktemp("reports"))
        fleet.artifacts = artifacts
        yield fleet
    finally:
        fleet.down()
        shutil.rmtree(artifacts, ignore_errors=True)


def deploy_args(fleet, releases_dir, version, strategy, extra=None):  # pylint: disable=unused-argument
    args = ["-e", f"@{VARS}", "-e", f"deploy_artifact={fleet.artifacts}/demo-app-{version}.tar.gz", "-e", f"deploy_release={version}",
            "-e", f"deploy_strategy={strategy}", "-e", f"deploy_report_dir={fleet.reports}"]
    if extra:
        args += ["-e", json.dumps(extra)]
    return args


def deploy(fleet, releases_dir, version, strategy, *flags, extra=None):
    return run_playbook(fleet, "sre.ops.deploy", *flags, *deploy_args(fleet, releases_dir, version, strategy, extra))


def versions(fleet):
    out = {}
    for i, host in enumerate(APP, 1):
        conn = http.client.HTTPConnection(fleet.config.host_address(i), 8080, timeout=3)
        try:
            conn.request("GET", "/version")
            out[host] = json.loads(conn.getresponse().read())["version"]
        except OSError:
            out[host] = None
        finally:
            conn.close()
    return out


def api(fleet, command):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(fleet.haproxy_socket)
        sock.sendall(command.encode() + b"\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode()


class ServingSampler:
    """Samples HAProxy every 50 ms during a rollout: the fewest be_app servers taking traffic at any moment."""

    def __init__(self, fleet):
        self.fleet, self.minimum, self.samples = fleet, 99, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            rows = [line.split(",") for line in api(self.fleet, "show stat").splitlines()]
            serving = sum(1 for r in rows if len(r) > 18 and r[0] == "be_app" and r[1] in APP and r[17].startswith("UP") and r[18] != "0")
            self.minimum = min(self.minimum, serving)
            self.samples += 1
            time.sleep(0.05)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def fingerprint(fleet):
    hosts = {h: ssh(fleet, h, "find /srv/app /etc/app -xdev -printf '%p %y %m %l %s\\n' 2>/dev/null | sort | sha256sum").stdout for h in APP}
    lb = [" ".join(line.split()[1:4] + line.split()[6:8]) for line in api(fleet, "show servers state").splitlines()[2:] if line]
    lb.append(api(fleet, f"show map {fleet.path('hosts.map')}"))
    return hosts, hashlib.sha256("\n".join(lb).encode()).hexdigest()


def latest_report(fleet, suffix):
    return json.load(open(max(glob.glob(os.path.join(fleet.reports, f"*-{suffix}.json")), key=os.path.getmtime), encoding="utf-8"))


def test_rolling_preview_then_deploy_with_zero_errors_then_nothing_to_do(dfleet, releases_dir):
    before = fingerprint(dfleet)
    plan = deploy(dfleet, releases_dir, "v2", "rolling", "--check", "--diff")
    assert plan.rc == 0, plan.output
    assert fingerprint(dfleet) == before, "--check changed hosts or the load balancer"
    assert "PLAN (check mode: nothing will change)" in plan.output
    planned = latest_report(dfleet, "rolling-plan")
    assert planned["verdict"] == "planned" and planned["batches"] == [1, 1, 1], "the ramp is capped so min_ready 75% holds"

    traffic = TrafficGenerator(dfleet.lb_url, rate=50, duration=120).start()
    with ServingSampler(dfleet) as sampler:
        run = deploy(dfleet, releases_dir, "v2", "rolling")
    report = traffic.stop()
    assert run.rc == 0, run.output
    assert report["errors"] == 0, report
    assert versions(dfleet) == {h: "v2" for h in APP}
    assert sampler.samples > 20 and sampler.minimum >= 3, f"min_ready 75% violated: {sampler.minimum} serving"
    done = latest_report(dfleet, "rolling")
    assert done["verdict"] == "completed" and not done["rollback_taken"]
    real_waves = [(r["host"], r["release_after"], r["release_before"]) for w in done["waves"] for r in w["records"]]
    plan_waves = [(r["host"], r["release_after"], r["release_before"]) for w in planned["waves"] for r in w["records"]]
    assert real_waves == plan_waves == [(h, "v2", "v1") for h in APP], "the plan must match what the run did"

    again = deploy(dfleet, releases_dir, "v2", "rolling")
    assert again.rc == 0 and all(again.changed()[h] == 0 for h in APP), again.output
    check = deploy(dfleet, releases_dir, "v2", "rolling", "--check")
    assert check.rc == 0 and all(check.changed()[h] == 0 for h in APP), check.output


@pytest.mark.parametrize("version, extra, reason", [
    ("v3", None, "error_ratio: canary error ratio"),
    ("v4", {"deploy_canary_analysis": {"window": 6, "interval": 1, "min_requests": 40, "min_samples": 20, "probe_rate": 8,
                                       "canary_urls": [f"http://{on_test_net('127.0.8.11')}:8080/"],
                                       "baseline_urls": [f"http://{on_test_net(f'127.0.8.{n}')}:8080/" for n in (12, 13, 14)]}},
     "latency: canary latency is higher"),
])
def test_bad_canary_is_judged_failed_and_rolled_back(dfleet, releases_dir, version, extra, reason):
    before = versions(dfleet)
    traffic = TrafficGenerator(dfleet.lb_url, rate=60, duration=120).start()
    with ServingSampler(dfleet) as sampler:
        run = deploy(dfleet, releases_dir, version, "canary", extra=extra)
    report = traffic.stop()
    assert run.rc != 0, "a failed canary must fail the run"
    assert versions(dfleet) == before, "no host may be left on the bad release"
    rollout = latest_report(dfleet, "canary")
    assert rollout["verdict"] == "aborted" and rollout["rollback_taken"]
    assert rollout["analyses"][0]["verdict"] == "fail" and any(reason in r for r in rollout["analyses"][0]["reasons"])
    assert set(report["errors_by_server"]) <= {"web1"}, f"errors outside the canary: {report['errors_by_server']}"
    assert sampler.minimum >= 3
    ledger = json.loads(ssh(dfleet, "web1", "cat /srv/app/ledger.json").stdout)
    assert ledger["releases"][version]["outcome"] == "rolled_back" and ledger["current"] == before["web1"]


def test_failed_health_gate_stops_the_rollout_and_rolls_the_batch_back(dfleet, releases_dir):
    before = versions(dfleet)
    with ServingSampler(dfleet) as sampler:
        run = deploy(dfleet, releases_dir, "v5", "rolling", extra={"deploy_health_deadline": 3})
    assert run.rc != 0
    assert "rollout aborted and rolled back: wave 1 (web1) failed at 'Health gate'" in run.output
    assert versions(dfleet) == before
    rollout = latest_report(dfleet, "rolling")
    assert rollout["verdict"] == "aborted" and [w["hosts"] for w in rollout["waves"]] == [["web1"]]
    assert rollout["waves"][0]["outcome"] == "rolled_back"
    assert sampler.minimum >= 3


def test_blue_green_with_zero_errors_then_rollback_is_one_switch(dfleet, releases_dir):
    traffic = TrafficGenerator(dfleet.lb_url, rate=50, duration=120, host_header="www.test").start()
    run = deploy(dfleet, releases_dir, "v1", "blue_green")
    report = traffic.stop()
    assert run.rc == 0, run.output
    assert report["errors"] == 0 and report["by_version"].get("v1", 0) > 0
    after = TrafficGenerator(dfleet.lb_url, rate=50, duration=1, host_header="www.test").run()
    assert set(after["by_server"]) == {"web3", "web4"} and after["by_version"] == {"v1": after["requests"]}
    again = deploy(dfleet, releases_dir, "v1", "blue_green")
    assert again.rc == 0 and "nothing to do" in again.output and all(again.changed()[h] == 0 for h in APP)

    back = run_playbook(dfleet, "sre.ops.rollback", "-e", f"@{VARS}", "-e", "deploy_strategy=blue_green")
    assert back.rc == 0, back.output
    blue = TrafficGenerator(dfleet.lb_url, rate=50, duration=1, host_header="www.test").run()
    assert set(blue["by_server"]) == {"web1", "web2"} and blue["by_version"] == {"v2": blue["requests"]}


def test_rollback_playbook_after_a_completed_rolling_rollout(dfleet, releases_dir):
    assert deploy(dfleet, releases_dir, "v2", "rolling").rc == 0
    assert deploy(dfleet, releases_dir, "v1", "rolling").rc == 0
    assert versions(dfleet) == {h: "v1" for h in APP}
    back = run_playbook(dfleet, "sre.ops.rollback", "-e", f"@{VARS}")
    assert back.rc == 0, back.output
    assert versions(dfleet) == {h: "v2" for h in APP}


def kill_after(fleet, args, seconds):
    proc = subprocess.Popen([ANSIBLE_PLAYBOOK, "sre.ops.deploy", *args], env=fleet.env(), cwd=COLLECTION_ROOT,  # pylint: disable=consider-using-with
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    time.sleep(seconds)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()


def assert_safe(fleet):
    for host in APP:
        target = ssh(fleet, host, "cat /srv/app/current/release.json").stdout
        assert json.loads(target)["version"] in ("v1", "v2"), f"{host} current is not a complete release"
    rows = [line.split(",") for line in api(fleet, "show stat").splitlines()]
    serving = sum(1 for r in rows if len(r) > 18 and r[0] == "be_app" and r[1] in APP and r[17].startswith("UP") and r[18] != "0")
    assert serving >= 3, f"only {serving} servers in service after the kill"


@pytest.mark.parametrize("seconds", [3.0, 6.0, 9.0])
def test_killed_rolling_rollout_stays_safe_and_a_rerun_converges(dfleet, releases_dir, seconds):
    target = "v1" if versions(dfleet)["web1"] == "v2" else "v2"
    traffic = TrafficGenerator(dfleet.lb_url, rate=40, duration=120).start()
    kill_after(dfleet, deploy_args(dfleet, releases_dir, target, "rolling"), seconds)
    assert_safe(dfleet)
    rerun = deploy(dfleet, releases_dir, target, "rolling")
    report = traffic.stop()
    assert rerun.rc == 0, rerun.output
    assert versions(dfleet) == {h: target for h in APP}
    assert report["errors"] == 0, report


def test_killed_canary_rollout_stays_safe_and_a_rerun_converges(dfleet, releases_dir):
    target = "v1" if versions(dfleet)["web1"] == "v2" else "v2"
    traffic = TrafficGenerator(dfleet.lb_url, rate=60, duration=180).start()
    kill_after(dfleet, deploy_args(dfleet, releases_dir, target, "canary"), 8.0)
    assert_safe(dfleet)
    rerun = deploy(dfleet, releases_dir, target, "canary")
    report = traffic.stop()
    assert rerun.rc == 0, rerun.output
    assert versions(dfleet) == {h: target for h in APP}
    assert report["errors"] == 0, report


@pytest.mark.parametrize("strategy, header", [("canary", "app.test"), ("blue_green", "www.test")])
def test_check_mode_of_canary_and_blue_green_changes_nothing_and_its_plan_matches(dfleet, releases_dir, strategy, header):
    target = "v1" if versions(dfleet)["web1"] == "v2" else "v2"
    before = fingerprint(dfleet)
    plan = deploy(dfleet, releases_dir, target, strategy, "--check", "--diff")
    assert plan.rc == 0, plan.output
    assert fingerprint(dfleet) == before, f"--check of {strategy} changed hosts or the load balancer"
    planned = latest_report(dfleet, f"{strategy}-plan")
    assert planned["verdict"] == "planned"
    traffic = TrafficGenerator(dfleet.lb_url, rate=60, duration=180, host_header=header).start()
    run = deploy(dfleet, releases_dir, target, strategy)
    report = traffic.stop()
    assert run.rc == 0, run.output
    assert report["errors"] == 0, report
    done = latest_report(dfleet, strategy)
    summary = [(w["phase"], r["host"], r["release_after"]) for w in done["waves"] for r in w["records"]]
    planned_summary = [(w["phase"], r["host"], r["release_after"]) for w in planned["waves"] for r in w["records"]]
    assert summary == planned_summary and summary, (planned_summary, summary)


def test_blue_green_retires_the_old_colour_after_its_rollback_window(dfleet, releases_dir):
    live_backend = next(line.split()[2] for line in api(dfleet, f"show map {dfleet.path('hosts.map')}").splitlines() if "www.test" in line)
    old = ["web1", "web2"] if live_backend == "be_blue" else ["web3", "web4"]
    target = "v1" if versions(dfleet)[old[0]] == "v2" else "v2"
    started = time.monotonic()
    run = deploy(dfleet, releases_dir, target, "blue_green", extra={"deploy_bg_rollback_window": 2, "deploy_bg_retire": True})
    try:
        assert run.rc == 0, run.output
        assert time.monotonic() - started >= 2, "the old colour must be kept for the rollback window"
        for host in old:
            assert ssh(dfleet, host, "/srv/app/current/bin/appctl status").returncode == 3, f"{host} (old colour) still runs"
        after = TrafficGenerator(dfleet.lb_url, rate=40, duration=1, host_header="www.test").run()
        assert after["errors"] == 0 and after["by_version"] == {target: after["requests"]}
    finally:
        for host in old:
            ssh(dfleet, host, "/srv/app/current/bin/appctl start")


def test_inconclusive_canary_stops_with_a_clear_message_and_rolls_back(dfleet, releases_dir):
    before = versions(dfleet)
    target = "v1" if before["web1"] == "v2" else "v2"
    # Without a terminal the approval prompt cannot be answered, so "pause" must not promote.
    run = deploy(dfleet, releases_dir, target, "canary", extra={
        "deploy_canary_on_inconclusive": "pause",
        "deploy_canary_analysis": {"window": 2, "interval": 1, "min_requests": 100000, "min_samples": 3}})
    assert run.rc != 0
    rollout = latest_report(dfleet, "canary")
    assert rollout["verdict"] == "aborted" and rollout["analyses"][0]["verdict"] == "inconclusive"
    assert "canary analysis inconclusive" in rollout["abort_reason"] and "too few requests" in rollout["abort_reason"]
    assert versions(dfleet) == before, "an inconclusive canary must not stay on the new release"
