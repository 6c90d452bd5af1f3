# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

import pytest

from ansible_collections.sre.ops.plugins.plugin_utils import _plan

COPY_NEW_FILE = {"changed": True, "diff": [{"before": "", "after_header": "/etc/app.conf", "after": "a=1\n"}]}
COPY_EDIT = {"changed": True, "diff": [{"before_header": "/etc/app.conf", "before": "a=0\n", "after_header": "/etc/app.conf", "after": "a=1\n"}]}
FILE_ABSENT = {"changed": True, "diff": {"before": {"path": "/x", "state": "file"}, "after": {"path": "/x", "state": "absent"}}}
FILE_NEW_DIR = {"changed": True, "diff": {"before": {"path": "/x", "state": "absent"}, "after": {"path": "/x", "state": "directory"}}}


@pytest.mark.parametrize(
    "action, status, result, args, expected",
    [
        ("ansible.builtin.copy", "ok", COPY_NEW_FILE, {}, ["create"]),
        ("ansible.builtin.copy", "ok", COPY_EDIT, {}, ["update"]),
        ("ansible.builtin.template", "ok", {"changed": True}, {}, ["update"]),
        ("ansible.builtin.file", "ok", FILE_ABSENT, {"state": "absent"}, ["delete"]),
        ("file", "ok", FILE_NEW_DIR, {"state": "directory"}, ["create"]),
        ("ansible.builtin.copy", "ok", {"changed": False}, {}, ["noop"]),
        ("ansible.builtin.command", "ok", {"changed": True, "cmd": ["echo"]}, {}, ["exec"]),
        ("ansible.builtin.command", "ok", {"changed": False}, {}, ["noop"]),
        ("ansible.builtin.shell", "skipped", {"msg": "Command would have run if not in check mode"}, {}, ["exec"]),
        ("ansible.builtin.script", "skipped", {"msg": "Check mode is not supported for this task."}, {}, ["exec"]),
        ("community.general.thing", "skipped", {"msg": "remote module (thing) does not support check mode"}, {}, ["unknown"]),
        ("ansible.builtin.systemd_service", "ok", {"changed": True, "state": "started"}, {"state": "restarted"}, ["restart"]),
        ("sre.ops.app_restart", "ok", {"changed": True, "cmd": ["appctl", "restart"]}, {"command": "appctl restart"}, ["restart"]),
        ("ansible.builtin.service", "ok", {"changed": True}, {"enabled": True}, ["update"]),
        ("ansible.builtin.apt", "ok", {"changed": True}, {"state": "absent"}, ["delete"]),
        ("ansible.builtin.dnf", "ok", {"changed": True}, {"state": "latest"}, ["update"]),
        ("ansible.builtin.package", "ok", {"changed": True}, {"name": "nginx"}, ["create"]),
        ("ansible.builtin.user", "ok", {"changed": True}, {"state": "absent"}, ["delete"]),
        ("ansible.builtin.set_fact", "ok", {"changed": True}, {}, ["noop"]),
        ("ansible.builtin.add_host", "ok", {"changed": True}, {}, ["noop"]),
        ("sre.ops.health_check", "ok", {"changed": True}, {}, ["noop"]),
        ("ansible.builtin.uri", "ok", {"changed": True}, {"method": "POST"}, ["update"]),
        ("ansible.builtin.debug", "failed", {"msg": "x"}, {}, ["failed"]),
        ("ansible.builtin.ping", "unreachable", {"msg": "x"}, {}, ["unreachable"]),
        ("ansible.builtin.debug", "skipped", {"skip_reason": "No items in the list"}, {}, ["noop"]),
    ],
)
def test_classify(action, status, result, args, expected):
    assert _plan.classify(action, status, result, args=args, check_mode=True).actions == expected


@pytest.mark.parametrize(
    "result, expected",
    [
        ({"changed": True, "switched": True, "previous": "", "staged": True, "pruned": []}, ["create"]),
        ({"changed": True, "switched": True, "previous": "v1", "staged": True, "pruned": []}, ["update"]),
        ({"changed": True, "switched": True, "previous": "v1", "staged": False, "pruned": ["v0"]}, ["update", "delete"]),
        ({"changed": True, "switched": False, "staged": True, "pruned": []}, ["create"]),
        ({"changed": True, "switched": False, "staged": False, "pruned": ["v0"]}, ["delete"]),
        ({"changed": True, "switched": False, "staged": False, "pruned": []}, ["update"]),
        ({"changed": False, "switched": False, "staged": False, "pruned": []}, ["noop"]),
    ],
)
def test_release_module_classes(result, expected):
    """A first release is create, a switch update, pruned releases delete, a ledger mark update."""
    assert _plan.classify("sre.ops.release", "ok", result).actions == expected


def test_a_declared_action_wins_and_a_bad_declaration_is_ignored():
    declared = {"changed": True, "sreops_action": ["restart", "update"], "diff": COPY_NEW_FILE["diff"]}
    assert _plan.classify("my.coll.thing", "ok", declared).actions == ["restart", "update"], "the module's order: its main action first"
    assert _plan.classify("my.coll.thing", "ok", {"changed": False, "sreops_action": "noop"}).actions == ["noop"]
    bogus = {"changed": True, "sreops_action": ["update", "explode"], "diff": COPY_NEW_FILE["diff"]}
    assert _plan.classify("my.coll.thing", "ok", bogus).actions == ["create"], "an unknown class must not be trusted"
    assert _plan.classify("my.coll.thing", "ok", {"changed": True, "sreops_action": "failed"}).actions == ["update"]


def test_a_conditional_skip_is_noop_unless_check_mode_could_not_know():
    skipped = {"skip_reason": "Conditional result was False", "false_condition": "out.rc != 0 and not other"}
    assert _plan.classify("debug", "skipped", skipped, check_mode=True).actions == ["noop"]
    outcome = _plan.classify("copy", "skipped", skipped, check_mode=True, unpredictable_vars={"out"})
    assert outcome.actions == ["unknown"] and "out" in outcome.reason and outcome.unpredictable
    # in a real run the skip is what happened
    assert _plan.classify("copy", "skipped", skipped, check_mode=False, unpredictable_vars={"out"}).actions == ["noop"]
    only_check = {"skip_reason": "Conditional result was False", "false_condition": "not ansible_check_mode"}
    assert _plan.classify("ansible.builtin.copy", "skipped", only_check, check_mode=True).actions == ["unknown"]
    assert _plan.classify("ansible.builtin.uri", "skipped", only_check, check_mode=True).actions == ["noop"], "a GET changes nothing"
    assert _plan.classify("ansible.builtin.uri", "skipped", only_check, args={"method": "DELETE"}, check_mode=True).actions == ["unknown"]


def test_masker_masks_values_everywhere_and_values_under_secret_keys():
    masker = _plan.Masker(names=["db_conn"])
    assert masker.add_from_vars({"app_api_TOKEN": "tok-123456", "db_conn": "pg://u:pw@db", "user": "alice", "pin_secret": "ab"}) == [
        "app_api_TOKEN", "db_conn", "pin_secret"]
    data = {"msg": "token tok-123456 for pg://u:pw@db", "password": "xy", "nested": [{"tok-123456": 1}], "user": "alice", "n": 3}
    masked = masker.data(data)
    text = json.dumps(masked)
    assert "tok-123456" not in text and "pg://u:pw@db" not in text and '"xy"' not in text
    assert masked["user"] == "alice" and masked["n"] == 3
    assert masked["password"] == _plan.MASK
    assert "ab" in masker.text("ab cd"), "a 2-character value is too short to mask as text"


def test_masker_prefers_the_longest_secret():
    masker = _plan.Masker()
    masker.add(["abcd", "abcdefgh"])
    assert masker.text("x abcdefgh y") == f"x {_plan.MASK} y"


def _record(host, address="1:site.yml:3", actions=("update",), diff=None, **kwargs):
    return _plan.Record(host=host, address=address, task="Write config", module="ansible.builtin.copy", actions=list(actions),
                        changed=any(a in _plan.CHANGE_ACTIONS for a in actions), diff=diff or [], **kwargs)


def test_summary_and_closing_line():
    plan = _plan.Plan(check_mode=True)
    for i in range(1, 5):
        plan.add(_record(f"web{i}", actions=["create"] if i <= 2 else ["update"]))
        plan.add(_record(f"web{i}", address="1:site.yml:9", actions=["noop"]))
    plan.add(_record("web1", address="1:site.yml:12", actions=["update"]))
    plan.add(_record("web2", address="1:site.yml:14", actions=["unknown"]))
    assert plan.closing_line() == "Plan: 4 hosts, 5 to change (2 create, 3 update, 0 delete), 1 unknown, 0 failed."
    plan.add(_record("web3", address="1:site.yml:20", actions=["delete", "update"]))
    plan.add(_record("web3", address="1:site.yml:21", actions=["failed"]))
    plan.add(_record("web4", address="1:site.yml:21", actions=["failed"], ignored=True))
    plan.add(_record("web9", address="1:site.yml:3", actions=["unreachable"]))
    summary = plan.summary()
    assert summary.to_change == 6 and summary.counts["delete"] == 1 and summary.counts["update"] == 4
    assert summary.counts["failed"] == 1 and summary.ignored == 1
    assert plan.closing_line() == "Plan: 5 hosts, 6 to change (2 create, 4 update, 1 delete), 1 unknown, 1 failed, 1 unreachable."
    real = _plan.Plan(check_mode=False)
    real.add(_record("web1", actions=["restart"]))
    assert real.closing_line() == "Run: 1 host, 1 changed (0 create, 0 update, 0 delete, 1 restart), 0 unknown, 0 failed."


def test_detailed_exit_status():
    plan = _plan.Plan()
    plan.add(_record("web1", actions=["noop"]))
    plan.add(_record("web1", address="1:a.yml:2", actions=["unknown"]))
    assert plan.exit_status(0) == 0
    assert plan.exit_status(0, unknown_as_change=True) == 2
    plan.add(_record("web2", actions=["update"]))
    assert plan.exit_status(0) == 2
    plan.add(_record("web3", address="1:a.yml:5", actions=["failed"]))
    assert plan.exit_status(2) == 6
    plan.add(_record("web4", actions=["unreachable"]))
    assert plan.exit_status(4) == 14
    # ansible's own errors pass through; a 4 no unreachable host explains is a parser error
    assert plan.exit_status(99) == 99 and plan.exit_status(250) == 250 and plan.exit_status(1) == 1
    assert _plan.Plan().exit_status(4) == 1
    # a failure ansible reports that no record explains still counts
    assert _plan.Plan().exit_status(2) == 4
    assert len({_plan.describe_exit_status(c) for c in (0, 1, 2, 4, 6, 8, 10, 12, 14)}) == 9


def test_identical_changes_on_many_hosts_form_one_group_and_host_names_are_set_aside():
    plan = _plan.Plan()
    for i in range(1, 201):
        host = f"web{i:03d}"
        diff = [{"before": f"listen 10.0.0.{i}\nworkers 2\n", "after": f"listen 10.0.0.{i}\nworkers 4\n"}]
        plan.add(_plan.Record(host=host, address="1:site.yml:7", task=f"Configure {host}", module="ansible.builtin.template",
                              actions=["update"], changed=True, diff=diff, host_address=f"10.0.0.{i}"))
    plan.add(_record("web007", address="1:site.yml:30", actions=["create"]))
    groups = plan.groups(lambda r: r.is_change)
    assert [len(g.hosts) for g in groups] == [200, 1]
    assert groups[0].task == "Configure {host}"
    markdown = plan.markdown()
    assert "same change on 200 hosts: web001..web200" in markdown
    assert len(markdown.splitlines()) < 60, "a 200-host plan with one change must read in one screen"


def test_hosts_with_different_changes_are_not_grouped():
    plan = _plan.Plan()
    plan.add(_record("web1", diff=[{"before": "a", "after": "b"}]))
    plan.add(_record("web2", diff=[{"before": "a", "after": "c"}]))
    assert len(plan.groups(lambda r: True)) == 2


def test_hidden_records_keep_no_content():
    masker = _plan.Masker()
    record = _record("web1", diff=[{"before": "pw=old", "after": "pw=new"}], msg="pw=new", hidden=True,
                     items=[{"item": "pw=new", "actions": ["update"]}])
    data = record.to_dict(masker)
    assert "pw=" not in json.dumps(data)
    assert data["msg"] == _plan.HIDDEN and data["hidden"] is True and data["action"] == "update"


def test_json_document_masks_secrets_and_has_the_documented_keys():
    plan = _plan.Plan()
    plan.masker.add("s3cr3t-value")
    plan.meta.update({"playbook": "site.yml", "limit": "web1", "ansible_version": "2.19", "collection_version": "0.1.0",
                      "started": "t0", "ended": "t1", "check_mode": True, "diff_mode": True})
    plan.add(_record("web1", diff=[{"before": "x", "after": "key=s3cr3t-value"}], msg="set s3cr3t-value"))
    doc = plan.to_dict(exit_status=2)
    for key in ("format_version", "ansible_version", "collection_version", "playbook", "limit", "check_mode", "diff_mode",
                "started", "ended", "summary", "hosts", "closing_line", "exit_status", "complete"):
        assert key in doc
    assert doc["exit_status"] == {"code": 2, "meaning": "changes pending"}
    assert "s3cr3t-value" not in plan.to_json(2) and "s3cr3t-value" not in plan.markdown(2)
    assert doc["hosts"]["web1"][0]["diff"][0]["after"] == f"key={_plan.MASK}"


def test_markdown_diff_rendering():
    text = _plan.render_diff([{"before_header": "/etc/a", "before": "x=1\n", "after_header": "/etc/a", "after": "x=2\n"},
                              {"prepared": "+ nginx 1.24"}])
    assert "--- /etc/a" in text and "-x=1" in text and "+x=2" in text and "+ nginx 1.24" in text
    assert "```" not in _plan._fence("a ``` b").split("\n", 1)[1].rsplit("\n", 1)[0].replace("a ``` b", "")


def test_compare_plans():
    def doc(records):
        plan = _plan.Plan()
        for r in records:
            plan.add(r)
        return plan.to_dict()

    planned = doc([_record("web1"), _record("web1", address="1:a.yml:5", actions=["exec"])])
    assert not _plan.compare(planned, doc([_record("web1"), _record("web1", address="1:a.yml:5", actions=["exec"])]))
    problems = _plan.compare(planned, doc([_record("web1", actions=["create"]), _record("web1", address="1:a.yml:5", actions=["exec"])]))
    assert problems == ["web1: 1:site.yml:3 (Write config) planned ['update'], ran ['create']"]
    assert _plan.compare(planned, doc([_record("web1")])) == ["web1: 1:a.yml:5 (Write config) planned ['exec'] but did not run"]
    assert _plan.compare(doc([_record("web1")]), doc([_record("web1"), _record("web1", address="1:a.yml:9")])) == [
        "web1: 1:a.yml:9 (Write config) ran ['update'] but was not in the plan"]
    # unknown accepts anything, and tasks after an unknown may differ
    unknown_first = doc([_record("web1", address="1:a.yml:1", actions=["unknown"]), _record("web1")])
    assert not _plan.compare(unknown_first, doc([_record("web1", address="1:a.yml:1", actions=["create"]), _record("web1", address="1:a.yml:2")]))
    assert _plan.compare(planned, doc([_record("web2")])) == ["web1: only in the plan", "web2: only in the run"]


def test_plain_makes_data_json_safe_and_cuts_long_text():
    class Tagged(str):
        pass

    value = _plan.plain({"a": (Tagged("x"), {1, 2}), "b": object(), "c": "y" * (_plan.MAX_TEXT + 10)})
    json.dumps(value)
    assert value["a"][0].__class__ is str and value["c"].endswith("(10 more characters cut)")


def test_normalize_diff_drops_empty_parts():
    assert not _plan.normalize_diff([{"before_header": "x (file attributes)", "after_header": "x (file attributes)"}])
    assert not _plan.normalize_diff({"before": "same", "after": "same"})
    assert _plan.normalize_diff({"before": "a", "after": "b", "extra": 1}) == [{"before": "a", "after": "b"}]


def test_declare_and_notes():
    result = _plan.declare({"changed": False}, "noop", summary="rolling of v2 to web1..web4 in waves of 1, 1, 2")
    assert result == {"changed": False, "sreops_action": "noop", "sreops_summary": "rolling of v2 to web1..web4 in waves of 1, 1, 2"}
    assert _plan.declare({}, ["update", "delete"]) == {"sreops_action": ["update", "delete"]}
    with pytest.raises(ValueError, match="plan actions must be among"):
        _plan.declare({}, ["failed"])
    plan = _plan.Plan()
    plan.add(_plan.Record(host="web1", address="1:a.yml:1", task="Plan the rollout", module="sre.ops.rollout_plan", actions=["noop"],
                          msg=_plan.result_message("sre.ops.rollout_plan", result), note=True))
    markdown = plan.markdown()
    assert "## Notes" in markdown and "Message: rolling of v2 to web1..web4 in waves of 1, 1, 2" in markdown
