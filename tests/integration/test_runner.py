# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The collection under ansible-runner, AWX's engine: run and check jobs on the fleet from a private data dir,
with the job status and rc AWX shows and the rollout report handed to the next workflow node."""

from __future__ import annotations

import os

import pytest

from . import awx
from .conftest import deploy_demo, make_fleet
from .rollout import versions

pytestmark = pytest.mark.fleet

APP = ["web1", "web2"]


@pytest.fixture(scope="module")
def rfleet(releases_dir, tmp_path_factory):
    fleet = make_fleet("runner", "127.0.36.10", hosts=len(APP))
    fleet.up()
    try:
        deploy_demo(fleet, releases_dir, "v1")
        fleet.reports = str(tmp_path_factory.mktemp("reports"))
        yield fleet
    finally:
        fleet.down()


def job(fleet, tmp_path, releases_dir, version, *, check=False, name="job", **extra):
    extravars = awx.deploy_vars(fleet.reports, os.path.join(releases_dir, f"demo-app-{version}.tar.gz"), version, "rolling",
                                deploy_min_ready="50%", **extra)
    data_dir = awx.private_data_dir(str(tmp_path / name), fleet, extravars, check=check)
    return awx.run_job(data_dir, "deploy.yml")


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
