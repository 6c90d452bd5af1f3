# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of sre.ops.rollout_report: assemble the rollout report in Python and write it as JSON."""

from __future__ import annotations

import json
import os
import tempfile
import time
import typing as t

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

from ansible_collections.sre.ops.plugins.module_utils._rollout import assemble_report, report_lines

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "plan": {"type": "dict", "required": True},
    "records": {"type": "list", "elements": "dict", "default": []},
    "analyses": {"type": "list", "elements": "dict", "default": []},
    "held": {"type": "bool", "default": False},
    "report_dir": {"type": "path", "default": ""},
}


def write_json(path: str, document: dict[str, t.Any]) -> None:
    """Written beside its final name and renamed into place: a reader never sees half a report."""
    directory = os.path.dirname(path)
    os.makedirs(directory, mode=0o755, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".report-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(document, handle, indent=2, sort_keys=True)
            handle.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)
    _requires_connection = False

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        plan = args["plan"]
        for key in ("run_id", "started", "hosts", "waves", "canary", "mode", "strategy"):
            if key not in plan:
                raise AnsibleActionFail(f"plan is not a sre.ops.rollout_plan result (it has no {key!r})")
        check_mode = bool(plan.get("check_mode"))
        report = assemble_report(plan, args["records"], args["analyses"], run_id=plan["run_id"], started=float(plan["started"]),
                                 ended=time.time(), check_mode=check_mode, held=args["held"])
        path = ""
        if args["report_dir"]:
            suffix = "-rollback" if report["mode"] == "rollback" else ""
            path = os.path.join(args["report_dir"], f"{report['run_id']}-{report['strategy']}{suffix}{'-plan' if check_mode else ''}.json")
            try:
                write_json(path, report)
            except OSError as exc:
                raise AnsibleActionFail(f"cannot write the report to deploy_report_dir {args['report_dir']}: {exc}") from None
        result.update(changed=False, report=report, path=path, lines=report_lines(report, path))
        return result
