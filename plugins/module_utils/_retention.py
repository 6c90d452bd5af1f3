# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: restic retention (forget, prune) that shows its decision first and cannot empty a group by mistake.

The decision is restic's own: `restic forget --dry-run --json` with the policy. Check mode returns it;
a real run removes exactly the snapshots that dry run chose (`restic forget <ids>`), so what check mode
showed is what happens even if a backup lands in between. A policy that would leave a group without any
snapshot, or remove a group's newest snapshot, is refused unless explicitly allowed.
"""

from __future__ import annotations

import typing as t

from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError, SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._restic import Repository, json_document, parse_time_ns, filter_args

KEEP_COUNTS = ("keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly")
KEEP_WITHIN = ("keep_within", "keep_within_hourly", "keep_within_daily", "keep_within_weekly", "keep_within_monthly", "keep_within_yearly")
GROUP_BY = ("host", "paths", "tags")


class RetentionError(SreOpsError):
    """A retention policy was refused; no snapshot was removed."""


def _restic_duration(value: str, option: str) -> str:
    import re  # pylint: disable=import-outside-toplevel

    text = str(value).strip()
    if not re.fullmatch(r"(\d+y)?(\d+m)?(\d+d)?(\d+h)?", text) or not text:
        raise InvalidInputError(f"{option} {value!r} is not a restic duration: use years, months, days and hours, e.g. 1y6m, 30d, 36h")
    return text


def policy_args(policy: dict[str, t.Any]) -> list[str]:
    """restic forget options for a policy; an empty policy is an error (restic would keep everything, or nothing)."""
    args: list[str] = []
    for key in KEEP_COUNTS:
        value = policy.get(key)
        if value is None:
            continue
        if int(value) < 0:
            raise InvalidInputError(f"{key} must be 0 or more, got {value}")
        if int(value) > 0:
            args += [f"--{key.replace('_', '-')}", str(int(value))]
    for key in KEEP_WITHIN:
        if policy.get(key):
            args += [f"--{key.replace('_', '-')}", _restic_duration(policy[key], key)]
    for tag in policy.get("keep_tag") or []:
        args += ["--keep-tag", tag]
    if not args:
        raise InvalidInputError(
            "the retention policy keeps nothing: set at least one of keep_last, keep_hourly, keep_daily, keep_weekly, keep_monthly, "
            "keep_yearly, keep_within(_*) or keep_tag (restic would otherwise remove every snapshot it selects)")
    return args


def group_by_arg(group_by: list[str]) -> str:
    for item in group_by:
        if item not in GROUP_BY:
            raise InvalidInputError(f"group_by accepts {', '.join(GROUP_BY)}, got {item!r}")
    return ",".join(group_by)


def _brief(snapshot: dict[str, t.Any]) -> dict[str, t.Any]:
    return {"id": snapshot["id"], "short_id": snapshot.get("short_id", snapshot["id"][:8]), "time": snapshot["time"],
            "host": snapshot.get("hostname"), "tags": snapshot.get("tags") or [], "paths": snapshot.get("paths") or []}


def parse_forget(doc: t.Any) -> list[dict[str, t.Any]]:
    """Groups from `restic forget --json`: what is kept (with restic's reasons) and what is removed, newest first."""
    groups = []
    for group in doc or []:
        keep = [_brief(s) for s in group.get("keep") or []]
        remove = [_brief(s) for s in group.get("remove") or []]
        reasons = group.get("reasons") or []
        for index, kept in enumerate(keep):
            match = None
            if index < len(reasons) and reasons[index].get("snapshot", {}).get("time") == kept["time"]:
                match = reasons[index]
            else:
                match = next((r for r in reasons if r.get("snapshot", {}).get("time") == kept["time"]), None)
            kept["reasons"] = list(match.get("matches") or []) if match else []
        keep.sort(key=lambda s: parse_time_ns(s["time"]), reverse=True)
        remove.sort(key=lambda s: parse_time_ns(s["time"]), reverse=True)
        groups.append({"host": group.get("host"), "tags": group.get("tags") or [], "paths": group.get("paths") or [],
                       "keep": keep, "remove": remove})
    return groups


def refusals(groups: list[dict[str, t.Any]], allow_remove_all: bool, allow_remove_newest: bool) -> list[str]:
    problems = []
    for group in groups:
        label = f"host {group['host'] or '*'}, paths {','.join(group['paths']) or '*'}, tags {','.join(group['tags']) or '-'}"
        if group["remove"] and not group["keep"]:
            if not allow_remove_all:
                problems.append(f"the policy removes every snapshot of group ({label}); set allow_remove_all=true if that is meant")
            continue  # removing everything was allowed, the newest snapshot included
        everything = group["keep"] + group["remove"]
        newest = max(everything, key=lambda s: parse_time_ns(s["time"])) if everything else None
        if newest and any(s["id"] == newest["id"] for s in group["remove"]) and not allow_remove_newest:
            problems.append(f"the policy removes the newest snapshot {newest['short_id']} of group ({label}); "
                            "set allow_remove_newest=true if that is meant")
    return problems


class RetentionManager:
    def __init__(self, repo: Repository, *, policy: dict[str, t.Any], host: str | None = None, tags: list[str] | None = None,
                 paths: list[str] | None = None, group_by: list[str] | None = None, prune: bool = False,
                 max_unused: str | None = None, allow_remove_all: bool = False, allow_remove_newest: bool = False,
                 check_mode: bool = False) -> None:
        self.repo = repo
        self.args = policy_args(policy)
        self.host = host
        self.tags = tags or []
        self.paths = paths or []
        self.group_by = group_by_arg(group_by if group_by is not None else ["host", "paths"])
        self.prune = prune
        self.max_unused = max_unused
        self.allow_remove_all = allow_remove_all
        self.allow_remove_newest = allow_remove_newest
        self.check_mode = check_mode

    def decide(self) -> list[dict[str, t.Any]]:
        args = ["forget", "--json", "--dry-run", "--no-lock", "--group-by", self.group_by, *self.args,
                *filter_args(self.host, self.tags, self.paths)]
        return parse_forget(json_document(self.repo.run(*args, what="forget --dry-run").stdout, "forget"))

    def run(self) -> dict[str, t.Any]:
        self.repo.check_password_source()
        groups = self.decide()
        problems = refusals(groups, self.allow_remove_all, self.allow_remove_newest)
        removed = [s for g in groups for s in g["remove"]]
        kept = [s for g in groups for s in g["keep"]]
        result: dict[str, t.Any] = {
            "changed": bool(removed), "groups": groups, "removed": [s["id"] for s in removed], "kept": [s["id"] for s in kept],
            "policy": self.args, "repository": self.repo.display, "pruned": False,
            "diff": {"before": {"snapshots": sorted(s["short_id"] for s in kept + removed)},
                     "after": {"snapshots": sorted(s["short_id"] for s in kept)}} if removed else {},
        }
        if problems:
            raise RetentionError("refusing the retention policy, nothing was removed: " + "; ".join(problems), result=result)
        if self.check_mode or not removed:
            result.update(notes=self.repo.notes, stale_locks_removed=self.repo.stale_locks_removed)
            return result
        self.repo.run("forget", *[s["id"] for s in removed], what="forget")
        if self.prune:
            args = ["prune"]
            if self.max_unused:
                args += ["--max-unused", self.max_unused]
            self.repo.run(*args, what="prune")
            result["pruned"] = True
        result.update(notes=self.repo.notes, stale_locks_removed=self.repo.stale_locks_removed)
        return result
