# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _metrics
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError

from ...utils import promtext


def test_backup_metrics_are_valid_textfile_format(tmp_path):
    path = _metrics.metrics_path(str(tmp_path), "backup", "app")
    outcome = {"success": True, "finished": 1800000000.5, "duration_seconds": 12.25, "files_new": 3, "files_changed": 0,
               "files_unmodified": 99997, "added_bytes": 4096, "processed_bytes": 875707523}
    _metrics.write_textfile(path, _metrics.render(_metrics.backup_families("app", outcome, {})))
    families = promtext.parse(open(path, encoding="utf-8").read())
    assert families["sreops_backup_last_success_timestamp_seconds"]["samples"] == {(("backup", "app"),): 1800000000.5}
    assert families["sreops_backup_duration_seconds"]["type"] == "gauge"
    assert set(families) >= {"sreops_backup_last_run_success", "sreops_backup_files_new", "sreops_backup_added_bytes"}
    assert os.path.basename(path) == "sreops_backup_app.prom" and os.listdir(tmp_path) == ["sreops_backup_app.prom"]


def test_a_failed_run_keeps_the_last_success_figures(tmp_path):
    path = _metrics.metrics_path(str(tmp_path), "backup", "app")
    ok = {"success": True, "finished": 1000.0, "duration_seconds": 5.0, "files_new": 1, "files_changed": 0, "files_unmodified": 0,
          "added_bytes": 10, "processed_bytes": 20}
    _metrics.write_textfile(path, _metrics.render(_metrics.backup_families("app", ok, {})))
    failed = _metrics.render(_metrics.backup_families("app", {"success": False, "finished": 2000.0}, _metrics.read_samples(path)))
    families = promtext.parse(failed)
    assert families["sreops_backup_last_run_success"]["samples"][(("backup", "app"),)] == 0
    assert families["sreops_backup_last_run_timestamp_seconds"]["samples"][(("backup", "app"),)] == 2000.0
    assert families["sreops_backup_last_success_timestamp_seconds"]["samples"][(("backup", "app"),)] == 1000.0
    assert families["sreops_backup_duration_seconds"]["samples"][(("backup", "app"),)] == 5.0


def test_drill_metrics_and_label_escaping():
    text = _metrics.render(_metrics.drill_families('a"b\\c', {"success": True, "finished": 5.0, "rto_seconds": 1.5, "data_age_seconds": 60,
                                                              "restored_bytes": 10, "restored_files": 1}, {}))
    families = promtext.parse(text)
    assert families["sreops_restore_drill_rto_seconds"]["samples"] == {(("backup", 'a\\"b\\\\c'),): 1.5}


@pytest.mark.parametrize("bad, message", [
    ("x 1", "without HELP and TYPE"),
    ("# HELP x h\n# TYPE x gauge\nx 1 1700000000", "timestamps are not allowed"),
    ("# HELP x h\n# TYPE x gauge\nx 1\nx 2", "appears twice"),
    ("# HELP x h\n# TYPE x gauge\nx{a=\"1\"} 1\n# HELP y h\n# TYPE y gauge\ny 1\nx{a=\"2\"} 1", "are not together"),
    ("# HELP x h\n# TYPE x gauge\nx{a=1} 1", "bad label syntax"),
    ("# HELP x h\n# TYPE x gauge\nx one", "is not a sample value"),
    ("# HELP x h\n# TYPE x gauge\nx 1", "must end with a newline"),
])
def test_the_strict_reader_rejects_what_the_collector_rejects(bad, message):
    text = bad if message == "must end with a newline" else bad + "\n"
    with pytest.raises(promtext.FormatError, match=message):
        promtext.parse(text)


def test_names_are_checked():
    with pytest.raises(InvalidInputError):
        _metrics.render([("bad-name", "gauge", "h", [({}, 1)])])
    with pytest.raises(InvalidInputError):
        _metrics.check_job_name("../etc")
