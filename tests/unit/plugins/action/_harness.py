# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Build an action plugin around fake task, connection and play context, as ansible's own action tests do."""

from __future__ import annotations

from unittest.mock import MagicMock


def make_action(cls, args, check_mode=False, tmpdir=None):
    task = MagicMock()
    task.args = dict(args)
    task.async_val = 0
    task.check_mode = check_mode
    task.action = "sre.ops.test"
    connection = MagicMock()
    connection._shell.tmpdir = tmpdir
    connection._shell.join_path.side_effect = lambda *parts: "/".join(parts)
    play_context = MagicMock()
    play_context.check_mode = check_mode
    action = cls(task, connection, play_context, loader=MagicMock(), templar=None, shared_loader_obj=None)
    action._execute_module = MagicMock(return_value={"changed": True, "current": "v2"})
    action._remove_tmp_path = MagicMock()
    action._fixup_perms2 = MagicMock()
    action._is_become_unprivileged = MagicMock(return_value=False)
    action._transfer_file = MagicMock()
    return action
