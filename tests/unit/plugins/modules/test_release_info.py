# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

from ansible_collections.sre.ops.plugins.modules import release_info

from ._run import run_main


def test_missing_root_gives_empty_results(capsys, tmp_path):
    code, result = run_main(release_info, {"path": str(tmp_path / "none"), "_ansible_check_mode": True}, capsys)
    assert code == 0 and not result["changed"]
    assert (result["current"], result["previous_good"], result["releases"], result["leftovers"]) == (None, None, [], [])


def test_relative_path_is_refused(capsys):
    code, result = run_main(release_info, {"path": "srv/app"}, capsys)
    assert code == 1 and "must be absolute" in result["msg"]


def test_dangling_current_is_reported_as_such(capsys, tmp_path):
    root = tmp_path / "app"
    (root / "releases").mkdir(parents=True)
    os.symlink("releases/v9", root / "current")
    code, result = run_main(release_info, {"path": str(root)}, capsys)
    assert code == 0 and not result["changed"]
    assert (result["current"], result["current_status"], result["current_target"], result["current_path"]) == (None, "dangling", "releases/v9", None)
    assert result["locked_by"] is None and not os.path.exists(root / ".release.lock")
