# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""One rolling and one canary deploy with whatever ansible-core runs the tests: CI runs this file again with the
oldest ansible-core the collection declares and the newest this machine runs (tests/run_checks.py compat).
The rollout report has the same field types on every version, so AWX and scripts can read it the same way."""

from __future__ import annotations

import glob
import json
import os

import ansible.release
import pytest
import yaml

from sreops_fleet.traffic import TrafficGenerator

from .conftest import COLLECTION_ROOT, run_playbook
from .rollout import GOOD_CANARY, two_host_fleet, versions

pytestmark = pytest.mark.fleet

APP = ["web1", "web2"]
VARS = os.path.join(COLLECTION_ROOT, "playbooks", "vars", "demo-fleet.yml")


def test_the_collection_declares_the_oldest_ansible_core_ci_runs():
    with open(os.path.join(COLLECTION_ROOT, "meta", "runtime.yml"), encoding="utf-8") as handle:
        declared = yaml.safe_load(handle)["requires_ansible"]
    assert declared == ">=2.16.0"
    assert tuple(int(p) for p in ansible.release.__version__.split(".")[:2]) >= (2, 16)


@pytest.fixture(scope="module")
def cfleet(releases_dir, tmp_path_factory):
    # the compat stage runs the oldest and the newest ansible-core side by side: a fleet each
    oldest = ansible.release.__version__.startswith("2.16.")
    with two_host_fleet(f"compat-{ansible.release.__version__}", "127.0.38.10" if oldest else "127.0.39.10", releases_dir,
                        str(tmp_path_factory.mktemp("reports"))) as fleet:
        yield fleet


def deploy(fleet, releases_dir, version, strategy):
    return run_playbook(fleet, "sre.ops.deploy", "-e", f"@{VARS}", "-e", json.dumps({
        "deploy_artifact": os.path.join(releases_dir, f"demo-app-{version}.tar.gz"), "deploy_release": version,
        "deploy_strategy": strategy, "deploy_report_dir": fleet.reports, "deploy_min_ready": "50%", **GOOD_CANARY}))


def report_of(fleet, strategy):
    path = max(glob.glob(os.path.join(fleet.reports, f"*-{strategy}.json")), key=os.path.getmtime)
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def assert_report_types(report):
    """The same JSON types on every ansible-core (2.16-2.18 template to strings where 2.19 keeps numbers)."""
    for field in ("started", "ended", "duration_s"):
        assert isinstance(report[field], (int, float)) and not isinstance(report[field], bool), (field, report[field])
    for field in ("check_mode", "rollback_taken"):
        assert isinstance(report[field], bool), (field, report[field])
    assert all(isinstance(b, int) for b in report["batches"]), report["batches"]
    for wave in report["waves"]:
        assert isinstance(wave["wave"], int) and isinstance(wave["hosts"], list), wave


def test_rolling_then_canary_on_this_ansible_core(cfleet, releases_dir):
    run = deploy(cfleet, releases_dir, "v2", "rolling")
    assert run.rc == 0, run.output
    assert versions(cfleet) == {h: "v2" for h in APP}
    assert_report_types(report_of(cfleet, "rolling"))

    traffic = TrafficGenerator(cfleet.lb_url, rate=25, duration=900).start()
    run = deploy(cfleet, releases_dir, "v1", "canary")
    load = traffic.stop()
    assert run.rc == 0, run.output
    assert versions(cfleet) == {h: "v1" for h in APP}
    report = report_of(cfleet, "canary")
    assert_report_types(report)
    assert [a["verdict"] for a in report["analyses"]] == ["pass"] and load["errors"] == 0
