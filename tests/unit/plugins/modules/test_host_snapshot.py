# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.sre.ops.plugins.modules import host_snapshot, host_snapshot_info

from ._run import run_main


@pytest.mark.parametrize("args, message", [
    ({"facets": ["files", "memory"]}, "value of facets must be one or more of"),
    ({"files": [{"attributes": ["all"]}]}, "missing required arguments: path found in files"),
    ({"files": [{"path": "/etc", "attributes": ["md5"]}]}, "files[0].attributes: unknown attribute 'md5'"),
    ({"files": [{"path": "/etc", "depth": 2}]}, "Unsupported parameters for (basic.py) module: files.depth"),
    ({"workers": -1}, "workers must be 0 (one per core) or more"),
])
def test_bad_input_fails_before_anything_is_written(args, message, capsys, tmp_path):
    code, result = run_main(host_snapshot, dict(args, path=str(tmp_path / "state" / "snap.json.gz")), capsys)
    assert code == 1 and message in result["msg"], result["msg"]
    assert not os.path.exists(tmp_path / "state")


def test_check_mode_snapshot_writes_nothing_then_real_run_then_info(capsys, tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "motd").write_text("hello\n")
    args = {"path": str(tmp_path / "state" / "snap.json.gz"), "facets": ["files", "users"], "files": [{"path": str(tmp_path / "etc")}], "workers": 1}
    code, result = run_main(host_snapshot, dict(args, _ansible_check_mode=True, _ansible_diff=True), capsys)
    assert code == 0 and result["changed"] and result["counts"]["files"] == 2 and "files: 2 items" in result["diff"]["after"]
    assert not os.path.exists(tmp_path / "state")
    code, result = run_main(host_snapshot, args, capsys)
    assert code == 0 and result["changed"] and result["bytes"] > 0 and "diff" not in result
    code, again = run_main(host_snapshot, args, capsys)
    # taken_at is the time of each scan; the second run crossing a second boundary must not fail the test
    assert code == 0 and not again["changed"]
    assert dict(again["summary"], taken_at=None) == dict(result["summary"], taken_at=None)
    code, info = run_main(host_snapshot_info, {"path": args["path"], "facets": ["users"], "_ansible_check_mode": True}, capsys)
    assert code == 0 and info["exists"] and "root" in info["items"]["users"] and info["summary"] == result["summary"]
    code, info = run_main(host_snapshot_info, {"path": args["path"], "buckets": {"users": "00"}}, capsys)
    assert code == 1 and "buckets must map facet names to lists of bucket names" in info["msg"]
    code, gone = run_main(host_snapshot, {"path": args["path"], "state": "absent"}, capsys)
    assert code == 0 and gone["changed"] and not os.path.exists(args["path"])
