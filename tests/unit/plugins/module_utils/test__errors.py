# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError, SreOpsError


def test_error_keeps_message_and_details():
    err = InvalidInputError("path: must be absolute", option="path")
    assert isinstance(err, SreOpsError)
    assert str(err) == err.msg == "path: must be absolute"
    assert err.details == {"option": "path"}
