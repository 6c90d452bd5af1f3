# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of sre.ops.release_info: read an application root with one shell command, no Python on the host.

The command prints a snapshot of the root (plugin_utils/_release_snapshot.py) and the module's own code,
ReleaseManager.info(), reads it here, so the result is the module's. Where the command cannot read the root as
the module would, or with async, the module runs on the host as usual.
"""

from __future__ import annotations

import os
import secrets
import typing as t

from ansible.module_utils.common.text.converters import to_bytes
from ansible.plugins.action import ActionBase

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.plugin_utils._release_snapshot import ReleaseSnapshot, parse_snapshot, snapshot_command

ARGUMENT_SPEC: dict[str, dict[str, t.Any]] = {"path": {"type": "raw", "required": True}}


def needs_the_module(path: t.Any) -> bool:
    """A path the host must expand (~, variables), or that is not a plain absolute path: the module reads it."""
    return not isinstance(path, str) or not path.startswith("/") or any(c in path for c in "~$\\\0")


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(ARGUMENT_SPEC)
    # with async the module runs, wrapped as ansible wraps any module run asynchronously
    _supports_async = True

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        path = args["path"]
        info = None if self._task.async_val or needs_the_module(path) else self._read(os.path.normpath(path))
        if info is None:
            wrap_async = bool(self._task.async_val) and not self._connection.has_native_async
            result.update(self._execute_module(module_name="sre.ops.release_info", module_args=dict(self._task.args), task_vars=task_vars,
                                               wrap_async=wrap_async))
            return result
        result.update(info)
        return result

    def _read(self, path: str) -> dict[str, t.Any] | None:
        """The module's result from a snapshot, or None when the module must run instead."""
        nonce = secrets.token_hex(8)
        out = self._low_level_execute_command(snapshot_command(path, nonce), sudoable=True)
        if out.get("rc") != 0:
            return None
        # ansible decodes stdout with surrogateescape: back to the bytes the host printed, names and all
        snapshot = parse_snapshot(to_bytes(out.get("stdout", ""), errors="surrogate_or_strict"), nonce)
        if snapshot is None:
            return None
        try:
            info = ReleaseSnapshot(path, snapshot).info()
        except SreOpsError as exc:
            return {"failed": True, "msg": exc.msg}
        return dict(info, changed=False)
