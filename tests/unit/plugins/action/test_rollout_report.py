# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.rollout_report's action plugin: the report written atomically on the controller, numbers as numbers."""

from __future__ import annotations

import json
import os

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.sre.ops.plugins.action.rollout_report import ActionModule
from ansible_collections.sre.ops.plugins.module_utils._rollout import RolloutPlanner

from ._harness import make_action

APP = ["web1", "web2"]


def a_plan(check_mode=False):
    server = {"status": "UP", "admin_state": "ready", "weight": 100, "initial_weight": 100, "serving": True, "operational_state": "running"}
    hosts = [{"name": n, "releases": {"current": "v1", "releases": [{"id": "v1", "outcome": "good"}]}} for n in APP]
    settings = {"strategy": "rolling", "release": "v2", "backend": "be_app", "min_ready": "1", "restart_command": "x"}
    plan = RolloutPlanner(settings, hosts, {"backends": {"be_app": {"servers": {n: dict(server) for n in APP}}}}).plan()
    plan.update(run_id="20261127T170000Z", started=100.0, check_mode=check_mode)
    return plan


def test_writes_the_report_and_returns_it(tmp_path):
    action = make_action(ActionModule, {"plan": a_plan(), "records": [{"host": "web1", "outcome": "deployed", "at": 101}],
                                        "report_dir": str(tmp_path)})
    result = action.run(task_vars={})
    assert result["path"] == os.path.join(str(tmp_path), "20261127T170000Z-rolling.json")
    with open(result["path"], encoding="utf-8") as handle:
        assert json.load(handle) == result["report"]
    assert result["report"]["verdict"] == "aborted" and "web2 did not finish" in result["report"]["abort_reason"]
    assert result["lines"][-1] == f"report: {result['path']}"
    assert [n for n in os.listdir(tmp_path) if n.startswith(".report-")] == [], "no temporary file is left behind"


def test_check_mode_writes_a_plan_report(tmp_path):
    action = make_action(ActionModule, {"plan": a_plan(check_mode=True), "report_dir": str(tmp_path)})
    result = action.run(task_vars={})
    assert result["path"].endswith("-rolling-plan.json") and result["report"]["verdict"] == "planned"


def test_an_unwritable_report_dir_names_the_variable(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    action = make_action(ActionModule, {"plan": a_plan(), "report_dir": str(blocker / "sub")})
    with pytest.raises(AnsibleActionFail, match="cannot write the report to deploy_report_dir"):
        action.run(task_vars={})


def test_refuses_something_that_is_not_a_plan():
    action = make_action(ActionModule, {"plan": {"hosts": {}}})
    with pytest.raises(AnsibleActionFail, match="is not a sre.ops.rollout_plan result"):
        action.run(task_vars={})
