# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import socket
import tarfile
import zipfile

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _release as rel
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError, SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._lock import LockTimeout

from ._release_helpers import VERSIONS, Child, make_tar, release_files, settled_state


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory):
    out = {}
    base = tmp_path_factory.mktemp("artifacts")
    for version in VERSIONS:
        path = str(base / f"app-{version}.tar.gz")
        out[version] = (path, make_tar(path, release_files(version)))
    out["directory"] = str(base / "directory")
    for name, data in release_files("d1").items():
        os.makedirs(os.path.dirname(os.path.join(out["directory"], name)), exist_ok=True)
        with open(os.path.join(out["directory"], name), "wb") as handle:
            handle.write(data)
    return out


@pytest.fixture
def root(tmp_path):
    return str(tmp_path / "srv" / "app")


def mgr(root, check=False, **kwargs):
    return rel.ReleaseManager(root, check_mode=check, **kwargs)


def activate(root, artifacts, version, check=False, keep=5, protect=(), shared=("log",), **kwargs):
    path, digest = artifacts[version]
    return mgr(root, check, **kwargs).activate(version, path, f"sha256:{digest}", list(shared), keep, list(protect))


def tree_fingerprint(path, strict=True):
    """Every entry's path, mode, mtime and content. strict=False leaves out the lock file, which every real run
    writes its holder record into (and empties again), and directory times, which change when a failing run
    creates and removes its staging directory: what a failed real run may change, nothing else."""
    if not os.path.exists(path):
        return None
    entries = []
    for base, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(base, name)
            if not strict and full == os.path.join(path, rel.LOCK):
                continue
            info = os.lstat(full)
            content = os.readlink(full) if os.path.islink(full) else (open(full, "rb").read() if os.path.isfile(full) else b"")
            mtime = info.st_mtime_ns if strict or not os.path.isdir(full) or os.path.islink(full) else None
            entries.append((os.path.relpath(full, path), info.st_mode, mtime, str(content)))
    return hashlib.sha256(repr(entries).encode()).hexdigest()


# ----- options -------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", ["", ".", "..", ".hidden", "a/b", "a b", "x" * 129, "v2\n", "\nv2", "v2\x00", "-v2"])
def test_release_ids_must_match_entirely(bad):
    with pytest.raises(InvalidInputError, match="is not a valid release id"):
        rel.check_release_id(bad)


@pytest.mark.parametrize("bad", ["md5:abc", "sha256:xyz", "sha256:" + "a" * 63])
def test_checksum_format(bad):
    with pytest.raises(InvalidInputError, match="must look like sha256:"):
        rel.parse_checksum(bad)


@pytest.mark.parametrize("paths, message", [
    (["/var/log"], "'/var/log' must be a relative path inside the release"),
    (["../shared"], "'../shared' must be a relative path"),
    (["."], "'.' must be a relative path"),
    (["log", "log/app"], "'log' and 'log/app' overlap"),
    (["log", "./log/"], "lists a path twice"),
])
def test_shared_paths_are_validated(paths, message):
    with pytest.raises(InvalidInputError, match=message):
        rel.check_shared_paths(paths)


BAD_OPTIONS = [  # a missing src is only refused by a real run: in a check run an earlier task may not have uploaded it yet
    ({"checksum": "sha256:" + "0" * 64}, "checksum mismatch for"),
    ({"checksum": "md5:1"}, "must look like sha256:"),
    ({"src": "relative/app.tar.gz"}, "must be an absolute path"),
    ({"src": "/nonexistent/app.tar.gz"}, "does not exist on the host"),
    ({"shared_paths": ["../x"]}, "shared_paths entry '../x'"),
    ({"shared_paths": ["VERSION/x"]}, "shared_paths entry 'VERSION/x' is inside 'VERSION', which is a file in the archive"),
    ({"keep_releases": -1}, "keep_releases must be 0"),
    ({"protect": ["v1\n"]}, "protect entry 'v1\\n' is not a valid release id"),
    ({"lock_timeout": -1}, "lock_timeout must be 0 or more"),
]


@pytest.mark.parametrize("change, message", BAD_OPTIONS, ids=[m for _c, m in BAD_OPTIONS])
def test_bad_options_fail_before_anything_is_touched(artifacts, root, change, message):
    activate(root, artifacts, "v1")
    os.mkdir(os.path.join(root, "releases", ".staging-v9-killed"))  # a leftover: must survive a refused run
    before = tree_fingerprint(root, strict=False)
    path, digest = artifacts["v2"]
    params = {"path": root, "state": "active", "release": "v2", "src": path, "checksum": f"sha256:{digest}", "shared_paths": ["log"],
              "keep_releases": 5, "protect": [], "lock_timeout": 5, **change}
    for check in (True, False) if "does not exist" not in message else (False,):
        with pytest.raises(SreOpsError, match=re.escape(message)):
            rel.run(params, check_mode=check)
    assert tree_fingerprint(root, strict=False) == before


# ----- hostile and broken sources through the manager ------------------------------------------------
def truncate(path, _digest):
    with open(path, "r+b") as handle:
        handle.truncate(os.path.getsize(path) - 20)


def tar_info(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


BROKEN = [
    ("absolute", lambda p: make_tar(p, {"/etc/cron.d/evil": b"x"}), "archive member '/etc/cron.d/evil' has an absolute path"),
    ("symlink escaping", lambda p: make_tar(p, {}, [tar_info("a/up", tarfile.SYMTYPE, "../../x")]), "'a/up' is a symlink to '../../x'"),
    ("file through a symlink", lambda p: make_tar(p, {"etc/passwd": b"x"}, [tar_info("etc", tarfile.SYMTYPE, "x")], links_first=True),
     "'etc/passwd' passes through 'etc', which is a symlink in the archive"),
    ("hard link to a missing member", lambda p: make_tar(p, {}, [tar_info("pw", tarfile.LNKTYPE, "missing")]), "'pw' is a hard link to 'missing'"),
    ("truncated", lambda p: truncate(p, make_tar(p, release_files("x"))), "it is truncated"),
    ("random bytes", lambda p: open(p, "wb").write(bytes(range(9, 200)) * 50), "is not an archive this module reads"),
]


@pytest.mark.parametrize("label, build, message", BROKEN, ids=[b[0] for b in BROKEN])
def test_refused_or_broken_archives_leave_nothing_behind_and_check_mode_predicts_the_failure(tmp_path, root, label, build, message):
    path = str(tmp_path / "app.tar.gz")
    build(path)
    for check in (True, False):
        with pytest.raises(SreOpsError, match=message.replace("(", r"\(")) as caught:
            mgr(root, check).activate("evil", path, None, [], 5, [])
        assert path in str(caught.value)
    assert not os.path.exists(os.path.dirname(root)), "a failed first run must not leave the application root (or its parents) behind"
    activate_dir = tmp_path / "existing"
    os.makedirs(activate_dir / ".artifacts")
    before = tree_fingerprint(str(activate_dir))
    with pytest.raises(SreOpsError, match=message.replace("(", r"\(")):
        mgr(str(activate_dir)).activate("evil", path, None, [], 5, [])
    assert tree_fingerprint(str(activate_dir)) == before, "no lock file, releases/ or shared/ may stay behind"


def test_a_second_release_failing_removes_only_its_staging(artifacts, tmp_path, root):
    activate(root, artifacts, "v1")
    before = tree_fingerprint(root, strict=False)
    path = str(tmp_path / "bad.tar.gz")
    with open(path, "wb") as handle:
        handle.write(open(artifacts["v2"][0], "rb").read()[:-100])
    with pytest.raises(SreOpsError, match=f"cannot unpack {path}: it is truncated"):
        mgr(root).activate("v2", path, None, ["log"], 5, [])
    assert tree_fingerprint(root, strict=False) == before


def test_setuid_bits_are_dropped_and_said_so(tmp_path, root):
    path = str(tmp_path / "suid.tar")
    info = tarfile.TarInfo("bin/helper")
    info.mode = 0o4755
    info.size = 1
    with tarfile.open(path, "w") as tar:
        tar.addfile(info, io.BytesIO(b"x"))
    predicted = mgr(root, True).activate("s1", path, None, [], 5, [])
    result = mgr(root).activate("s1", path, None, [], 5, [])
    assert predicted["notes"] == result["notes"] == ["setuid, setgid and sticky bits are not kept in releases: dropped from bin/helper (4755)"]
    assert os.stat(os.path.join(root, "releases/s1/bin/helper")).st_mode & 0o7777 == 0o755


def test_zip_releases_keep_their_modes(tmp_path, root):
    path = str(tmp_path / "app.zip")
    with zipfile.ZipFile(path, "w") as archive:
        info = zipfile.ZipInfo("bin/run.sh")
        info.external_attr = 0o100755 << 16
        archive.writestr(info, "#!/bin/sh\n")
        archive.writestr("VERSION", "z1\n")
    assert mgr(root).activate("z1", path, None, [], 5, [])["current"] == "z1"
    assert os.stat(os.path.join(root, "releases/z1/bin/run.sh")).st_mode & 0o777 == 0o755


def test_directory_source_with_escaping_link_is_refused(tmp_path, root):
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text("x")
    os.symlink("/etc/shadow", src / "shadow")
    with pytest.raises(SreOpsError, match="'shadow' is a symlink to '/etc/shadow'"):
        mgr(root).activate("d", str(src), None, [], 5, [])
    assert not os.path.exists(root)


# ----- activation, ledger and rollback -------------------------------------------------------------
def test_activate_layout_shared_paths_and_idempotence(artifacts, root):
    first = activate(root, artifacts, "v1")
    assert first["changed"] and first["staged"] and first["switched"] and first["current"] == "v1"
    assert first["previous"] is None, "a first release has no previous"
    assert first["changes"] == [f"stage v1 from {artifacts['v1'][0]}", "switch current from nothing to v1"]
    assert os.readlink(os.path.join(root, "current")) == "releases/v1"
    log = os.path.join(root, "releases/v1/log")
    assert os.path.islink(log) and os.path.realpath(log) == os.path.realpath(os.path.join(root, "shared/log"))
    ledger = json.load(open(os.path.join(root, "ledger.json")))
    assert ledger["releases"]["v1"]["source_checksum"] == f"sha256:{artifacts['v1'][1]}"
    assert ledger["releases"]["v1"]["outcome"] == "unknown" and ledger["current"] == "v1" and "pending" not in ledger
    again = activate(root, artifacts, "v1")
    assert not again["changed"] and not again["staged"] and not again["switched"] and again["changes"] == []
    assert os.path.getsize(os.path.join(root, rel.LOCK)) == 0, "the lock file keeps no holder record once released"


def test_result_tells_a_switch_from_a_prune_and_a_mark_in_its_diff(artifacts, root):
    activate(root, artifacts, "v1")
    switch = activate(root, artifacts, "v2", keep=1)
    assert (switch["previous"], switch["current"], switch["pruned"]) == ("v1", "v2", ["v1"])
    assert switch["changes"][-2:] == ["switch current from v1 to v2", "prune v1"]
    assert switch["diff"] == {"before": {"current": "v1", "releases": ["v1"], "outcomes": {"v1": "unknown"}},
                              "after": {"current": "v2", "releases": ["v2"], "outcomes": {"v2": "unknown"}}}
    marked = mgr(root).mark(None, "good")
    assert marked["diff"]["before"]["outcomes"] == {"v2": "unknown"} and marked["diff"]["after"]["outcomes"] == {"v2": "good"}
    assert marked["changes"] == ["mark v2 good"] and marked["outcome"] == "good"


def test_release_is_immutable(artifacts, root):
    activate(root, artifacts, "v1")
    path, digest = artifacts["v2"]
    with pytest.raises(rel.ReleaseError, match="release v1 already exists from a different source"):
        mgr(root).activate("v1", path, f"sha256:{digest}", [], 5, [])


def test_rollback_uses_the_ledger_not_mtimes_and_twice_is_right(artifacts, root):
    for version, outcome in (("v1", "good"), ("v2", "good"), ("v3", None)):
        activate(root, artifacts, version)
        if outcome:
            mgr(root).mark(None, outcome)
    os.utime(os.path.join(root, "releases/v1"), (2_000_000_000, 2_000_000_000))  # mtime must not matter
    first = mgr(root).rollback(None)
    assert first["changed"] and first["current"] == "v2" and first["rolled_back_from"] == "v3"
    assert first["changes"] == ["switch current from v3 to v2", "record v3 rolled_back"]
    second = mgr(root).rollback(None)
    assert not second["changed"] and second["current"] == "v2"
    outcomes = {r["id"]: r["outcome"] for r in mgr(root).info()["releases"]}
    assert outcomes == {"v1": "good", "v2": "good", "v3": "rolled_back"}
    mgr(root).mark(None, "failed")
    third = mgr(root).rollback(None)
    assert third["current"] == "v1" and third["rolled_back_from"] == "v2"
    assert {r["id"]: r["outcome"] for r in mgr(root).info()["releases"]}["v2"] == "failed"


def test_rollback_to_named_release_and_without_good_release(artifacts, root):
    activate(root, artifacts, "v1")
    activate(root, artifacts, "v2")
    with pytest.raises(rel.ReleaseError, match="no release marked good to roll back to"):
        mgr(root).rollback(None)
    assert mgr(root).rollback("v1")["current"] == "v1"
    with pytest.raises(rel.ReleaseError, match="cannot roll back to v9: it is not on this host"):
        mgr(root).rollback("v9")


def test_rollback_after_completed_rollout_goes_to_the_previous_good(artifacts, root):
    for version in ("v1", "v2"):
        activate(root, artifacts, version)
        mgr(root).mark(None, "good")
    assert mgr(root).rollback(None)["current"] == "v1"


def test_marking_a_release_again_after_it_became_current_again_records_this_activation(artifacts, root):
    # the deploy role tells "passed its gates since it last became current" from outcome_seq > last_activated_seq
    for version in ("v1", "v2", "v1"):
        activate(root, artifacts, version)
        first = mgr(root).mark(None, "good")
        assert first["changed"], f"{version}: its good mark predates this activation"
        assert not mgr(root).mark(None, "good")["changed"], "a second mark changes nothing"
        record = mgr(root).info()["ledger"]["releases"]["v1" if version == "v1" else "v2"]
        assert record["outcome_seq"] > record["last_activated_seq"]


def test_retention_never_prunes_current_newest_good_rollback_target_newest_staged_or_protected(artifacts, root):
    activate(root, artifacts, "v1")
    mgr(root).mark(None, "good")
    for version in ("v2", "v3", "v4"):
        activate(root, artifacts, version)
        mgr(root).mark(None, "failed")
    result = activate(root, artifacts, "v5", keep=2, protect=["v3"])
    assert result["pruned"] == ["v2", "v4"]
    assert sorted(os.listdir(os.path.join(root, "releases"))) == ["v1", "v3", "v5"]
    assert result["previous_good"] == "v1"


def test_retention_keeps_the_rollback_target_when_current_is_good_and_a_newer_staged_release(artifacts, root):
    for version in ("v1", "v2", "v3"):
        activate(root, artifacts, version)
        mgr(root).mark(None, "good")
    path, digest = artifacts["v4"]
    mgr(root).stage("v4", path, f"sha256:{digest}", [])  # staged for the next rollout, never activated
    result = activate(root, artifacts, "v3", keep=1)
    assert result["pruned"] == ["v1"] and result["releases"] == ["v2", "v3", "v4"]
    assert result["previous_good"] == "v2"


def test_remove_refuses_current_last_good_rollback_target_and_protected(artifacts, root):
    activate(root, artifacts, "v1")
    mgr(root).mark(None, "good")
    activate(root, artifacts, "v2")
    activate(root, artifacts, "v3")
    with pytest.raises(rel.ReleaseError, match="refusing to remove v3: it is the current release"):
        mgr(root).remove("v3", [])
    with pytest.raises(rel.ReleaseError, match="refusing to remove v1: it is the last release marked good"):
        mgr(root).remove("v1", [])
    with pytest.raises(rel.ReleaseError, match="listed in protect"):
        mgr(root).remove("v2", ["v2"])
    assert mgr(root).remove("v2", [])["changed"]
    assert not mgr(root).remove("v2", [])["changed"]
    mgr(root).mark(None, "good")  # v3 good and current: v1 is now the rollback target
    with pytest.raises(rel.ReleaseError, match="refusing to remove v1: it is the rollback target"):
        mgr(root).remove("v1", [])


def test_current_pointing_at_no_release_is_reported_and_replaced(artifacts, root):
    activate(root, artifacts, "v1")
    for target, status in (("releases/v9", "dangling"), ("/etc", "outside"), ("../elsewhere/releases/v1", "outside")):
        os.unlink(os.path.join(root, "current"))
        os.symlink(target, os.path.join(root, "current"))
        info = mgr(root).info()
        assert (info["current"], info["current_status"], info["current_target"], info["current_path"]) == (None, status, target, None)
        assert info["to_reconcile"] == [f"the ledger said current is v1, but current is {status} ({target})"]
        with pytest.raises(rel.ReleaseError, match=f"does not point at a release \\({status}: {target}\\)"):
            mgr(root).mark(None, "good")
    result = activate(root, artifacts, "v1")
    assert result["changed"] and result["switched"] and result["previous"] is None
    assert result["notes"] == [f"current points at ../elsewhere/releases/v1, which is not a release under {root}/releases (outside)"]
    assert mgr(root).info()["current_status"] == "release"
    os.unlink(os.path.join(root, "current"))
    os.mkdir(os.path.join(root, "current"))
    assert mgr(root).info()["current_status"] == "not_a_symlink"
    with pytest.raises(rel.ReleaseError, match="exists but is not a symlink"):
        activate(root, artifacts, "v1")


CHECK_OPS = {
    "activate+prune": lambda root, a, check: activate(root, a, "v3", check=check, keep=2),
    "rollback": lambda root, a, check: mgr(root, check).rollback(None),
    "mark": lambda root, a, check: mgr(root, check).mark(None, "failed"),
    "remove": lambda root, a, check: mgr(root, check).remove("v0", []),
    "stage": lambda root, a, check: mgr(root, check).stage("v4", a["v4"][0], None, ["log"]),
    "stage a directory": lambda root, a, check: mgr(root, check).stage("d1", a["directory"], None, []),
}


@pytest.mark.parametrize("operation", list(CHECK_OPS))
def test_check_mode_predicts_the_real_run_and_writes_nothing(artifacts, root, operation):
    activate(root, artifacts, "v0")
    for version in ("v1", "v2"):
        activate(root, artifacts, version)
        mgr(root).mark(None, "good")
    os.mkdir(os.path.join(root, "releases", ".trash-v9-killed"))  # a leftover a real run removes
    before = tree_fingerprint(root)
    predicted = CHECK_OPS[operation](root, artifacts, True)
    assert tree_fingerprint(root) == before, "check mode wrote something"
    real = CHECK_OPS[operation](root, artifacts, False)
    keys = ("changed", "current", "previous", "releases", "pruned", "staged", "switched", "diff", "changes", "leftovers_removed", "notes")
    assert {k: predicted.get(k) for k in keys} == {k: real.get(k) for k in keys}
    assert real["changed"]
    assert CHECK_OPS[operation](root, artifacts, True)["changed"] is False, "after the real run, check mode must see nothing to do"


def test_check_mode_predicts_staging_when_src_is_not_uploaded_yet(root):
    result = mgr(root, True).activate("v9", "/nonexistent/app-v9.tar.gz", None, [], 5, [])
    assert result["changed"] and result["staged"] and result["current"] == "v9"
    assert "not on the host yet" in result["notes"][0]
    assert not os.path.exists(root)
    with pytest.raises(SreOpsError, match="does not exist on the host"):
        mgr(root).activate("v9", "/nonexistent/app-v9.tar.gz", None, [], 5, [])
    assert not os.path.exists(os.path.dirname(root))


@pytest.mark.parametrize("mode, suffix", [("w", ".tar"), ("w:gz", ".tar.gz"), ("w:bz2", ".tar.bz2"), ("w:xz", ".tar.xz")])
def test_every_tar_compression_stages(tmp_path, root, mode, suffix):
    path = str(tmp_path / f"app{suffix}")
    digest = make_tar(path, release_files("c1"), mode=mode)
    assert mgr(root).activate("c1", path, f"sha256:{digest}", [], 5, [])["current"] == "c1"
    assert open(os.path.join(root, "releases/c1/VERSION")).read() == "c1\n"


# ----- the lock --------------------------------------------------------------------------------------
def test_a_second_run_waits_then_fails_naming_the_holder_and_release_info_shows_it(artifacts, root):
    activate(root, artifacts, "v1")
    holder = Child(root, "active", artifacts, pause_at="unpacked")
    try:
        holder.wait_paused()
        assert mgr(root).info()["locked_by"]["pid"] == holder.pid
        with pytest.raises(LockTimeout) as caught:
            mgr(root, lock_timeout=0.2).mark(None, "good")
        message = str(caught.value)
        assert message.startswith(f"{root}/{rel.LOCK} is locked by pid {holder.pid} on {socket.gethostname()} since 20")
        assert message.endswith("(sre.ops.release state=active release=v5); gave up after waiting 0.2 s (lock_timeout)")
        with pytest.raises(LockTimeout):
            mgr(root, check=True, lock_timeout=0).activate("v5", artifacts["v5"][0], None, ["log"], 5, [])
    finally:
        holder.resume()
    assert holder.result()["current"] == "v5"
    assert mgr(root).info()["locked_by"] is None


def test_a_preview_during_a_run_waits_and_then_sees_its_outcome(artifacts, root):
    activate(root, artifacts, "v1")
    writer = Child(root, "active", artifacts, pause_at="unpacked")
    writer.wait_paused()
    preview = Child(root, "active", artifacts, check=True)
    preview.wait_waiting()
    writer.resume()
    assert writer.result()["changed"] is True
    predicted = preview.result()
    assert predicted["changed"] is False and predicted["current"] == "v5"


PAUSE_AT = {"staged": "unpacked", "active": "unpacked", "good": "locked", "failed": "locked", "rolled_back": "switched", "absent": "renamed-to-trash"}


@pytest.fixture(scope="module")
def initial_tree(artifacts, tmp_path_factory):
    """v1 good, v2 good, v3 current (no outcome yet), v4 staged: every state has something to do."""
    root = str(tmp_path_factory.mktemp("initial") / "app")
    for version in ("v1", "v2", "v3"):
        activate(root, artifacts, version)
        if version != "v3":
            mgr(root).mark(None, "good")
    mgr(root).stage("v4", artifacts["v4"][0], None, ["log"])
    return root


def fresh_copy(initial_tree, tmp_path, name):
    root = str(tmp_path / name / "app")
    shutil.copytree(initial_tree, root, symlinks=True)
    return root


RESULT_KEYS = ("changed", "current", "previous", "releases", "staged", "switched", "pruned", "changes", "reconciled", "leftovers_removed")


@pytest.mark.parametrize("second", list(PAUSE_AT))
@pytest.mark.parametrize("first", list(PAUSE_AT))
def test_two_concurrent_runs_end_as_if_one_ran_after_the_other(artifacts, initial_tree, tmp_path, first, second):
    root = fresh_copy(initial_tree, tmp_path, "concurrent")
    one = Child(root, first, artifacts, pause_at=PAUSE_AT[first])
    one.wait_paused()  # the first run is in the middle of its change, holding the lock
    two = Child(root, second, artifacts)
    two.wait_waiting()  # the second is really waiting for it
    one.resume()
    results = (one.result(), two.result())

    serial_root = fresh_copy(initial_tree, tmp_path, "serial")
    expected = [Child.operation(state)(rel.ReleaseManager(serial_root), artifacts) for state in (first, second)]
    for got, want in zip(results, expected):
        if isinstance(want, Exception):
            assert isinstance(got, Exception) and str(got).replace(root, "ROOT") == str(want).replace(serial_root, "ROOT")
        else:
            assert {k: got.get(k) for k in RESULT_KEYS} == {k: want.get(k) for k in RESULT_KEYS}
    assert settled_state(root) == settled_state(serial_root)


# ----- crash safety --------------------------------------------------------------------------------
def steps_of(initial_tree, tmp_path, artifacts, state):
    root = fresh_copy(initial_tree, tmp_path, f"steps-{state}")
    seen = []
    Child.operation(state)(rel.ReleaseManager(root, checkpoint=seen.append), artifacts)
    return list(enumerate(seen))


@pytest.mark.parametrize("state", list(PAUSE_AT))
def test_sigkill_at_every_step_leaves_a_complete_current_and_the_next_run_converges(artifacts, initial_tree, tmp_path, state):
    reference = fresh_copy(initial_tree, tmp_path, "reference")
    Child.operation(state)(rel.ReleaseManager(reference), artifacts)
    steps = steps_of(initial_tree, tmp_path, artifacts, state)
    assert len(steps) >= 2, steps
    for index, step in steps:
        root = fresh_copy(initial_tree, tmp_path, f"kill-{index}")
        victim = Child(root, state, artifacts, kill_at=index)
        assert victim.killed(), f"the run was not killed at step {index} ({step})"
        version = os.path.basename(os.readlink(os.path.join(root, "current")))
        assert open(os.path.join(root, "current", "VERSION")).read() == f"{version}\n", f"current is not complete after a kill at {step}"
        json.load(open(os.path.join(root, "ledger.json")))  # still parseable
        for name in os.listdir(os.path.join(root, "releases")):
            if not name.startswith("."):
                assert open(os.path.join(root, "releases", name, "VERSION")).read() == f"{name}\n", f"half-written {name} visible"
        rerun = Child.operation(state)(rel.ReleaseManager(root), artifacts)
        assert not isinstance(rerun, Exception), f"rerun after a kill at {step}: {rerun}"
        assert settled_state(root) == settled_state(reference), f"after a kill at {step} and a rerun"
        again = Child.operation(state)(rel.ReleaseManager(root), artifacts)
        assert again["changed"] is False, f"a third run after a kill at {step} still changed: {again['changes']}"


def test_states_that_need_releases_do_not_create_a_missing_root(root):
    for check in (True, False):
        assert mgr(root, check).remove("v1", [])["changed"] is False
        with pytest.raises(rel.ReleaseError, match="no release marked good"):
            mgr(root, check).rollback(None)
        with pytest.raises(rel.ReleaseError, match=r"does not point at a release \(absent\)"):
            mgr(root, check).mark(None, "good")
    assert not os.path.exists(os.path.dirname(root))


def test_a_staging_failing_after_seeding_shared_paths_leaves_nothing(artifacts, root, monkeypatch):
    real_rename = os.rename

    def full_disk(src, dst):
        if ".staging-" in src:
            raise OSError(28, "No space left on device")
        return real_rename(src, dst)

    monkeypatch.setattr(rel.os, "rename", full_disk)
    with pytest.raises(rel.ReleaseError, match="cannot stage v1 from .*: No space left on device"):
        activate(root, artifacts, "v1", shared=("log", "conf/app.json"))
    assert not os.path.exists(os.path.dirname(root)), f"left behind: {list(os.walk(os.path.dirname(root)))}"
