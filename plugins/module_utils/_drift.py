# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: drift of a host against its stored baseline, classed as unexpected, intentional or waived.

``intentional``: a change under an application root whose sre.ops.release ledger records an activation after
the time the baseline was taken (Puppet's intentional vs corrective change). ``waived``: hidden by a
waiver rule that has a justification and has not expired. Everything else is ``unexpected``. Expired waivers
hide nothing; they are reported with the drift they would have hidden.
"""

from __future__ import annotations

import datetime
import fnmatch
import json
import os
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError
from ansible_collections.sre.ops.plugins.module_utils._snapshot import (
    N_GROWN, N_NAME, N_SHA, N_SIZE, N_TYPE, ATTRIBUTE_INDEX, TYPE_NAMES,
    Runner, SnapshotError, SnapshotMissing, display, issue_report, iso_time_ns, locked, read_snapshot,
    query, summary, take_snapshot, write_snapshot,
)

CLASSES = ("unexpected", "intentional", "waived")
CHANGES = ("added", "removed", "changed")
ACCEPTANCE_HISTORY = 50
# Which attributes mean something for each entry type. A directory's size, times and link count restate
# changes to its children (which are reported themselves); a symlink's mode is always 0777.
APPLICABLE = {
    "f": {"type", "mode", "uid", "gid", "size", "mtime", "ctime", "inode", "nlink", "sha256"},
    "d": {"type", "mode", "uid", "gid", "inode"},
    "l": {"type", "uid", "gid", "mtime", "ctime", "inode", "nlink", "target"},
}
APPLICABLE_OTHER = {"type", "mode", "uid", "gid", "mtime", "ctime", "inode", "nlink", "target"}
WAIVER_KEYS = {"id", "hosts", "facet", "key", "path", "attribute", "change", "justification", "expires", "owner"}


class DriftError(SnapshotError):
    """Drift could not be determined or accepted."""


def missing_baseline_message(path: str) -> str:
    return (
        f"no baseline at {path}: take one first with sre.ops.host_snapshot (path: {path}), "
        "or run playbooks/drift.yml -e drift_mode=baseline"
    )


# ----- comparing two snapshots ------------------------------------------------------------------------
def _value(attr: str, value: t.Any) -> t.Any:
    if value is None:
        return None
    if attr == "mode":
        return f"{value:04o}"
    if attr in ("mtime", "ctime"):
        return iso_time_ns(value)
    if attr == "type":
        return TYPE_NAMES.get(value, value)
    if attr == "target":
        return display(value)
    return value


def _applicable(entry: list[t.Any], attributes: list[str]) -> list[str]:
    allowed = APPLICABLE.get(entry[N_TYPE], APPLICABLE_OTHER)
    return [a for a in attributes if a in allowed]


def describe_entry(entry: list[t.Any], rule: dict[str, t.Any]) -> dict[str, t.Any]:
    return {a: _value(a, entry[ATTRIBUTE_INDEX[a]]) for a in _applicable(entry, rule["attributes"])}


def entry_flags(entry: list[t.Any]) -> list[str]:
    flags = []
    mode = entry[2]
    if entry[N_TYPE] == "f" and mode & 0o4000:
        flags.append("setuid")
    if entry[N_TYPE] == "f" and mode & 0o2000:
        flags.append("setgid")
    if entry[N_TYPE] in ("f", "d") and mode & 0o002 and not mode & 0o1000:
        flags.append("world-writable")
    return flags


def entry_changes(before: list[t.Any], after: list[t.Any], rule: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    attributes = rule["attributes"]
    if before[N_TYPE] != after[N_TYPE]:
        wanted = ["type"] + [a for a in ("mode", "uid", "gid", "target", "sha256") if a in attributes]
    else:
        wanted = _applicable(after, attributes)
    changes = {}
    for attr in wanted:
        index = ATTRIBUTE_INDEX[attr]
        old, new = before[index], after[index]
        if old == new or (attr == "sha256" and (old is None or new is None)):
            continue
        changes[attr] = {"before": _value(attr, old), "after": _value(attr, new)}
    if ("growing" in attributes and before[N_TYPE] == "f" == after[N_TYPE] and before[N_SHA] is not None
            and after[N_SIZE] >= before[N_SIZE] and after[N_GROWN] == before[N_SHA]):
        # Appended to, the old content intact: what a log does.
        for attr in ("size", "sha256", "mtime", "ctime"):
            changes.pop(attr, None)
    return changes


def _empty_facet_drift() -> dict[str, list[dict[str, t.Any]]]:
    return {"added": [], "removed": [], "changed": []}


def compare_files(base: dict[str, t.Any], now: dict[str, t.Any]) -> dict[str, list[dict[str, t.Any]]]:
    drift = _empty_facet_drift()
    rules = now["rules"]

    def one(path: str, old: list[t.Any] | None, new: list[t.Any] | None, rule: dict[str, t.Any]) -> None:
        if old is None and new is None:
            return
        if old is None:
            item = {"key": display(path), "attributes": describe_entry(new, rule)}
            flags = entry_flags(new)
            if flags:
                item["flags"] = flags
            drift["added"].append(item)
        elif new is None:
            drift["removed"].append({"key": display(path), "attributes": describe_entry(old, rule)})
        else:
            changes = entry_changes(old, new, rule)
            if changes:
                item = {"key": display(path), "changes": changes}
                flags = [f for f in entry_flags(new) if f not in entry_flags(old)]
                if flags:
                    item["flags"] = flags
                drift["changed"].append(item)

    base_roots, now_roots = base.get("roots") or {}, now.get("roots") or {}
    for path in sorted(set(base_roots) | set(now_roots)):
        holder = now_roots.get(path) or base_roots[path]
        one(path, (base_roots.get(path) or {}).get("entry"), (now_roots.get(path) or {}).get("entry"), rules[holder["rule"]])
    base_dirs, now_dirs = base.get("dirs") or {}, now.get("dirs") or {}
    for dirpath in sorted(set(base_dirs) | set(now_dirs)):
        old_dir, new_dir = base_dirs.get(dirpath), now_dirs.get(dirpath)
        if old_dir is not None and new_dir is not None and old_dir["entries"] is new_dir["entries"]:
            continue
        if (old_dir is not None and old_dir.get("entries") is None) or (new_dir is not None and new_dir.get("entries") is None):
            continue  # not listable on one side: an issue, not drift
        old_entries = {e[N_NAME]: e for e in (old_dir or {}).get("entries") or ()}
        new_entries = {e[N_NAME]: e for e in (new_dir or {}).get("entries") or ()}
        rule = rules[(new_dir or old_dir)["rule"]]
        prefix = dirpath + "/" if dirpath != "/" else "/"
        for name in sorted(set(old_entries) | set(new_entries)):
            one(prefix + name, old_entries.get(name), new_entries.get(name), rule)
    return drift


def compare_items(base: dict[str, t.Any], now: dict[str, t.Any]) -> dict[str, list[dict[str, t.Any]]]:
    drift = _empty_facet_drift()
    for key in sorted(set(base) | set(now)):
        old, new = base.get(key), now.get(key)
        if old == new:
            continue
        if old is None:
            drift["added"].append({"key": key, "attributes": new})
        elif new is None:
            drift["removed"].append({"key": key, "attributes": old})
        else:
            changes = {
                field: {"before": old.get(field), "after": new.get(field)}
                for field in sorted(set(old) | set(new)) if old.get(field) != new.get(field)
            }
            drift["changed"].append({"key": key, "changes": changes})
    return drift


def compare_snapshots(base: dict[str, t.Any], now: dict[str, t.Any]) -> tuple[dict[str, dict[str, list[t.Any]]], list[str]]:
    """Per facet: added, removed and changed items; plus notes for facets that could not be compared."""
    drift = {}
    notes = []
    for name, new in now["facets"].items():
        old = base["facets"].get(name)
        if old is None:
            notes.append(f"{name}: not in the baseline (taken with other facets); not compared")
            continue
        bad = [f"{side} {facet['status']}" for side, facet in (("baseline", old), ("now", new)) if facet.get("status") in ("error", "unavailable")]
        if bad:
            if old.get("status") != new.get("status"):
                notes.append(f"{name}: not compared ({', '.join(bad)}: {new.get('note') or old.get('note') or ''})".rstrip(": )") + ")")
            continue
        if name == "files":
            drift[name] = compare_files(old, new)
        else:
            drift[name] = compare_items(old.get("items") or {}, new.get("items") or {})
    return drift, notes


# ----- intentional change: release activations after the baseline -------------------------------------
def parse_time(text: t.Any) -> datetime.datetime | None:
    if not isinstance(text, str) or not text:
        return None
    value = text.strip().replace("Z", "+00:00").replace("z", "+00:00")
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        try:
            parsed = datetime.datetime.strptime(text.strip(), "%Y-%m-%dT%H:%M:%SZ")
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.timezone.utc)
    return parsed


def ledger_activations(app_root: str, since: datetime.datetime) -> tuple[list[dict[str, str]], str | None]:
    """Activations the release ledger under app_root records after since; read defensively (any shape).

    Ledger times have one-second resolution: an activation stamped in the second the baseline started counts
    as before it, so a deploy can never make later hand edits look intentional.
    """
    path = os.path.join(app_root, "ledger.json")
    try:
        with open(path, encoding="utf-8") as handle:
            ledger = json.load(handle)
    except FileNotFoundError:
        return [], None
    except (OSError, ValueError) as exc:
        return [], f"{path} is not readable as a release ledger ({type(exc).__name__}); changes under {app_root} count as unexpected"
    if not isinstance(ledger, dict):
        return [], f"{path} is not a release ledger; changes under {app_root} count as unexpected"
    found: dict[tuple[str, str], dict[str, str]] = {}
    releases = ledger.get("releases")
    if isinstance(releases, dict):
        for release, record in releases.items():
            if isinstance(record, dict):
                when = parse_time(record.get("activated_at"))
                if when is not None and when > since:
                    found[(str(release), record["activated_at"])] = {"release": str(release), "activated_at": record["activated_at"]}
    history = ledger.get("history")
    if isinstance(history, list):
        for event in history:
            if isinstance(event, dict) and event.get("event") in ("activated", "activate"):
                when = parse_time(event.get("at"))
                if when is not None and when > since:
                    release = str(event.get("release"))
                    found.setdefault((release, event["at"]), {"release": release, "activated_at": event["at"]})
    return sorted(found.values(), key=lambda a: (parse_time(a["activated_at"]), a["release"])), None


def detect_app_roots(*docs: dict[str, t.Any]) -> list[str]:
    """Directories in the files facet that look like sre.ops.release application roots (a ledger.json and releases/)."""
    roots = set()
    for doc in docs:
        files = doc["facets"].get("files") if doc else None
        if not files:
            continue
        for dirpath, info in files["dirs"].items():
            names = {e[N_NAME]: e[N_TYPE] for e in info.get("entries") or ()}
            if names.get("ledger.json") == "f" and names.get("releases") == "d":
                roots.add(dirpath)
    return sorted(roots)


# ----- waivers -------------------------------------------------------------------------------------------
def _as_list(value: t.Any, where: str, field: str) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) and v for v in value):
        return list(value)
    raise InvalidInputError(f"{where}.{field} must be a string or a list of strings, got {value!r}")


def parse_waivers(rules: t.Any) -> list[dict[str, t.Any]]:
    """Validate waiver rules; a rule without a justification, a bad date or an unknown key is an error."""
    if rules is None:
        return []
    if isinstance(rules, dict) and isinstance(rules.get("waivers"), list):
        rules = rules["waivers"]
    if not isinstance(rules, list):
        raise InvalidInputError(f"waivers must be a list of rules (or a mapping with a 'waivers' list), got {type(rules).__name__}")
    waivers = []
    for index, rule in enumerate(rules):
        where = f"waivers[{index}]"
        if not isinstance(rule, dict):
            raise InvalidInputError(f"{where} must be a mapping, got {rule!r}")
        name = str(rule.get("id") or f"waiver-{index + 1}")
        where = f"waivers[{index}] ({name})"
        unknown = sorted(set(rule) - WAIVER_KEYS)
        if unknown:
            raise InvalidInputError(f"{where} has unknown keys {', '.join(unknown)}; use {', '.join(sorted(WAIVER_KEYS))}")
        justification = rule.get("justification")
        if not isinstance(justification, str) or not justification.strip():
            raise InvalidInputError(f"{where}: justification is required - say why this drift is acceptable")
        expires = rule.get("expires")
        expires_date = None
        if expires is not None:
            if isinstance(expires, datetime.datetime):
                expires_date = expires.date()
            elif isinstance(expires, datetime.date):
                expires_date = expires
            else:
                try:
                    expires_date = datetime.date.fromisoformat(str(expires).strip())
                except ValueError as exc:
                    raise InvalidInputError(f"{where}: expires must be a date (YYYY-MM-DD), got {expires!r}") from exc
        if rule.get("key") is not None and rule.get("path") is not None:
            raise InvalidInputError(f"{where}: give key or path, not both")
        key = rule.get("key", rule.get("path"))
        if key is not None and (not isinstance(key, str) or not key):
            raise InvalidInputError(f"{where}.key must be a glob pattern, got {key!r}")
        changes = _as_list(rule.get("change"), where, "change")
        bad = [c for c in changes if c not in CHANGES]
        if bad:
            raise InvalidInputError(f"{where}.change: {', '.join(bad)} is not one of {', '.join(CHANGES)}")
        waivers.append({
            "id": name,
            "hosts": _as_list(rule.get("hosts"), where, "hosts") or ["*"],
            "facets": _as_list(rule.get("facet"), where, "facet") or ["*"],
            "key": key or "*",
            "attributes": _as_list(rule.get("attribute"), where, "attribute"),
            "changes": changes,
            "justification": justification.strip(),
            "expires": expires_date.isoformat() if expires_date else None,
            "owner": rule.get("owner"),
        })
    return waivers


def waiver_applies_to_host(waiver: dict[str, t.Any], host: str | None, groups: list[str]) -> bool:
    for pattern in waiver["hosts"]:
        if pattern in ("all", "*"):
            return True
        if host is not None and fnmatch.fnmatchcase(host, pattern):
            return True
        if any(fnmatch.fnmatchcase(group, pattern) for group in groups):
            return True
    return False


def waiver_matches(waiver: dict[str, t.Any], facet: str, change: str, item: dict[str, t.Any]) -> bool:
    if "*" not in waiver["facets"] and facet not in waiver["facets"]:
        return False
    if waiver["changes"] and change not in waiver["changes"]:
        return False
    if not fnmatch.fnmatchcase(item["key"], waiver["key"]):
        return False
    if waiver["attributes"]:
        # Only changes confined to the waived attributes are hidden; anything else still shows.
        if change != "changed" or not set(item.get("changes") or {}) <= set(waiver["attributes"]):
            return False
    return True


# ----- classification ----------------------------------------------------------------------------------
def classify(drift: dict[str, dict[str, list[dict[str, t.Any]]]], *, activations: dict[str, list[dict[str, str]]],
             waivers: list[dict[str, t.Any]], host: str | None, groups: list[str], today: datetime.date) -> list[dict[str, t.Any]]:
    """Set each item's class in place; returns the expired waivers with the items they would have hidden."""
    mine = [w for w in waivers if waiver_applies_to_host(w, host, groups)]
    active = [w for w in mine if w["expires"] is None or datetime.date.fromisoformat(w["expires"]) >= today]
    expired = [w for w in mine if w not in active]
    expired_hits: dict[str, dict[str, t.Any]] = {}
    roots = sorted(activations, key=len, reverse=True)
    for facet, kinds in drift.items():
        for change, items in kinds.items():
            for item in items:
                root = None
                if facet == "files":
                    root = next((r for r in roots if activations[r] and (item["key"] == r or item["key"].startswith(r.rstrip("/") + "/"))), None)
                if root is not None:
                    last = activations[root][-1]
                    item["class"] = "intentional"
                    item["release"] = {"app_root": root, "release": last["release"], "activated_at": last["activated_at"]}
                    continue
                waiver = next((w for w in active if waiver_matches(w, facet, change, item)), None)
                if waiver is not None:
                    item["class"] = "waived"
                    item["waiver"] = {k: waiver[k] for k in ("id", "justification", "expires", "owner") if waiver.get(k)}
                    continue
                item["class"] = "unexpected"
                lapsed = next((w for w in expired if waiver_matches(w, facet, change, item)), None)
                if lapsed is not None:
                    item["expired_waiver"] = lapsed["id"]
                    hit = expired_hits.setdefault(lapsed["id"], {
                        "id": lapsed["id"], "expires": lapsed["expires"], "justification": lapsed["justification"],
                        "owner": lapsed.get("owner"), "items": 0, "examples": []})
                    hit["items"] += 1
                    if len(hit["examples"]) < 5:
                        hit["examples"].append(f"{facet} {item['key']}")
    return list(expired_hits.values())


def count(drift: dict[str, dict[str, list[dict[str, t.Any]]]]) -> dict[str, int]:
    counts = {key: 0 for key in CHANGES + CLASSES}
    for kinds in drift.values():
        for change, items in kinds.items():
            counts[change] += len(items)
            for item in items:
                counts[item.get("class", "unexpected")] += 1
    counts["total"] = counts["added"] + counts["removed"] + counts["changed"]
    return counts


def truncate(drift: dict[str, dict[str, list[dict[str, t.Any]]]], max_items: int) -> dict[str, dict[str, t.Any]]:
    """At most max_items items per facet in the result (unexpected first); the counts stay exact."""
    shown: dict[str, dict[str, t.Any]] = {}
    order = {c: i for i, c in enumerate(CLASSES)}
    for facet, kinds in drift.items():
        total = sum(len(items) for items in kinds.values())
        if total == 0:
            continue
        entry: dict[str, t.Any] = {"counts": {c: len(kinds[c]) for c in CHANGES}}
        if total <= max_items:
            entry.update(kinds)
            entry["truncated"] = False
        else:
            ranked = sorted(((order.get(i.get("class"), 0), change, n) for change in CHANGES for n, i in enumerate(kinds[change])))[:max_items]
            keep = {(change, n) for _rank, change, n in ranked}
            for change in CHANGES:
                entry[change] = [i for n, i in enumerate(kinds[change]) if (change, n) in keep]
            entry["truncated"] = True
        shown[facet] = entry
    return shown


def _line(facet: str, item: dict[str, t.Any], values: dict[str, t.Any]) -> str:
    parts = []
    for name, value in values.items():
        if isinstance(value, str) and len(value) == 64 and name == "sha256":
            value = value[:16]
        parts.append(f"{name}={json.dumps(value) if not isinstance(value, str) else value}")
    return f"[{facet}] {item['key']}  " + " ".join(parts)


def drift_diff(drift: dict[str, dict[str, list[dict[str, t.Any]]]], before_header: str, after_header: str,
               limit: int = 500) -> dict[str, str]:
    """The drift as a text diff: the baseline's values of removed and changed items, and the current values."""
    before: list[str] = []
    after: list[str] = []
    for facet in sorted(drift):
        kinds = drift[facet]
        for item in kinds.get("removed", []):
            before.append(_line(facet, item, item.get("attributes") or {}))
        for item in kinds.get("added", []):
            after.append(_line(facet, item, item.get("attributes") or {}))
        for item in kinds.get("changed", []):
            before.append(_line(facet, item, {k: v["before"] for k, v in item["changes"].items()}))
            after.append(_line(facet, item, {k: v["after"] for k, v in item["changes"].items()}))
    more = max(len(before), len(after)) - limit
    before, after = sorted(before)[:limit], sorted(after)[:limit]
    if more > 0:
        after.append(f"... {more} more lines (see the task result)")
    return {
        "before": "\n".join(before) + ("\n" if before else ""),
        "after": "\n".join(after) + ("\n" if after else ""),
        "before_header": before_header,
        "after_header": after_header,
    }


# ----- the module's work --------------------------------------------------------------------------------
class _SnapshotWork:
    """What every manager of a stored snapshot needs: where it is, how to scan, check mode and diff."""

    def __init__(self, path: str, runner: Runner, *, check_mode: bool = False, workers: int = 0, trust_stat: bool = True,
                 diff: bool = True) -> None:
        if not os.path.isabs(path):
            raise InvalidInputError(f"path {path!r} must be absolute")
        self.path = path
        self.runner = runner
        self.check_mode = check_mode
        self.workers = workers
        self.trust_stat = trust_stat
        self.diff = diff

    def _take(self, config: dict[str, t.Any], previous: dict[str, t.Any] | None) -> dict[str, t.Any]:
        return take_snapshot(config, self.runner, previous=previous, workers=self.workers, trust_stat=self.trust_stat)


class DriftManager(_SnapshotWork):
    """Compare a host with its baseline (state compared) or make the current state the baseline (state accepted)."""

    def __init__(self, path: str, runner: Runner, *, check_mode: bool = False, workers: int = 0, trust_stat: bool = True,
                 host: str | None = None, groups: list[str] | None = None, waivers: list[dict[str, t.Any]] | None = None,
                 app_roots: list[str] | None = None, max_items: int = 500, today: datetime.date | None = None, diff: bool = True) -> None:
        super().__init__(path, runner, check_mode=check_mode, workers=workers, trust_stat=trust_stat, diff=diff)
        self.host = host
        self.groups = list(groups or [])
        self.waivers = parse_waivers(waivers)
        self.app_roots = None if app_roots is None else [os.path.normpath(r) for r in app_roots]
        self.max_items = max_items
        self.today = today or datetime.datetime.now(datetime.timezone.utc).date()

    def _baseline(self) -> dict[str, t.Any]:
        try:
            return read_snapshot(self.path)
        except SnapshotMissing as exc:
            raise DriftError(missing_baseline_message(self.path)) from exc
        except SnapshotError as exc:
            raise DriftError(
                f"the baseline {self.path} cannot be used: {exc.msg}. Take a new one with sre.ops.host_snapshot "
                "(overwrite: true) or playbooks/drift.yml -e drift_mode=baseline -e drift_baseline_overwrite=true"
            ) from exc

    def _evaluate(self) -> tuple[dict[str, t.Any], dict[str, t.Any], dict[str, t.Any]]:
        base = self._baseline()
        now = self._take(base["config"], base)
        drift, notes = compare_snapshots(base, now)
        since = datetime.datetime.fromtimestamp(base["started_ns"] / 1e9, datetime.timezone.utc)
        roots = self.app_roots if self.app_roots is not None else detect_app_roots(base, now)
        activations = {}
        for root in roots:
            found, note = ledger_activations(root, since)
            activations[root] = found
            if note:
                notes.append(note)
        expired = classify(drift, activations=activations, waivers=self.waivers, host=self.host, groups=self.groups, today=self.today)
        counts = count(drift)
        result: dict[str, t.Any] = {
            "path": self.path,
            "drifted": counts["total"] > 0,
            "counts": counts,
            "facets": truncate(drift, self.max_items),
            "expired_waivers": expired,
            "releases": [{"app_root": r, **a} for r in roots for a in activations.get(r, [])],
            "app_roots": roots,
            "baseline": {
                "path": self.path,
                "taken_at": base["taken_at"],
                "host": base.get("host"),
                "acceptances": (base.get("acceptances") or [])[-3:],
            },
            "checked_at": now["taken_at"],
            "issues": issue_report(now),
            "notes": notes + _scan_notes(now),
            "summary": summary(now),
        }
        if result["drifted"] and self.diff:
            result["diff"] = drift_diff(drift, f"baseline {base['taken_at']} ({self.path})", f"now {now['taken_at']}")
        return result, base, now

    def compare(self) -> dict[str, t.Any]:
        result, _base, _now = self._evaluate()
        result["changed"] = result["drifted"]
        return result

    def accept(self, reason: str, accepted_by: str, job: str | None = None) -> dict[str, t.Any]:
        if not reason or not reason.strip():
            raise InvalidInputError("reason is required to accept drift: say why the current state is right")
        with locked(self.path, enabled=not self.check_mode):
            result, base, now = self._evaluate()
            record = {
                "at": now["taken_at"],
                "by": accepted_by,
                "reason": reason.strip(),
                "counts": {k: result["counts"][k] for k in ("total", "unexpected", "intentional", "waived")},
                "previous_taken_at": base["taken_at"],
            }
            if job:
                record["job"] = job
            result["changed"] = result["drifted"]
            if result["drifted"]:
                result["accepted"] = record
                if not self.check_mode:
                    now["acceptances"] = ((base.get("acceptances") or []) + [record])[-ACCEPTANCE_HISTORY:]
                    write_snapshot(self.path, now)
        return result


class SnapshotManager(_SnapshotWork):
    """Take and store a host's snapshot (the baseline), read parts of it, or remove it."""

    def present(self, config: dict[str, t.Any], overwrite: bool = True, return_snapshot: bool = False) -> dict[str, t.Any]:
        notes = []
        with locked(self.path, enabled=not self.check_mode):
            try:
                previous = read_snapshot(self.path)
            except SnapshotMissing:
                previous = None
            except SnapshotError as exc:
                if not overwrite:
                    raise DriftError(f"{exc.msg}; set overwrite: true to replace it with a new snapshot") from exc
                previous = None
                notes.append(f"replaced an unusable snapshot: {exc.msg}")
            doc = self._take(config, previous)
            drift: dict[str, t.Any] = {}
            if previous is None:
                changed = True
            elif previous["config"] != config:
                changed = True
                notes.append("the facets or file rules differ from the stored snapshot's")
            else:
                drift, compare_notes = compare_snapshots(previous, doc)
                notes.extend(compare_notes)
                changed = any(items for kinds in drift.values() for items in kinds.values())
            if changed and previous is not None and not overwrite:
                raise DriftError(
                    f"the host differs from the snapshot stored at {self.path} and overwrite is false: review the drift with "
                    "sre.ops.drift and accept it (state: accepted), or set overwrite: true to take a new baseline"
                )
            stored = doc if changed else previous
            written = 0
            if changed and not self.check_mode:
                if previous is not None:
                    doc["replaces"] = {"taken_at": previous["taken_at"], "host": previous.get("host")}
                written = write_snapshot(self.path, doc)
        result: dict[str, t.Any] = {
            "changed": changed,
            "path": self.path,
            "taken_at": stored["taken_at"],
            "format_version": stored["format_version"],
            "summary": summary(doc),
            "counts": {name: facet.get("count", 0) for name, facet in doc["facets"].items()},
            "issues": issue_report(doc),
            "duration_s": doc["duration_s"],
            "workers": (doc["facets"].get("files") or {}).get("workers", 0),
            "bytes": written,
            "notes": notes + _scan_notes(doc),
        }
        if changed and self.diff:
            before = _summary_lines(previous) if previous is not None else ""
            diff = drift_diff(drift, "", "") if drift else {"before": "", "after": ""}
            result["diff"] = {
                "before": before + diff["before"],
                "after": _summary_lines(doc) + diff["after"],
                "before_header": f"{self.path} ({previous['taken_at']})" if previous is not None else f"{self.path} (none)",
                "after_header": f"{self.path} ({doc['taken_at']})",
            }
        if return_snapshot:
            result["snapshot"] = displayable(doc)
        return result

    def absent(self) -> dict[str, t.Any]:
        exists = os.path.lexists(self.path)
        if exists and not self.check_mode:
            with locked(self.path):
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
                except OSError as exc:
                    raise DriftError(f"cannot remove {self.path}: {exc.strerror}") from exc
            try:
                os.unlink(self.path + ".lock")
            except OSError:
                pass
        return {"changed": exists, "path": self.path, "diff": {"before": f"{self.path}\n" if exists else "", "after": ""}}


def _scan_notes(doc: dict[str, t.Any]) -> list[str]:
    note = (doc["facets"].get("files") or {}).get("note")
    return [f"files: {note}"] if note else []


def _summary_lines(doc: dict[str, t.Any]) -> str:
    lines = [f"taken_at: {doc['taken_at']}"]
    for name, facet in doc["facets"].items():
        lines.append(f"{name}: {facet.get('count', 0)} items, {facet.get('status', 'ok')}, digest {str(facet.get('digest'))[:16]}")
    return "\n".join(lines) + "\n"


def displayable(value: t.Any) -> t.Any:
    """A copy of value whose strings are safe to return as JSON (non-UTF-8 names escaped)."""
    if isinstance(value, str):
        return display(value)
    if isinstance(value, dict):
        return {display(k) if isinstance(k, str) else k: displayable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [displayable(v) for v in value]
    return value


def snapshot_info(path: str, facets: list[str] | None = None, facet_buckets: list[str] | None = None, buckets: dict[str, list[str]] | None = None,
                  roots: list[str] | None = None, dirs: list[str] | None = None, full: bool = False) -> dict[str, t.Any]:
    """Read-only: the stored snapshot's summary, and the parts asked for (fleet comparison asks for these)."""
    try:
        doc = read_snapshot(path)
    except SnapshotMissing:
        return {"changed": False, "exists": False, "path": path}
    result = {"changed": False, "exists": True, "path": path, **query(doc, facets, facet_buckets, buckets, roots, dirs)}
    result["acceptances"] = doc.get("acceptances") or []
    if full:
        result["snapshot"] = displayable(doc)
    return result
