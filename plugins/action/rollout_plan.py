# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of sre.ops.rollout_plan: checksum the artifact, read the load balancer, plan the rollout."""

from __future__ import annotations

import os
import time
import typing as t

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.sre.ops.plugins.module_utils._rollout import MODES, ON_INCONCLUSIVE, STRATEGIES, PlanError, RolloutPlanner
from ansible_collections.sre.ops.plugins.plugin_utils._checksum import sha256_of
from ansible_collections.sre.ops.plugins.plugin_utils._plan import declare

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "mode": {"type": "str", "choices": list(MODES), "default": "deploy"},
    "strategy": {"type": "str", "choices": list(STRATEGIES), "default": "rolling"},
    "hosts": {"type": "list", "elements": "dict", "required": True},
    "release": {"type": "str", "default": ""},
    "artifact": {"type": "str", "default": ""},
    "artifact_sha256": {"type": "str", "default": ""},
    "socket": {"type": "str", "required": True},
    "timeout": {"type": "float", "default": 5},
    "backend": {"type": "str", "default": ""},
    "min_ready": {"type": "str", "default": "75%"},
    "batches": {"type": "list", "elements": "raw", "default": [1, "25%", "100%"]},
    "restart_command": {"type": "str", "default": ""},
    "restart_unit": {"type": "str", "default": ""},
    "stop_command": {"type": "str", "default": ""},
    "stop_unit": {"type": "str", "default": ""},
    "health_probes": {"type": "list", "elements": "dict"},
    "canary_hosts": {"type": "str", "default": "1"},
    "canary_steps": {"type": "list", "elements": "dict", "default": []},
    "canary_analysis": {"type": "dict", "default": {}},
    "canary_on_inconclusive": {"type": "str", "choices": list(ON_INCONCLUSIVE), "default": "fail"},
    "canary_promote": {"type": "bool", "default": False},
    "canary_group": {"type": "str", "default": "deploy_canary"},
    "canary_expected_rps": {"type": "float", "default": 0},
    "canary_expected_latency_ms": {"type": "dict", "default": {}, "options": {"p50": {"type": "float"}, "p90": {"type": "float"}}},
    "bg_groups": {"type": "dict", "default": {"blue": "blue", "green": "green"}},
    "bg_backends": {"type": "dict", "default": {"blue": "be_blue", "green": "be_green"}},
    "bg_map": {"type": "str", "default": ""},
    "bg_map_key": {"type": "str", "default": ""},
    "bg_retire": {"type": "bool", "default": False},
}


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp
        task_vars = task_vars or {}
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        started = time.time()
        problems: list[str] = []
        sha256 = self._artifact_sha256(args, problems)
        if problems:
            raise AnsibleActionFail("; ".join(problems) + "; nothing was changed")
        lb = self._read_load_balancer(args, task_vars)
        groups = task_vars.get("groups", {})
        bg_members = {colour: list(groups.get(str(name), [])) for colour, name in (args["bg_groups"] or {}).items()}
        settings = {key: args[key] for key in ARGUMENT_SPEC if key not in ("hosts", "socket", "timeout", "artifact", "artifact_sha256")}
        try:
            plan = RolloutPlanner(settings, args["hosts"], lb, artifact_sha256=sha256, bg_members=bg_members).plan()
        except PlanError as exc:
            raise AnsibleActionFail(exc.msg) from None
        plan["run_id"] = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
        plan["started"] = round(started, 3)
        plan["check_mode"] = bool(self._task.check_mode or self._play_context.check_mode)
        plan["artifact"] = args["artifact"] if args["mode"] == "deploy" else ""
        plan["checksum"] = f"sha256:{sha256}" if sha256 else ""
        # ansible-runner (AWX) gives ansible-playbook a pseudo-terminal nobody watches: never prompt there.
        plan["interactive"] = "AWX_ISOLATED_DATA_DIR" not in os.environ
        plan["on_inconclusive"] = args["canary_on_inconclusive"]
        result.update(changed=False, **plan)
        # to the sre.ops.plan callback: this task changes nothing and says what the rollout will do
        return declare(result, "noop", summary=plan["closing_line"])

    def _artifact_sha256(self, args: dict[str, t.Any], problems: list[str]) -> str | None:
        if args["mode"] != "deploy":
            return None
        if not args["artifact"]:
            problems.append("deploy_artifact is not set: name the release archive on the controller")
            return None
        try:
            path = self._find_needle("files", args["artifact"])
        except AnsibleError:
            problems.append(f"deploy_artifact {args['artifact']} does not exist on the controller")
            return None
        actual = sha256_of(path)
        given = args["artifact_sha256"].strip().lower().removeprefix("sha256:")
        if given and given != actual:
            problems.append(f"deploy_artifact_sha256 {given} does not match deploy_artifact {args['artifact']} (sha256 {actual})")
        return actual

    def _read_load_balancer(self, args: dict[str, t.Any], task_vars: dict[str, t.Any]) -> dict[str, t.Any]:
        if args["strategy"] == "blue_green":
            module_args = {"backends": [str(b) for b in (args["bg_backends"] or {}).values()], "maps": [args["bg_map"]] if args["bg_map"] else []}
        else:
            module_args = {"backends": [args["backend"]] if args["backend"] else []}
        if not module_args["backends"]:
            return {"backends": {}, "maps": {}}
        info = self._execute_module(
            module_name="sre.ops.haproxy_info",
            module_args={"socket": args["socket"], "timeout": args["timeout"], **module_args},
            task_vars=task_vars,
        )
        if info.get("failed"):
            raise AnsibleActionFail(f"cannot read the load balancer (deploy_lb_socket {args['socket']}): {info.get('msg')}")
        return info
