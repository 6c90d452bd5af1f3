# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""backup_verify and backup_info logic against the real restic on a local repository (a few seconds)."""

from __future__ import annotations

import os
import shutil

import pytest

from ansible_collections.sre.ops.plugins.module_utils._backup import BackupManager
from ansible_collections.sre.ops.plugins.module_utils._restic import Repository, Runner
from ansible_collections.sre.ops.plugins.module_utils._verify import InfoManager, VerifyError, VerifyManager

pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="needs restic (make bootstrap installs it)")


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    base = tmp_path_factory.mktemp("verify")
    src = base / "src"
    (src / "sub").mkdir(parents=True)
    for i in range(12):
        (src / "sub" / f"f{i}").write_bytes(os.urandom(2000 + i * 997))
    (src / "big").write_bytes(os.urandom(3 << 20))
    repository = Repository(str(base / "repo"), runner=Runner(), password="pw", hostname="web1")
    BackupManager(repository, paths=[str(src)], init=True, tags=["app"], marker_dir=str(base / "m")).run()
    return base, repository


def test_a_sound_repository_verifies_against_snapshot_and_source(repo):
    _base, repository = repo
    result = VerifyManager(repository, read_data_subset="100%", sample_files=6, seed=1).run()
    assert result["check"]["passed"] and "no errors were found" in result["check"]["output"][-1]
    files = result["sample"]["files"]
    assert len(files) == 6 and result["sample"]["candidates"] == 13
    assert all(f["match"] and f["sha256"] == f["snapshot_sha256"] == f["source_sha256"] for f in files)


def test_a_changed_source_file_is_not_compared_with_its_new_content(repo):
    base, repository = repo
    (base / "src" / "big").write_bytes(b"rewritten after the backup")
    result = VerifyManager(repository, check=False, sample_files=20, seed=1).run()
    big = next(f for f in result["sample"]["files"] if f["path"].endswith("/big"))
    assert big["match"] and "source_sha256" not in big


def test_info_groups_and_freshness(repo):
    _base, repository = repo
    result = InfoManager(repository, max_age=3600, locks=True).run()
    assert [g["host"] for g in result["groups"]] == ["web1"] and result["groups"][0]["count"] == 1
    assert result["fresh"] and result["stale_groups"] == [] and result["locks"] == []
    assert result["stats"]["raw-data"]["total_size"] > 3 << 20
    stale = InfoManager(repository, max_age=0).run()
    assert not stale["fresh"] and stale["stale_groups"][0]["host"] == "web1"


def test_corruption_is_found_and_reported(repo):
    base, repository = repo
    broken = base / "broken"
    shutil.copytree(base / "repo", broken)
    packs = sorted((broken / "data").rglob("*"), key=lambda p: p.stat().st_size if p.is_file() else 0)
    with open(packs[-1], "r+b") as handle:
        handle.seek(200)
        handle.write(b"corrupted by the test")
    damaged = Repository(str(broken), runner=Runner(), password="pw", hostname="web1")
    with pytest.raises(VerifyError, match="verification failed: restic check found errors") as info:
        VerifyManager(damaged, read_data=True, sample_files=13, seed=1).run()
    result = info.value.details["result"]
    assert not result["check"]["passed"]
    assert result["sample"].get("error") or any(not f["match"] for f in result["sample"]["files"])
