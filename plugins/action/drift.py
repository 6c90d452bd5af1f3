# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of sre.ops.drift: load the waivers file, name the host and its groups, say who accepts."""

from __future__ import annotations

import datetime
import getpass
import typing as t

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.sre.ops.plugins.module_utils._drift import parse_waivers
from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError


def plain(value: t.Any) -> t.Any:
    """YAML dates become YYYY-MM-DD strings, so they cross to the host as JSON."""
    if isinstance(value, (datetime.date, datetime.datetime)):
        return value.isoformat()[:10]
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


class ActionModule(ActionBase):

    TRANSFERS_FILES = False

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        waivers = plain(list(args.get("waivers") or []))
        waivers_file = args.pop("waivers_file", None)
        if waivers_file:
            try:
                path = self._find_needle("files", waivers_file)
                loaded = self._loader.load_from_file(path, cache="none")
            except AnsibleError as exc:
                return dict(result, failed=True, msg=f"waivers_file {waivers_file}: {exc.message}")
            if isinstance(loaded, dict) and "waivers" in loaded:
                loaded = loaded["waivers"]
            if loaded is None:
                loaded = []
            try:
                parse_waivers(plain(loaded))
            except SreOpsError as exc:
                return dict(result, failed=True, msg=f"waivers_file {waivers_file}: {exc.msg}")
            waivers += plain(list(loaded))
        args["waivers"] = waivers
        args.setdefault("host_name", task_vars.get("inventory_hostname"))
        args.setdefault("host_groups", list(task_vars.get("group_names") or []))
        if args.get("state") == "accepted":
            if not args.get("accepted_by"):
                args["accepted_by"] = task_vars.get("awx_user_name") or task_vars.get("tower_user_name") or getpass.getuser()
            if not args.get("job") and (task_vars.get("awx_job_id") or task_vars.get("tower_job_id")):
                args["job"] = f"awx job {task_vars.get('awx_job_id') or task_vars.get('tower_job_id')}"
        result.update(self._execute_module(module_name="sre.ops.drift", module_args=args, task_vars=task_vars))
        return result
