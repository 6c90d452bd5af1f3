# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Fleet comparison over snapshots of real trees, one per "host", through the same three rounds the role runs."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _snapshot as snap
from ansible_collections.sre.ops.plugins.module_utils._drift_fleet import FleetInput, compare_fleet, plan_details, plan_entries
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError

ROOT = "/fleet-tree"  # every host's files live at the same path; the trees differ in content


class NoCommands:
    def which(self, name):
        return None

    def run(self, argv):
        raise AssertionError(argv)


def make_tree(base, dirs=4, files=5):
    for d in range(dirs):
        os.makedirs(os.path.join(base, f"d{d}"), exist_ok=True)
        for f in range(files):
            with open(os.path.join(base, f"d{d}", f"f{f}"), "w", encoding="ascii") as handle:
                handle.write(f"content {d} {f}\n" * 20)


def snapshot_of(tree, users=None, sysctl=None):
    """A host's snapshot with its files at ROOT (the tree is scanned where it is, then its paths renamed)."""
    config = snap.make_config(["files"], [{"path": str(tree)}], [], False)
    doc = snap.take_snapshot(config, NoCommands(), workers=1)
    files = doc["facets"]["files"]
    files["roots"] = {ROOT: files["roots"][str(tree)]}
    files["dirs"] = {ROOT + d[len(str(tree)):]: info for d, info in files["dirs"].items()}
    files["rules"][0]["path"] = ROOT
    snap.add_tree_digests(files)
    for name, items in (("users", users or {"root": {"uid": 0}}), ("sysctl", sysctl or {"vm.swappiness": {"value": "60"}})):
        doc["facets"][name] = {"status": "ok", "items": items, "digest": snap.item_digest(items), "count": len(items)}
    return doc


@pytest.fixture
def hosts(tmp_path):
    """web1..web4 with equal trees; tests change some of them before taking the snapshots."""
    make_tree(tmp_path / "web1")
    for name in ("web2", "web3", "web4"):
        shutil.copytree(tmp_path / "web1", tmp_path / name)
    return tmp_path


def rounds(docs, against="majority", golden=None, groups=None, ignore=None):
    """Run the three rounds as the role does; return the comparison, the requests and the bytes each host sent."""
    groups = groups or {"all": sorted(docs)}
    summaries = {h: snap.summary(d) for h, d in docs.items()}
    sent = {h: len(json.dumps(summaries[h])) for h in docs}
    details_plan = plan_details(FleetInput(groups, summaries, against, golden, ignore=ignore))
    details = {}
    for host, wanted in details_plan.items():
        details[host] = snap.query(docs[host], facet_buckets=wanted["facet_buckets"], roots=wanted["roots"])
        sent[host] += len(json.dumps(details[host]))
    entries_plan = plan_entries(FleetInput(groups, summaries, against, golden, details=details, ignore=ignore))
    entries = {}
    for host, wanted in entries_plan.items():
        entries[host] = snap.query(docs[host], buckets=wanted["buckets"], dirs=wanted["dirs"])
        sent[host] += len(json.dumps(entries[host]))
    result = compare_fleet(FleetInput(groups, summaries, against, golden, details=details, entries=entries, ignore=ignore))
    return result, {"details": details_plan, "entries": entries_plan}, sent


def differences(result, host):
    found = {}
    for facet, kinds in result["hosts"][host]["facets"].items():
        for change in ("added", "removed", "changed"):
            for item in kinds.get(change, []):
                found[(facet, change, item["key"])] = item
    return found


def test_identical_hosts_send_only_their_digests(hosts):
    docs = {h: snapshot_of(hosts / h) for h in ("web1", "web2", "web3", "web4")}
    result, plans, sent = rounds(docs)
    assert plans == {"details": {}, "entries": {}}
    assert result["outliers"] == [] and result["undecided"] == []
    assert all(size < 1500 for size in sent.values()), sent


def test_the_majority_names_the_odd_host_and_only_what_differs_moves(hosts):
    with open(hosts / "web3" / "d2" / "f1", "w", encoding="ascii") as handle:
        handle.write("tampered\n")
    os.chmod(hosts / "web3" / "d0" / "f0", 0o4755)
    docs = {h: snapshot_of(hosts / h) for h in ("web1", "web2", "web4")}
    docs["web3"] = snapshot_of(hosts / "web3", users={"root": {"uid": 0}, "mallory": {"uid": 0}})
    result, plans, sent = rounds(docs)
    assert result["outliers"] == ["web3"]
    found = differences(result, "web3")
    assert set(found) == {("files", "changed", f"{ROOT}/d2/f1"), ("files", "changed", f"{ROOT}/d0/f0"), ("users", "added", "mallory")}
    assert found[("files", "changed", f"{ROOT}/d0/f0")]["changes"] == {"mode": {"before": "0644", "after": "4755"}}
    assert set(found[("files", "changed", f"{ROOT}/d2/f1")]["changes"]) == {"sha256", "size"}
    # round 2: the odd host and one host for the majority's content; round 3: only the two directories that differ
    assert sorted(plans["details"]) == ["web1", "web3"]
    assert sorted(d for wanted in plans["entries"].values() for d in wanted["dirs"]) == sorted([f"{ROOT}/d0", f"{ROOT}/d2"] * 2)
    assert "web2" not in plans["entries"] and "web4" not in plans["entries"]
    assert sent["web2"] == len(json.dumps(snap.summary(docs["web2"])))


def test_bytes_moved_grow_with_the_difference_not_with_the_tree(tmp_path):
    make_tree(tmp_path / "a", dirs=60, files=40)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.copytree(tmp_path / "a", tmp_path / "c")
    with open(tmp_path / "c" / "d17" / "f3", "w", encoding="ascii") as handle:
        handle.write("changed\n")
    docs = {"a": snapshot_of(tmp_path / "a"), "b": snapshot_of(tmp_path / "b"), "c": snapshot_of(tmp_path / "c")}
    result, _plans, sent = rounds(docs)
    full = len(json.dumps(docs["c"]["facets"]["files"]["dirs"]))
    assert result["outliers"] == ["c"] and list(differences(result, "c")) == [("files", "changed", f"{ROOT}/d17/f3")]
    assert sent["b"] < 1500 and sent["c"] < full / 10, (sent, full)


def test_golden_host_is_the_reference_even_in_the_minority(hosts):
    for name in ("web2", "web3", "web4"):
        with open(hosts / name / "d1" / "f1", "w", encoding="ascii") as handle:
            handle.write("new standard\n")
    docs = {h: snapshot_of(hosts / h) for h in ("web1", "web2", "web3", "web4")}
    majority, _p, _s = rounds(docs)
    assert majority["outliers"] == ["web1"]
    golden, _p, _s = rounds(docs, against="golden", golden="web1")
    assert golden["outliers"] == ["web2", "web3", "web4"] and golden["golden"] == "web1"


def test_without_a_majority_nobody_is_blamed(hosts):
    for name in ("web1", "web2"):
        with open(hosts / name / "d1" / "f1", "w", encoding="ascii") as handle:
            handle.write("left\n")
    docs = {h: snapshot_of(hosts / h, sysctl={"vm.swappiness": {"value": "10" if h in ("web1", "web2") else "60"}})
            for h in ("web1", "web2", "web3", "web4")}
    result, _p, _s = rounds(docs)
    assert result["outliers"] == []
    assert sorted((u["facet"], u["key"]) for u in result["undecided"]) == [("files", f"{ROOT}/d1/f1"), ("sysctl", "vm.swappiness")]
    spread = next(u for u in result["undecided"] if u["facet"] == "sysctl")["values"]
    assert sorted(tuple(v["hosts"]) for v in spread) == [("web1", "web2"), ("web3", "web4")]


def test_groups_and_ignore(hosts):
    docs = {h: snapshot_of(hosts / h, sysctl={"kernel.hostname": {"value": h}}) for h in ("web1", "web2", "web3", "web4")}
    ignored, _p, _s = rounds(docs, ignore=[{"facet": "sysctl", "key": "kernel.hostname"}])
    assert ignored["undecided"] == [] and ignored["outliers"] == []
    grouped, _p, _s = rounds(docs, groups={"blue": ["web1", "web2", "web3"], "green": ["web4"]}, ignore=[{"facet": "sysctl"}])
    assert grouped["groups"] == {"blue": ["web1", "web2", "web3"], "green": ["web4"]}


def test_bad_fleet_input():
    with pytest.raises(InvalidInputError, match="against must be one of majority, golden"):
        FleetInput({"all": ["a"]}, {"a": {}}, against="average")
    with pytest.raises(InvalidInputError, match="the golden host db9 has no snapshot summary"):
        FleetInput({"all": ["a"]}, {"a": {}}, against="golden", golden="db9")
    with pytest.raises(InvalidInputError, match=r"ignore\[0\] must be a mapping with facet and/or key"):
        FleetInput({"all": ["a"]}, {"a": {}}, ignore=[{"path": "/etc"}])
