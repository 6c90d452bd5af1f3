# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.drift_compare: plan the fleet comparison's rounds and compare, on the controller, from registered results."""

from __future__ import annotations

import json
import typing as t

from ansible.plugins.action import ActionBase

from ansible_collections.sre.ops.plugins.module_utils._drift_fleet import AGAINST, FleetInput, compare_fleet, plan_details, plan_entries
from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError

ARGUMENT_SPEC = {
    "phase": {"type": "str", "choices": ["details", "entries", "report"], "required": True},
    "against": {"type": "str", "choices": list(AGAINST), "default": "majority"},
    "golden": {"type": "str"},
    "groups": {"type": "list", "elements": "str", "default": []},
    "hosts": {"type": "list", "elements": "str"},
    "summary_var": {"type": "str", "default": "drift_fleet_summary"},
    "details_var": {"type": "str", "default": "drift_fleet_details"},
    "entries_var": {"type": "str", "default": "drift_fleet_entries"},
    "ignore": {"type": "list", "elements": "dict", "default": []},
    "max_items": {"type": "int", "default": 200},
}


def _usable(result: t.Any) -> bool:
    return isinstance(result, dict) and not result.get("failed") and not result.get("skipped") and not result.get("unreachable")


def _size(value: t.Any) -> int:
    return len(json.dumps(value, default=str, separators=(",", ":")))


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _requires_connection = False

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC, required_if=[("against", "golden", ["golden"])])
        hosts = args["hosts"] if args["hosts"] is not None else list(task_vars.get("ansible_play_hosts") or [])
        hostvars = task_vars.get("hostvars") or {}

        def registered(name: str) -> dict[str, dict[str, t.Any]]:
            found = {}
            for host in hosts:
                value = (hostvars.get(host) or {}).get(name) if host in hostvars else None
                if _usable(value):
                    found[host] = value
            return found

        summaries = {h: r["summary"] for h, r in registered(args["summary_var"]).items() if "summary" in r}
        inventory_groups = task_vars.get("groups") or {}
        if args["groups"]:
            unknown = [g for g in args["groups"] if g not in inventory_groups]
            if unknown:
                return dict(result, failed=True, msg=f"groups: {', '.join(unknown)} not in the inventory")
            groups = {g: [h for h in inventory_groups[g] if h in hosts] for g in args["groups"]}
        else:
            groups = {"all": list(hosts)}
        details = registered(args["details_var"]) if args["phase"] in ("entries", "report") else {}
        entries = registered(args["entries_var"]) if args["phase"] == "report" else {}
        try:
            data = FleetInput(groups, summaries, against=args["against"], golden=args["golden"], details=details, entries=entries,
                              ignore=args["ignore"])
            if args["phase"] == "details":
                return dict(result, changed=False, requests=plan_details(data), missing=sorted(set(hosts) - set(summaries)))
            if args["phase"] == "entries":
                return dict(result, changed=False, requests=plan_entries(data), missing=sorted(set(hosts) - set(summaries)))
            fleet = compare_fleet(data, max_items=args["max_items"])
        except SreOpsError as exc:
            return dict(result, failed=True, msg=exc.msg)
        # What crossed the network per host: the requests of rounds 2 and 3 (round 1's arguments are the same for
        # every host: the facets and file rules) and every result it returned.
        requests = [plan_details(FleetInput(groups, summaries, args["against"], args["golden"], ignore=args["ignore"])),
                    plan_entries(FleetInput(groups, summaries, args["against"], args["golden"], details=details, ignore=args["ignore"]))]
        moved = {}
        for host in hosts:
            received = 0
            for name in (args["summary_var"], args["details_var"], args["entries_var"]):
                value = (hostvars.get(host) or {}).get(name) if host in hostvars else None
                if _usable(value):
                    received += _size(value)
            moved[host] = {"sent": sum(_size(r[host]) for r in requests if host in r), "received": received}
        fleet["bytes"] = moved
        fleet["missing"] = sorted(set(hosts) - set(summaries))
        return dict(result, changed=False, fleet=fleet, outliers=fleet["outliers"])
