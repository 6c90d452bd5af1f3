# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: plan
type: notification
short_description: The plan of a run - what every task would change (--check) or changed - as JSON and Markdown, with a detailed exit status
version_added: 0.1.0
author:
  - sre.ops developers (@sre-ops)
description:
  - Records every task result of every host, in check mode and in real runs, and classifies each as V(create), V(update),
    V(delete), V(restart), V(exec) (a command that would run), V(noop), V(unknown) (check mode cannot predict it),
    V(failed) or V(unreachable). The rules are in the collection's C(docs/plan.md).
  - >-
    At the end of the run it writes a JSON plan and a Markdown plan for change tickets (identical changes on many hosts are
    grouped, so a 200-host plan with one change reads in one screen) to O(dir), and prints one closing line such as
    C(Plan: 4 hosts, 7 to change (2 create, 5 update, 0 delete), 1 unknown, 0 failed.)
  - Works beside any stdout callback, including the display callback ansible-runner and AWX / Automation Controller add.
  - >-
    Nothing secret reaches the plan. Results of C(no_log) tasks are recorded as hidden, tasks with C(diff: false) have no diff
    in the plan, and the values of variables named in O(secret_vars) or matching O(secret_patterns) are masked everywhere.
  - With O(exit_status=detailed), ansible-playbook ends with C(0) when nothing is to change, C(2) when changes are pending,
    C(4) on failures and C(8) when hosts were unreachable (added together when several apply). Ansible's own errors keep their
    codes. ansible-runner reports these as its C(rc), and as status C(failed) for anything but C(0).
  - A problem with the plan (an unwritable O(dir), an invalid option value) is a warning naming the setting; it never stops
    or fails the playbook run.
requirements:
  - Enable it in ansible.cfg (C(callbacks_enabled = sre.ops.plan)) or with C(ANSIBLE_CALLBACKS_ENABLED=sre.ops.plan).
options:
  dir:
    description:
      - The directory the plans are written to, created if missing. Each run writes
        C(plan-<UTC start time>-<playbook>.json) and C(.md), and copies them to C(latest.json) and C(latest.md).
      - A relative path is relative to the directory ansible-playbook runs in (for an ini setting, to the ansible.cfg file).
      - Default - C(plans) in the directory ansible-playbook runs in; under ansible-runner (and so AWX), C(sre_ops_plan) in the
        run's artifact directory.
    type: path
    env:
      - name: SREOPS_PLAN_DIR
    ini:
      - section: sre_ops_plan
        key: dir
  formats:
    description: Which documents to write. An empty list writes none (the closing line and the exit status still work).
    type: list
    elements: str
    choices: [json, markdown]
    default: [json, markdown]
    env:
      - name: SREOPS_PLAN_FORMATS
    ini:
      - section: sre_ops_plan
        key: formats
  display:
    description:
      - What the callback prints at the end of the run. V(line) prints the closing line and where the plans were written.
      - V(markdown) prints the whole Markdown plan too, for places where the run's output is what stays, such as an AWX job.
    type: str
    choices: [line, markdown]
    default: line
    env:
      - name: SREOPS_PLAN_DISPLAY
    ini:
      - section: sre_ops_plan
        key: display
  exit_status:
    description:
      - V(ansible) leaves ansible-playbook's exit status alone.
      - V(detailed) ends the run with C(0) converged (nothing to change), C(2) changes pending (in a real run - changes made),
        C(4) failures, C(8) unreachable hosts, or their sum when several apply (C(6) is changes pending and failures).
        Errors of ansible itself keep their codes (C(1), C(5), C(99), C(250)); a parser error becomes C(1).
    type: str
    choices: [ansible, detailed]
    default: ansible
    env:
      - name: SREOPS_PLAN_EXIT_STATUS
    ini:
      - section: sre_ops_plan
        key: exit_status
  unknown_as_change:
    description: With O(exit_status=detailed), count results that check mode could not predict (V(unknown)) as pending changes.
    type: bool
    default: false
    env:
      - name: SREOPS_PLAN_UNKNOWN_AS_CHANGE
    ini:
      - section: sre_ops_plan
        key: unknown_as_change
  secret_vars:
    description: Variables whose values are masked wherever they appear in the plan, besides those matching O(secret_patterns).
    type: list
    elements: str
    default: []
    env:
      - name: SREOPS_PLAN_SECRET_VARS
    ini:
      - section: sre_ops_plan
        key: secret_vars
  secret_patterns:
    description:
      - Shell-style patterns (case-insensitive) for variable names whose values are masked wherever they appear, and for result keys
        whose values are masked.
      - Values shorter than 4 characters are masked only under such a key, never as text elsewhere.
    type: list
    elements: str
    default: ["*password*", "*passwd*", "*passphrase*", "*secret*", "*token*", "*private_key*", "*api_key*", "*credential*"]
    env:
      - name: SREOPS_PLAN_SECRET_PATTERNS
    ini:
      - section: sre_ops_plan
        key: secret_patterns
notes:
  - The exit status is set when ansible-playbook exits (the callback wraps the final C(sys.exit) of the controller process), so every
    callback, including ansible-runner's, sees the whole run first. C(docs/plan.md) in the collection explains why this design was
    chosen, and has the JSON format, the classification rules and how to use the plan from AWX.
"""

import configparser
import datetime
import json
import os
import sys
import tempfile
import time
import typing as t

from ansible import constants as C
from ansible import context
from ansible.errors import AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.callback import CallbackBase
from ansible.release import __version__ as ansible_version

from ansible_collections.sre.ops.plugins.plugin_utils import _plan

OPTION_SOURCES = {
    "dir": "SREOPS_PLAN_DIR or [sre_ops_plan] dir",
    "formats": "SREOPS_PLAN_FORMATS or [sre_ops_plan] formats",
    "display": "SREOPS_PLAN_DISPLAY or [sre_ops_plan] display",
    "exit_status": "SREOPS_PLAN_EXIT_STATUS or [sre_ops_plan] exit_status",
    "unknown_as_change": "SREOPS_PLAN_UNKNOWN_AS_CHANGE or [sre_ops_plan] unknown_as_change",
    "secret_vars": "SREOPS_PLAN_SECRET_VARS or [sre_ops_plan] secret_vars",
    "secret_patterns": "SREOPS_PLAN_SECRET_PATTERNS or [sre_ops_plan] secret_patterns",
}


BOOLEAN_WORDS = frozenset(("true", "false", "yes", "no", "on", "off", "1", "0", "y", "n", "t", "f"))


def _raw_setting(env_name: str, ini_key: str) -> str | None:
    """A setting as the user wrote it (ansible reads any unknown word as false for a boolean, silently)."""
    if env_name in os.environ:
        return os.environ[env_name]
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read(C.CONFIG_FILE or "", encoding="utf-8")
        return parser.get("sre_ops_plan", ini_key, fallback=None)
    except (configparser.Error, OSError, TypeError):
        return None


def _collection_version() -> str:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    try:
        with open(os.path.join(root, "MANIFEST.json"), encoding="utf-8") as handle:
            return str(json.load(handle)["collection_info"]["version"])
    except (OSError, ValueError, KeyError):
        pass
    try:
        with open(os.path.join(root, "galaxy.yml"), encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("version:"):
                    return line.split(":", 1)[1].strip().strip("'\"")
    except OSError:
        pass
    return "unknown"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


class _ExitStatusHook:
    """Replaces the exit status ansible-playbook leaves with, at the moment it leaves.

    ansible-playbook computes its exit status after every callback has run and hands it to ``sys.exit`` once,
    at the very end (``CLI.cli_executor``). Wrapping that one call is the only place a callback can set the
    status without cutting the run short: all callbacks (ansible-runner's too) still see the whole run, and
    the task queue is cleaned up as usual. Only the controller process that installed it is affected.
    """

    def __init__(self, decide: t.Callable[[int], int]) -> None:
        self._decide = decide
        self._pid = os.getpid()
        self._original = sys.exit
        self.installed = False

    def install(self) -> None:
        if not self.installed:
            self.installed = True
            sys.exit = self  # type: ignore[assignment]

    def __call__(self, code: t.Any = None) -> t.NoReturn:
        sys.exit = self._original
        if os.getpid() == self._pid and (code is None or isinstance(code, int)):
            try:
                code = self._decide(int(code or 0))
            except Exception:  # pylint: disable=broad-exception-caught
                pass  # never lose ansible's own status over a plan problem
        self._original(code)


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "notification"
    CALLBACK_NAME = "sre.ops.plan"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, display: t.Any = None) -> None:
        super().__init__(display=display)
        self._plan = _plan.Plan()
        self._play: t.Any = None
        self._play_index = 0
        self._started = _now()
        self._occurrences: dict[tuple[str, str], int] = {}
        self._unpredictable: dict[str, set[str]] = {}
        self._secrets_loaded: set[str] = set()
        self._playbooks: list[str] = []
        self._base_dirs: list[str] = []
        self._dir_problem = ""
        self._hook: _ExitStatusHook | None = None
        self._stem = ""
        self._self_time = 0.0

    # ----- options -------------------------------------------------------------------------------------
    def set_options(self, task_keys: t.Any = None, var_options: t.Any = None, direct: t.Any = None) -> None:
        """Like every callback, but a bad value is a warning and the option's default, never a run that cannot start."""
        try:
            super().set_options(task_keys=task_keys, var_options=var_options, direct=direct)
        except AnsibleError:
            options = {}
            definitions = C.config.get_configuration_definitions(self.plugin_type, self._load_name)
            for name, definition in definitions.items():
                try:
                    options[name] = C.config.get_config_value(name, plugin_type=self.plugin_type, plugin_name=self._load_name,
                                                              keys=task_keys, variables=var_options, direct=direct)
                except AnsibleError as exc:
                    options[name] = definition.get("default")
                    self._warn(f"{name} ({OPTION_SOURCES.get(name, name)}) is invalid: {to_text(exc)}; using the default {options[name]!r}")
            self._plugin_options = options
        formats = self.get_option("formats") or []
        unknown = [f for f in formats if f not in ("json", "markdown")]
        if unknown:
            self._warn(f"formats ({OPTION_SOURCES['formats']}) has unknown format(s) {', '.join(unknown)}; writing json and markdown")
            self._plugin_options["formats"] = ["json", "markdown"]
        raw = _raw_setting("SREOPS_PLAN_UNKNOWN_AS_CHANGE", "unknown_as_change")
        if raw is not None and raw.strip().lower() not in BOOLEAN_WORDS:
            self._warn(f"unknown_as_change ({OPTION_SOURCES['unknown_as_change']}) must be true or false, got {raw!r}; using false")
            self._plugin_options["unknown_as_change"] = False
        for name, choices in (("exit_status", ("ansible", "detailed")), ("display", ("line", "markdown"))):
            if self.get_option(name) not in choices:
                self._warn(f"{name} ({OPTION_SOURCES[name]}) must be {' or '.join(choices)}, got {self.get_option(name)!r}; using {choices[0]}")
                self._plugin_options[name] = choices[0]
        self._plan.masker.configure(self.get_option("secret_patterns") or (), self.get_option("secret_vars") or ())

    def _warn(self, message: str) -> None:
        self._display.warning(f"sre.ops.plan: {message}")

    # ----- run start -----------------------------------------------------------------------------------
    def v2_playbook_on_start(self, playbook: t.Any) -> None:
        path = os.path.abspath(to_text(getattr(playbook, "_file_name", "") or ""))
        self._playbooks.append(path)
        self._base_dirs = [os.path.dirname(path)] + self._base_dirs
        if len(self._playbooks) > 1:
            return
        args = context.CLIARGS
        self._plan.check_mode = bool(args.get("check"))
        self._plan.meta.update({
            "ansible_version": ansible_version,
            "collection_version": _collection_version(),
            "playbook": path,
            "limit": args.get("subset") or "",
            "check_mode": bool(args.get("check")),
            "diff_mode": bool(args.get("diff")),
            "started": self._started.isoformat(timespec="seconds"),
        })
        stem = os.path.splitext(os.path.basename(path))[0] or "playbook"
        self._stem = f"plan-{self._started.strftime('%Y%m%dT%H%M%SZ')}-{stem}"
        if self.get_option("formats"):
            self._dir_problem = self._prepare_dir()
            if self._dir_problem:
                self._warn(f"{self._dir_problem}; the run goes on, but no plan file will be written")
        if self.get_option("exit_status") == "detailed":
            self._hook = _ExitStatusHook(self._final_exit_status)

    def _plan_dir(self) -> str:
        configured = self.get_option("dir")
        if configured:
            return os.path.abspath(os.path.expanduser(to_text(configured)))
        # ansible-runner tells its own display callback where the run's artifacts go; the plan belongs there too.
        runner_artifacts = os.environ.get("AWX_ISOLATED_DATA_DIR")
        if runner_artifacts:
            return os.path.join(runner_artifacts, "sre_ops_plan")
        return os.path.abspath("plans")

    def _prepare_dir(self) -> str:
        """An empty string when plans can be written to the plan directory, else what is wrong with it."""
        directory = self._plan_dir()
        where = f"plan directory {directory} (dir, set by {OPTION_SOURCES['dir']})"
        if os.path.exists(directory) and not os.path.isdir(directory):
            return f"the {where} is not a directory"
        try:
            os.makedirs(directory, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=directory, prefix=".probe-"):
                pass
        except OSError as exc:
            return f"cannot write to the {where}: {exc.strerror or exc}"
        return ""

    def v2_playbook_on_play_start(self, play: t.Any) -> None:
        self._play = play
        self._play_index += 1
        self._secrets_loaded = set()

    # ----- results -------------------------------------------------------------------------------------
    def v2_runner_on_ok(self, result: t.Any) -> None:
        self._record(result, "ok")

    def v2_runner_on_failed(self, result: t.Any, ignore_errors: bool = False) -> None:
        self._record(result, _plan.FAILED, ignored=ignore_errors)

    def v2_runner_on_skipped(self, result: t.Any) -> None:
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result: t.Any) -> None:
        self._record(result, _plan.UNREACHABLE)

    def _record(self, result: t.Any, status: str, ignored: bool = False) -> None:
        started = time.perf_counter()
        try:
            self._record_result(result, status, ignored)
        finally:
            self._self_time += time.perf_counter() - started

    def _record_result(self, result: t.Any, status: str, ignored: bool) -> None:
        host = getattr(result, "host", None) or result._host
        task = getattr(result, "task", None) or result._task
        data = getattr(result, "result", None)
        if data is None:
            data = result._result
        host_name = host.get_name()
        self._load_secrets(host)
        action = to_text(getattr(task, "resolved_action", None) or task.action or "")
        args = task.args if isinstance(task.args, dict) else {}
        # A check run's skips are judged by the run's mode, also for tasks with check_mode: false: their conditions
        # often read ansible_check_mode, and the real run would take the other branch.
        check_mode = self._plan.check_mode
        diff_wanted = task.diff if isinstance(task.diff, bool) else bool(self._plan.meta.get("diff_mode"))
        register = to_text(task.register) if isinstance(getattr(task, "register", None), str) else ""
        hidden = bool(data.get("censored") or data.get("_ansible_no_log") or task.no_log is True
                      or (register and self._plan.masker.is_secret_name(register)))
        self._learn_secrets(data)
        unpredictable = self._unpredictable.setdefault(host_name, set())
        name = _plan.short_module_name(action)

        items: list[dict[str, t.Any]] = []
        loop_results = data.get("results") if isinstance(data.get("results"), list) and status != _plan.UNREACHABLE else None
        if loop_results:
            outcome, items = self._loop_outcome(action, status, loop_results, args, unpredictable, hidden, diff_wanted)
        else:
            outcome = _plan.classify(action, status, data, args=args, check_mode=check_mode, unpredictable_vars=unpredictable)
        if register:
            (unpredictable.add if outcome.unpredictable else unpredictable.discard)(register)

        path = self._task_path(task)
        key = (host_name, f"{self._play_index}:{path}")
        self._occurrences[key] = self._occurrences.get(key, 0) + 1
        address = key[1] + (f"#{self._occurrences[key]}" if self._occurrences[key] > 1 else "")
        record = _plan.Record(
            host=host_name,
            address=address,
            task=to_text(task.get_name()).strip(),
            module=action,
            actions=outcome.actions,
            changed=bool(data.get("changed")),
            diff=_plan.normalize_diff(data.get("diff")) if diff_wanted and not hidden else [],
            msg="" if hidden else _plan.plain(_plan.result_message(name, data)
                                              if outcome.actions != [_plan.NOOP] or data.get(_plan.DECLARED_SUMMARY_KEY) else ""),
            reason=outcome.reason,
            hidden=hidden,
            ignored=ignored,
            items=[] if hidden else _plan.plain(items),
            host_address=to_text(host.vars.get("ansible_host", "") or "") if hasattr(host, "vars") else "",
            note=bool(data.get(_plan.DECLARED_SUMMARY_KEY)) and not hidden,
        )
        self._plan.add(record)

    def _loop_outcome(self, action: str, status: str, loop_results: list[t.Any], args: dict[str, t.Any], unpredictable: set[str],
                      hidden: bool, diff_wanted: bool) -> tuple[_plan.Outcome, list[dict[str, t.Any]]]:
        """A loop's classes (every item's, the most significant first) and its items as the plan lists them."""
        name = _plan.short_module_name(action)
        actions: list[str] = [_plan.FAILED] if status == _plan.FAILED else []
        items = []
        item_unpredictable = False
        for item in (i for i in loop_results if isinstance(i, dict)):
            item_status = _plan.FAILED if item.get("failed") else "skipped" if item.get("skipped") else "ok"
            outcome = _plan.classify(action, item_status, item, args=args, check_mode=self._plan.check_mode, unpredictable_vars=unpredictable)
            actions += outcome.actions
            item_unpredictable = item_unpredictable or outcome.unpredictable
            if hidden or item.get("_ansible_no_log"):
                items.append({"item": _plan.HIDDEN, "actions": outcome.actions})
                continue
            entry: dict[str, t.Any] = {"item": _label(item), "actions": outcome.actions}
            message = _plan.result_message(name, item)
            if message and outcome.actions != [_plan.NOOP]:
                entry["msg"] = message
            entry_diff = _plan.normalize_diff(item.get("diff")) if diff_wanted else []
            if entry_diff:
                entry["diff"] = entry_diff
            items.append(entry)
        return _plan.Outcome(_plan.order_actions(actions or [_plan.NOOP]), unpredictable=item_unpredictable), items

    def _task_path(self, task: t.Any) -> str:
        path = to_text(task.get_path() or "") if hasattr(task, "get_path") else ""
        if not path:
            return f"task:{to_text(task.get_name())}"
        for base in self._base_dirs:
            if base and path.startswith(base + os.sep):
                return path[len(base) + 1:]
        marker = os.sep + "roles" + os.sep
        if marker in path:
            return "roles" + os.sep + path.split(marker, 1)[1]
        return os.path.basename(path)

    # ----- secrets -------------------------------------------------------------------------------------
    def _load_secrets(self, host: t.Any) -> None:
        """Remember the values of the host's secret-named variables, once per play and host."""
        name = host.get_name()
        if name in self._secrets_loaded or self._play is None:
            return
        self._secrets_loaded.add(name)
        masker = self._plan.masker
        try:
            manager = self._play.get_variable_manager()
            variables = manager.get_vars(play=self._play, host=host, include_hostvars=False)
        except Exception as exc:  # pylint: disable=broad-exception-caught
            self._warn(f"could not read the variables of {name} to mask secrets: {exc}")
            return
        for var_name, value in variables.items():
            if not masker.is_secret_name(var_name):
                continue
            masker.add(_plain_secret(value))
            rendered = self._render(manager, variables, value)
            if rendered is not None:
                masker.add(rendered)

    @staticmethod
    def _render(manager: t.Any, variables: t.Mapping[str, t.Any], value: t.Any) -> t.Any:
        """The value of a templated secret (``db_password: "{{ vault_db_password }}"``), or None."""
        if not (isinstance(value, str) and ("{{" in value or "{%" in value)):
            return None
        try:
            from ansible.template import Templar  # pylint: disable=import-outside-toplevel

            return _plain_secret(Templar(loader=manager._loader, variables=variables).template(value))  # pylint: disable=protected-access
        except Exception:  # pylint: disable=broad-exception-caught
            return None

    def _learn_secrets(self, data: t.Mapping[str, t.Any]) -> None:
        """Secret-named facts a task sets (set_fact, include_vars) are secrets from now on."""
        facts = data.get("ansible_facts")
        if isinstance(facts, dict):
            self._plan.masker.add_from_vars({k: _plain_secret(v) for k, v in facts.items()})

    # ----- run end -------------------------------------------------------------------------------------
    def v2_playbook_on_stats(self, stats: t.Any) -> None:
        started = time.perf_counter()
        self._reconcile(stats)
        self._plan.meta["ended"] = _now().isoformat(timespec="seconds")
        if len(self._playbooks) > 1:
            self._plan.meta["playbooks"] = list(self._playbooks)
        status = None
        if self._hook is not None:
            status = self._final_exit_status(None)
            self._hook.install()
        # Time spent recording results (writing the documents comes after; the benchmark's wall times include it).
        self._plan.meta["plan_overhead_s"] = round(self._self_time + time.perf_counter() - started, 3)
        written = self._write(status)
        if self.get_option("display") == "markdown":
            self._display.display(self._plan.markdown(status))
        self._display.display(self._plan.closing_line())
        for path in written:
            self._display.display(f"sre.ops.plan: wrote {path}")

    def _reconcile(self, stats: t.Any) -> None:
        """Ansible's own tally is the authority on which hosts failed: a failure a rescue section caught is rescued."""
        failures = getattr(stats, "failures", {}) or {}
        rescued = getattr(stats, "rescued", {}) or {}
        for record in self._plan.records:
            if _plan.FAILED in record.actions and not record.ignored and rescued.get(record.host) and not failures.get(record.host):
                record.rescued = True
        self._plan.failed_hosts = {h for h in self._plan.failed_hosts if failures.get(h)} | {h for h, n in failures.items() if n}
        dark = getattr(stats, "dark", {}) or {}
        self._plan.unreachable_hosts |= {h for h, n in dark.items() if n}

    def _final_exit_status(self, ansible_rc: int | None) -> int:
        return self._plan.exit_status(ansible_rc, bool(self.get_option("unknown_as_change")))

    def _write(self, status: int | None) -> list[str]:
        formats = self.get_option("formats") or []
        if not formats or self._dir_problem:
            return []
        directory = self._plan_dir()
        documents = []
        if "json" in formats:
            documents.append(("json", self._plan.to_json(status)))
        if "markdown" in formats:
            documents.append(("md", self._plan.markdown(status)))
        written = []
        try:
            for extension, text in documents:
                path = os.path.join(directory, f"{self._stem}.{extension}")
                _write_atomic(path, text)
                _write_atomic(os.path.join(directory, f"latest.{extension}"), text)
                written.append(path)
        except OSError as exc:
            self._warn(f"could not write the plan to {directory} (dir, set by {OPTION_SOURCES['dir']}): {exc}; the run itself is not affected")
        return written


def _label(item: t.Mapping[str, t.Any]) -> t.Any:
    label = item.get("_ansible_item_label", item.get("item"))
    label = _plan.plain(label)
    if not isinstance(label, str):
        label = json.dumps(label, sort_keys=True)
    return label if len(label) <= 200 else label[:200] + "..."


def _plain_secret(value: t.Any) -> t.Any:
    """Plain data from a variable's value; vaulted values are decrypted (str()) so they can be masked."""
    if isinstance(value, dict):
        return {str(k): _plain_secret(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_plain_secret(v) for v in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    try:
        return str(value)
    except Exception:  # pylint: disable=broad-exception-caught
        return None


def _write_atomic(path: str, text: str) -> None:
    directory = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".plan-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
