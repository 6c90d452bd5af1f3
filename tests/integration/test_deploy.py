# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sre.ops.deploy role and the deploy/rollback playbooks on a fleet of their own, with traffic through HAProxy.

Each test leaves the fleet serving one complete release everywhere, and picks its target from what runs,
so the tests do not depend on their order. Scenarios are combined where one run proves several properties.
"""

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

from sreops_fleet.traffic import TrafficGenerator

from .conftest import ANSIBLE_PLAYBOOK, COLLECTION_ROOT, deploy_demo, make_fleet, run_playbook, ssh
from .plans import assert_fidelity, assert_nothing_to_change, latest_plan, record_plans

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
        record_plans(fleet, str(tmp_path_factory.mktemp("plans")))
        yield fleet
    finally:
        fleet.down()
        shutil.rmtree(artifacts, ignore_errors=True)


# ----- helpers -------------------------------------------------------------------------------------------
def deploy_args(fleet, version, strategy, extra=None, release=None):
    args = ["-e", f"@{VARS}", "-e", f"deploy_artifact={fleet.artifacts}/demo-app-{version}.tar.gz", "-e", f"deploy_release={release or version}",
            "-e", f"deploy_strategy={strategy}", "-e", f"deploy_report_dir={fleet.reports}"]
    if extra:
        args += ["-e", json.dumps(extra)]
    return args


def deploy(fleet, version, strategy, *flags, extra=None, release=None):
    return run_playbook(fleet, "sre.ops.deploy", *flags, *deploy_args(fleet, version, strategy, extra, release))


def rollback(fleet, strategy, *flags, extra=None):
    args = ["-e", f"@{VARS}", "-e", f"deploy_strategy={strategy}", "-e", f"deploy_report_dir={fleet.reports}"]
    return run_playbook(fleet, "sre.ops.rollback", *flags, *args, *(["-e", json.dumps(extra)] if extra else []))


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


def other(version):
    return "v1" if version == "v2" else "v2"


def api(fleet, command):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(fleet.haproxy_socket)
        sock.sendall(command.encode() + b"\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.decode()


def serving(fleet, backend="be_app"):
    rows = [line.split(",") for line in api(fleet, "show stat").splitlines()]
    return sorted(r[1] for r in rows if len(r) > 18 and r[0] == backend and r[1] in APP and r[17].startswith("UP") and r[18] != "0")


class ServingSampler:
    """Samples HAProxy every 50 ms during a rollout: the fewest be_app servers taking traffic at any moment."""

    def __init__(self, fleet):
        self.fleet, self.minimum, self.samples = fleet, 99, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            self.minimum = min(self.minimum, len(serving(self.fleet)))
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
    with open(max(glob.glob(os.path.join(fleet.reports, f"*-{suffix}.json")), key=os.path.getmtime), encoding="utf-8") as handle:
        return json.load(handle)


def rows(report):
    """What a plan promises and a run does, per host, in order."""
    return [(w["wave"], w["phase"], r["host"], r["action"], r["release_before"], r["release_after"], r["restarted"])
            for w in report["waves"] for r in w["records"]]


def live_colour(fleet):
    backend = next(line.split()[2] for line in api(fleet, f"show map {fleet.path('hosts.map')}").splitlines() if "www.test" in line)
    return ["web1", "web2"] if backend == "be_blue" else ["web3", "web4"]


def run_until(fleet, args, marker, occurrence=1, playbook="sre.ops.deploy"):
    """Run a playbook and SIGKILL it (its whole process group) once its output has shown `marker` that often."""
    proc = subprocess.Popen([ANSIBLE_PLAYBOOK, playbook, *args], env=fleet.env(), cwd=COLLECTION_ROOT,  # pylint: disable=consider-using-with
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    seen, output = 0, []
    for line in proc.stdout:
        output.append(line)
        seen += marker in line
        if seen >= occurrence:
            os.killpg(proc.pid, signal.SIGKILL)
            break
    proc.wait()
    proc.stdout.close()
    assert seen >= occurrence, f"{marker!r} never showed up:\n" + "".join(output[-40:])


def under_traffic(fleet, playbook_run, rate=50, host_header="app.test"):
    """Run a playbook (a callable) under steady traffic, sampling HAProxy; it must succeed with zero client errors."""
    traffic = TrafficGenerator(fleet.lb_url, rate=rate, duration=240, host_header=host_header).start()
    with ServingSampler(fleet) as sampler:
        run = playbook_run()
    report = traffic.stop()
    assert run.rc == 0, run.output
    assert report["errors"] == 0, report
    return run, sampler, report


def release_on(fleet, host, args):
    """sre.ops.release on one host (its action plugin sends the archive from the controller)."""
    proc = subprocess.run([os.path.join(os.path.dirname(ANSIBLE_PLAYBOOK), "ansible"), host, "-m", "sre.ops.release", "-a",
                           json.dumps({"path": "/srv/app", **args})], env=fleet.env(), cwd=COLLECTION_ROOT, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def assert_safe(fleet):
    for host in APP:
        target = ssh(fleet, host, "cat /srv/app/current/release.json").stdout
        assert json.loads(target)["version"] in ("v1", "v2"), f"{host} current is not a complete release"
    assert len(serving(fleet)) >= 3, f"only {serving(fleet)} in service after the kill"


# ----- rolling ---------------------------------------------------------------------------------------------
def test_rolling_preview_then_deploy_with_zero_errors_then_nothing_to_do(dfleet):
    target = other(versions(dfleet)["web1"])
    before = fingerprint(dfleet)
    plan = deploy(dfleet, target, "rolling", "--check", "--diff")
    assert plan.rc == 0, plan.output
    assert fingerprint(dfleet) == before, "--check changed hosts or the load balancer"
    planned = latest_report(dfleet, "rolling-plan")
    assert planned["verdict"] == "planned" and planned["batches"] == [1, 1, 1, 1], "the ramp is capped so min_ready 75% holds"
    assert {r["health"] for w in planned["waves"] for r in w["records"]} == {"not known until deployed"}
    assert "would FAIL" not in plan.output and f"wave 1 (rolling): web1: update + restart ({other(target)} -> {target})" in plan.output
    planned_tasks = latest_plan(dfleet)
    # one plan concept: the role's plan is a note of sre.ops.plan's, in its words
    rollout_line = "Rollout plan: 4 hosts, 4 to change (0 create, 4 update, 0 delete, 4 restart)."
    assert rollout_line in plan.output and next(r for r in planned_tasks["hosts"]["web1"] if r["task"].endswith("Plan the deploy"))["msg"] == rollout_line
    with open(os.path.join(dfleet.plans, "latest.md"), encoding="utf-8") as handle:
        notes = handle.read().split("## Notes\n", 1)[1].split("\n## ", 1)[0]
    assert "### noop: sre.ops.deploy : Plan the deploy (sre.ops.rollout_plan), on web1" in notes and f"Message: {rollout_line}" in notes

    _run, sampler, _report = under_traffic(dfleet, lambda: deploy(dfleet, target, "rolling"))
    assert_fidelity(planned_tasks, latest_plan(dfleet))
    assert versions(dfleet) == {h: target for h in APP}
    assert sampler.samples > 20 and sampler.minimum >= 3, f"min_ready 75% violated: {sampler.minimum} serving"
    done = latest_report(dfleet, "rolling")
    assert done["verdict"] == "completed" and not done["rollback_taken"]
    assert rows(done) == rows(planned) == [(i, "rolling", h, "update", other(target), target, True) for i, h in enumerate(APP, 1)]
    # the artifact went to the task's temporary directory: nothing piles up on the hosts
    assert all(ssh(dfleet, h, f"find /srv/app -name '*{target}.tar.gz' | wc -l").stdout.strip() == "0" for h in APP)

    again = deploy(dfleet, target, "rolling")
    assert again.rc == 0 and all(again.changed()[h] == 0 for h in APP), again.output
    assert latest_report(dfleet, "rolling")["nothing_to_do"]
    check = deploy(dfleet, target, "rolling", "--check")
    assert check.rc == 0 and all(check.changed()[h] == 0 for h in APP), check.output
    assert_nothing_to_change(latest_plan(dfleet))


def test_check_plan_equals_the_real_run_in_the_states_a_kill_leaves(dfleet):
    """One host drained, one host on the new release (not restarted, not gated), one host with its app stopped."""
    target = other(versions(dfleet)["web1"])
    api(dfleet, "set server be_app/web1 state drain")
    release_on(dfleet, "web2", {"state": "active", "release": target, "src": f"{dfleet.artifacts}/demo-app-{target}.tar.gz"})
    assert ssh(dfleet, "web4", "/srv/app/current/bin/appctl stop").returncode == 0
    deadline = time.monotonic() + 30
    while "web4" in serving(dfleet) and time.monotonic() < deadline:
        time.sleep(0.1)

    before = fingerprint(dfleet)
    plan = deploy(dfleet, target, "rolling", "--check")
    assert plan.rc == 0, plan.output
    assert fingerprint(dfleet) == before, "--check changed hosts or the load balancer"
    planned = latest_report(dfleet, "rolling-plan")
    actions = {r["host"]: r["action"] for w in planned["waves"] for r in w["records"]}
    assert actions == {"web1": "update", "web4": "update", "web2": "restart", "web3": "update"}
    # out of service first (no room needed), then web2 (on the release already), then web3
    assert [w["hosts"] for w in planned["waves"]] == [["web1"], ["web4"], ["web2"], ["web3"]]
    planned_tasks = latest_plan(dfleet)

    _run, sampler, _report = under_traffic(dfleet, lambda: deploy(dfleet, target, "rolling"), rate=40)
    assert_fidelity(planned_tasks, latest_plan(dfleet))
    assert sampler.minimum >= 2, "the rollout took a server out while fewer than min_ready were in service"
    assert rows(latest_report(dfleet, "rolling")) == rows(planned)
    assert versions(dfleet) == {h: target for h in APP} and serving(dfleet) == APP


@pytest.mark.parametrize("strategy, marker, occurrence", [
    ("rolling", "TASK [sre.ops.deploy : Restart the app on the release]", 2),
    ("canary", "TASK [sre.ops.deploy : Judge the canaries against the baseline]", 1),
])
def test_killed_rollout_stays_safe_and_the_rerun_passes_the_gates_again(dfleet, strategy, marker, occurrence):
    target = other(versions(dfleet)["web1"])
    traffic = TrafficGenerator(dfleet.lb_url, rate=50, duration=240).start()
    run_until(dfleet, deploy_args(dfleet, target, strategy), marker, occurrence)
    assert_safe(dfleet)
    if strategy == "canary":  # the canary strategy's plan fidelity, from the state the kill left
        assert deploy(dfleet, target, strategy, "--check", "--diff").rc == 0
        planned = latest_plan(dfleet)
    rerun = deploy(dfleet, target, strategy)
    report = traffic.stop()
    assert rerun.rc == 0, rerun.output
    if strategy == "canary":
        assert_fidelity(planned, latest_plan(dfleet))
        assert deploy(dfleet, target, strategy, "--check").rc == 0
        assert_nothing_to_change(latest_plan(dfleet))
    assert versions(dfleet) == {h: target for h in APP} and serving(dfleet) == APP
    assert report["errors"] == 0, report
    done = latest_report(dfleet, strategy)
    assert done["verdict"] == "completed"
    if strategy == "canary":
        assert done["canary"]["hosts"] == ["web1"] and [a["verdict"] for a in done["analyses"]] == ["pass"], \
            "a canary killed during its analysis is analysed again"
    else:
        assert done["waves"][0]["hosts"] == ["web2"], "the host the kill left on the release (and drained) goes first"


# ----- canary ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("version, extra, reason", [
    ("v3", None, "error_ratio: canary error ratio"),
    ("v4", {"deploy_canary_probe_url": "http://{{ app_listen_address }}:{{ app_port }}/",
            "deploy_canary_analysis": {"window": 6, "min_requests": 40, "min_samples": 20, "probe_rate": 8}},
     "latency: canary latency is higher"),
])
def test_bad_canary_is_judged_failed_and_rolled_back(dfleet, version, extra, reason):
    before = versions(dfleet)
    traffic = TrafficGenerator(dfleet.lb_url, rate=60, duration=120).start()
    with ServingSampler(dfleet) as sampler:
        run = deploy(dfleet, version, "canary", extra=extra)
    report = traffic.stop()
    assert run.rc != 0, "a failed canary must fail the run"
    assert versions(dfleet) == before, "no host may be left on the bad release"
    rollout = latest_report(dfleet, "canary")
    assert rollout["verdict"] == "aborted" and rollout["rollback_taken"]
    assert rollout["analyses"][0]["verdict"] == "fail" and any(reason in r for r in rollout["analyses"][0]["reasons"])
    if not extra:
        # the demo settings read lb1's request log: the window's own requests, not rolling averages or earlier releases
        assert {m["source"] for m in rollout["analyses"][0]["metrics"]} == {"haproxy log"}, rollout["analyses"][0]["metrics"]
        assert rollout["canary"]["steps"][2]["power"]["metrics"][0]["expected"]["canary_requests"] > 0, "the plan stated the power"
    assert set(report["errors_by_server"]) <= {"web1"}, f"errors outside the canary: {report['errors_by_server']}"
    assert sampler.minimum >= 3
    ledger = json.loads(ssh(dfleet, "web1", "cat /srv/app/ledger.json").stdout)
    assert ledger["releases"][version]["outcome"] == "failed" and ledger["current"] == before["web1"]
    if extra:
        options = rollout["canary"]["steps"][2]["analysis"]
        assert len(options["canary_urls"]) == len(options["baseline_urls"]) == 1, "probes spread: as many baseline hosts as canaries"


def test_inconclusive_canary_is_held_without_a_terminal_then_promoted(dfleet):
    target = other(versions(dfleet)["web1"])
    # ansible-playbook has no terminal here, as under AWX: "pause" must hold the canary, not wait and not promote
    # probes templated against the documented canary group (deploy_canary_group), as docs/deploy.md shows
    urls = "map('extract', hostvars, 'app_listen_address') | map('regex_replace', '^', 'http://') | map('regex_replace', '$', ':8080/') | list"
    held = deploy(dfleet, target, "canary", extra={
        "deploy_canary_on_inconclusive": "pause", "deploy_canary_steps": [{"set_weight": 10}, {"analysis": {}}],
        "deploy_canary_analysis": {
            "window": 2, "min_requests": 100000, "min_samples": 3,
            "canary_urls": "{{ groups[deploy_canary_group] | default([]) | " + urls + " }}",
            "baseline_urls": "{{ ansible_play_hosts_all | difference(groups[deploy_canary_group] | default([])) | " + urls + " }}"}})
    assert held.rc == 0, held.output
    rollout = latest_report(dfleet, "canary")
    assert rollout["verdict"] == "held" and rollout["analyses"][0]["verdict"] == "inconclusive"
    analysis = rollout["analyses"][0]
    address = {h: f"http://{dfleet.config.host_address(i)}:8080/" for i, h in enumerate(APP, 1)}
    assert rollout["canary"]["hosts"] == ["web1"] and analysis["canary_urls"] == [address["web1"]], "the group holds exactly the canaries"
    assert sorted(analysis["baseline_urls"]) == sorted(address[h] for h in APP[1:])
    probes = analysis["measurements"]["probes"]
    assert probes["canary"]["urls"] == 1 and probes["canary"]["requests"] > 0 and probes["canary"]["errors"] == 0, probes
    assert "deploy_canary_promote=true" in rollout["abort_reason"]
    assert versions(dfleet)["web1"] == target and {versions(dfleet)[h] for h in APP[1:]} == {other(target)}
    weights = {line.split()[3]: line.split()[7] for line in api(dfleet, "show servers state be_app").splitlines()[2:] if line}
    assert weights["web1"] == str(rollout["canary"]["steps"][0]["weight"]) != "100", "the canary stays at its step's weight"

    promoted = deploy(dfleet, target, "canary", extra={"deploy_canary_promote": True})
    assert promoted.rc == 0, promoted.output
    done = latest_report(dfleet, "canary")
    assert done["verdict"] == "completed" and done["canary"]["phase"] == "promote" and done["analyses"] == []
    assert versions(dfleet) == {h: target for h in APP} and serving(dfleet) == APP


def test_failed_health_gate_stops_the_rollout_and_rolls_the_wave_back(dfleet):
    before = versions(dfleet)
    with ServingSampler(dfleet) as sampler:
        run = deploy(dfleet, "v5", "rolling", extra={"deploy_health_deadline": 3})
    assert run.rc != 0
    assert versions(dfleet) == before
    rollout = latest_report(dfleet, "rolling")
    assert rollout["verdict"] == "aborted" and [w["hosts"] for w in rollout["waves"]][0] == ["web1"]
    assert rollout["waves"][0]["outcome"] == "rolled_back" and rollout["waves"][1]["outcome"] == "not started"
    assert "wave 1 (rolling) web1: Stop the wave unless every host of it passed its health gate" in rollout["abort_reason"]
    assert "healthz" in rollout["abort_reason"] and "status 503" in rollout["abort_reason"]
    assert sampler.minimum >= 3 and serving(dfleet) == APP


# ----- bad input -------------------------------------------------------------------------------------------
def test_bad_input_fails_before_anything_changes_naming_the_variable(dfleet):
    now = versions(dfleet)["web1"]
    before = fingerprint(dfleet)
    cases = [
        (["canary"], {"deploy_canary_steps": [{"analyze": {}}]}, ["analyze", "deploy_canary_steps"]),
        (["canary"], {"deploy_canary_hosts": "200%", "deploy_batches": [0], "deploy_canary_steps": [{"set_weight": 300}],
                      "deploy_health_probes": []},
         ["deploy_canary_hosts '200%' is more than 100%", "deploy_batches[0] 0 is zero", "set_weight 300",
          "deploy_health_probes is empty"]),
        (["rolling"], {"deploy_artifact_sha256": "0" * 64}, ["deploy_artifact_sha256 " + "0" * 64 + " does not match"]),
        (["blue_green"], {"deploy_bg_retire": True, "deploy_stop_command": ""}, ["deploy_bg_retire needs deploy_stop_command"]),
    ]
    for (strategy,), extra, expected in cases:
        run = deploy(dfleet, other(now), strategy, extra=extra)
        assert run.rc != 0, (extra, run.output)
        for text in expected:
            assert text in run.output, (text, run.output[-3000:])
    bogus = rollback(dfleet, "bogus")
    assert bogus.rc != 0 and "deploy_strategy" in bogus.output and "bogus" in bogus.output, bogus.output[-2000:]
    assert fingerprint(dfleet) == before, "a refused run changed hosts or the load balancer"
    # a release id that exists from another artifact: refused, never "downgrade to an older good release"
    release_on(dfleet, "web1", {"state": "staged", "release": "taken", "src": f"{dfleet.artifacts}/demo-app-v1.tar.gz"})
    before = fingerprint(dfleet)
    run = deploy(dfleet, "v2", "rolling", release="taken")
    assert run.rc != 0 and "deploy_release taken already exists on web1 from another artifact" in run.output, run.output[-3000:]
    assert fingerprint(dfleet) == before, "a refused run changed hosts or the load balancer"
    assert versions(dfleet) == {h: now for h in APP}
