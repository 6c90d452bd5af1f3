# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""main() of sre.ops.health_check: argument validation and the fail/report behaviour."""

from __future__ import annotations

import json

import pytest

from ansible_collections.sre.ops.plugins.modules import health_check

from ._run import run_main


@pytest.mark.parametrize(
    "args, message",
    [
        ({"probes": [{"name": "a", "type": "tcp", "host": "x"}]}, "port"),
        ({"probes": [{"name": "a", "type": "http"}]}, "url"),
        ({"probes": [{"name": "a", "url": "http://x/", "status_codes": ["2x"]}]}, "status_codes entry '2x'"),
        ({"probes": [{"name": "a", "url": "http://x/"}], "mode": "sometimes"}, "mode"),
    ],
)
def test_bad_arguments_fail_with_a_message_naming_the_option(args, message, capsys):
    code, result = run_main(health_check, args, capsys)
    assert code == 1 and result["failed"]
    assert message in result["msg"]


def test_unhealthy_fails_unless_report_only_and_secrets_stay_hidden(capsys):
    probes = [{"name": "closed", "type": "tcp", "host": "127.0.0.1", "port": 1},
              {"name": "cmd", "type": "command", "command": ["true"]},
              {"name": "secret", "type": "command", "command": ["true"], "headers": {"Authorization": "hunter2"}}]
    code, result = run_main(health_check, {"probes": probes, "_ansible_check_mode": True}, capsys)
    assert code == 1 and result["msg"] == "1 of 3 probes unhealthy: closed (connection refused)"
    assert result["failed_probes"] == ["closed"] and result["changed"] is False
    assert "hunter2" not in json.dumps(result)
    code, result = run_main(health_check, {"probes": probes, "report_only": True}, capsys)
    assert code == 0 and not result.get("failed") and result["healthy"] is False
    assert [p["healthy"] for p in result["probes"]] == [False, True, True]
