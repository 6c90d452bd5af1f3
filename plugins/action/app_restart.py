# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.app_restart: restart an app with one command over the connection, without Python on the host.

A module would start Python on the host only to run one command (with ansible-core 2.19 that costs about 0.3 s
of CPU per host, more than the restart of a small app); a rollout restarts every host, so this runs the command
itself. Each word of O(command) is quoted for the host's shell, so the shell runs it as ansible.builtin.command
would (no variables, globs, pipes or redirections); O(unit) runs C(systemctl restart -- UNIT). Check mode runs
nothing and reports the restart the real run would do.
"""

from __future__ import annotations

import shlex
import typing as t

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {
    "command": {"type": "str"},
    "unit": {"type": "str"},
}


def restart_argv(command: str | None, unit: str | None) -> list[str]:
    """The words to run: the command split as ansible.builtin.command splits a string, or systemctl for a unit."""
    if bool(command) == bool(unit):
        raise AnsibleActionFail("give exactly one of command and unit (both are empty or both are set)")
    if unit:
        return ["systemctl", "restart", "--", unit]
    try:
        argv = shlex.split(t.cast(str, command))
    except ValueError as exc:
        raise AnsibleActionFail(f"command {command!r} cannot be split into words: {exc}") from None
    if not argv:
        raise AnsibleActionFail("command is blank: name the program that restarts the app")
    return argv


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        argv = restart_argv(args["command"], args["unit"])
        result.update(changed=True, cmd=argv)
        if self._task.check_mode:
            result["msg"] = f"would run {shlex.join(argv)}"
            return result
        out = self._low_level_execute_command(shlex.join(argv), sudoable=True)
        rc = out.get("rc")
        result.update(rc=rc, stdout=out.get("stdout", ""), stderr=out.get("stderr", ""))
        if rc != 0:
            # with a terminal (ssh -tt) the command's stderr arrives in stdout; ssh's own notes are in stderr
            detail = (result["stdout"].strip() or result["stderr"].strip()).splitlines()[-1:] or ["no output"]
            result.update(failed=True, msg=f"{shlex.join(argv)} failed with rc {rc}: {detail[0]}")
        else:
            result["msg"] = f"ran {shlex.join(argv)}"
        return result
