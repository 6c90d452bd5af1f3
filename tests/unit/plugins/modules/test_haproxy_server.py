# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.sre.ops.plugins.modules import haproxy_server

from ._run import run_main


@pytest.mark.parametrize(
    "args, message",
    [
        ({"socket": "/x.sock", "backend": "be", "state": "down"}, "value of state must be one of: ready, drain, maint"),
        ({"socket": "nonsense", "backend": "be", "state": "drain"}, "socket 'nonsense' is neither a path to a UNIX socket nor host:port"),
        ({"socket": "/run/nowhere.sock", "backend": "be", "state": "drain"},
         "cannot reach the HAProxy runtime API at /run/nowhere.sock to send 'show stat': No such file or directory"),
        ({"socket": "/run/nowhere.sock", "backend": "be", "state": "drain", "timeout": -1}, "timeout must be positive, got -1"),
        ({"socket": "/run/nowhere.sock", "backend": "be", "state": "drain", "wait": True, "wait_interval": -0.5},
         "wait_interval must be positive, got -0.5"),
        ({"socket": "/run/nowhere.sock", "backend": "be", "state": "drain", "wait_timeout": -1}, "wait_timeout must be zero or positive"),
        ({"socket": "/run/nowhere.sock", "backend": "be", "state": "drain", "lock_timeout": -1}, "lock_timeout must be zero or positive"),
        ({"socket": "/run/nowhere.sock", "backend": "be", "weight": "5", "share": 10}, "parameters are mutually exclusive: weight|share"),
        ({"socket": "/run/nowhere.sock", "backend": "be", "share": 100}, "share must be at least 0 and below 100"),
        ({"socket": "/x.sock", "backend": "be"}, "one of the following is required: state, weight, share"),
    ],
)
def test_bad_input_fails_with_a_message_naming_the_problem(args, message, capsys):
    code, result = run_main(haproxy_server, args, capsys)
    assert code == 1 and result["failed"] and message in result["msg"]
