# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Drift against a baseline on real trees: what is found, how it is classed, waivers, accept, and the lock."""

from __future__ import annotations

import datetime
import gzip
import json
import multiprocessing
import os
import time

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _drift as drift
from ansible_collections.sre.ops.plugins.module_utils import _snapshot as snap
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError
from ansible_collections.sre.ops.plugins.module_utils import _release as release_utils
from ansible_collections.sre.ops.plugins.module_utils._release import ReleaseManager

TODAY = datetime.date(2026, 6, 1)


class NoCommands:
    def which(self, name):
        return None

    def run(self, argv):
        raise AssertionError(argv)


@pytest.fixture
def host(tmp_path):
    """A host's files: a config tree and an application root managed by sre.ops.release (v1 active)."""
    etc = tmp_path / "etc"
    (etc / "ssh").mkdir(parents=True)
    (etc / "ssh" / "sshd_config").write_text("PermitRootLogin no\n")
    (etc / "motd").write_text("hello\n")
    (etc / "old.conf").write_text("old\n")
    (etc / "log").mkdir()
    (etc / "log" / "app.log").write_text("line 1\n")
    src = tmp_path / "src"
    for version in ("v1", "v2"):
        (src / version).mkdir(parents=True)
        (src / version / "VERSION").write_text(version + "\n")
    app = str(tmp_path / "app")
    ReleaseManager(app).activate("v1", str(src / "v1"), None, [], 5, [])
    return tmp_path


def baseline(host):
    config = snap.make_config(["files"], [{"path": str(host / "etc")}, {"path": str(host / "etc" / "log"), "attributes": ["growing"]},
                                          {"path": str(host / "app")}], [], False)
    path = str(host / "state" / "baseline.json.gz")
    drift.SnapshotManager(path, NoCommands(), workers=1).present(config)
    return path


def manager(path, **kwargs):
    kwargs.setdefault("workers", 1)
    kwargs.setdefault("today", TODAY)
    return drift.DriftManager(path, NoCommands(), **kwargs)


def items(result, facet="files"):
    found = {}
    for change in ("added", "removed", "changed"):
        for item in result["facets"].get(facet, {}).get(change, []):
            found[(change, item["key"])] = item
    return found


def test_no_drift_right_after_the_baseline(host):
    result = manager(baseline(host)).compare()
    assert not result["drifted"] and not result["changed"] and result["counts"]["total"] == 0 and "diff" not in result


def test_every_change_is_found_with_its_attributes(host):
    path = baseline(host)
    etc = host / "etc"
    os.chmod(etc / "motd", 0o600)
    (etc / "old.conf").unlink()
    (etc / "new").write_text("new\n")
    os.chmod(etc / "new", 0o4755)
    (etc / "ssh" / "sshd_config").write_text("PermitRootLogin yes\n")
    with open(etc / "log" / "app.log", "a", encoding="ascii") as handle:
        handle.write("line 2\n")
    result = manager(path).compare()
    found = items(result)
    assert set(found) == {("changed", f"{etc}/motd"), ("removed", f"{etc}/old.conf"), ("added", f"{etc}/new"),
                          ("changed", f"{etc}/ssh/sshd_config")}, "the log grew: not drift"
    assert found[("changed", f"{etc}/motd")]["changes"]["mode"] == {"before": "0644", "after": "0600"}
    assert set(found[("changed", f"{etc}/ssh/sshd_config")]["changes"]) >= {"sha256", "size", "mtime", "ctime"}
    assert found[("added", f"{etc}/new")]["flags"] == ["setuid"] and found[("added", f"{etc}/new")]["attributes"]["mode"] == "4755"
    assert found[("removed", f"{etc}/old.conf")]["attributes"]["type"] == "file"
    assert result["counts"] == {"added": 1, "removed": 1, "changed": 2, "total": 4, "unexpected": 4, "intentional": 0, "waived": 0}
    assert all(i["class"] == "unexpected" for i in found.values())
    assert result["changed"] and "[files] " + str(etc / "new") in result["diff"]["after"]
    assert "mode=0644" in result["diff"]["before"] and "mode=0600" in result["diff"]["after"]


def test_a_truncated_log_is_drift(host):
    path = baseline(host)
    (host / "etc" / "log" / "app.log").write_text("x\n")
    change = items(manager(path).compare())[("changed", f"{host}/etc/log/app.log")]
    assert set(change["changes"]) >= {"size", "sha256"}


def test_changes_under_a_released_app_root_after_the_baseline_are_intentional(host, monkeypatch):
    path = baseline(host)
    # the ledger stamps whole seconds; the deploy happens in a later second than the baseline
    monkeypatch.setattr(release_utils, "now", lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2)))
    ReleaseManager(str(host / "app")).activate("v2", str(host / "src" / "v2"), None, [], 5, [])
    (host / "etc" / "motd").write_text("changed\n")
    result = manager(path).compare()
    app = {key: item for (change, key), item in items(result).items() if key.startswith(str(host / "app"))}
    assert (f"{host}/app/current" in app) and (f"{host}/app/releases/v2/VERSION" in app)
    assert all(item["class"] == "intentional" and item["release"]["release"] == "v2" for item in app.values())
    assert items(result)[("changed", f"{host}/etc/motd")]["class"] == "unexpected"
    assert result["app_roots"] == [str(host / "app")] and [r["release"] for r in result["releases"]] == ["v2"]
    assert result["counts"]["intentional"] == len(app) and result["counts"]["unexpected"] == 1


def test_an_activation_in_the_second_of_the_baseline_or_before_makes_nothing_intentional(host):
    path = baseline(host)
    (host / "app" / "shared" / "extra").write_text("by hand\n")
    result = manager(path).compare()
    assert [i["class"] for i in items(result).values()] == ["unexpected"]
    assert manager(path, app_roots=[]).compare()["app_roots"] == []


def test_a_broken_ledger_makes_changes_unexpected_and_says_so(host, monkeypatch):
    path = baseline(host)
    monkeypatch.setattr(release_utils, "now", lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() + 2)))
    ReleaseManager(str(host / "app")).activate("v2", str(host / "src" / "v2"), None, [], 5, [])
    (host / "app" / "ledger.json").write_text("{broken")
    result = manager(path).compare()
    assert {i["class"] for i in items(result).values()} == {"unexpected"}
    assert any("is not readable as a release ledger" in note for note in result["notes"])


@pytest.mark.parametrize("ledger", [
    {"releases": {"v9": {"activated_at": "2099-01-01T00:00:00Z"}}},
    {"history": [{"event": "activated", "release": "v9", "at": "2099-01-01T00:00:00+00:00"}]},
    {"releases": {"v9": {"activated_at": "2099-01-01T00:00:00.123456Z"}}, "version": 7},
])
def test_ledgers_are_read_defensively(tmp_path, ledger):
    (tmp_path / "ledger.json").write_text(json.dumps(ledger))
    found, note = drift.ledger_activations(str(tmp_path), datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))
    assert [a["release"] for a in found] == ["v9"] and note is None
    (tmp_path / "ledger.json").write_text(json.dumps(["not", "a", "ledger"]))
    assert drift.ledger_activations(str(tmp_path), datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc))[0] == []


def test_waivers_hide_drift_until_they_expire(host):
    path = baseline(host)
    (host / "etc" / "motd").write_text("changed\n")
    (host / "etc" / "ssh" / "sshd_config").write_text("changed\n")
    waivers = [
        {"id": "motd", "hosts": ["web*"], "facet": "files", "key": "*/motd", "justification": "marketing edits it", "expires": "2026-06-01"},
        {"id": "ssh", "hosts": "db", "key": "*/sshd_config", "justification": "db only"},
        {"id": "old-ssh", "hosts": "all", "key": "*/ssh/*", "justification": "until the 2025 migration", "expires": "2025-12-31"},
    ]
    result = manager(path, host="web1", groups=["web"], waivers=waivers).compare()
    found = items(result)
    motd = found[("changed", f"{host}/etc/motd")]
    assert motd["class"] == "waived" and motd["waiver"] == {"id": "motd", "justification": "marketing edits it", "expires": "2026-06-01"}
    ssh = found[("changed", f"{host}/etc/ssh/sshd_config")]
    assert ssh["class"] == "unexpected" and ssh["expired_waiver"] == "old-ssh"
    assert [(w["id"], w["items"]) for w in result["expired_waivers"]] == [("old-ssh", 1)]
    assert result["counts"]["waived"] == 1 and result["counts"]["unexpected"] == 1
    later = manager(path, host="web1", groups=["web"], waivers=waivers, today=datetime.date(2026, 6, 2)).compare()
    assert items(later)[("changed", f"{host}/etc/motd")]["class"] == "unexpected", "expired the day after expires"
    in_db_group = manager(path, host="db7", groups=["db"], waivers=waivers).compare()
    assert items(in_db_group)[("changed", f"{host}/etc/ssh/sshd_config")]["class"] == "waived"


def test_an_attribute_waiver_hides_only_changes_of_those_attributes(host):
    path = baseline(host)
    os.utime(host / "etc" / "motd", ns=(10**18, 10**18))
    (host / "etc" / "ssh" / "sshd_config").write_text("changed\n")
    waivers = [{"key": "*", "attribute": ["mtime", "ctime"], "justification": "touched by backups"}]
    found = items(manager(path, waivers=waivers).compare())
    assert found[("changed", f"{host}/etc/motd")]["class"] == "waived"
    assert found[("changed", f"{host}/etc/ssh/sshd_config")]["class"] == "unexpected"


@pytest.mark.parametrize("rules, message", [
    ([{"key": "/etc/*"}], r"waivers\[0\] \(waiver-1\): justification is required"),
    ([{"id": "x", "key": "/etc/*", "justification": "ok", "expires": "next week"}], r"waivers\[0\] \(x\): expires must be a date"),
    ([{"key": "/etc/*", "justification": "ok", "pattern": "*"}], r"has unknown keys pattern"),
    ([{"key": "/etc/*", "path": "/x", "justification": "ok"}], "give key or path, not both"),
    ([{"justification": "ok", "change": "edited"}], r"change: edited is not one of added, removed, changed"),
    ("everything", "waivers must be a list of rules"),
])
def test_bad_waivers_are_refused_with_the_rule_named(rules, message):
    with pytest.raises(InvalidInputError, match=message):
        drift.parse_waivers(rules)


def test_waiver_files_may_be_a_mapping_with_dates():
    parsed = drift.parse_waivers({"waivers": [{"path": "/etc/x", "justification": "ok", "expires": datetime.date(2027, 1, 2)}]})
    assert parsed[0]["key"] == "/etc/x" and parsed[0]["expires"] == "2027-01-02" and parsed[0]["hosts"] == ["*"]


def test_accept_records_who_when_why_and_check_mode_writes_nothing(host):
    path = baseline(host)
    (host / "etc" / "motd").write_text("changed\n")
    before = open(path, "rb").read()
    preview = manager(path, check_mode=True).accept("CHG-1", "alice", "awx job 7")
    assert preview["changed"] and preview["accepted"]["by"] == "alice" and preview["accepted"]["job"] == "awx job 7"
    assert open(path, "rb").read() == before
    applied = manager(path).accept("CHG-1", "alice")
    assert applied["changed"] and applied["accepted"]["reason"] == "CHG-1"
    assert applied["accepted"]["counts"] == {"total": 1, "unexpected": 1, "intentional": 0, "waived": 0}
    again = manager(path).accept("CHG-1", "alice")
    assert not again["changed"] and "accepted" not in again
    preview_again = manager(path, check_mode=True).accept("CHG-1", "alice")
    assert not preview_again["changed"]
    stored = snap.read_snapshot(path)
    assert [a["reason"] for a in stored["acceptances"]] == ["CHG-1"] and stored["acceptances"][0]["by"] == "alice"
    assert not manager(path).compare()["drifted"]
    with pytest.raises(InvalidInputError, match="reason is required"):
        manager(path).accept("  ", "alice")


def test_a_missing_or_corrupt_baseline_says_how_to_create_one(tmp_path):
    with pytest.raises(drift.DriftError, match="no baseline at .*: take one first with sre.ops.host_snapshot"):
        manager(str(tmp_path / "none.json.gz")).compare()
    corrupt = tmp_path / "bad.json.gz"
    corrupt.write_bytes(gzip.compress(b"{"))
    with pytest.raises(drift.DriftError, match="cannot be used: .* is corrupt.*Take a new one with sre.ops.host_snapshot"):
        manager(str(corrupt)).compare()
    with pytest.raises(InvalidInputError, match="must be absolute"):
        manager("relative.json.gz")


def test_results_are_bounded_but_counts_are_exact(host):
    path = baseline(host)
    for index in range(30):
        (host / "etc" / f"new{index}").write_text("x")
    result = manager(path, max_items=10).compare()
    files = result["facets"]["files"]
    assert files["truncated"] and len(files["added"]) == 10 and files["counts"]["added"] == 30 and result["counts"]["added"] == 30


def test_facets_the_host_cannot_provide_are_not_compared(host):
    path = baseline(host)
    doc = snap.read_snapshot(path)
    doc["facets"]["packages"] = {"status": "ok", "items": {"bash": {"version": "5.2"}}, "digest": "x", "count": 1}
    doc["config"]["facets"].append("packages")
    snap.write_snapshot(path, doc)
    result = manager(path).compare()  # now: neither dpkg nor rpm
    assert "packages" not in result["facets"] and any(n.startswith("packages: not compared (now unavailable") for n in result["notes"])


def test_snapshot_manager_is_idempotent_and_refuses_to_overwrite_drift(host):
    config = snap.make_config(["files"], [{"path": str(host / "etc")}], [], False)
    path = str(host / "state" / "snap.json.gz")
    checked = drift.SnapshotManager(path, NoCommands(), check_mode=True, workers=1).present(config)
    assert checked["changed"] and not os.path.exists(host / "state"), "check mode writes nothing, not even the lock"
    first = drift.SnapshotManager(path, NoCommands(), workers=1).present(config)
    assert first["changed"] and first["bytes"] > 0 and first["diff"]["before"] == ""
    second = drift.SnapshotManager(path, NoCommands(), workers=1).present(config)
    assert not second["changed"] and second["taken_at"] == first["taken_at"] and "diff" not in second
    (host / "etc" / "motd").write_text("changed\n")
    with pytest.raises(drift.DriftError, match="overwrite is false"):
        drift.SnapshotManager(path, NoCommands(), workers=1).present(config, overwrite=False)
    replaced = drift.SnapshotManager(path, NoCommands(), workers=1).present(config)
    assert replaced["changed"] and "motd" in replaced["diff"]["after"]
    gone = drift.SnapshotManager(path, NoCommands(), workers=1).absent()
    assert gone["changed"] and not os.path.exists(path)
    assert not drift.SnapshotManager(path, NoCommands(), workers=1).absent()["changed"]


def test_snapshot_info_reads_without_writing(host):
    path = baseline(host)
    info = drift.snapshot_info(path, roots=[str(host / "etc")])
    assert info["exists"] and str(host / "etc") in info["trees"] and info["acceptances"] == []
    assert drift.snapshot_info(str(host / "none.json.gz")) == {"changed": False, "exists": False, "path": str(host / "none.json.gz")}


def _accept_in_child(path, events, results, role):
    """Accept in a child process; the first one waits inside (bounded) until the other one has read the baseline."""
    real_read = drift.read_snapshot
    real_take = drift.take_snapshot

    def read(p):
        doc = real_read(p)
        if role == "second":
            events["second_read"].set()
        return doc

    def take(*args, **kwargs):
        if role == "first":
            events["first_inside"].set()
            events["second_read"].wait(1.0)  # set only if the second accept could read while the first decides
        return real_take(*args, **kwargs)

    drift.read_snapshot = read
    drift.take_snapshot = take
    if role == "second":
        events["first_inside"].wait(30)
    result = drift.DriftManager(path, NoCommands(), workers=1, today=TODAY).accept(f"by {role}", role)
    results[role] = result["changed"]


def test_two_accepts_at_once_accept_once(host):
    path = baseline(host)
    (host / "etc" / "motd").write_text("changed\n")
    context = multiprocessing.get_context("fork")
    manager_ = context.Manager()
    events = {"first_inside": manager_.Event(), "second_read": manager_.Event()}
    results = manager_.dict()
    processes = [context.Process(target=_accept_in_child, args=(path, events, results, role)) for role in ("first", "second")]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    assert [p.exitcode for p in processes] == [0, 0]
    assert dict(results) == {"first": True, "second": False}, "the second accept waited for the first and found nothing left"
    assert [a["by"] for a in snap.read_snapshot(path)["acceptances"]] == ["first"]
