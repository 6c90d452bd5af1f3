# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.release_info's action plugin: a plain path is read with one shell command; anything else, the module reads."""

from __future__ import annotations

import os
import subprocess
from unittest.mock import MagicMock

import pytest

from ansible_collections.sre.ops.plugins.action.release_info import ActionModule, needs_the_module

from ._harness import make_action


def local_shell(command, sudoable):
    """The host is this machine: run the command as the connection would, with its output as ansible decodes it."""
    assert sudoable
    proc = subprocess.run(["/bin/sh", "-c", command], capture_output=True, check=False)
    return {"rc": proc.returncode, "stdout": proc.stdout.decode("utf-8", "surrogateescape"), "stderr": proc.stderr.decode()}


def action_for(args, async_val=0, native_async=False):
    action = make_action(ActionModule, args)
    action._task.async_val = async_val
    action._connection.has_native_async = native_async
    action._low_level_execute_command = MagicMock(side_effect=local_shell)
    return action


def test_a_plain_path_is_read_by_the_command_and_never_by_the_module(tmp_path):
    root = tmp_path / "app"
    (root / "releases" / "v1").mkdir(parents=True)
    os.symlink("releases/v1", root / "current")
    action = action_for({"path": f"{root}/"})
    result = action.run(task_vars={})
    action._execute_module.assert_not_called()
    assert action._low_level_execute_command.call_count == 1
    assert (result["path"], result["current"], result["current_status"], result["changed"]) == (str(root), "v1", "release", False)
    assert result["to_reconcile"] == ["release v1 was on disk but not in the ledger: recorded with outcome unknown",
                                      "current points at v1, the ledger said nothing: recorded the activation"]


@pytest.mark.parametrize("path", ["~/app", "$HOME/app", "app", "relative/app", 42])
def test_a_path_the_host_must_expand_is_read_by_the_module(path):
    assert needs_the_module(path)
    action = action_for({"path": path})
    result = action.run(task_vars={"x": 1})
    action._low_level_execute_command.assert_not_called()
    assert action._execute_module.call_args.kwargs == {
        "module_name": "sre.ops.release_info", "module_args": {"path": path}, "task_vars": {"x": 1}, "wrap_async": False}
    assert result["current"] == "v2"


@pytest.mark.parametrize("native, wrapped", [(False, True), (True, False)])
def test_async_runs_the_module_wrapped_as_ansible_wraps_any_async_module(native, wrapped):
    assert ActionModule._supports_async
    action = action_for({"path": "/srv/app"}, async_val=30, native_async=native)
    action.run(task_vars={})
    action._low_level_execute_command.assert_not_called()
    assert action._execute_module.call_args.kwargs["wrap_async"] is wrapped


def test_a_root_the_command_cannot_read_as_the_module_would_is_read_by_the_module(tmp_path):
    root = tmp_path / "file"
    root.write_text("not a directory")
    action = action_for({"path": str(root)})
    action.run(task_vars={})
    assert action._low_level_execute_command.call_count == 1
    action._execute_module.assert_called_once()


def test_a_failing_command_or_a_cut_output_is_read_by_the_module():
    action = action_for({"path": "/srv/app"})
    action._low_level_execute_command = MagicMock(return_value={"rc": 255, "stdout": "", "stderr": "Connection reset"})
    action.run(task_vars={})
    action._execute_module.assert_called_once()
    action = action_for({"path": "/srv/app"})
    action._low_level_execute_command = MagicMock(return_value={"rc": 0, "stdout": "sre.ops release snapshot 1\n", "stderr": ""})
    action.run(task_vars={})
    action._execute_module.assert_called_once()


def test_a_ledger_the_module_refuses_fails_with_the_modules_message(tmp_path):
    root = tmp_path / "app"
    root.mkdir()
    (root / "ledger.json").write_text('{"version": 99}')
    result = action_for({"path": str(root)}).run(task_vars={})
    assert result["failed"] and result["msg"] == f"{root}/ledger.json is not a release ledger this module understands (version 1)"
