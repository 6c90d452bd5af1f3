# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Controller side of sre.ops.release: an archive on the controller reaches only the hosts that lack it.

With O(src) on the controller (the default), the archive is checksummed here unless O(checksum) is given
(the deploy role passes the one it computed once per rollout), the host is asked with one shell command
whether the release is already staged, and only a host that lacks it gets the archive, in the task's
temporary directory (removed with it). Then the module runs on the host and verifies the checksum before
anything is written. In check mode nothing is transferred: the module predicts the staging.
"""

from __future__ import annotations

import os
import shlex
import typing as t

from ansible.errors import AnsibleError
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.sre.ops.plugins.plugin_utils._checksum import sha256_of

STAGING_STATES = ("staged", "active")


class ActionModule(ActionBase):
    # The temporary directory is made only when a transfer is needed, not for every task.
    TRANSFERS_FILES = False

    def run(self, tmp: t.Any = None, task_vars: dict[str, t.Any] | None = None) -> dict[str, t.Any]:
        result = super().run(tmp, task_vars)
        del tmp
        args = dict(self._task.args)
        remote_src = boolean(args.pop("remote_src", False), strict=False)
        src = args.get("src")
        state = args.get("state", "active")
        try:
            if remote_src or src is None or state not in STAGING_STATES:
                result.update(self._execute_module(module_name="sre.ops.release", module_args=args, task_vars=task_vars))
                return result
            try:
                local = self._find_needle("files", str(src))
            except AnsibleError as exc:
                result.update(failed=True, msg=f"src {src} was not found on the controller ({exc}); set remote_src=true for a src on the managed host")
                return result
            if not args.get("checksum"):
                args["checksum"] = f"sha256:{sha256_of(local)}"
            if self._staged(str(args.get("path")), str(args.get("release") or "")):
                args.pop("src")  # the module verifies the recorded checksum of the staged release
            elif self._play_context.check_mode:
                args["src"] = local  # not there on the host: the module predicts the staging and says so in notes
            else:
                tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
                remote = self._connection._shell.join_path(tmpdir, os.path.basename(local))
                self._transfer_file(local, remote)
                if self._is_become_unprivileged():
                    # the become user must read what the connection user sent; otherwise it is the owner's, or root reads it
                    self._fixup_perms2((tmpdir, remote))
                args["src"] = remote
                result["transferred"] = True
            result.setdefault("transferred", False)
            result.update(self._execute_module(module_name="sre.ops.release", module_args=args, task_vars=task_vars))
            return result
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)

    def _staged(self, path: str, release: str) -> bool:
        """One shell command, no module: is <path>/releases/<release> there already?"""
        if not release or "/" in release or release in (".", ".."):
            return False  # the module refuses a bad id with a clear message
        command = f"test -d {shlex.quote(os.path.join(path, 'releases', release))} && echo staged || echo absent"
        out = self._low_level_execute_command(command, sudoable=True)
        return out.get("rc") == 0 and out.get("stdout", "").strip() == "staged"
