# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: argument spec shared by the HAProxy modules (documented by sre.ops._haproxy)."""

from __future__ import annotations

import copy
import typing as t

HAPROXY_CONNECTION_SPEC: dict[str, dict[str, t.Any]] = {
    "socket": {"type": "str", "required": True},
    "timeout": {"type": "float", "default": 5},
}


# Modules that change HAProxy (documented by sre.ops._haproxy.lock).
HAPROXY_LOCK_SPEC: dict[str, dict[str, t.Any]] = {
    "lock_timeout": {"type": "float", "default": 30},
}


def haproxy_argument_spec(locking: bool = False, **options: dict[str, t.Any]) -> dict[str, dict[str, t.Any]]:
    spec = copy.deepcopy(HAPROXY_CONNECTION_SPEC)
    if locking:
        spec.update(copy.deepcopy(HAPROXY_LOCK_SPEC))
    spec.update(options)
    return spec
