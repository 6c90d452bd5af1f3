# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.sre.ops.plugins.modules import haproxy_map

from ._run import run_main


@pytest.mark.parametrize(
    "args, message",
    [
        ({"socket": "/x.sock", "map": "/m.map"}, "missing required arguments: entries"),
        ({"socket": "/x.sock", "map": "#3", "entries": {"a": "b"}, "persist": True}, "persist needs the map's file path, not the id #3"),
        ({"socket": "/x.sock", "map": "/m.map", "entries": {"a b": "x"}}, "must be non-empty and contain no whitespace"),
        ({"socket": "127.0.0.1:1", "map": "/m.map", "entries": {"a": "b"}}, "at 127.0.0.1:1 to send 'show map /m.map': Connection refused"),
        ({"socket": "/x.sock", "map": "/m.map", "entries": {"a": "b"}, "timeout": 0}, "timeout must be positive, got 0"),
        ({"socket": "/x.sock", "map": "/m.map", "entries": {"a": " b"}}, "must not start or end with whitespace"),
    ],
)
def test_bad_input_fails_with_a_message_naming_the_problem(args, message, capsys):
    code, result = run_main(haproxy_map, args, capsys)
    assert code == 1 and result["failed"] and message in result["msg"]
