# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: the plan of a playbook run, as the sre.ops.plan callback records it.

Pure Python (no ansible imports), so every decision is unit tested: which action class a task result is,
which values are secret, how identical changes on many hosts are grouped, the JSON and Markdown documents,
the closing line, the detailed exit status, and the comparison of a check run's plan with a real run's.
The callback only feeds ansible's task results in and writes what comes out.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import json
import re
import typing as t

# The classes, their order, host ranges and the closing line are shared with the deploy role's rollout plan.
from ansible_collections.sre.ops.plugins.module_utils._plan_words import (  # pylint: disable=unused-import
    ACTIONS, CHANGE_ACTIONS, CREATE, DELETE, EXEC, FAILED, NOOP, REPORT_ORDER, RESTART, UNKNOWN, UNREACHABLE, UPDATE, closing_line, host_ranges,
    order_actions,
)

FORMAT_VERSION = "1.0"
# What a module may declare about its own result (failed/unreachable come from ansible, never declared).
DECLARABLE_ACTIONS = (CREATE, UPDATE, DELETE, RESTART, EXEC, NOOP, UNKNOWN)

# Result keys any module (or action plugin) can return to make its class and one-line summary explicit.
DECLARED_ACTION_KEY = "sreops_action"
DECLARED_SUMMARY_KEY = "sreops_summary"

DEFAULT_SECRET_PATTERNS = (
    "*password*", "*passwd*", "*passphrase*", "*secret*", "*token*", "*private_key*", "*api_key*", "*credential*",
)
# Values shorter than this are never masked as text: masking "1" or "yes" everywhere would garble the plan,
# and a value that short is no secret. (Values under a secret-looking key are masked whatever their length.)
MIN_SECRET_LENGTH = 4
MASK = "(masked)"
HIDDEN = "hidden (no_log)"
MAX_TEXT = 65536

# Exit statuses of exit_status=detailed: Puppet's --detailed-exitcodes bits (2 changes, 4 failures) plus a bit
# for unreachable hosts; ansible's own errors (1, 5, 99, 250) pass through.
EXIT_CONVERGED = 0
EXIT_ERROR = 1
EXIT_CHANGES = 2
EXIT_FAILED = 4
EXIT_UNREACHABLE = 8
# ansible-playbook's own codes from the task queue (ansible.errors.ExitCode); 4 also means a parser error.
ANSIBLE_OK, ANSIBLE_HOST_FAILED, ANSIBLE_HOST_UNREACHABLE = 0, 2, 4

COMMAND_MODULES = frozenset(("command", "shell", "script", "raw", "expect", "win_command", "win_shell", "psexec"))
SERVICE_MODULES = frozenset(("service", "systemd", "systemd_service", "sysvinit", "supervisorctl", "runit", "openrc", "win_service"))
PACKAGE_MODULES = frozenset((
    "package", "apt", "dnf", "dnf5", "yum", "zypper", "apk", "pacman", "pip", "gem", "npm", "snap", "flatpak", "homebrew",
))
# Modules that never change a host (or only the run's own memory): a result of theirs is noop whatever it says.
READ_ONLY_MODULES = frozenset((
    "debug", "assert", "fail", "set_fact", "set_stats", "include_vars", "stat", "slurp", "ping", "setup", "gather_facts",
    "wait_for", "wait_for_connection", "pause", "meta", "include_tasks", "import_tasks", "include_role", "import_role",
    "include", "add_host", "group_by", "getent", "find", "validate_argument_spec", "async_status", "uri_info",
    "sre.ops.health_check", "sre.ops.canary_analysis", "sre.ops.release_info", "sre.ops.haproxy_info",
))
CHECK_MODE_SKIP_MARKERS = (
    "does not support check mode",
    "Check mode is not supported",
    "Command would have run if not in check mode",
)
CONDITIONAL_SKIP = "Conditional result was False"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def short_module_name(action: str) -> str:
    """``ansible.builtin.copy`` and ``ansible.legacy.copy`` -> ``copy``; collection modules keep their FQCN."""
    for prefix in ("ansible.builtin.", "ansible.legacy."):
        if action.startswith(prefix):
            return action[len(prefix):]
    return action


def is_read_only(action: str, args: t.Mapping[str, t.Any] | None = None) -> bool:
    name = short_module_name(action)
    if name in READ_ONLY_MODULES or name.endswith("_info") or name.endswith("_facts"):
        return True
    if name == "uri":
        method = str((args or {}).get("method", "GET")).upper()
        return method in ("GET", "HEAD", "OPTIONS") and not (args or {}).get("dest")
    return False


def names_in(expression: str) -> set[str]:
    """The identifiers a Jinja condition mentions (a superset of the variables it reads: good enough to match)."""
    return set(_NAME.findall(expression or ""))


# ----- classification --------------------------------------------------------------------------------------
@dataclasses.dataclass
class Outcome:
    """What a result means for the plan: its action classes, and why when it is not obvious."""

    actions: list[str]
    reason: str = ""
    # True when check mode could not run the task, so a variable it registers holds no real result.
    unpredictable: bool = False


def _declared(result: t.Mapping[str, t.Any]) -> list[str] | None:
    value = result.get(DECLARED_ACTION_KEY)
    if value is None:
        return None
    values = [value] if isinstance(value, str) else list(value) if isinstance(value, (list, tuple)) else []
    declared = [v for v in values if v in DECLARABLE_ACTIONS]
    if not declared or len(declared) != len(values):
        return None
    return list(dict.fromkeys(declared))


def declare(result: dict[str, t.Any], actions: str | t.Sequence[str], summary: str = "") -> dict[str, t.Any]:
    """Make a module's (or action plugin's) result unambiguous for the plan: its classes, main one first, and one line.

    ``sre.ops.rollout_plan``-style results that change nothing but say what a run will do declare ``noop`` with a
    summary: the Markdown plan shows such summaries under "Notes", above the changes.
    """
    values = [actions] if isinstance(actions, str) else list(actions)
    unknown = [v for v in values if v not in DECLARABLE_ACTIONS]
    if not values or unknown:
        raise ValueError(f"plan actions must be among {', '.join(DECLARABLE_ACTIONS)}, got {values!r}")
    result[DECLARED_ACTION_KEY] = values if len(values) > 1 else values[0]
    if summary:
        result[DECLARED_SUMMARY_KEY] = summary
    return result


def _diff_parts(diff: t.Any) -> list[dict[str, t.Any]]:
    if isinstance(diff, dict):
        return [diff]
    if isinstance(diff, list):
        return [d for d in diff if isinstance(d, dict)]
    return []


def _absent(side: t.Any, header: t.Any) -> bool:
    """A diff side that shows nothing exists: a file module's ``state: absent``, or copy's empty side with no header."""
    if isinstance(side, dict):
        return side.get("state") == "absent"
    return side == "" and not header


def classify_by_diff(diff: t.Any) -> str:
    parts = [p for p in _diff_parts(diff) if "before" in p or "after" in p]
    if not parts:
        return UPDATE
    if all(_absent(p.get("before"), p.get("before_header")) for p in parts):
        return CREATE
    if all(_absent(p.get("after"), p.get("after_header")) for p in parts):
        return DELETE
    return UPDATE


def _release_actions(result: t.Mapping[str, t.Any]) -> list[str]:
    """sre.ops.release: a first release is create, a switch is update, pruned releases are delete."""
    actions = []
    if result.get("switched"):
        actions.append(UPDATE if result.get("previous") else CREATE)
    elif result.get("staged"):
        actions.append(CREATE)
    if result.get("pruned"):
        actions.append(DELETE)
    return actions or [UPDATE]


def _changed_actions(name: str, result: t.Mapping[str, t.Any], args: t.Mapping[str, t.Any]) -> list[str]:
    state = str(args.get("state", "") or "")
    if name == "sre.ops.release":
        return _release_actions(result)
    if name in ("sre.ops.haproxy_server", "sre.ops.haproxy_map"):
        return [UPDATE]
    if name == "sre.ops.app_restart":
        return [RESTART]
    if name in SERVICE_MODULES:
        if state in ("restarted", "reloaded", "started", "stopped"):
            return [RESTART]
        return [UPDATE]
    if name in PACKAGE_MODULES:
        if state in ("absent", "removed"):
            return [DELETE]
        if state == "latest":
            return [UPDATE]
        return [CREATE]
    if name in ("user", "group") and state == "absent":
        return [DELETE]
    return [classify_by_diff(result.get("diff"))]


def classify(
    action: str,
    status: str,
    result: t.Mapping[str, t.Any],
    *,
    args: t.Mapping[str, t.Any] | None = None,
    check_mode: bool = False,
    unpredictable_vars: t.Collection[str] = (),
) -> Outcome:
    """The action classes of one task result (or one loop item's result).

    ``status`` is ansible's verdict: ok, failed, skipped or unreachable. ``unpredictable_vars`` are the
    variables this host registered from tasks check mode could not run: a task skipped because its condition
    reads one of them may well run for real, so it is unknown rather than noop.
    """
    args = args or {}
    name = short_module_name(action)
    if status == UNREACHABLE:
        return Outcome([UNREACHABLE])
    if status == FAILED:
        return Outcome([FAILED])
    msg = str(result.get("msg", "") or "")
    if status == "skipped":
        if any(marker in msg for marker in CHECK_MODE_SKIP_MARKERS):
            if name in COMMAND_MODULES:
                return Outcome([EXEC], "would run; its effect is known only when it runs", unpredictable=True)
            return Outcome([UNKNOWN], f"{name} cannot run in check mode", unpredictable=True)
        condition = str(result.get("false_condition", "") or "")
        if check_mode and result.get("skip_reason") == CONDITIONAL_SKIP:
            depends = sorted(names_in(condition) & set(unpredictable_vars))
            if depends:
                return Outcome([UNKNOWN], f"its condition reads {', '.join(depends)}, which check mode could not predict", unpredictable=True)
            if "ansible_check_mode" in names_in(condition) and not is_read_only(action, args):
                return Outcome([UNKNOWN], "skipped because the run is in check mode", unpredictable=True)
        return Outcome([NOOP])
    declared = _declared(result)
    if declared is not None:
        return Outcome(declared)
    changed = bool(result.get("changed"))
    if name in COMMAND_MODULES:
        return Outcome([EXEC] if changed else [NOOP])
    if not changed or is_read_only(action, args):
        return Outcome([NOOP])
    return Outcome(_changed_actions(name, result, args))


# ----- secrets ---------------------------------------------------------------------------------------------
class Masker:
    """Masks secret values wherever they appear, and values under secret-looking keys."""

    def __init__(self, patterns: t.Iterable[str] = DEFAULT_SECRET_PATTERNS, names: t.Iterable[str] = ()) -> None:
        self.patterns: list[str] = []
        self.names: set[str] = set()
        self._secrets: set[str] = set()
        self._regex: re.Pattern[str] | None = None
        self.configure(patterns, names)

    def configure(self, patterns: t.Iterable[str], names: t.Iterable[str]) -> None:
        """Which variable names are secret; the secret values already known stay known."""
        self.patterns = [str(p).lower() for p in patterns if p]
        self.names = {str(n).lower() for n in names if n}

    def is_secret_name(self, name: str) -> bool:
        lowered = str(name).lower()
        return lowered in self.names or any(fnmatch.fnmatchcase(lowered, p) for p in self.patterns)

    def add(self, value: t.Any) -> None:
        """Remember a secret value (strings inside lists and dicts too)."""
        for text in _leaves(value):
            if len(text) >= MIN_SECRET_LENGTH and text not in self._secrets:
                self._secrets.add(text)
                self._regex = None

    def add_from_vars(self, variables: t.Mapping[str, t.Any]) -> list[str]:
        """Remember the values of every secret-named variable; returns the names found."""
        found = []
        for name, value in variables.items():
            if self.is_secret_name(name):
                self.add(value)
                found.append(name)
        return found

    @property
    def secrets(self) -> frozenset[str]:
        return frozenset(self._secrets)

    def text(self, value: str) -> str:
        if not self._secrets or not value:
            return value
        if self._regex is None:
            self._regex = re.compile("|".join(re.escape(s) for s in sorted(self._secrets, key=len, reverse=True)))
        return self._regex.sub(MASK, value)

    def data(self, value: t.Any) -> t.Any:
        """A copy of JSON-like data with secrets masked, keys included."""
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                masked_key = self.text(str(key))
                if self.is_secret_name(str(key)) and item not in (None, "", [], {}) and not isinstance(item, bool):
                    out[masked_key] = MASK
                else:
                    out[masked_key] = self.data(item)
            return out
        if isinstance(value, list):
            return [self.data(v) for v in value]
        return value


def _leaves(value: t.Any) -> t.Iterator[str]:
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, (list, tuple, set)):
        for item in value:
            yield from _leaves(item)
    else:
        yield str(value)


def plain(value: t.Any, depth: int = 0) -> t.Any:
    """JSON-safe plain data (ansible hands tagged and wrapped types to callbacks); long text is cut."""
    if depth > 40:
        return "(nested too deep)"
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        text = str.__str__(value)  # a plain str, also from ansible's tagged str subclasses
        return text if len(text) <= MAX_TEXT else text[:MAX_TEXT] + f"... ({len(text) - MAX_TEXT} more characters cut)"
    if isinstance(value, dict):
        return {str(k): plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [plain(v, depth + 1) for v in value]
    return plain(str(value), depth + 1)


# ----- the plan ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Record:
    """One task on one host: what it would do (check mode) or did (a real run)."""

    host: str
    address: str
    task: str
    module: str
    actions: list[str]
    changed: bool = False
    diff: list[dict[str, t.Any]] = dataclasses.field(default_factory=list)
    msg: str = ""
    reason: str = ""
    hidden: bool = False
    ignored: bool = False
    rescued: bool = False
    items: list[dict[str, t.Any]] = dataclasses.field(default_factory=list)
    host_address: str = ""
    # The module declared a summary (sreops_summary): shown under "Notes" when the record changes nothing.
    note: bool = False

    @property
    def action(self) -> str:
        return self.actions[0] if self.actions else NOOP

    @property
    def is_change(self) -> bool:
        return not self.is_failure and any(a in CHANGE_ACTIONS for a in self.actions)

    @property
    def is_failure(self) -> bool:
        return FAILED in self.actions and not self.ignored and not self.rescued

    def to_dict(self, masker: Masker) -> dict[str, t.Any]:
        out: dict[str, t.Any] = {
            "address": masker.text(self.address),  # a task without a file position is known by its name
            "task": masker.text(self.task),
            "module": self.module,
            "action": self.action,
            "actions": list(self.actions),
            "changed": self.changed,
        }
        if self.hidden:
            out["hidden"] = True
            out["msg"] = HIDDEN
        else:
            if self.diff:
                out["diff"] = masker.data(self.diff)
            if self.msg:
                out["msg"] = masker.text(self.msg)
            if self.items:
                out["items"] = masker.data(self.items)
        if self.reason:
            out["reason"] = masker.text(self.reason)
        if self.ignored:
            out["ignored"] = True
        if self.rescued:
            out["rescued"] = True
        return out


def normalize_diff(diff: t.Any) -> list[dict[str, t.Any]]:
    """A module's ``diff`` (a dict or a list of them) as a list of {before_header, before, after_header, after, prepared}."""
    out = []
    for part in _diff_parts(diff):
        kept = {k: plain(part[k]) for k in ("before_header", "after_header", "before", "after", "prepared") if k in part}
        if any(k in kept for k in ("before", "after", "prepared")):
            if kept.get("before") == kept.get("after") and "prepared" not in kept:
                continue
            out.append(kept)
    return out


def result_message(name: str, result: t.Mapping[str, t.Any]) -> str:
    """The one line a record shows: the module's declared summary, the command it runs, or its msg."""
    summary = result.get(DECLARED_SUMMARY_KEY)
    if summary:
        return str(summary)
    if name in COMMAND_MODULES and result.get("cmd"):
        cmd = result["cmd"]
        return " ".join(str(c) for c in cmd) if isinstance(cmd, list) else str(cmd)
    if name == "sre.ops.release" and (result.get("switched") or result.get("staged") or result.get("pruned")):
        parts = []
        if result.get("switched"):
            parts.append(f"current {result.get('previous') or '(none)'} -> {result.get('current')}")
        elif result.get("staged"):
            parts.append(f"stage {result.get('release')}")
        if result.get("pruned"):
            parts.append("prune " + ", ".join(str(p) for p in result["pruned"]))
        return "; ".join(parts)
    msg = result.get("msg")
    if msg == "All items completed":  # ansible's own line for a loop: the items say more
        return ""
    if isinstance(msg, list):
        msg = "; ".join(str(m) for m in msg)
    return str(msg or "")


@dataclasses.dataclass
class Summary:
    hosts: int = 0
    to_change: int = 0
    counts: dict[str, int] = dataclasses.field(default_factory=lambda: {a: 0 for a in ACTIONS})
    ignored: int = 0
    hidden: int = 0

    def to_dict(self) -> dict[str, t.Any]:
        out: dict[str, t.Any] = {"hosts": self.hosts, "to_change": self.to_change}
        out.update({a: self.counts[a] for a in REPORT_ORDER})
        out["ignored"] = self.ignored
        out["hidden"] = self.hidden
        return out


class Plan:
    """The records of one run, with what the plan documents are made of."""

    def __init__(self, check_mode: bool = True, masker: Masker | None = None) -> None:
        self.check_mode = check_mode
        self.masker = masker or Masker()
        self.records: list[Record] = []
        self.meta: dict[str, t.Any] = {}
        self.failed_hosts: set[str] = set()
        self.unreachable_hosts: set[str] = set()

    def add(self, record: Record) -> None:
        self.records.append(record)
        if UNREACHABLE in record.actions:
            self.unreachable_hosts.add(record.host)
        if record.is_failure:
            self.failed_hosts.add(record.host)

    @property
    def hosts(self) -> list[str]:
        seen: dict[str, None] = {}
        for record in self.records:
            seen.setdefault(record.host, None)
        return list(seen)

    def summary(self) -> Summary:
        summary = Summary(hosts=len(self.hosts))
        for record in self.records:
            if record.is_change:
                summary.to_change += 1
            for action in record.actions:
                if action == FAILED and not record.is_failure:
                    continue
                summary.counts[action] += 1
            summary.ignored += int(FAILED in record.actions and not record.is_failure)
            summary.hidden += int(record.hidden)
        summary.counts[UNREACHABLE] = len(self.unreachable_hosts)
        return summary

    def closing_line(self) -> str:
        s = self.summary()
        c = s.counts
        tail = [f"{c[UNKNOWN]} unknown", f"{c[FAILED]} failed"] + ([f"{c[UNREACHABLE]} unreachable"] if c[UNREACHABLE] else [])
        if self.check_mode:
            return closing_line("Plan", s.hosts, s.to_change, c, "to change", tail)
        return closing_line("Run", s.hosts, s.to_change, c, "changed", tail)

    def exit_status(self, ansible_rc: int | None = None, unknown_as_change: bool = False) -> int:
        return detailed_exit_status(self, ansible_rc, unknown_as_change)

    def to_dict(self, exit_status: int | None = None) -> dict[str, t.Any]:
        hosts: dict[str, list[dict[str, t.Any]]] = {}
        for record in self.records:
            hosts.setdefault(record.host, []).append(record.to_dict(self.masker))
        summary = self.summary()
        doc = {"format_version": FORMAT_VERSION}
        doc.update(self.masker.data(self.meta))
        doc.update({
            "check_mode": self.check_mode,
            "summary": summary.to_dict(),
            "complete": not (summary.counts[UNKNOWN] or summary.counts[FAILED] or summary.counts[UNREACHABLE]),
            "closing_line": self.closing_line(),
            "hosts": hosts,
        })
        if exit_status is not None:
            doc["exit_status"] = {"code": exit_status, "meaning": describe_exit_status(exit_status)}
        return doc

    def to_json(self, exit_status: int | None = None) -> str:
        return json.dumps(self.to_dict(exit_status), indent=1, sort_keys=False) + "\n"

    def groups(self, select: t.Callable[[Record], bool]) -> list[Group]:
        return group_records([r for r in self.records if select(r)], self.masker)

    def markdown(self, exit_status: int | None = None) -> str:
        return render_markdown(self, exit_status)


# ----- grouping ---------------------------------------------------------------------------------------------
@dataclasses.dataclass
class Group:
    """The same change (task, actions, diff and message, once host names are set aside) on several hosts."""

    address: str
    task: str
    module: str
    actions: list[str]
    hosts: list[str]
    diff: list[dict[str, t.Any]]
    msg: str
    reason: str
    hidden: bool
    items: list[dict[str, t.Any]]


def _host_neutral(value: t.Any, names: tuple[str, ...]) -> t.Any:
    """``value`` with the host's own name and address replaced by placeholders, so per-host copies compare equal."""
    text = json.dumps(value, sort_keys=True)
    for token, placeholder in zip(names, ("{host}", "{address}")):
        if token:
            text = re.sub(r"(?<![A-Za-z0-9_.-])" + re.escape(token) + r"(?![A-Za-z0-9_-]|\.[A-Za-z0-9])", placeholder, text)
    return json.loads(text)


def group_records(records: list[Record], masker: Masker) -> list[Group]:
    groups: dict[str, Group] = {}
    originals: dict[str, dict[str, t.Any]] = {}
    fields = ("address", "task", "module", "actions", "diff", "msg", "reason", "items", "hidden")
    for record in records:
        data = {k: v for k, v in record.to_dict(masker).items() if k in fields}
        neutral = _host_neutral(data, (record.host, record.host_address if record.host_address != record.host else ""))
        key = json.dumps(neutral, sort_keys=True)
        if key in groups:
            groups[key].hosts.append(record.host)
            continue
        originals[key] = data
        groups[key] = Group(
            address=neutral["address"], task=neutral["task"], module=record.module, actions=list(record.actions), hosts=[record.host],
            diff=neutral.get("diff") or [], msg=neutral.get("msg") or "", reason=neutral.get("reason") or "",
            hidden=record.hidden, items=neutral.get("items") or [],
        )
    for key, group in groups.items():
        if len(group.hosts) == 1:  # nothing to set aside: show the host's own text
            data = originals[key]
            group.address, group.task = data["address"], data["task"]
            group.diff, group.msg, group.reason, group.items = data.get("diff") or [], data.get("msg") or "", data.get("reason") or "", data.get("items") or []
    return list(groups.values())


# ----- Markdown ---------------------------------------------------------------------------------------------
def _as_lines(value: t.Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return value.splitlines()
    return json.dumps(value, indent=2, sort_keys=True).splitlines()


def render_diff(parts: list[dict[str, t.Any]]) -> str:
    chunks = []
    for part in parts:
        if "prepared" in part:
            chunks.append(str(part["prepared"]).rstrip("\n"))
            continue
        before_name = str(part.get("before_header") or "before")
        after_name = str(part.get("after_header") or "after")
        lines = difflib.unified_diff(_as_lines(part.get("before")), _as_lines(part.get("after")), before_name, after_name, lineterm="", n=3)
        chunks.append("\n".join(lines))
    return "\n".join(c for c in chunks if c)


def _fence(text: str, language: str = "") -> str:
    fence = "```"
    while fence in text:
        fence += "`"
    return f"{fence}{language}\n{text}\n{fence}"


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _group_heading(group: Group) -> str:
    hosts = len(group.hosts)
    where = f"same change on {hosts} hosts: {host_ranges(group.hosts)}" if hosts > 1 else f"on {group.hosts[0]}"
    title = group.task if group.task and group.task != group.module else ""
    task = f"{title} ({group.module})" if title else group.module
    return f"### {' + '.join(group.actions)}: {task}, {where}"


def _render_group(group: Group) -> list[str]:
    lines = [_group_heading(group), ""]
    lines.append(f"Task `{group.address}`.")
    if group.hidden:
        lines.append(f"Result {HIDDEN}.")
    if group.msg:
        lines.append(f"Message: {group.msg}")
    if group.reason:
        lines.append(f"Why: {group.reason}")
    for item in group.items:
        if item.get("actions") and item["actions"] != [NOOP]:
            lines.append(f"- item `{item.get('item')}`: {' + '.join(item['actions'])}" + (f", {item['msg']}" if item.get("msg") else ""))
    diff_text = render_diff(group.diff)
    for item in group.items:
        item_diff = render_diff(item.get("diff") or [])
        if item_diff:
            diff_text += ("\n" if diff_text else "") + item_diff
    if diff_text:
        lines += ["", _fence(diff_text, "diff")]
    lines.append("")
    return lines


def render_markdown(plan: Plan, exit_status: int | None = None) -> str:
    meta = plan.masker.data(plan.meta)
    s = plan.summary()
    title = "Plan" if plan.check_mode else "Run record"
    lines = [f"# {title}: {meta.get('playbook', '')}", "", f"**{plan.closing_line()}**", ""]
    lines += ["| | |", "|---|---|"]
    for label, key in (("playbook", "playbook"), ("limit", "limit"), ("check mode", "check_mode_flag"), ("diff mode", "diff_mode"),
                       ("started", "started"), ("ended", "ended"), ("ansible-core", "ansible_version"), ("sre.ops", "collection_version")):
        value = plan.check_mode if key == "check_mode_flag" else meta.get(key)
        lines.append(f"| {label} | {_md_escape(str(value if value not in (None, '') else '-'))} |")
    if exit_status is not None:
        lines.append(f"| exit status | {exit_status} ({describe_exit_status(exit_status)}) |")
    lines.append("")
    sections = (
        ("Notes", lambda r: r.note and r.actions == [NOOP]),
        ("Changes", lambda r: r.is_change),
        ("Unknown: could not be predicted", lambda r: UNKNOWN in r.actions and not r.is_change and not r.is_failure),
        ("Failed", lambda r: r.is_failure),
        ("Unreachable", lambda r: UNREACHABLE in r.actions),
    )
    for heading, select in sections:
        groups = plan.groups(select)
        if not groups:
            continue
        lines += [f"## {heading}", ""]
        for group in groups:
            lines += _render_group(group)
    busy = {r.host for r in plan.records if r.is_change or r.is_failure or UNKNOWN in r.actions or UNREACHABLE in r.actions}
    noop_hosts = [h for h in plan.hosts if h not in busy]
    if noop_hosts:
        lines += ["## Nothing to change", "", f"{len(noop_hosts)} host{'s' if len(noop_hosts) != 1 else ''}: {host_ranges(noop_hosts)}", ""]
    if s.hidden:
        lines += [f"{s.hidden} result{'s' if s.hidden != 1 else ''} {HIDDEN}.", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


# ----- exit status -----------------------------------------------------------------------------------------
EXIT_MEANINGS = {
    EXIT_CONVERGED: "converged: nothing to change",
    EXIT_ERROR: "error: ansible could not run the playbook",
    EXIT_CHANGES: "changes pending" ,
    EXIT_FAILED: "failures",
    EXIT_FAILED | EXIT_CHANGES: "changes pending and failures",
    EXIT_UNREACHABLE: "unreachable hosts",
    EXIT_UNREACHABLE | EXIT_CHANGES: "changes pending and unreachable hosts",
    EXIT_UNREACHABLE | EXIT_FAILED: "failures and unreachable hosts",
    EXIT_UNREACHABLE | EXIT_FAILED | EXIT_CHANGES: "changes pending, failures and unreachable hosts",
}


def describe_exit_status(code: int) -> str:
    return EXIT_MEANINGS.get(code, f"ansible's own exit status {code}")


def detailed_exit_status(plan: Plan, ansible_rc: int | None = None, unknown_as_change: bool = False) -> int:
    """The detailed exit status: bits 2 changes pending (made, in a real run), 4 failures, 8 unreachable hosts.

    ``ansible_rc`` is the code ansible-playbook was about to exit with. Its task-queue codes (0, 2 failed
    hosts, 4 unreachable hosts) are folded in; any other code means ansible itself hit an error and is kept
    (a 4 that no unreachable host explains is a parser error, reported as 1).
    """
    if ansible_rc not in (None, ANSIBLE_OK, ANSIBLE_HOST_FAILED, ANSIBLE_HOST_UNREACHABLE):
        return int(ansible_rc)  # type: ignore[arg-type]
    if ansible_rc == ANSIBLE_HOST_UNREACHABLE and not plan.unreachable_hosts:
        return EXIT_ERROR
    summary = plan.summary()
    code = EXIT_CONVERGED
    if summary.to_change or (unknown_as_change and summary.counts[UNKNOWN]):
        code |= EXIT_CHANGES
    if plan.failed_hosts or ansible_rc == ANSIBLE_HOST_FAILED:
        code |= EXIT_FAILED
    if plan.unreachable_hosts:
        code |= EXIT_UNREACHABLE
    return code


# ----- fidelity ---------------------------------------------------------------------------------------------
def compare(predicted: t.Mapping[str, t.Any], actual: t.Mapping[str, t.Any]) -> list[str]:
    """Where a check run's plan (JSON) and the real run's record disagree; an empty list when they agree.

    They agree when the same hosts ran the same tasks with the same action classes. A task the plan calls
    ``unknown`` may have done anything; a task that only the real run reached is explained when an unknown
    task came before it on that host (check mode could not follow that branch).
    """
    problems = []
    predicted_hosts, actual_hosts = predicted.get("hosts", {}), actual.get("hosts", {})
    for host in sorted(set(predicted_hosts) | set(actual_hosts)):
        if host not in actual_hosts or host not in predicted_hosts:
            problems.append(f"{host}: only in the {'plan' if host not in actual_hosts else 'run'}")
            continue
        plan_tasks = {r["address"]: r for r in predicted_hosts[host]}
        run_tasks = {r["address"]: r for r in actual_hosts[host]}
        unknown_seen = False
        for record in predicted_hosts[host]:
            unknown_seen = unknown_seen or UNKNOWN in record["actions"]
            ran = run_tasks.get(record["address"])
            if ran is None:
                if not unknown_seen:
                    problems.append(f"{host}: {record['address']} ({record['task']}) planned {record['actions']} but did not run")
                continue
            if UNKNOWN in record["actions"] or set(record["actions"]) == set(ran["actions"]):
                continue
            problems.append(f"{host}: {record['address']} ({record['task']}) planned {record['actions']}, ran {ran['actions']}")
        if not any(UNKNOWN in r["actions"] for r in predicted_hosts[host]):
            for address, ran in run_tasks.items():
                if address not in plan_tasks:
                    problems.append(f"{host}: {address} ({ran['task']}) ran {ran['actions']} but was not in the plan")
    return problems
