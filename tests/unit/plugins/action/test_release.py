# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.release's action plugin: the archive is checksummed on the controller and sent only where it is missing."""

from __future__ import annotations

import hashlib
from unittest.mock import MagicMock

import pytest
from ansible.errors import AnsibleError

from ansible_collections.sre.ops.plugins.action.release import ActionModule

from ._harness import make_action as build


@pytest.fixture
def artifact(tmp_path):
    path = tmp_path / "app-v2.tar.gz"
    path.write_bytes(b"not really an archive, the module is faked")
    return str(path)


def action_for(artifact, staged, check_mode=False, **args):
    action = build(ActionModule, {"path": "/srv/app", "release": "v2", "src": artifact, **args}, check_mode=check_mode)
    action._find_needle = MagicMock(return_value=artifact)
    action._make_tmp_path = MagicMock(return_value="/tmp/ansible-tmp-1")
    action._low_level_execute_command = MagicMock(return_value={"rc": 0, "stdout": "staged\n" if staged else "absent\n"})
    return action


def module_args(action):
    return action._execute_module.call_args.kwargs["module_args"]


def test_a_host_without_the_release_gets_the_archive_in_the_task_tmpdir(artifact):
    action = action_for(artifact, staged=False)
    result = action.run(task_vars={})
    action._transfer_file.assert_called_once_with(artifact, "/tmp/ansible-tmp-1/app-v2.tar.gz")
    sent = module_args(action)
    assert sent["src"] == "/tmp/ansible-tmp-1/app-v2.tar.gz"
    assert sent["checksum"] == "sha256:" + hashlib.sha256(open(artifact, "rb").read()).hexdigest()
    assert result["transferred"] and result["current"] == "v2"
    action._remove_tmp_path.assert_called_once()
    action._fixup_perms2.assert_not_called()  # the connection user's own file: no chmod round trip


def test_an_unprivileged_become_user_is_given_read_access_to_the_archive(artifact):
    action = action_for(artifact, staged=False)
    action._is_become_unprivileged = MagicMock(return_value=True)
    action.run(task_vars={})
    action._fixup_perms2.assert_called_once_with(("/tmp/ansible-tmp-1", "/tmp/ansible-tmp-1/app-v2.tar.gz"))


def test_a_host_with_the_release_staged_gets_nothing(artifact):
    action = action_for(artifact, staged=True, checksum="sha256:" + "a" * 64)
    result = action.run(task_vars={})
    action._transfer_file.assert_not_called()
    assert "src" not in module_args(action) and module_args(action)["checksum"] == "sha256:" + "a" * 64
    assert result["transferred"] is False
    command = action._low_level_execute_command.call_args.args[0]
    assert command == "test -d /srv/app/releases/v2 && echo staged || echo absent"


def test_check_mode_transfers_nothing(artifact):
    action = action_for(artifact, staged=False, check_mode=True)
    action.run(task_vars={})
    action._transfer_file.assert_not_called()
    assert module_args(action)["src"] == artifact


def test_remote_src_and_other_states_go_straight_to_the_module(artifact):
    for args in ({"remote_src": True}, {"state": "good"}):
        action = action_for(artifact, staged=False, **args)
        action.run(task_vars={})
        action._low_level_execute_command.assert_not_called()
        action._transfer_file.assert_not_called()
        assert "remote_src" not in module_args(action)


def test_a_missing_controller_file_is_a_clear_error(artifact):
    action = action_for(artifact, staged=False)
    action._find_needle = MagicMock(side_effect=AnsibleError("not found"))
    result = action.run(task_vars={})
    assert result["failed"] and "was not found on the controller" in result["msg"] and "remote_src=true" in result["msg"]
    action._execute_module.assert_not_called()


def test_a_bad_release_id_is_left_to_the_module(artifact):
    action = action_for(artifact, staged=False, release="../x")
    action.run(task_vars={})
    action._low_level_execute_command.assert_not_called()
