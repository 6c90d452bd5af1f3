# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""main() of sre.ops.backup, backup_retention, backup_verify, backup_info and restore: argument errors, no restic run."""

from __future__ import annotations

import os

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _restic
from ansible_collections.sre.ops.plugins.modules import backup, backup_info, backup_retention, backup_verify, restore

from ._run import run_main


@pytest.fixture(autouse=True)
def no_restic(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError(f"restic must not run: {args}")

    monkeypatch.setattr(_restic.Runner, "run", refuse)
    monkeypatch.setattr(_restic.Runner, "spawn", refuse)


@pytest.mark.parametrize("module, args, message", [
    (backup, {"repository": "/r", "password": "pw-secret-1"}, "give paths or database (or only init=true"),
    (backup, {"repository": "/r", "paths": ["/srv"]}, "one of the following is required: password, password_file"),
    (backup, {"repository": "/r", "password": "pw-secret-1", "password_file": "/p", "paths": ["/srv"]}, "mutually exclusive: password|password_file"),
    (backup, {"repository": "/r", "password": "pw-secret-1", "paths": ["/srv"], "database": {"type": "sqlite", "path": "/x.db"}},
     "mutually exclusive: paths|database"),
    (backup, {"repository": "/r", "password": "pw-secret-1", "database": {"type": "postgresql"}},
     "type is postgresql but all of the following are missing: name"),
    (backup, {"repository": "/r", "password": "pw-secret-1", "paths": ["/srv"], "min_interval": "soon"}, "min_interval 'soon' is not a duration"),
    (backup, {"repository": "/r", "password": "pw-secret-1", "paths": ["/srv"], "metrics_dir": "/m"}, "missing parameter(s) required by 'metrics_dir': name"),
    (backup, {"repository": "/r", "password": "pw-secret-1", "paths": ["/srv"], "compression": "zstd"}, "value of compression must be one of"),
    (backup, {"repository": "/r", "password": "pw-secret-1", "paths": ["/srv"], "lock_wait": "forever"}, "lock_wait 'forever' is not a duration"),
    (backup_retention, {"repository": "/r", "password": "pw-secret-1"}, "the retention policy keeps nothing"),
    (backup_retention, {"repository": "/r", "password": "pw-secret-1", "keep_daily": 7, "group_by": ["hostname"]}, "value of group_by must be one or more"),
    (backup_verify, {"repository": "/r", "password": "pw-secret-1", "read_data": True, "read_data_subset": "5%"},
     "mutually exclusive: read_data|read_data_subset"),
    (backup_verify, {"repository": "/r", "password": "pw-secret-1", "sample_files": -1}, "sample_files must be 0 or more"),
    (backup_info, {"repository": "/r", "password": "pw-secret-1", "max_age": "old"}, "max_age 'old' is not a duration"),
    (restore, {"repository": "/r", "password": "pw-secret-1", "overwrite": "maybe"}, "value of overwrite must be one of"),
    (restore, {"repository": "/r", "password": "pw-secret-1", "probe_expect": "1"}, "missing parameter(s) required by 'probe_expect': probe_sql"),
    (restore, {"repository": "/r", "password": "pw-secret-1", "path": "srv/data"}, "must be an absolute path inside the snapshot"),
])
def test_bad_input_fails_with_a_clear_message_and_runs_nothing(module, args, message, capsys):
    code, result = run_main(module, args, capsys)
    assert code == 1 and message in result["msg"], result["msg"]


def test_password_never_appears_in_the_result(capsys, tmp_path):
    code, result = run_main(backup, {"repository": "/r", "password": "hunter2", "paths": [str(tmp_path / "missing")]}, capsys)
    assert code == 1 and "paths do not exist" in result["msg"]
    assert "hunter2" not in str(result)


def test_missing_password_file_is_named(capsys, tmp_path):
    code, result = run_main(backup, {"repository": str(tmp_path / "r"), "password_file": str(tmp_path / "pw"), "paths": [str(tmp_path)]}, capsys)
    assert code == 1 and f"password_file {tmp_path}/pw does not exist on this host" in result["msg"]


def test_check_mode_with_a_missing_repository_writes_nothing(capsys, tmp_path):
    code, result = run_main(backup, {"repository": str(tmp_path / "r"), "password": "pw-secret-1", "paths": [str(tmp_path)], "init": True,
                                     "_ansible_check_mode": True}, capsys)
    assert code == 0 and result["changed"] and result["initialised"] and not os.path.exists(tmp_path / "r")
