# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _retention
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError
from ansible_collections.sre.ops.plugins.module_utils._restic import Repository
from ansible_collections.sre.ops.plugins.module_utils._retention import RetentionError, RetentionManager

from ...utils.restic_fakes import FakeRunner, fixture


def test_policy_args_map_every_option():
    args = _retention.policy_args({"keep_last": 3, "keep_daily": 7, "keep_hourly": 0, "keep_within": "1y6m", "keep_within_daily": "30d",
                                   "keep_tag": ["golden", "a,b"]})
    assert args == ["--keep-last", "3", "--keep-daily", "7", "--keep-within", "1y6m", "--keep-within-daily", "30d",
                    "--keep-tag", "golden", "--keep-tag", "a,b"]


@pytest.mark.parametrize("policy, message", [
    ({}, "the retention policy keeps nothing"),
    ({"keep_last": 0, "keep_daily": 0}, "the retention policy keeps nothing"),
    ({"keep_last": -1}, "keep_last must be 0 or more"),
    ({"keep_within": "2 weeks"}, "keep_within '2 weeks' is not a restic duration"),
])
def test_bad_policies(policy, message):
    with pytest.raises(InvalidInputError, match=message):
        _retention.policy_args(policy)


def test_parse_forget_keeps_restic_reasons_with_the_right_snapshot():
    stdout, _err = fixture("forget-dry-run")
    groups = _retention.parse_forget(json.loads(stdout))
    web1 = next(g for g in groups if g["host"] == "web1")
    assert [s["time"][:10] for s in web1["keep"]][1:] == ["2026-02-01"]
    assert web1["keep"][0]["reasons"] == ["last snapshot", "monthly snapshot"] and web1["keep"][1]["reasons"] == ["last snapshot"]
    assert [s["time"][:10] for s in web1["remove"]] == ["2026-01-09", "2026-01-02", "2026-01-01"]
    web2 = next(g for g in groups if g["host"] == "web2")
    assert web2["remove"] == [] and web2["keep"][0]["reasons"] == ["last snapshot", "monthly snapshot"]


def snap(i, time):
    return {"id": f"{i:064x}", "short_id": f"{i:08x}", "time": time}


def test_refusals_guard_every_snapshot_and_the_newest():
    group = {"host": "web1", "paths": ["/srv"], "tags": [], "keep": [], "remove": [snap(1, "2026-01-01T00:00:00Z")]}
    assert "removes every snapshot" in _retention.refusals([group], False, False)[0]
    assert _retention.refusals([group], True, False) == []
    group = {"host": "web1", "paths": ["/srv"], "tags": [], "keep": [snap(1, "2026-01-01T00:00:00Z")], "remove": [snap(2, "2026-02-01T00:00:00Z")]}
    assert "removes the newest snapshot 00000002" in _retention.refusals([group], False, False)[0]
    assert _retention.refusals([group], False, True) == []


def manager(runner, **kwargs):
    return RetentionManager(Repository("/r", runner=runner, password="pw"), **kwargs)


def test_check_mode_runs_only_the_dry_run():
    stdout, _err = fixture("forget-dry-run")
    runner = FakeRunner().add("forget --dry-run", stdout=stdout)
    result = manager(runner, policy={"keep_last": 2, "keep_monthly": 1}, check_mode=True).run()
    assert len(runner.calls) == 1 and "--no-lock" in runner.calls[0]
    assert result["changed"] and len(result["removed"]) == 3 and not result["pruned"]
    assert len(result["diff"]["before"]["snapshots"]) == len(result["diff"]["after"]["snapshots"]) + 3


def test_real_run_removes_exactly_what_the_dry_run_chose_then_prunes():
    stdout, _err = fixture("forget-dry-run")
    runner = FakeRunner().add("forget --dry-run", stdout=stdout).add("forget").add("prune")
    result = manager(runner, policy={"keep_last": 2, "keep_monthly": 1}, prune=True, max_unused="10%").run()
    assert runner.commands() == ["forget", "forget", "prune"]
    assert runner.calls[1][-3:] == result["removed"] and "--keep-last" not in runner.calls[1]
    assert runner.calls[2][-2:] == ["--max-unused", "10%"] and result["pruned"]


def test_nothing_to_remove_is_ok_and_does_not_prune():
    runner = FakeRunner().add("forget --dry-run", stdout=json.dumps([{"host": "web1", "keep": [snap(1, "2026-01-01T00:00:00Z")], "remove": []}]))
    result = manager(runner, policy={"keep_last": 5}, prune=True).run()
    assert not result["changed"] and runner.commands() == ["forget"]


def test_refused_policy_removes_nothing():
    doc = [{"host": "web1", "paths": ["/srv"], "keep": [], "remove": [snap(1, "2026-01-01T00:00:00Z")]}]
    runner = FakeRunner().add("forget --dry-run", stdout=json.dumps(doc))
    with pytest.raises(RetentionError, match="refusing the retention policy, nothing was removed") as info:
        manager(runner, policy={"keep_tag": ["never-used"]}).run()
    assert len(runner.calls) == 1 and info.value.details["result"]["removed"] == [doc[0]["remove"][0]["id"]]


def test_filters_and_grouping_reach_restic():
    runner = FakeRunner().add("forget --dry-run", stdout="[]")
    manager(runner, policy={"keep_daily": 7}, host="web1", tags=["app", "db"], paths=["/srv"], group_by=["host", "tags"]).run()
    argv = runner.calls[0]
    assert argv[argv.index("--group-by") + 1] == "host,tags" and argv[argv.index("--host") + 1] == "web1"
    assert argv[argv.index("--tag") + 1] == "app,db" and argv[argv.index("--path") + 1] == "/srv"
    with pytest.raises(InvalidInputError, match="group_by accepts"):
        manager(runner, policy={"keep_daily": 7}, group_by=["hostname"])
