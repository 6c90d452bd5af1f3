# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection under ansible-runner, AWX's engine: run and check jobs on the fleet from a private data dir,
with the job status and rc AWX shows and the rollout report handed to the next workflow node."""

from __future__ import annotations

import os
import socket

import pytest

from . import awx
from .rollout import two_host_fleet, versions

pytestmark = pytest.mark.fleet

APP = ["web1", "web2"]


@pytest.fixture(scope="module")
def rfleet(releases_dir, tmp_path_factory):
    with two_host_fleet("runner", "127.0.36.10", releases_dir, str(tmp_path_factory.mktemp("reports"))) as fleet:
        yield fleet


def job(fleet, tmp_path, releases_dir, version, *, check=False, name="job", strategy="rolling", playbook="deploy.yml", **extra):
    extravars = awx.deploy_vars(fleet.reports, os.path.join(releases_dir, f"demo-app-{version}.tar.gz"), version, strategy,
                                deploy_min_ready="50%", **extra)
    data_dir = awx.private_data_dir(str(tmp_path / name), fleet, extravars, check=check)
    return awx.run_job(data_dir, playbook)


def next_node(fleet, tmp_path, name, artifacts, playbook):
    """A workflow's next node: AWX gives it the artifacts of the nodes before it as extra vars."""
    return awx.run_job(awx.private_data_dir(str(tmp_path / name), fleet, artifacts), playbook)


def server_state(fleet, server):
    """(operational state, current weight) of a server of the app backend, from HAProxy's runtime API."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(fleet.haproxy_socket)
        sock.sendall(b"show servers state be_app\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    for line in data.decode().splitlines()[2:]:
        fields = line.split()
        if len(fields) > 7 and fields[3] == server:
            return int(fields[5]), int(fields[7])  # srv_op_state (2 = running), srv_uweight
    raise AssertionError(f"{server} not in be_app")


def test_check_job_previews_the_rollout_changes_nothing_and_reports_the_plan(rfleet, tmp_path, releases_dir):
    before = versions(rfleet)
    runner = job(rfleet, tmp_path, releases_dir, "v2", check=True)
    assert (runner.status, runner.rc) == ("successful", 0), awx.job_output(runner)
    assert versions(rfleet) == before
    report = awx.stats_artifacts(runner)["sre_ops_rollout"]
    assert report["verdict"] == "planned" and report["check_mode"] is True
    assert [r["host"] for w in report["waves"] for r in w["records"]] == APP
    assert not any(e.get("event") == "runner_on_failed" for e in runner.events)


def test_run_job_deploys_and_the_next_workflow_node_reads_the_report(rfleet, tmp_path, releases_dir):
    runner = job(rfleet, tmp_path, releases_dir, "v2")
    assert (runner.status, runner.rc) == ("successful", 0), awx.job_output(runner)
    assert versions(rfleet) == {h: "v2" for h in APP}
    artifacts = awx.stats_artifacts(runner)
    report = artifacts["sre_ops_rollout"]
    assert report["verdict"] == "completed" and report["release"] == "v2" and report["rollback_taken"] is False
    assert report["check_mode"] is False

    # AWX hands a node's artifacts to the next node as extra vars
    data_dir = awx.private_data_dir(str(tmp_path / "next"), rfleet, artifacts)
    following = awx.run_job(data_dir, "rollout_summary.yml")
    assert (following.status, following.rc) == ("successful", 0), awx.job_output(following)
    assert awx.stats_artifacts(following)["sre_ops_rollout_summary"] == {"verdict": "completed", "release": "v2"}
    assert "rolling of v2: completed in" in awx.job_output(following)

    # nothing is held after a completed rollout: the canary workflow's gate fails, so no approval is asked
    gate = next_node(rfleet, tmp_path, "gate", artifacts, "canary_held.yml")
    assert (gate.status, gate.rc) == ("failed", 2)
    assert "rollout completed: no canary is held, nothing to approve" in awx.job_output(gate)


def test_next_node_without_a_report_fails_with_a_clear_message(rfleet, tmp_path):
    data_dir = awx.private_data_dir(str(tmp_path / "lonely"), rfleet, {})
    following = awx.run_job(data_dir, "rollout_summary.yml")
    assert (following.status, following.rc) == ("failed", 2)
    assert "no sre_ops_rollout from the previous node" in awx.job_output(following)


def test_failed_rollout_is_a_failed_job_with_the_report_of_what_was_rolled_back(rfleet, tmp_path, releases_dir):
    before = versions(rfleet)
    runner = job(rfleet, tmp_path, releases_dir, "v5", deploy_health_deadline=3)
    assert (runner.status, runner.rc) == ("failed", 2), awx.job_output(runner)
    assert versions(rfleet) == before
    report = awx.stats_artifacts(runner)["sre_ops_rollout"]
    assert report["verdict"] == "aborted" and report["rollback_taken"] is True


# No traffic reaches the canary, so an analysis that needs requests is inconclusive. Under AWX there is no
# terminal to answer the pause: the canary is held at its weight, the job succeeds and says so in its report.
HOLD = {"deploy_canary_on_inconclusive": "pause",
        "deploy_canary_steps": [{"set_weight": 50}, {"analysis": {"window": 2, "interval": 1, "min_requests": 100000}}]}


@pytest.mark.parametrize("decision", ["promote", "rollback"])
def test_inconclusive_canary_is_held_and_the_approval_node_decides(rfleet, tmp_path, releases_dir, decision):
    before = versions(rfleet)
    assert len(set(before.values())) == 1, before
    old = before["web1"]
    new = "v2" if old != "v2" else "v1"

    held = job(rfleet, tmp_path, releases_dir, new, name="held", strategy="canary", **HOLD)
    assert (held.status, held.rc) == ("successful", 0), awx.job_output(held)
    artifacts = awx.stats_artifacts(held)
    assert artifacts["sre_ops_rollout"]["verdict"] == "held", artifacts
    assert versions(rfleet) == {"web1": new, "web2": old}, "the canary keeps the new release while held"
    state, weight = server_state(rfleet, "web1")
    assert state == 2 and weight > 0, "the held canary stays in service at its weight"

    gate = next_node(rfleet, tmp_path, "gate", artifacts, "canary_held.yml")
    assert (gate.status, gate.rc) == ("successful", 0), awx.job_output(gate)

    # the approval node: approve runs "deploy promote", deny runs "rollback" (each with the workflow's vars)
    if decision == "promote":
        after = job(rfleet, tmp_path, releases_dir, new, name="promote", strategy="canary", deploy_canary_promote=True, **HOLD)
        expected = {h: new for h in APP}
    else:
        after = job(rfleet, tmp_path, releases_dir, new, name="rollback", strategy="canary", playbook="rollback.yml", **HOLD)
        expected = before
    assert (after.status, after.rc) == ("successful", 0), awx.job_output(after)
    assert versions(rfleet) == expected
    if decision == "promote":
        assert awx.stats_artifacts(after)["sre_ops_rollout"]["verdict"] == "completed"
