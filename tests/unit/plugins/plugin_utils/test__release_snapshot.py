# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The shell snapshot of sre.ops.release_info's action plugin, run by a real /bin/sh on real trees, must give
exactly what the module (ReleaseManager.info() on the disk) gives, or send the read back to the module."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _release as rel
from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._lock import PathLock
from ansible_collections.sre.ops.plugins.plugin_utils import _release_snapshot as snap

from ..module_utils._release_helpers import make_tar, release_files

NONCE = "0123abcd4567ef89"


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    base = tmp_path_factory.mktemp("artifacts")
    out = {}
    for version in ("v1", "v2", "v3"):
        path = str(base / f"app-{version}.tar.gz")
        out[version] = (path, make_tar(path, release_files(version)))
    return out


@pytest.fixture
def root(tmp_path):
    return str(tmp_path / "srv" / "app")


def activate(root, artifacts, version):
    path, digest = artifacts[version]
    return rel.ReleaseManager(root).activate(version, path, f"sha256:{digest}", [], 5, [])


@pytest.fixture(params=["/bin/sh", "/bin/bash", "/bin/dash"])
def sh(request):
    """Each POSIX shell a host may run the command with (the ones this machine has)."""
    if not os.path.exists(request.param):
        pytest.skip(f"{request.param} is not installed")
    return request.param


def without_lock_file(root):
    lock = os.path.join(root, rel.LOCK)
    if os.path.lexists(lock):
        os.unlink(lock)
    return lock


def shell_snapshot(path, sh="/bin/sh", env=None):
    proc = subprocess.run([sh, "-c", snap.snapshot_command(path, NONCE)], capture_output=True, check=False, env=env)
    assert proc.returncode == 0, proc.stderr
    return snap.parse_snapshot(proc.stdout, NONCE)


def both(path, sh="/bin/sh"):
    """(module's info, snapshot's info); an error is compared by its message."""
    def run(make):
        try:
            return make().info()
        except SreOpsError as exc:
            return ("error", exc.msg)
    snapshot = shell_snapshot(path, sh)
    assert snapshot is not None, "the snapshot sent this tree back to the module"
    return run(lambda: rel.ReleaseManager(path, check_mode=True)), run(lambda: snap.ReleaseSnapshot(path, snapshot))


def deployed(root, artifacts):
    """v1 good, v2 failed, v3 current (not marked yet): the state in the middle of a rollout."""
    activate(root, artifacts, "v1")
    rel.ReleaseManager(root).mark("v1", "good")
    activate(root, artifacts, "v2")
    rel.ReleaseManager(root).mark("v2", "failed")
    activate(root, artifacts, "v3")


def odd_entries(root):
    releases = os.path.join(root, "releases")
    os.makedirs(os.path.join(releases, ".staging-v9-abc_123"))
    os.makedirs(os.path.join(releases, ".trash-v0-x"))
    os.makedirs(os.path.join(releases, "not a release"))
    os.makedirs(os.path.join(releases, "new\nline"))
    with open(os.path.join(releases, "v7"), "w", encoding="utf-8") as handle:
        handle.write("a file named like a release is not one")
    os.symlink("v1", os.path.join(releases, "v8"))  # a link to a release directory is not a release either
    os.symlink("/nowhere", os.path.join(releases, ".staging-dangling"))


@pytest.mark.parametrize("state", [
    "absent root", "empty root", "deployed", "odd entries", "current dangling", "current outside", "current is a directory",
    "current is a file", "interrupted switch", "interrupted staging", "corrupt ledger", "foreign ledger", "lock free",
    "lock held with a record", "lock held without a record", "link name with a newline", "root is a symlink",
    "ledger not utf-8",
])
def test_the_snapshot_reads_what_the_module_reads(artifacts, root, tmp_path, state):
    holding = None
    if state != "absent root":
        os.makedirs(root)
    if state in ("deployed", "odd entries", "current dangling", "current outside", "current is a directory", "current is a file",
                 "interrupted switch", "interrupted staging", "lock free", "lock held with a record", "lock held without a record",
                 "link name with a newline", "root is a symlink"):
        deployed(root, artifacts)
    current = os.path.join(root, "current")
    if state == "odd entries":
        odd_entries(root)
    elif state == "current dangling":
        os.replace(os.path.join(root, "releases", "v3"), str(tmp_path / "gone"))
    elif state == "current outside":
        os.unlink(current)
        os.symlink(str(tmp_path), current)
    elif state == "current is a directory":
        os.unlink(current)
        os.mkdir(current)
    elif state == "current is a file":
        os.unlink(current)
        with open(current, "w", encoding="utf-8") as handle:
            handle.write("v3\n")
    elif state in ("interrupted switch", "interrupted staging"):
        ledger_path = os.path.join(root, rel.LEDGER)
        with open(ledger_path, encoding="utf-8") as handle:
            ledger = json.load(handle)
        if state == "interrupted switch":
            ledger["pending"] = {"op": "switch", "release": "v3", "by": "activate", "previous": "v2", "outcomes": {"v2": "failed"}}
        else:
            os.makedirs(os.path.join(root, "releases", "v4"))
            ledger["pending"] = {"op": "stage", "release": "v4", "record": {"id": "v4", "outcome": "unknown"}}
        with open(ledger_path, "w", encoding="utf-8") as handle:
            json.dump(ledger, handle)
    elif state == "corrupt ledger":
        with open(os.path.join(root, rel.LEDGER), "w", encoding="utf-8") as handle:
            handle.write('{"version": 1, "releases": {')
    elif state == "ledger not utf-8":
        with open(os.path.join(root, rel.LEDGER), "wb") as handle:
            handle.write(b'{"version": 1, "releases": {}, "note": "\xff"}')
    elif state == "foreign ledger":
        with open(os.path.join(root, rel.LEDGER), "w", encoding="utf-8") as handle:
            handle.write('{"version": 99}\n')
    elif state.startswith("lock held"):
        holding = PathLock(os.path.join(root, rel.LOCK), 0, purpose="a test holds it").acquire()
        if state == "lock held without a record":
            os.truncate(os.path.join(root, rel.LOCK), 0)
    elif state == "link name with a newline":
        os.rename(os.path.join(root, "releases", "v1"), os.path.join(root, "releases", "v1.b"))
        os.unlink(current)
        os.symlink("releases/v3\n", current)
    elif state == "root is a symlink":
        link = str(tmp_path / "app-link")
        os.symlink(root, link)
        root = link
    try:
        module, snapshot = both(root)
    finally:
        if holding is not None:
            holding.release()
    assert snapshot == module
    if state == "lock held with a record":
        assert module["locked_by"]["purpose"] == "a test holds it"
    if state == "lock held without a record":
        assert module["locked_by"] == {}
    if state == "odd entries":
        assert module["leftovers"] == [".staging-dangling", ".staging-v9-abc_123", ".trash-v0-x"]
    if state == "deployed":
        assert module["current"] == "v3" and module["last_good"] == "v1" and module["locked_by"] is None


def test_every_posix_shell_gives_the_same_snapshot(artifacts, root, sh):
    os.makedirs(root)
    deployed(root, artifacts)
    odd_entries(root)
    module, snapshot = both(root, sh)
    assert snapshot == module


@pytest.mark.parametrize("state", ["root is a file", "ledger is a directory", "lock file is a symlink"])
def test_what_the_snapshot_cannot_read_as_the_module_goes_back_to_the_module(artifacts, root, tmp_path, state):
    if state == "root is a file":
        os.makedirs(os.path.dirname(root))
        with open(root, "w", encoding="utf-8") as handle:
            handle.write("not a directory")
    else:
        os.makedirs(root)
        deployed(root, artifacts)
        if state == "ledger is a directory":
            os.unlink(os.path.join(root, rel.LEDGER))
            os.mkdir(os.path.join(root, rel.LEDGER))
        else:
            os.symlink(str(tmp_path / "elsewhere"), without_lock_file(root))
    assert shell_snapshot(root) is None


@pytest.mark.parametrize("parent", ["a file", "a symlink loop"])
def test_a_root_the_module_fails_to_reach_is_not_taken_for_an_absent_one(root, parent):
    # the module cannot tell "absent" here (ENOTDIR, ELOOP on its reads): it fails, so the snapshot must not answer
    above = os.path.dirname(root)
    if parent == "a file":
        with open(above, "w", encoding="utf-8") as handle:
            handle.write("not a directory")
    else:
        os.symlink(os.path.basename(above), above)
    with pytest.raises(SreOpsError):
        rel.ReleaseManager(root, check_mode=True).info()
    assert shell_snapshot(root) is None


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("runuser"), reason="needs root to run the shell as nobody")
def test_a_root_below_a_directory_the_user_may_not_search_is_not_taken_for_an_absent_one(artifacts, root):
    os.makedirs(root)
    deployed(root, artifacts)
    os.chmod(os.path.dirname(root), 0o700)  # the deployed root is there, but nobody cannot see it
    proc = subprocess.run(["runuser", "-u", "nobody", "--", "/bin/sh", "-c", snap.snapshot_command(root, NONCE)],
                          capture_output=True, check=False, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert snap.parse_snapshot(proc.stdout, NONCE) is None


def test_a_lock_file_the_shell_cannot_open_is_not_taken_for_a_held_lock(artifacts, root, sh):
    # bash gives 1 (flock's "held") for a failed redirection; a socket cannot be opened, even by root
    os.makedirs(root)
    deployed(root, artifacts)
    lock = without_lock_file(root)
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(lock)
        assert shell_snapshot(root, sh) is None
    finally:
        server.close()


def test_a_host_without_flock_or_readlink_goes_back_to_the_module(artifacts, root, tmp_path):
    os.makedirs(root)
    deployed(root, artifacts)
    tools = tmp_path / "bin"
    tools.mkdir()
    for tool in ("cat", "dd"):
        os.symlink(shutil.which(tool), str(tools / tool))
    assert shell_snapshot(root, env={"PATH": str(tools)}) is None
    os.symlink(shutil.which("readlink"), str(tools / "readlink"))
    os.symlink(shutil.which("flock"), str(tools / "flock"))
    assert shell_snapshot(root, env={"PATH": str(tools)}) is not None


def test_cut_or_foreign_output_is_never_taken_for_a_snapshot(artifacts, root):
    os.makedirs(root)
    deployed(root, artifacts)
    proc = subprocess.run(["/bin/sh", "-c", snap.snapshot_command(root, NONCE)], capture_output=True, check=True)
    whole = proc.stdout
    assert snap.parse_snapshot(whole, NONCE) is not None
    end = whole.rindex(f"\n{NONCE} end".encode())
    assert snap.parse_snapshot(whole[:end], NONCE) is None  # cut before its end
    assert snap.parse_snapshot(b"Welcome to the host!\n" + whole, NONCE) is None  # a login banner
    assert snap.parse_snapshot(whole + f"\n{NONCE} dir\nv9".encode(), NONCE) is None  # something after the end
    assert snap.parse_snapshot(whole.replace(f"{NONCE} ledger".encode(), f"{NONCE} unknown".encode()), NONCE) is None
    assert snap.parse_snapshot(whole, "ffffffffffffffff") is None  # another run's nonce


def test_a_name_that_carries_another_runs_field_marker_is_just_a_name(artifacts, root):
    os.makedirs(root)
    deployed(root, artifacts)
    forged = "x\nffffffffffffffff end\nffffffffffffffff dir\nv9"
    os.makedirs(os.path.join(root, "releases", ".staging-" + forged))
    module, snapshot = both(root)
    assert snapshot == module and module["leftovers"] == [".staging-" + forged]


def test_the_nonce_is_checked():
    with pytest.raises(ValueError):
        snap.snapshot_command("/srv/app", "x; rm -rf /")


def tree(path):
    out = []
    for base, dirs, files in os.walk(path):
        for name in sorted(dirs + files):
            st = os.lstat(os.path.join(base, name))
            out.append((os.path.join(base, name), st.st_mode, st.st_size, st.st_mtime_ns))
    return sorted(out)


@pytest.mark.parametrize("lock", ["no lock file", "lock file"])
def test_the_snapshot_changes_nothing_and_never_creates_the_lock_file(artifacts, root, lock):
    os.makedirs(root)
    deployed(root, artifacts)
    if lock == "no lock file":
        os.unlink(os.path.join(root, rel.LOCK))
    before = tree(os.path.dirname(root))
    assert shell_snapshot(root) is not None
    assert tree(os.path.dirname(root)) == before


def test_output_through_a_terminal_gives_back_every_byte(artifacts, root):
    """ansible runs the command with ssh -tt, whose terminal writes each newline as CR LF."""
    os.makedirs(root)
    deployed(root, artifacts)
    odd_entries(root)
    os.makedirs(os.path.join(root, "releases", ".staging-cr\r\nlf\r"))
    proc = subprocess.run(["/bin/sh", "-c", snap.snapshot_command(root, NONCE)], capture_output=True, check=True)
    plain = snap.parse_snapshot(proc.stdout, NONCE)
    through_a_terminal = snap.parse_snapshot(proc.stdout.replace(b"\n", b"\r\n"), NONCE)
    assert plain is not None and through_a_terminal == plain
    assert ".staging-cr\r\nlf\r" in snap.ReleaseSnapshot(root, through_a_terminal).info()["leftovers"]


def test_a_name_that_is_not_utf8_goes_back_to_the_module(artifacts, root):
    """ansible refuses a module result with such a name ("invalid UTF8"): the module run says so, not a snapshot."""
    os.makedirs(root)
    deployed(root, artifacts)
    os.makedirs(os.fsencode(os.path.join(root, "releases", ".staging-latin-")) + b"\xe9")
    assert shell_snapshot(root) is None
