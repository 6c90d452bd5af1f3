# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.rollout_plan's action plugin: checksum once, read the load balancer, plan; bad input fails naming it."""

from __future__ import annotations

import hashlib
from unittest.mock import MagicMock

import pytest
from ansible.errors import AnsibleActionFail, AnsibleError

from ansible_collections.sre.ops.plugins.action.rollout_plan import ActionModule

from ._harness import make_action

APP = ["web1", "web2", "web3", "web4"]


def hosts():
    return [{"name": n, "server": "", "probe_url": "", "releases": {"current": "v1", "releases": [{"id": "v1", "outcome": "good"}]}} for n in APP]


def balancer():
    server = {"status": "UP", "admin_state": "ready", "weight": 100, "initial_weight": 100, "serving": True, "operational_state": "running"}
    return {"backends": {"be_app": {"servers": {n: dict(server) for n in APP}}}, "maps": {}}


@pytest.fixture
def artifact(tmp_path):
    path = tmp_path / "app.tar.gz"
    path.write_bytes(b"release bytes")
    return str(path), hashlib.sha256(b"release bytes").hexdigest()


def planner(artifact, **args):
    base = {"hosts": hosts(), "artifact": artifact[0], "socket": "/run/haproxy.sock", "backend": "be_app", "restart_command": "x",
            "health_probes": [{"name": "h", "url": "http://h/"}]}
    base.update(args)
    action = make_action(ActionModule, base)
    action._find_needle = MagicMock(return_value=artifact[0])
    action._execute_module = MagicMock(return_value=balancer())
    return action


def test_plan_with_the_checksum_computed_once_on_the_controller(artifact):
    action = planner(artifact)
    result = action.run(task_vars={"groups": {}})
    assert result["release"] == "r-" + artifact[1][:12] and result["checksum"] == "sha256:" + artifact[1]
    assert [w["hosts"] for w in result["waves"]] == [[n] for n in APP] and not result["changed"]
    call = action._execute_module.call_args.kwargs
    assert call["module_name"] == "sre.ops.haproxy_info" and call["module_args"]["backends"] == ["be_app"]
    assert result["run_id"] and isinstance(result["started"], float)


def test_a_wrong_artifact_sha256_fails_before_anything(artifact):
    action = planner(artifact, artifact_sha256="0" * 64)
    with pytest.raises(AnsibleActionFail, match=r"deploy_artifact_sha256 0+ does not match deploy_artifact .*nothing was changed"):
        action.run(task_vars={"groups": {}})
    action._execute_module.assert_not_called()


def test_a_missing_artifact_names_the_variable(artifact):
    action = planner(artifact)
    action._find_needle = MagicMock(side_effect=AnsibleError("nope"))
    with pytest.raises(AnsibleActionFail, match="deploy_artifact .* does not exist on the controller"):
        action.run(task_vars={"groups": {}})


def test_problems_of_the_plan_are_raised_together(artifact):
    action = planner(artifact, canary_hosts="0", strategy="canary", health_probes=[])
    with pytest.raises(AnsibleActionFail) as info:
        action.run(task_vars={"groups": {}})
    assert "deploy_canary_hosts '0'" in info.value.message and "deploy_health_probes is empty" in info.value.message


def test_an_unreadable_load_balancer_names_the_socket(artifact):
    action = planner(artifact)
    action._execute_module = MagicMock(return_value={"failed": True, "msg": "connection refused"})
    with pytest.raises(AnsibleActionFail, match="cannot read the load balancer .deploy_lb_socket /run/haproxy.sock.: connection refused"):
        action.run(task_vars={"groups": {}})


def test_blue_green_reads_the_colour_backends_and_the_map(artifact):
    action = planner(artifact, strategy="blue_green", bg_map="/m.map", bg_map_key="www")
    action._execute_module = MagicMock(return_value={
        "backends": {"be_blue": balancer()["backends"]["be_app"] | {}, "be_green": balancer()["backends"]["be_app"]},
        "maps": {"/m.map": {"www": "be_blue"}}})
    result = action.run(task_vars={"groups": {"blue": ["web1", "web2"], "green": ["web3", "web4"]}})
    assert action._execute_module.call_args.kwargs["module_args"]["maps"] == ["/m.map"]
    assert result["blue_green"]["idle"] == "green" and result["waves"][0]["hosts"] == ["web3", "web4"]


def test_unknown_options_are_refused(artifact):
    action = planner(artifact, bogus=1)
    with pytest.raises(AnsibleActionFail, match="bogus"):
        action.run(task_vars={"groups": {}})
