# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: the fleet's drift as one report, JSON and Markdown, grouped by change.

The same change on 37 hosts is one entry listing 37 hosts. Host-specific values (inode numbers, times, link
counts) are left out of what makes two changes "the same"; the entry says they changed as well.
"""

from __future__ import annotations

import json
import time
import typing as t

REPORT_FORMAT = "sre.ops.drift_report"
REPORT_VERSION = 1
CLASSES = ("unexpected", "intentional", "waived")
HOST_SPECIFIC = ("mtime", "ctime", "inode", "nlink")
GROUP_LIMIT = 300
HOST_LIST_LIMIT = 12


def _signature(klass: str, facet: str, change: str, item: dict[str, t.Any]) -> tuple[str, dict[str, t.Any], list[str]]:
    """What makes two hosts' changes the same change, the values shown for it, and the host-specific attributes left out."""
    if change == "changed":
        values = {k: v for k, v in (item.get("changes") or {}).items() if not (facet == "files" and k in HOST_SPECIFIC)}
        also = sorted(k for k in (item.get("changes") or {}) if facet == "files" and k in HOST_SPECIFIC)
    else:
        values = {k: v for k, v in (item.get("attributes") or {}).items() if not (facet == "files" and k in HOST_SPECIFIC)}
        also = []
    extra = {
        "flags": item.get("flags") or [],
        "release": (item.get("release") or {}).get("release"),
        "waiver": (item.get("waiver") or {}).get("id"),
        "expired_waiver": item.get("expired_waiver"),
    }
    key = json.dumps([klass, facet, change, item["key"], values, extra], sort_keys=True, separators=(",", ":"))
    return key, values, also


def build_report(results: dict[str, dict[str, t.Any]], mode: str = "check", fleet: dict[str, t.Any] | None = None,
                 generated_at: str | None = None) -> dict[str, t.Any]:
    """results: host -> the sre.ops.drift result (or a failed task's result)."""
    groups: dict[str, dict[str, t.Any]] = {}
    failed: dict[str, str] = {}
    per_host: dict[str, dict[str, int]] = {}
    issues: dict[str, dict[str, int]] = {}
    truncated: list[str] = []
    expired: dict[str, dict[str, t.Any]] = {}
    totals = {c: 0 for c in CLASSES}
    for host in sorted(results):
        result = results[host] or {}
        if result.get("failed") or "counts" not in result:
            failed[host] = str(result.get("msg") or ("skipped" if result.get("skipped") else "no drift result"))
            continue
        counts = result["counts"]
        per_host[host] = {c: int(counts.get(c, 0)) for c in CLASSES}
        for klass in CLASSES:
            totals[klass] += per_host[host][klass]
        if (result.get("issues") or {}).get("counts"):
            issues[host] = dict(result["issues"]["counts"])
        for facet, kinds in (result.get("facets") or {}).items():
            if kinds.get("truncated") and host not in truncated:
                truncated.append(host)
            for change in ("added", "removed", "changed"):
                for item in kinds.get(change) or []:
                    klass = item.get("class", "unexpected")
                    signature, values, also = _signature(klass, facet, change, item)
                    group = groups.get(signature)
                    if group is None:
                        group = groups[signature] = {
                            "class": klass, "facet": facet, "change": change, "key": item["key"],
                            ("changes" if change == "changed" else "attributes"): values,
                            "hosts": [],
                        }
                        for field in ("flags", "release", "waiver", "expired_waiver"):
                            if item.get(field):
                                group[field] = item[field]
                        if also:
                            group["also_changed"] = also
                    group["hosts"].append(host)
        for waiver in result.get("expired_waivers") or []:
            entry = expired.setdefault(waiver["id"], {k: waiver.get(k) for k in ("id", "expires", "justification", "owner")} | {"hosts": [], "items": 0})
            entry["hosts"].append(host)
            entry["items"] += int(waiver.get("items", 0))
    order = {c: i for i, c in enumerate(CLASSES)}
    changes = sorted(groups.values(), key=lambda g: (order[g["class"]], -len(g["hosts"]), g["facet"], g["key"], g["change"]))
    drifted = sorted(h for h, c in per_host.items() if sum(c.values()))
    report = {
        "format": REPORT_FORMAT,
        "format_version": REPORT_VERSION,
        "generated_at": generated_at or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "mode": mode,
        "counts": dict(totals, total=sum(totals.values()), changes=len(changes)),
        "hosts": {
            "checked": sorted(per_host),
            "drifted": drifted,
            "unexpected": sorted(h for h, c in per_host.items() if c["unexpected"]),
            "clean": sorted(h for h, c in per_host.items() if not sum(c.values())),
            "failed": failed,
            "truncated": truncated,
            "counts": per_host,
            "issues": issues,
        },
        "changes": changes,
        "expired_waivers": sorted(expired.values(), key=lambda w: w["id"]),
    }
    if fleet is not None:
        report["fleet"] = fleet_section(fleet)
    return report


def fleet_section(fleet: dict[str, t.Any]) -> dict[str, t.Any]:
    """The fleet comparison's per-host differences, grouped the same way (identical odd-one-outs read once)."""
    groups: dict[str, dict[str, t.Any]] = {}
    for host, data in sorted((fleet.get("hosts") or {}).items()):
        for facet, kinds in (data.get("facets") or {}).items():
            for change in ("added", "removed", "changed"):
                for item in kinds.get(change) or []:
                    signature, values, _also = _signature("outlier", facet, change, item)
                    group = groups.setdefault(signature, {
                        "facet": facet, "change": change, "key": item["key"],
                        ("changes" if change == "changed" else "attributes"): values, "hosts": []})
                    group["hosts"].append(host)
    return {
        "against": fleet.get("against"),
        "golden": fleet.get("golden"),
        "outliers": fleet.get("outliers") or [],
        "differences": sorted(groups.values(), key=lambda g: (-len(g["hosts"]), g["facet"], g["key"])),
        "undecided": fleet.get("undecided") or [],
        "undecided_count": fleet.get("undecided_count", 0),
        "bytes": fleet.get("bytes") or {},
    }


# ----- Markdown -------------------------------------------------------------------------------------------
def _code(value: t.Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    if isinstance(value, str) and len(value) == 64 and all(c in "0123456789abcdef" for c in value):
        text = value[:12] + "…"
    text = text.replace("|", "\\|").replace("\n", " ")
    if len(text) > 120:
        text = text[:117] + "..."
    return f"`{text}`" if text else "—"


def _hosts(hosts: list[str]) -> str:
    shown = ", ".join(hosts[:HOST_LIST_LIMIT])
    if len(hosts) > HOST_LIST_LIMIT:
        shown += f" and {len(hosts) - HOST_LIST_LIMIT} more"
    return shown


def _noun(count: int, word: str) -> str:
    return f"{count} {word}" + ("" if count == 1 else "s")


def _values_table(group: dict[str, t.Any], before: str, after: str) -> list[str]:
    lines = []
    if group["change"] == "changed":
        lines += [f"| attribute | {before} | {after} |", "|---|---|---|"]
        for attr, pair in sorted((group.get("changes") or {}).items()):
            lines.append(f"| {attr} | {_code(pair.get('before'))} | {_code(pair.get('after'))} |")
    elif group.get("attributes"):
        lines += ["| attribute | value |", "|---|---|"]
        for attr, value in sorted(group["attributes"].items()):
            lines.append(f"| {attr} | {_code(value)} |")
    return lines


def _group_heading(group: dict[str, t.Any]) -> str:
    flags = "".join(f" **{flag}**" for flag in group.get("flags") or [])
    count = len(group["hosts"])
    return f"`{group['facet']}` {group['change']} {_code(group['key'])}{flags} — {_noun(count, 'host')}: {_hosts(group['hosts'])}"


def render_markdown(report: dict[str, t.Any]) -> str:
    counts = report["counts"]
    hosts = report["hosts"]
    if not hosts["checked"] and not hosts["failed"]:
        lines = ["# Drift report", "", f"Generated {report['generated_at']} · mode `{report['mode']}`.", ""]
        return "\n".join(lines + _fleet_lines(report.get("fleet"))).rstrip() + "\n"
    lines = [
        "# Drift report",
        "",
        f"Generated {report['generated_at']} · mode `{report['mode']}` · {_noun(len(hosts['checked']), 'host')} checked: "
        f"{len(hosts['drifted'])} drifted, {len(hosts['clean'])} clean, {len(hosts['failed'])} not checked.",
        "",
        "| class | changes (all hosts) | distinct changes | hosts |",
        "|---|---|---|---|",
    ]
    for klass in CLASSES:
        distinct = [g for g in report["changes"] if g["class"] == klass]
        with_class = sorted({h for g in distinct for h in g["hosts"]})
        lines.append(f"| {klass} | {counts[klass]} | {len(distinct)} | {_hosts(with_class) or '—'} |")
    lines.append("")
    if hosts["truncated"]:
        lines += [f"Some items of {_hosts(hosts['truncated'])} are not listed (over max_items); the counts are complete.", ""]
    sections = {
        "unexpected": "Unexpected drift",
        "intentional": "Intentional changes (a release was activated after the baseline)",
        "waived": "Waived drift",
    }
    for klass in CLASSES:
        groups = [g for g in report["changes"] if g["class"] == klass]
        if not groups:
            continue
        lines += [f"## {sections[klass]} ({len(groups)} distinct)", ""]
        for group in groups[:GROUP_LIMIT]:
            if klass == "unexpected":
                lines += [f"### {_group_heading(group)}", ""]
                lines += _values_table(group, "baseline", "now")
                if group.get("also_changed"):
                    lines.append("")
                    lines.append(f"Also changed (values differ per host): {', '.join(group['also_changed'])}.")
                if group.get("expired_waiver"):
                    lines.append("")
                    lines.append(f"Waiver `{group['expired_waiver']}` would have hidden this but has expired.")
                lines.append("")
            elif klass == "intentional":
                release = group.get("release") or {}
                lines.append(f"- {_group_heading(group)} — release `{release.get('release')}` activated "
                             f"{release.get('activated_at')} under `{release.get('app_root')}`")
            else:
                waiver = group.get("waiver") or {}
                expiry = f", expires {waiver['expires']}" if waiver.get("expires") else ""
                lines.append(f"- {_group_heading(group)} — waiver `{waiver.get('id')}`{expiry}: {waiver.get('justification')}")
        if len(groups) > GROUP_LIMIT:
            lines.append(f"- … {len(groups) - GROUP_LIMIT} more (see the JSON report)")
        lines.append("")
    if report["expired_waivers"]:
        lines += ["## Expired waivers (they hide nothing any more)", "", "| waiver | expired | hosts | items | justification |", "|---|---|---|---|---|"]
        for waiver in report["expired_waivers"]:
            lines.append(f"| `{waiver['id']}` | {waiver.get('expires')} | {_hosts(waiver['hosts'])} | {waiver['items']} | {waiver.get('justification')} |")
        lines.append("")
    if hosts["failed"]:
        lines += ["## Hosts not checked", ""]
        lines += [f"- {host}: {message}" for host, message in sorted(hosts["failed"].items())]
        lines.append("")
    lines += _fleet_lines(report.get("fleet"))
    return "\n".join(lines).rstrip() + "\n"


def _fleet_lines(fleet: dict[str, t.Any] | None) -> list[str]:
    lines: list[str] = []
    if fleet:
        against = f"golden host `{fleet['golden']}`" if fleet.get("against") == "golden" else "the majority of each group"
        lines += [f"## Fleet comparison (against {against})", ""]
        if fleet["outliers"]:
            lines.append(f"Hosts that differ: {_hosts(fleet['outliers'])}.")
        else:
            lines.append("Every host matches the reference.")
        lines.append("")
        for group in fleet["differences"][:GROUP_LIMIT]:
            lines += [f"### {_group_heading(group)}", ""]
            lines += _values_table(group, "reference", "host")
            lines.append("")
        if fleet.get("undecided_count"):
            lines += [f"{_noun(fleet['undecided_count'], 'item')} without a majority (no value on more than half of the hosts):", ""]
            for entry in fleet["undecided"][:50]:
                spread = "; ".join(f"{_hosts(v['hosts'])}: {_code(v['value'])}" for v in entry["values"])
                lines.append(f"- `{entry['facet']}` {_code(entry['key'])} — {spread}")
            lines.append("")
        if fleet.get("bytes"):
            lines += ["| host | bytes sent to it | bytes it sent |", "|---|---|---|"]
            for host, moved in sorted(fleet["bytes"].items()):
                lines.append(f"| {host} | {moved.get('sent', 0)} | {moved.get('received', 0)} |")
            lines.append("")
    return lines
