# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""main() of sre.ops.canary_analysis: argument validation, and a short real run on a request log file."""

from __future__ import annotations

import pytest

try:
    from ansible.module_utils import _internal
except ImportError:  # ansible-core before 2.19: a module always returns its deprecations
    _internal = None

from ansible_collections.sre.ops.plugins.modules import canary_analysis

from ._run import run_main


@pytest.mark.parametrize(
    "args, message",
    [
        ({}, "one of the following is required: socket, log_path, log_socket, canary_urls"),
        ({"socket": "/x.sock", "canary": ["a"]}, "missing parameter(s) required by 'socket': backend"),
        ({"log_path": "/x.log", "backend": "be"}, "missing parameter(s) required by 'log_path': canary"),
        ({"log_path": "/x.log", "log_socket": "/y.sock", "backend": "be", "canary": ["a"]}, "mutually exclusive: log_path|log_socket"),
        ({"canary_urls": ["http://a/"]}, "parameters are required together: canary_urls, baseline_urls"),
        ({"canary_urls": ["ftp://a/"], "baseline_urls": ["http://b/"]}, "'ftp://a/' is not an http(s) URL"),
        ({"canary_urls": ["http://a/"], "baseline_urls": ["http://b/"], "alpha": 1.5}, "alpha must be between 0 and 1"),
        ({"canary_urls": ["http://a/"], "baseline_urls": ["http://b/"], "error_detect": 0.001}, "error_detect (0.001) must be above"),
        ({"socket": "/nowhere.sock", "backend": "be", "canary": ["a"], "window": 0.1},
         "cannot reach the HAProxy runtime API at /nowhere.sock to send 'show stat'"),
        ({"log_path": "/nowhere/haproxy.log", "backend": "be", "canary": ["a"], "window": 0.1}, "log_path /nowhere/haproxy.log does not exist"),
        ({"log_socket": "x.sock", "backend": "be", "canary": ["a"], "window": 0.1}, "log_socket must be an absolute path"),
    ],
)
def test_bad_arguments_fail_clearly(args, message, capsys):
    _code, result = run_main(canary_analysis, args, capsys)
    assert result["failed"] and message in result["msg"]


def test_a_quiet_window_is_inconclusive_and_fails_the_task_by_default(tmp_path, capsys):
    log = tmp_path / "haproxy.log"
    log.write_text("")
    code, result = run_main(canary_analysis, {"log_path": str(log), "backend": "be_app", "canary": ["web4"], "window": 0.2}, capsys)
    assert code == 1 and result["failed"] and result["verdict"] == "inconclusive"
    assert result["msg"].startswith("canary analysis: inconclusive: error_ratio: too few requests to judge errors: canary 0")
    code, result = run_main(canary_analysis, {"log_path": str(log), "backend": "be_app", "canary": ["web4"], "window": 0.2, "fail_on": []},
                            capsys)
    assert code == 0 and not result["changed"] and result["verdict"] == "inconclusive"


def test_interval_is_deprecated_but_accepted(tmp_path, capsys, monkeypatch):
    # a module runs on a target; once another test imported controller code, deprecations would go to the controller's display
    if _internal is not None:
        monkeypatch.setattr(_internal, "is_controller", False)
    log = tmp_path / "haproxy.log"
    log.write_text("")
    _code, result = run_main(canary_analysis, {"log_path": str(log), "backend": "be_app", "canary": ["web4"], "window": 0.1, "interval": 5,
                                               "fail_on": []}, capsys)
    assert any("interval" in str(d) for d in result["deprecations"]), result["deprecations"]
