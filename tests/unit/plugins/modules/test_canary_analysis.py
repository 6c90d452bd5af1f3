# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""main() of sre.ops.canary_analysis: argument validation."""

from __future__ import annotations


import pytest

from ansible_collections.sre.ops.plugins.modules import canary_analysis

from ._run import run_main


@pytest.mark.parametrize(
    "args, message",
    [
        ({}, "one of the following is required: socket, canary_urls"),
        ({"socket": "/x.sock", "canary": ["a"]}, "parameters are required together: socket, backend"),
        ({"canary_urls": ["http://a/"]}, "parameters are required together: canary_urls, baseline_urls"),
        ({"canary_urls": ["ftp://a/"], "baseline_urls": ["http://b/"]}, "'ftp://a/' is not an http(s) URL"),
        ({"canary_urls": ["http://a/"], "baseline_urls": ["http://b/"], "alpha": 1.5}, "alpha must be below 1"),
        ({"socket": "/nowhere.sock", "backend": "be", "canary": ["a"], "window": 0.1},
         "cannot reach the HAProxy runtime API at /nowhere.sock to send 'show stat'"),
    ],
)
def test_bad_arguments_fail_clearly(args, message, capsys):
    _code, result = run_main(canary_analysis, args, capsys)
    assert result["failed"] and message in result["msg"]
