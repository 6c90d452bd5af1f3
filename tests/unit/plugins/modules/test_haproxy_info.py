# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

from ansible_collections.sre.ops.plugins.modules import haproxy_info

from ._run import run_main


def test_unreachable_socket_fails_clearly_even_in_check_mode(capsys):
    code, result = run_main(haproxy_info, {"socket": "/run/nowhere.sock", "_ansible_check_mode": True}, capsys)
    assert code == 1 and result["msg"] == "cannot reach the HAProxy runtime API at /run/nowhere.sock to send 'show stat': No such file or directory"
