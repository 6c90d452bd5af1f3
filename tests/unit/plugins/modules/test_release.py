# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.sre.ops.plugins.modules import release

from ._run import run_main


@pytest.mark.parametrize(
    "args, message",
    [
        ({"path": "/srv/app", "state": "active"}, "state is active but all of the following are missing: release"),
        ({"path": "/srv/app", "release": "../x"}, "release '../x' is not a valid release id"),
        ({"path": "/srv/app", "release": "v1", "keep_releases": -1}, "keep_releases must be 0 (keep all) or more"),
        ({"path": "/srv/app", "release": "v1", "state": "frozen"}, "value of state must be one of"),
        ({"path": "/srv/app", "release": "v1", "checksum": "md5:abc", "src": "/x.tar"}, "checksum 'md5:abc' must look like sha256:"),
        ({"path": "/srv/app", "release": "v2\n"}, "release 'v2\\n' is not a valid release id"),
        ({"path": "/srv/app", "release": "v1", "lock_timeout": -1}, "lock_timeout must be 0 or more seconds"),
        ({"path": "/srv/app", "release": "v1", "shared_paths": ["log", "log/x"]}, "shared_paths entries 'log' and 'log/x' overlap"),
        ({"path": "/srv/app", "release": "v1", "src": "/nonexistent.tar.gz"}, "src /nonexistent.tar.gz does not exist on the host"),
    ],
)
def test_bad_input_fails_before_anything_is_written(args, message, capsys, tmp_path):
    args = dict(args, path=str(tmp_path / "app"))
    code, result = run_main(release, args, capsys)
    assert code == 1 and message in result["msg"]
    assert not os.path.exists(tmp_path / "app")


def test_check_mode_activation_predicts_and_writes_nothing(capsys, tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "VERSION").write_text("v1\n")
    code, result = run_main(release, {"path": str(tmp_path / "app"), "release": "v1", "src": str(src), "_ansible_check_mode": True}, capsys)
    assert code == 0 and result["changed"] and result["current"] == "v1"
    assert result["diff"] == {"before": {"current": None, "releases": [], "outcomes": {}},
                              "after": {"current": "v1", "releases": ["v1"], "outcomes": {"v1": "unknown"}}}
    assert result["previous"] is None and result["switched"] and result["changes"] == [f"stage v1 from {src}", "switch current from nothing to v1"]
    assert not os.path.exists(tmp_path / "app")
