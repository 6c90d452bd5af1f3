# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import grp
import os
import pwd

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _io
from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError


def test_write_atomic_replaces_content_and_sets_mode(tmp_path):
    target = tmp_path / "ledger.json"
    target.write_bytes(b"old")
    # mkstemp creates 0600: any other mode proves the mode was set
    _io.write_atomic(str(target), b"new", mode=0o640)
    assert target.read_bytes() == b"new"
    assert (target.stat().st_mode & 0o777) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["ledger.json"], "no temporary file may be left behind"


def test_write_atomic_keeps_the_mode_of_the_file_it_replaces_and_gives_new_files_0644(tmp_path):
    target = tmp_path / "hosts.map"
    target.write_bytes(b"old")
    target.chmod(0o604)
    _io.write_atomic(str(target), b"new")
    assert (target.stat().st_mode & 0o7777) == 0o604
    fresh = tmp_path / "fresh"
    _io.write_atomic(str(fresh), b"x")
    assert (fresh.stat().st_mode & 0o7777) == 0o644


@pytest.mark.skipif(os.geteuid() != 0, reason="giving a file to another owner needs root")
def test_write_atomic_keeps_owner_and_group(tmp_path):
    target = tmp_path / "hosts.map"
    target.write_bytes(b"old")
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    os.chown(target, nobody, nogroup)
    _io.write_atomic(str(target), b"new")
    assert (target.stat().st_uid, target.stat().st_gid) == (nobody, nogroup)


def test_write_atomic_writes_through_a_symlink(tmp_path):
    (tmp_path / "etc").mkdir()
    real = tmp_path / "etc" / "hosts.map"
    real.write_bytes(b"old")
    link = tmp_path / "hosts.map"
    link.symlink_to(os.path.join("etc", "hosts.map"))
    _io.write_atomic(str(link), b"new")
    assert link.is_symlink() and os.readlink(link) == os.path.join("etc", "hosts.map")
    assert real.read_bytes() == b"new"
    assert sorted(os.listdir(tmp_path / "etc")) == ["hosts.map"], "the temporary file lives beside the real file"


def test_write_atomic_copies_access_control_attributes(tmp_path, monkeypatch):
    """SELinux context and ACL travel with the content (filesystems here may not support them: record the calls)."""
    target = tmp_path / "hosts.map"
    target.write_bytes(b"old")
    attributes = {"security.selinux": b"system_u:object_r:haproxy_var_lib_t:s0\x00"}
    copied = {}

    def getxattr(_path, name):
        if name not in attributes:
            raise OSError(61, "No data available")
        return attributes[name]

    monkeypatch.setattr(_io.os, "getxattr", getxattr)
    monkeypatch.setattr(_io.os, "setxattr", lambda path, name, value: copied.update({name: (os.path.dirname(path), value)}))
    _io.write_atomic(str(target), b"new")
    assert copied == {"security.selinux": (str(tmp_path), attributes["security.selinux"])}


def test_write_atomic_failure_keeps_old_file_and_leaves_no_temp(tmp_path, monkeypatch):
    target = tmp_path / "state.json"
    target.write_bytes(b"old")

    def fail_replace(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_io.os, "replace", fail_replace)
    with pytest.raises(SreOpsError, match="cannot write .*state.json: No space left on device"):
        _io.write_atomic(str(target), b"new")
    assert target.read_bytes() == b"old"
    assert sorted(os.listdir(tmp_path)) == ["state.json"]


def test_write_atomic_into_missing_directory_names_the_path(tmp_path):
    with pytest.raises(SreOpsError, match="temporary file next to .*missing/x"):
        _io.write_atomic(str(tmp_path / "missing" / "x"), b"data")


def test_json_round_trip_is_stable(tmp_path):
    target = tmp_path / "doc.json"
    _io.write_json_atomic(str(target), {"b": 1, "a": [1, 2]})
    first = target.read_bytes()
    _io.write_json_atomic(str(target), {"a": [1, 2], "b": 1})
    assert target.read_bytes() == first
    assert _io.read_json(str(target)) == {"a": [1, 2], "b": 1}


def test_read_json_missing_gives_default_and_corrupt_names_file(tmp_path):
    assert _io.read_json(str(tmp_path / "absent.json"), default={}) == {}
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SreOpsError, match="bad.json is not valid JSON"):
        _io.read_json(str(bad))


def test_symlink_atomic_switches_existing_link(tmp_path):
    (tmp_path / "r1").mkdir()
    (tmp_path / "r2").mkdir()
    link = tmp_path / "current"
    _io.symlink_atomic("r1", str(link))
    assert os.readlink(link) == "r1"
    _io.symlink_atomic("r2", str(link))
    assert os.readlink(link) == "r2"
    assert sorted(os.listdir(tmp_path)) == ["current", "r1", "r2"]


def test_symlink_atomic_refuses_to_replace_a_directory(tmp_path):
    (tmp_path / "current").mkdir()
    with pytest.raises(SreOpsError, match="cannot point .*current at r1"):
        _io.symlink_atomic("r1", str(tmp_path / "current"))
    assert (tmp_path / "current").is_dir()
