# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.drift_report: one report for the play's hosts, JSON and Markdown, written on the controller."""

from __future__ import annotations

import json
import os
import typing as t

from ansible.plugins.action import ActionBase

from ansible_collections.sre.ops.plugins.module_utils._drift_report import build_report, render_markdown
from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._io import write_atomic

ARGUMENT_SPEC = {
    "results_var": {"type": "str", "default": "drift_result"},
    "hosts": {"type": "list", "elements": "str"},
    "mode": {"type": "str", "default": "check"},
    "fleet": {"type": "dict"},
    "dest": {"type": "path"},
    "name": {"type": "str", "default": "drift-report"},
    "markdown_limit": {"type": "int", "default": 65536},
}


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        hosts = args["hosts"] if args["hosts"] is not None else list(task_vars.get("ansible_play_hosts_all") or [])
        hostvars = task_vars.get("hostvars") or {}
        results = {}
        for host in hosts if args["results_var"] else []:
            value = (hostvars.get(host) or {}).get(args["results_var"]) if host in hostvars else None
            results[host] = value if isinstance(value, dict) else {"failed": True, "msg": "unreachable or no result"}
        fleet = args["fleet"]
        if fleet is not None and "fleet" in fleet and "hosts" not in fleet:
            fleet = fleet["fleet"]  # the registered drift_compare result itself
        report = json.loads(json.dumps(build_report(results, mode=args["mode"], fleet=fleet), default=str))
        markdown = render_markdown(report)
        paths = {}
        if args["dest"]:
            try:
                os.makedirs(args["dest"], exist_ok=True)
                for suffix, payload in (("json", json.dumps(report, indent=2, sort_keys=True) + "\n"), ("md", markdown)):
                    path = os.path.join(args["dest"], f"{args['name']}.{suffix}")
                    write_atomic(path, payload.encode("utf-8"), mode=0o644)
                    paths[suffix] = path
            except (OSError, SreOpsError) as exc:
                return dict(result, failed=True, msg=f"cannot write the report under {args['dest']}: {exc}")
        limit = args["markdown_limit"]
        shown = markdown if len(markdown) <= limit else markdown[:limit] + "\n… (truncated; the full report is in the files)\n"
        return dict(
            result,
            changed=False,
            counts=report["counts"],
            hosts=report["hosts"],
            expired_waivers=report["expired_waivers"],
            json_path=paths.get("json"),
            markdown_path=paths.get("md"),
            markdown=shown,
            report=report,
        )
