# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.app_restart: one shell command over the connection, words quoted so no shell feature applies."""

from __future__ import annotations

import shlex
from unittest.mock import MagicMock

import pytest
from ansible.errors import AnsibleActionFail

from ansible_collections.sre.ops.plugins.action.app_restart import ActionModule, restart_argv

from ._harness import make_action as build


def action_for(args, rc=0, stdout="", stderr="", check_mode=False):
    action = build(ActionModule, args, check_mode=check_mode)
    action._low_level_execute_command = MagicMock(return_value={"rc": rc, "stdout": stdout, "stderr": stderr})
    return action


def sent(action):
    return action._low_level_execute_command.call_args.args[0]


def test_the_command_runs_once_as_words_the_shell_does_not_interpret():
    action = action_for({"command": "/srv/app/current/bin/appctl restart '$HOME; rm -rf /' *"}, stdout="started\n")
    result = action.run(task_vars={})
    assert shlex.split(sent(action)) == ["/srv/app/current/bin/appctl", "restart", "$HOME; rm -rf /", "*"]
    assert sent(action) == "/srv/app/current/bin/appctl restart '$HOME; rm -rf /' '*'"
    assert action._low_level_execute_command.call_args.kwargs == {"sudoable": True}
    assert result["changed"] and not result.get("failed") and result["rc"] == 0 and result["stdout"] == "started\n"
    action._execute_module.assert_not_called()


def test_a_unit_is_restarted_with_systemctl():
    action = action_for({"unit": "shop.service"})
    result = action.run(task_vars={})
    assert sent(action) == "systemctl restart -- shop.service" and result["cmd"] == ["systemctl", "restart", "--", "shop.service"]


def test_check_mode_runs_nothing_and_reports_the_restart():
    action = action_for({"command": "appctl restart"}, check_mode=True)
    result = action.run(task_vars={})
    action._low_level_execute_command.assert_not_called()
    assert result["changed"] and result["cmd"] == ["appctl", "restart"] and result["msg"] == "would run appctl restart"


def test_a_failing_command_fails_with_its_code_and_last_line():
    action = action_for({"command": "appctl restart"}, rc=1, stdout="stopping\napp did not start\n", stderr="Shared connection to web1 closed.\n")
    result = action.run(task_vars={})
    assert result["failed"] and result["rc"] == 1
    assert result["msg"] == "appctl restart failed with rc 1: app did not start"


@pytest.mark.parametrize("command, unit, message", [
    (None, None, "exactly one of command and unit"),
    ("appctl restart", "shop.service", "exactly one of command and unit"),
    ("   ", None, "command is blank"),
    ("appctl 'restart", None, "cannot be split into words"),
])
def test_bad_input_is_refused_before_anything_runs(command, unit, message):
    with pytest.raises(AnsibleActionFail, match=message):
        restart_argv(command, unit)
