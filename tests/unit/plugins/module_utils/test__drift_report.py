# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json

from ansible_collections.sre.ops.plugins.module_utils._drift_report import build_report, render_markdown


def sshd_change(host_specific):
    return {"key": "/etc/ssh/sshd_config", "class": "unexpected", "changes": {
        "sha256": {"before": "a" * 64, "after": "b" * 64},
        "mtime": {"before": f"2026-01-01T00:00:0{host_specific}Z", "after": "2026-02-01T00:00:00Z"},
        "inode": {"before": 10 + host_specific, "after": 20 + host_specific},
    }}


def result(counts, facets=None, expired=None, issues=None):
    return {"counts": dict({"added": 0, "removed": 0, "changed": 0, "total": 0, "unexpected": 0, "intentional": 0, "waived": 0}, **counts),
            "facets": facets or {}, "expired_waivers": expired or [], "issues": {"counts": issues or {}, "items": []}}


def fleet_results():
    results = {}
    for index in range(1, 38):
        results[f"web{index}"] = result({"changed": 1, "total": 1, "unexpected": 1}, {"files": {"changed": [sshd_change(index % 7)]}})
    results["web1"]["facets"]["files"]["added"] = [{"key": "/usr/local/bin/nc", "class": "unexpected", "flags": ["setuid"],
                                                    "attributes": {"type": "file", "mode": "4755", "mtime": "2026-02-01T00:00:00Z"}}]
    results["web1"]["counts"].update(added=1, total=2, unexpected=2)
    results["app1"] = result({"changed": 1, "total": 2, "intentional": 1, "waived": 1}, {"files": {"changed": [
        {"key": "/srv/app/current", "class": "intentional", "changes": {"target": {"before": "releases/v1", "after": "releases/v2"}},
         "release": {"app_root": "/srv/app", "release": "v2", "activated_at": "2026-02-01T00:00:00Z"}},
        {"key": "/etc/motd", "class": "waived", "changes": {"sha256": {"before": "c" * 64, "after": "d" * 64}},
         "waiver": {"id": "motd", "justification": "marketing edits it"}}]}},
        expired=[{"id": "legacy", "expires": "2025-01-01", "justification": "old", "items": 1}], issues={"special": 2})
    results["app2"] = result({})
    results["db1"] = {"failed": True, "msg": "no baseline at /var/lib/sre-ops/drift/baseline.json.gz: take one first"}
    return results


def test_the_same_change_on_37_hosts_reads_once():
    report = build_report(fleet_results(), generated_at="2026-02-02T00:00:00Z")
    sshd = [g for g in report["changes"] if g["key"] == "/etc/ssh/sshd_config"]
    assert len(sshd) == 1 and len(sshd[0]["hosts"]) == 37
    assert set(sshd[0]["changes"]) == {"sha256"} and sshd[0]["also_changed"] == ["inode", "mtime"]
    assert report["counts"] == {"unexpected": 38, "intentional": 1, "waived": 1, "total": 40, "changes": 4}
    assert [g["class"] for g in report["changes"]] == ["unexpected", "unexpected", "intentional", "waived"]
    assert report["hosts"]["failed"] == {"db1": "no baseline at /var/lib/sre-ops/drift/baseline.json.gz: take one first"}
    assert report["hosts"]["clean"] == ["app2"] and "app1" not in report["hosts"]["unexpected"]
    assert report["hosts"]["issues"] == {"app1": {"special": 2}}
    assert report["expired_waivers"] == [{"id": "legacy", "expires": "2025-01-01", "justification": "old", "owner": None, "hosts": ["app1"], "items": 1}]
    json.dumps(report)


def test_markdown_groups_by_change_and_names_classes():
    markdown = render_markdown(build_report(fleet_results(), mode="check", generated_at="2026-02-02T00:00:00Z"))
    assert markdown.startswith("# Drift report\n")
    assert "40 hosts checked: 38 drifted, 1 clean, 1 not checked." not in markdown  # db1 failed: 39 checked
    assert "39 hosts checked: 38 drifted, 1 clean, 1 not checked." in markdown
    assert "| unexpected | 38 | 2 |" in markdown
    assert "### `files` changed `/etc/ssh/sshd_config` — 37 hosts: web1, web10, web11," in markdown and "and 25 more" in markdown
    assert "| sha256 | `aaaaaaaaaaaa…` | `bbbbbbbbbbbb…` |" in markdown
    assert "Also changed (values differ per host): inode, mtime." in markdown
    assert "`/usr/local/bin/nc` **setuid** — 1 host: web1" in markdown
    assert "release `v2` activated 2026-02-01T00:00:00Z under `/srv/app`" in markdown
    assert "waiver `motd`: marketing edits it" in markdown
    assert "| `legacy` | 2025-01-01 | app1 | 1 | old |" in markdown
    assert "- db1: no baseline at" in markdown


def test_fleet_only_report():
    fleet = {"against": "majority", "golden": None, "outliers": ["web3"], "undecided": [
        {"facet": "sysctl", "key": "vm.swappiness", "values": [{"value": {"value": "10"}, "hosts": ["web1", "web2"]},
                                                               {"value": {"value": "60"}, "hosts": ["web3", "web4"]}]}],
        "undecided_count": 1, "bytes": {"web3": {"sent": 120, "received": 4200}},
        "hosts": {"web3": {"count": 1, "facets": {"users": {"added": [{"key": "mallory", "attributes": {"uid": 0}}]}}}}}
    report = build_report({}, mode="compare", fleet=fleet, generated_at="2026-02-02T00:00:00Z")
    markdown = render_markdown(report)
    assert "## Fleet comparison (against the majority of each group)" in markdown and "Hosts that differ: web3." in markdown
    assert "### `users` added `mallory` — 1 host: web3" in markdown
    assert "- `sysctl` `vm.swappiness` — web1, web2: `{\"value\": \"10\"}`; web3, web4: `{\"value\": \"60\"}`" in markdown
    assert "| web3 | 120 | 4200 |" in markdown
    assert "hosts checked" not in markdown
