# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import tarfile
import zipfile

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _release as rel
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError


def make_tar(path, files, extra=None, mode="w:gz"):
    with tarfile.open(path, mode) as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.startswith("bin/") else 0o644
            tar.addfile(info, io.BytesIO(data))
        for info in extra or []:
            tar.addfile(info)
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def release_files(version):
    return {"VERSION": f"{version}\n".encode(), "bin/run": b"#!/bin/sh\necho run\n", "log/.keep": b"", "conf/app.json": b"{}\n"}


@pytest.fixture
def artifacts(tmp_path):
    out = {}
    for version in ("v1", "v2", "v3", "v4", "v5"):
        path = str(tmp_path / f"app-{version}.tar.gz")
        out[version] = (path, make_tar(path, release_files(version)))
    return out


@pytest.fixture
def root(tmp_path):
    return str(tmp_path / "srv" / "app")


def mgr(root, check=False, **kwargs):
    return rel.ReleaseManager(root, check_mode=check, **kwargs)


def activate(root, artifacts, version, check=False, keep=5, protect=(), shared=("log",)):
    path, digest = artifacts[version]
    return mgr(root, check).activate(version, path, f"sha256:{digest}", list(shared), keep, list(protect))


def tree_fingerprint(path):
    if not os.path.exists(path):
        return None
    entries = []
    for base, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(base, name)
            info = os.lstat(full)
            content = os.readlink(full) if os.path.islink(full) else (open(full, "rb").read() if os.path.isfile(full) else b"")
            entries.append((os.path.relpath(full, path), info.st_mode, info.st_mtime_ns, str(content)))
    return hashlib.sha256(repr(entries).encode()).hexdigest()


# ----- hostile archives ----------------------------------------------------------------------------
def tar_info(name, kind, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    return info


HOSTILE = [
    ("absolute", {"/etc/cron.d/evil": b"x"}, [], "'/etc/cron.d/evil' has an absolute path"),
    ("dotdot", {"../../evil": b"x"}, [], "'../../evil' contains '..'"),
    ("nested dotdot", {"a/../../evil": b"x"}, [], "'a/../../evil' contains '..'"),
    ("symlink absolute", {}, [tar_info("etc", tarfile.SYMTYPE, "/etc")], "'etc' is a symlink to '/etc', outside the release"),
    ("symlink escaping", {}, [tar_info("a/up", tarfile.SYMTYPE, "../../x")], "'a/up' is a symlink to '../../x', outside the release"),
    ("hardlink outside", {}, [tar_info("pw", tarfile.LNKTYPE, "/etc/passwd")], "'pw' is a hard link to '/etc/passwd', outside the release"),
    ("char device", {}, [tar_info("dev/null", tarfile.CHRTYPE)], "'dev/null' is a device file or fifo"),
    ("block device", {}, [tar_info("sda", tarfile.BLKTYPE)], "'sda' is a device file or fifo"),
    ("fifo", {}, [tar_info("pipe", tarfile.FIFOTYPE)], "'pipe' is a device file or fifo"),
]


@pytest.mark.parametrize("label, files, extra, message", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_tar_is_refused_naming_the_member_and_nothing_is_written(tmp_path, root, label, files, extra, message):
    path = str(tmp_path / "evil.tar.gz")
    digest = make_tar(path, {"VERSION": b"x\n", **files}, extra)
    for check in (True, False):
        with pytest.raises(rel.ReleaseError, match=message.replace("(", r"\(").replace(")", r"\)")):
            mgr(root, check).activate("evil", path, f"sha256:{digest}", [], 5, [])
    assert not os.path.exists(root), "nothing may be written for a refused archive"


def test_safe_internal_links_are_accepted(tmp_path, root):
    path = str(tmp_path / "ok.tar")
    links = [tar_info("lib/alias.so", tarfile.SYMTYPE, "real.so"), tar_info("lib/hard.so", tarfile.LNKTYPE, "lib/real.so")]
    digest = make_tar(path, {"lib/real.so": b"x"}, links, mode="w")
    result = mgr(root).activate("ok", path, f"sha256:{digest}", [], 5, [])
    assert result["current"] == "ok"
    assert os.readlink(os.path.join(root, "releases/ok/lib/alias.so")) == "real.so"


def test_hostile_zip_is_refused(tmp_path, root):
    path = str(tmp_path / "evil.zip")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("ok.txt", "x")
        archive.writestr("../evil.txt", "x")
    with pytest.raises(rel.ReleaseError, match="'../evil.txt' contains '..'"):
        mgr(root).activate("z", path, None, [], 5, [])
    assert not os.path.exists(root)


def test_directory_source_with_escaping_link_is_refused(tmp_path, root):
    src = tmp_path / "src"
    src.mkdir()
    (src / "app.py").write_text("x")
    os.symlink("/etc/shadow", src / "shadow")
    with pytest.raises(rel.ReleaseError, match="'shadow' is a symlink to '/etc/shadow'"):
        mgr(root).activate("d", str(src), None, [], 5, [])


def test_checksum_mismatch_fails_before_anything_is_written(artifacts, root):
    path, _digest = artifacts["v1"]
    with pytest.raises(rel.ReleaseError, match=r"checksum mismatch for .*app-v1.tar.gz: expected sha256:0{64}, got sha256:"):
        mgr(root).activate("v1", path, "sha256:" + "0" * 64, [], 5, [])
    assert not os.path.exists(root)


@pytest.mark.parametrize("bad", ["md5:abc", "sha256:xyz", "sha256:" + "a" * 63])
def test_checksum_format(bad):
    with pytest.raises(InvalidInputError, match="must look like sha256:"):
        rel.parse_checksum(bad)


@pytest.mark.parametrize("bad", ["", ".", "..", ".hidden", "a/b", "a b", "x" * 129])
def test_release_ids(bad):
    with pytest.raises(InvalidInputError, match="is not a valid release id"):
        rel.check_release_id(bad)


# ----- activation, ledger and rollback -------------------------------------------------------------
def test_activate_layout_shared_paths_and_idempotence(artifacts, root):
    first = activate(root, artifacts, "v1")
    assert first["changed"] and first["staged"] and first["switched"] and first["current"] == "v1"
    assert os.readlink(os.path.join(root, "current")) == "releases/v1"
    log = os.path.join(root, "releases/v1/log")
    assert os.path.islink(log) and os.path.realpath(log) == os.path.realpath(os.path.join(root, "shared/log"))
    ledger = json.load(open(os.path.join(root, "ledger.json")))
    assert ledger["releases"]["v1"]["source_checksum"] == f"sha256:{artifacts['v1'][1]}"
    assert ledger["releases"]["v1"]["outcome"] == "unknown" and ledger["current"] == "v1"
    again = activate(root, artifacts, "v1")
    assert not again["changed"] and not again["staged"] and not again["switched"]


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
    # make v1 look newest on disk: mtime must not matter
    os.utime(os.path.join(root, "releases/v1"), (2_000_000_000, 2_000_000_000))
    first = mgr(root).rollback(None)
    assert first["changed"] and first["current"] == "v2" and first["rolled_back_from"] == "v3"
    second = mgr(root).rollback(None)
    assert not second["changed"] and second["current"] == "v2"
    info = mgr(root).info()
    outcomes = {r["id"]: r["outcome"] for r in info["releases"]}
    assert outcomes == {"v1": "good", "v2": "good", "v3": "rolled_back"}
    # v2 turns out bad too: mark it failed, roll back again -> v1
    mgr(root).mark(None, "failed")
    third = mgr(root).rollback(None)
    assert third["current"] == "v1" and third["rolled_back_from"] == "v2"
    assert {r["id"]: r["outcome"] for r in mgr(root).info()["releases"]}["v2"] == "failed"


def test_rollback_to_named_release_and_without_good_release(artifacts, root):
    activate(root, artifacts, "v1")
    activate(root, artifacts, "v2")
    with pytest.raises(rel.ReleaseError, match="no release marked good to roll back to"):
        mgr(root).rollback(None)
    named = mgr(root).rollback("v1")
    assert named["current"] == "v1"
    with pytest.raises(rel.ReleaseError, match="cannot roll back to v9: it is not on this host"):
        mgr(root).rollback("v9")


def test_rollback_after_completed_rollout_goes_to_the_previous_good(artifacts, root):
    for version in ("v1", "v2"):
        activate(root, artifacts, version)
        mgr(root).mark(None, "good")
    assert mgr(root).rollback(None)["current"] == "v1"


def test_retention_never_prunes_current_newest_good_or_protected(artifacts, root):
    activate(root, artifacts, "v1")
    mgr(root).mark(None, "good")
    for version in ("v2", "v3", "v4"):
        activate(root, artifacts, version)
        mgr(root).mark(None, "failed")
    result = activate(root, artifacts, "v5", keep=2, protect=["v3"])
    assert result["pruned"] == ["v2", "v4"]
    assert sorted(os.listdir(os.path.join(root, "releases"))) == ["v1", "v3", "v5"]
    assert result["previous_good"] == "v1"


def test_remove_refuses_current_and_last_good(artifacts, root):
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


@pytest.mark.parametrize(
    "operation",
    [
        lambda root, a, check: activate(root, a, "v3", check=check, keep=2),
        lambda root, a, check: mgr(root, check).rollback(None),
        lambda root, a, check: mgr(root, check).mark(None, "failed"),
        lambda root, a, check: mgr(root, check).remove("v1", []),
        lambda root, a, check: mgr(root, check).stage("v4", a["v4"][0], None, ["log"]),
    ],
    ids=["activate+prune", "rollback", "mark", "remove", "stage"],
)
def test_check_mode_predicts_the_real_run_and_writes_nothing(artifacts, root, operation):
    for version in ("v1", "v2"):
        activate(root, artifacts, version)
        mgr(root).mark(None, "good")
    before = tree_fingerprint(root)
    predicted = operation(root, artifacts, True)
    assert tree_fingerprint(root) == before, "check mode wrote something"
    real = operation(root, artifacts, False)
    keys = ("changed", "current", "releases", "pruned", "staged", "switched", "diff")
    assert {k: predicted.get(k) for k in keys} == {k: real.get(k) for k in keys}
    assert operation(root, artifacts, True)["changed"] is False, "after the real run, check mode must see nothing to do"


# ----- crash safety --------------------------------------------------------------------------------
STEPS = ["staging-created", "unpacked", "renamed", "staged", "switched", "ledger-written", "renamed-to-trash"]


def complete(release_dir, version):
    with open(os.path.join(release_dir, "VERSION"), encoding="ascii") as handle:
        return handle.read() == f"{version}\n" and os.path.isfile(os.path.join(release_dir, "bin/run"))


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_every_step_leaves_a_complete_current_and_the_next_run_converges(artifacts, root, step):
    for version in ("v1", "v2"):
        activate(root, artifacts, version, keep=2)
        mgr(root).mark(None, "good")

    def kill_at(reached):
        if reached == step:
            os.kill(os.getpid(), signal.SIGKILL)

    pid = os.fork()
    if pid == 0:  # the child is the "module": it dies by SIGKILL at the chosen step
        try:
            path, digest = artifacts["v3"]
            rel.ReleaseManager(root, checkpoint=kill_at).activate("v3", path, f"sha256:{digest}", ["log"], 2, [])
        finally:
            os._exit(0)  # pylint: disable=protected-access
    _pid, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, f"the child did not reach {step}"

    current = os.readlink(os.path.join(root, "current"))
    version = os.path.basename(current)
    assert version in ("v2", "v3")
    assert complete(os.path.join(root, current), version), "current must point at a complete release"
    json.load(open(os.path.join(root, "ledger.json")))  # parseable
    visible = [n for n in os.listdir(os.path.join(root, "releases")) if not n.startswith(".")]
    assert all(complete(os.path.join(root, "releases", n), n) for n in visible), "no half-written release is visible"

    rerun = activate(root, artifacts, "v3", keep=2)
    assert rerun["current"] == "v3"
    assert mgr(root).leftovers() == []
    assert sorted(rerun["releases"]) == ["v2", "v3"]
    info = mgr(root).info()
    assert info["ledger"]["current"] == "v3" and info["previous_good"] == "v2"
    assert not activate(root, artifacts, "v3", keep=2)["changed"]


@pytest.mark.parametrize("mode, suffix", [("w", ".tar"), ("w:gz", ".tar.gz"), ("w:bz2", ".tar.bz2"), ("w:xz", ".tar.xz")])
def test_every_tar_compression_stages(tmp_path, root, mode, suffix):
    path = str(tmp_path / f"app{suffix}")
    digest = make_tar(path, release_files("c1"), mode=mode)
    result = mgr(root).activate("c1", path, f"sha256:{digest}", [], 5, [])
    assert result["current"] == "c1"
    assert open(os.path.join(root, "releases/c1/VERSION")).read() == "c1\n"


def test_zip_source_stages(tmp_path, root):
    path = str(tmp_path / "app.zip")
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("VERSION", "z1\n")
        archive.writestr("bin/run", "#!/bin/sh\n")
    assert mgr(root).activate("z1", path, None, [], 5, [])["current"] == "z1"
    assert open(os.path.join(root, "releases/z1/VERSION")).read() == "z1\n"


def test_check_mode_predicts_staging_when_src_is_not_uploaded_yet(root):
    result = mgr(root, True).activate("v9", "/nonexistent/app-v9.tar.gz", None, [], 5, [])
    assert result["changed"] and result["staged"] and result["current"] == "v9"
    assert "not on the host yet" in result["notes"][0]
    assert not os.path.exists(root)
    with pytest.raises(rel.ReleaseError, match="does not exist on the host"):
        mgr(root).activate("v9", "/nonexistent/app-v9.tar.gz", None, [], 5, [])
