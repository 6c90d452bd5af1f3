# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: the error types module_utils raise and main() turns into fail_json."""

from __future__ import annotations


class SreOpsError(Exception):
    """A failure the user can act on; its message is shown as the task's msg."""

    def __init__(self, msg: str, **details: object) -> None:
        super().__init__(msg)
        self.msg = msg
        self.details = details


class InvalidInputError(SreOpsError):
    """An option value that argument_spec cannot express as invalid."""
