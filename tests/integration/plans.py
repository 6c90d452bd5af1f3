# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sre.ops.plan callback in runs that test something else: record the plan of every run on a fleet, and prove
that a --check run's plan equals what the real run right after it records (docs/plan.md, "What the plan says and
what the run does")."""

from __future__ import annotations

import json
import os
import typing as t

from sreops_fleet import Fleet

from ansible_collections.sre.ops.plugins.plugin_utils import _plan

# Tasks of the deploy role a --check run cannot predict, each for a documented reason (docs/plan.md):
DEPLOY_UNKNOWNS = frozenset((
    # marking a release good needs it to pass its health gate, and a release --check did not stage is not running yet
    "sre.ops.deploy : Record that the release passed its gates",
    "sre.ops.deploy : Record that the canary release passed its gates",
    # --check did not drain the servers, so the load balancer cannot show what putting them back (or weighing them) changes
    "sre.ops.deploy : Put the wave back into the load balancer",
    "sre.ops.deploy : Canaries back at full weight",
    "sre.ops.deploy : Send the step's share of the backend's traffic to the canaries",
))


def record_plans(fleet: Fleet, plan_dir: str) -> None:
    """From now on every ansible run on the fleet also writes its plan: ``plan_dir``/latest.json."""
    base = fleet.env

    def env() -> dict[str, str]:
        return dict(base(), ANSIBLE_CALLBACKS_ENABLED="sre.ops.plan", SREOPS_PLAN_DIR=plan_dir)

    fleet.env = env  # type: ignore[method-assign]
    fleet.plans = plan_dir  # type: ignore[attr-defined]


def latest_plan(fleet: Fleet) -> dict[str, t.Any]:
    with open(os.path.join(fleet.plans, "latest.json"), encoding="utf-8") as handle:  # type: ignore[attr-defined]
        return json.load(handle)


def unknowns(plan: dict[str, t.Any]) -> set[tuple[str, str]]:
    return {(host, r["task"]) for host, records in plan["hosts"].items() for r in records if r["action"] == "unknown"}


def assert_fidelity(planned: dict[str, t.Any], ran: dict[str, t.Any], allowed_unknowns: t.Collection[str] = DEPLOY_UNKNOWNS) -> None:
    """The check run's plan and the real run's record agree: same hosts, tasks, classes and counts, except documented unknowns."""
    assert planned["check_mode"] is True and ran["check_mode"] is False
    problems = _plan.compare(planned, ran)
    assert not problems, "the plan and the run disagree:\n" + "\n".join(problems)
    undocumented = sorted(task for _host, task in unknowns(planned) if task not in allowed_unknowns)
    assert not undocumented, f"the plan cannot predict {undocumented}: a role or module bug, or an unknown to document"
    assert ran["summary"]["unknown"] == 0 and ran["summary"]["failed"] == 0, ran["closing_line"]
    # Counts: every change the plan predicts is one the run made; the run's other changes are where the plan said unknown.
    run_records = {(host, r["address"]): r for host, records in ran["hosts"].items() for r in records}
    resolved = {}
    for host, records in planned["hosts"].items():
        for record in records:
            if record["action"] == "unknown" and (host, record["address"]) in run_records:
                for action in run_records[(host, record["address"])]["actions"]:
                    resolved[action] = resolved.get(action, 0) + 1
    for action in ("create", "update", "delete", "restart", "exec"):
        assert planned["summary"][action] + resolved.get(action, 0) == ran["summary"][action], (action, planned["closing_line"], ran["closing_line"])


def assert_nothing_to_change(plan: dict[str, t.Any]) -> None:
    assert plan["check_mode"] is True and plan["summary"]["to_change"] == 0 and plan["summary"]["unknown"] == 0, plan["closing_line"]
    assert plan["closing_line"].startswith("Plan: ") and " 0 to change (0 create, 0 update, 0 delete), 0 unknown, 0 failed." in plan["closing_line"]
