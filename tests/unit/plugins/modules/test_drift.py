# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest

from ansible_collections.sre.ops.plugins.modules import drift, host_snapshot

from ._run import run_main


@pytest.mark.parametrize("args, message", [
    ({"state": "accepted"}, "state is accepted but all of the following are missing: reason"),
    ({"waivers": [{"key": "*"}]}, "waivers[0] (waiver-1): justification is required"),
    ({"waivers_file": "waivers.yml"}, "waivers_file is read on the controller by the sre.ops.drift action plugin"),
    ({"max_items": 0}, "max_items must be 1 or more"),
    ({}, "no baseline at"),
])
def test_bad_input_and_a_missing_baseline_fail_clearly(args, message, capsys, tmp_path):
    code, result = run_main(drift, dict(args, path=str(tmp_path / "baseline.json.gz")), capsys)
    assert code == 1 and message in result["msg"], result["msg"]


def test_drift_shows_as_a_diff_and_check_mode_accept_writes_nothing(capsys, tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "motd").write_text("hello\n")
    path = str(tmp_path / "baseline.json.gz")
    code, _result = run_main(host_snapshot, {"path": path, "facets": ["files"], "files": [{"path": str(tmp_path / "etc")}], "workers": 1}, capsys)
    assert code == 0
    (tmp_path / "etc" / "motd").write_text("changed\n")
    code, result = run_main(drift, {"path": path, "_ansible_diff": True, "workers": 1}, capsys)
    assert code == 0 and result["changed"] and result["drifted"] and result["counts"]["unexpected"] == 1
    assert f"[files] {tmp_path}/etc/motd" in result["diff"]["after"]
    with open(path, "rb") as handle:
        before = handle.read()
    code, preview = run_main(drift, {"path": path, "state": "accepted", "reason": "CHG-7", "accepted_by": "bob", "_ansible_check_mode": True}, capsys)
    assert code == 0 and preview["changed"] and preview["accepted"]["by"] == "bob"
    with open(path, "rb") as handle:
        assert handle.read() == before
    code, accepted = run_main(drift, {"path": path, "state": "accepted", "reason": "CHG-7"}, capsys)
    assert code == 0 and accepted["changed"] and accepted["accepted"]["by"] == "unknown"
    code, clean = run_main(drift, {"path": path}, capsys)
    assert code == 0 and not clean["changed"] and clean["baseline"]["acceptances"][0]["reason"] == "CHG-7"
