# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import time

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _restore
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError
from ansible_collections.sre.ops.plugins.module_utils._restic import Repository, Runner
from ansible_collections.sre.ops.plugins.module_utils._restore import Entry, RestoreError, RestoreManager

from ...utils.restic_fakes import FakeRunner, fixture

T0 = 1_700_000_000_000_000_000


def E(kind="file", size=1, mtime=T0, mode=0o644):
    return Entry(kind, size, mtime, mode, 0, 0)


def test_snapshot_entries_from_real_ls_output_are_relative_to_the_path():
    stdout, _err = fixture("ls")
    nodes = [json.loads(line) for line in stdout.splitlines() if '"node"' in line]
    src = next(n["path"] for n in nodes if n["path"].endswith("/src"))
    entries = _restore.snapshot_entries(nodes, src)
    assert set(entries) == {"", "dir", "dir/a.txt", "dir/link", "dir/sub", "dir/sub/big.bin"}
    assert entries["dir/a.txt"] == Entry("file", 6, entries["dir/a.txt"].mtime_ns, 0o4755, 0, 0)
    assert entries["dir/link"].kind == "symlink" and entries["dir"].kind == "dir" and entries["dir/sub/big.bin"].size == 700000


def test_compare_sorts_every_path_into_its_kind():
    snapshot = {"": E("dir", 0), "same": E(), "grown": E(size=5), "older-here": E(size=5), "newer-here": E(size=5),
                "touched": E(), "chmod": E(), "new": E(size=7), "link": E("symlink", 0)}
    target = {"": E("dir", 0), "same": E(), "grown": E(size=9, mtime=T0 - 1), "older-here": E(size=4, mtime=T0 - 10),
              "newer-here": E(size=4, mtime=T0 + 10), "touched": E(mtime=T0 + 5), "chmod": E(mode=0o600), "link": E("symlink", 0, T0 + 1),
              "only-here": E(), "skipped": E()}
    plan = _restore.compare(snapshot, target, scope=lambda rel: rel != "skipped")
    assert plan.create == ["new"] and plan.create_bytes == 7
    assert plan.overwrite == ["grown", "older-here"] and plan.newer == ["link", "newer-here"]
    assert plan.ambiguous == ["touched"] and plan.metadata == ["chmod"] and plan.unchanged == ["", "same"]
    assert plan.extra == ["only-here"]


@pytest.mark.parametrize("overwrite, delete, changes", [
    ("if-changed", False, True), ("never", False, False), ("never", True, True), ("always", False, True), ("if-newer", False, True),
])
def test_plan_changes_depend_on_the_policy(overwrite, delete, changes):
    plan = _restore.Plan(overwrite=["x"], extra=["y"])
    assert plan.changes(overwrite, delete) is changes


def test_only_newer_files_and_extras_left_alone_is_no_change():
    plan = _restore.Plan(newer=["n"], extra=["e"], unchanged=["u"])
    assert not plan.changes("if-newer", False) and plan.changes("always", False) and plan.changes("if-newer", True)


@pytest.mark.parametrize("include, exclude, kept", [
    ([], [], {"", "a", "a/x.log", "a/b", "a/b/c.txt", "d.txt"}),
    (["a/b"], [], {"", "a", "a/b", "a/b/c.txt"}),
    ([], ["*.log"], {"", "a", "a/b", "a/b/c.txt", "d.txt"}),
    (["*.txt"], ["a/b"], {"", "d.txt"}),
])
def test_select_follows_glob_rules(include, exclude, kept):
    entries = {rel: E() for rel in ("", "a", "a/x.log", "a/b", "a/b/c.txt", "d.txt")}
    assert set(_restore.select(entries, include, exclude)) == kept


def test_preview_caps_lists_but_not_counts():
    plan = _restore.Plan(create=[f"f{i}" for i in range(250)], newer=["n"])
    preview = _restore.preview_of(plan, "if-newer", False, limit=10)
    assert len(preview["create"]) == 10 and preview["counts"]["create"] == 250 and preview["kept"] == ["n"]
    diff = _restore.prepared_diff(plan, "if-newer", False, "/srv/data", limit=10)
    assert "+ create: f0\n" in diff and "... and 240 more" in diff and "! newer in target (kept): n" in diff


def test_switch_in_swaps_directories_and_leaves_no_trace(tmp_path):
    target = tmp_path / "data"
    target.mkdir()
    (target / "old").write_text("old")
    new = tmp_path / "staged"
    new.mkdir()
    (new / "new").write_text("new")
    old_dir = tmp_path / "old-dir"
    old_dir.mkdir()
    _restore.switch_in(str(new), str(target), str(old_dir))
    assert os.listdir(target) == ["new"] and os.listdir(old_dir / "data") == ["old"] and not new.exists()


def test_switch_without_rename_exchange_uses_a_journal_that_recover_completes(tmp_path, monkeypatch):
    monkeypatch.setattr(_restore, "exchange", lambda a, b: False)
    target = tmp_path / "data"
    target.mkdir()
    new = tmp_path / ".data.sreops-restore-999999-x"
    new.mkdir()
    (new / "f").write_text("restored")
    old_dir = tmp_path / ".data.sreops-old-999999-y"
    old_dir.mkdir()
    calls = []
    real_rename = os.rename

    def crash_after_first(src, dst):
        calls.append((src, dst))
        if len(calls) == 2:
            raise KeyboardInterrupt("killed between the two renames")
        real_rename(src, dst)

    monkeypatch.setattr(_restore.os, "rename", crash_after_first)
    with pytest.raises(KeyboardInterrupt):
        _restore.switch_in(str(new), str(target), str(old_dir))
    monkeypatch.setattr(_restore.os, "rename", real_rename)
    assert not target.exists() and (tmp_path / ".data.sreops-switch.json").exists()
    done = _restore.recover(str(target))
    assert (target / "f").read_text() == "restored"
    assert "completed an interrupted switch" in done[0]
    assert sorted(os.listdir(tmp_path)) == ["data"], "leftovers of the dead run are removed"


def test_recover_keeps_leftovers_of_a_live_run(tmp_path):
    (tmp_path / f".data.sreops-restore-{os.getpid()}-x").mkdir()
    assert _restore.recover(str(tmp_path / "data")) == []
    assert os.path.exists(tmp_path / f".data.sreops-restore-{os.getpid()}-x")


def test_carry_over_hard_links_files_and_recreates_dirs_and_links(tmp_path):
    target, staged = tmp_path / "t", tmp_path / "s"
    (target / "keep" / "deep").mkdir(parents=True)
    (target / "keep" / "deep" / "f").write_text("mine")
    os.symlink("f", target / "keep" / "deep" / "l")
    staged.mkdir()
    assert _restore.carry_over("keep/deep/f", str(target), str(staged))
    assert _restore.carry_over("keep/deep/l", str(target), str(staged))
    assert os.stat(staged / "keep" / "deep" / "f").st_ino == os.stat(target / "keep" / "deep" / "f").st_ino
    assert os.readlink(staged / "keep" / "deep" / "l") == "f"
    (staged / "file-in-snapshot").write_text("x")
    (target / "file-in-snapshot").mkdir()
    (target / "file-in-snapshot" / "child").write_text("y")
    assert not _restore.carry_over("file-in-snapshot/child", str(target), str(staged))


# ----- the manager, with restic replaced by a copy of a "snapshot" directory --------------------------
def iso(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + f".{ns % 10**9:09d}Z"


def listing(src: str, path: str) -> list[dict]:
    """What `restic ls --json` prints for a snapshot of path whose content is src's."""
    nodes = []
    for rel, entry in _restore.tree_entries(src).items():
        go_mode = entry.mode | ((1 << 31) if entry.kind == "dir" else (1 << 27) if entry.kind == "symlink" else 0)
        node = {"type": entry.kind, "path": path + ("/" + rel if rel else ""), "mode": go_mode, "uid": entry.uid, "gid": entry.gid,
                "mtime": iso(entry.mtime_ns), "struct_type": "node"}
        if entry.kind == "file":
            node["size"] = entry.size
        nodes.append(node)
    return nodes


class SnapshotRestic(FakeRunner):
    """restic ls/restore answered from a directory standing for the snapshot's content of path."""

    def __init__(self, src: str, path: str) -> None:
        super().__init__()
        self.src, self.path = src, path
        taken = max(e.mtime_ns for e in _restore.tree_entries(src).values()) + 10**9  # a backup runs after what it reads was written
        self.head = {"id": "ab" * 32, "short_id": "abababab", "time": iso(taken), "paths": [path], "hostname": "web1",
                     "struct_type": "snapshot"}

    def answer(self, argv):
        if argv[1] == "ls":
            lines = [json.dumps(self.head)] + [json.dumps(n) for n in listing(self.src, self.path)]
            return 0, "\n".join(lines) + "\n", ""
        if argv[1] == "find":
            wanted = set(argv[argv.index("--blob") + 1:])
            found = []
            for rel, entry in _restore.tree_entries(self.src).items():
                if entry.kind == "file" and 0 < entry.size < _restore.SINGLE_BLOB_LIMIT:
                    blob = _restore.sha256_file(os.path.join(self.src, rel))
                    if blob in wanted:
                        found.append({"object_type": "blob", "id": blob, "path": f"{self.path}/{rel}", "snapshot": self.head["id"]})
            return 0, json.dumps(found) + "\n", ""
        if argv[1] == "restore":
            into = argv[argv.index("--target") + 1]
            dest = into + self.path
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copytree(self.src, dest, symlinks=True, copy_function=shutil.copy2)
            for root, dirs, _files in os.walk(dest):
                for name in dirs:
                    shutil.copystat(os.path.join(self.src, os.path.relpath(os.path.join(root, name), dest)), os.path.join(root, name))
            shutil.copystat(self.src, dest)
            return 0, "", ""
        raise AssertionError(argv)


@pytest.fixture
def scene(tmp_path):
    src = tmp_path / "snapshot"
    (src / "sub").mkdir(parents=True)
    for name, text in (("same", "same"), ("changed", "snapshot version"), ("newer", "old"), ("sub/deep", "deep")):
        (src / name).write_text(text)
    os.symlink("same", src / "link")
    old = time.time() - 3600
    for root, dirs, files in os.walk(src):
        for name in dirs + files:
            os.utime(os.path.join(root, name), (old, old), follow_symlinks=False)
    os.utime(src, (old, old))
    target = tmp_path / "data"
    shutil.copytree(src, target, symlinks=True)
    for rel in ("same", "sub/deep", "link"):
        st = os.lstat(src / rel)
        os.utime(target / rel, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
    (target / "changed").write_text("local edit, older")
    os.utime(target / "changed", (old - 100, old - 100))
    (target / "newer").write_text("edited after the backup")
    (target / "only-here").write_text("x")
    (target / "sub" / "deep").unlink()
    return src, target


def restore(scene_paths, **kwargs):
    src, target = scene_paths
    runner = SnapshotRestic(str(src), "/srv/data")
    repo = Repository("/r", runner=runner, password="pw", hostname="web1")
    kwargs.setdefault("marker_dir", str(target) + "-markers")
    return RestoreManager(repo, path="/srv/data", target=str(target), **kwargs), runner


def fingerprint(root):
    out = {}
    for rel, entry in sorted(_restore.tree_entries(str(root)).items()):
        path = os.path.join(root, rel)
        out[rel] = (entry.kind, open(path, "rb").read() if entry.kind == "file" else os.readlink(path) if entry.kind == "symlink" else None)
    return out


def test_preview_changes_nothing_and_real_run_matches_it(scene):
    src, target = scene
    before = fingerprint(target)
    manager, runner = restore(scene, overwrite="if-newer", check_mode=True)
    preview = manager.run()
    assert fingerprint(target) == before
    assert [c[1] for c in runner.calls] == ["ls", "find"] and runner.processes[1].killed, \
        "no restore; the find started early for the file written after the snapshot was stopped: its size differs, nothing was ambiguous"
    counts = preview["preview"]["counts"]
    assert preview["preview"]["create"] == ["sub/deep"] and preview["preview"]["overwrite"] == ["changed"]
    assert preview["preview"]["newer"] == ["newer"] and preview["preview"]["extra"] == ["only-here"]
    assert counts["unchanged"] == 4 and preview["changed"]
    manager, runner = restore(scene, overwrite="if-newer")
    applied = manager.run()
    assert applied["preview"] == preview["preview"] and applied["switched"]
    assert (target / "changed").read_text() == "snapshot version" and (target / "sub" / "deep").read_text() == "deep"
    assert (target / "newer").read_text() == "edited after the backup", "if-newer keeps the newer file"
    assert (target / "only-here").exists(), "delete=false leaves extra files"
    assert sorted(os.listdir(target.parent)) == ["data", "snapshot"], "no staging or old directory left behind"
    again, _runner = restore(scene, overwrite="if-newer")
    assert not again.run()["changed"]


def test_newer_files_are_refused_by_default_and_nothing_changes(scene):
    src, target = scene
    before = fingerprint(target)
    manager, _runner = restore(scene)
    with pytest.raises(RestoreError, match="refusing to overwrite 1 file.* newer than the snapshot: newer") as info:
        manager.run()
    assert info.value.details["result"]["preview"]["newer"] == ["newer"]
    assert fingerprint(target) == before


def test_overwrite_always_and_delete_make_the_target_equal_the_snapshot(scene):
    src, target = scene
    manager, _runner = restore(scene, overwrite="always", delete=True)
    manager.run()
    assert fingerprint(target) == fingerprint(src)


def test_same_size_other_mtime_is_compared_by_content(scene):
    src, target = scene
    manager, _runner = restore(scene, overwrite="always", delete=True)
    manager.run()
    os.utime(target / "same", (time.time(), time.time()))
    manager, runner = restore(scene, check_mode=True, overwrite="always")
    result = manager.run()
    assert result["preview"]["metadata"] == ["same"] and result["preview"]["overwrite"] == []
    assert [c[1] for c in runner.calls] == ["ls", "find"], "a small file is one blob: its SHA-256 is found, no restore"
    (target / "same").write_text("SAME")
    os.utime(target / "same", (1, 1))
    manager, runner = restore(scene, check_mode=True, overwrite="always")
    assert manager.run()["preview"]["overwrite"] == ["same"]
    assert [c[1] for c in runner.calls] == ["ls", "find"], "a blob found nowhere: the content differs, no restore"


def test_a_blob_found_only_at_another_path_or_a_large_file_is_compared_by_a_scratch_restore(scene, monkeypatch):
    src, target = scene
    manager, _runner = restore(scene, overwrite="always", delete=True)
    manager.run()
    (target / "sub" / "same").write_text("same")  # "same"'s bytes at another path of the target
    (src / "sub" / "same").write_text("SAME")  # and other bytes of that size in the snapshot
    os.utime(src / "sub" / "same", (2, 2))
    os.utime(target / "sub" / "same", (1, 1))
    os.utime(target / "same", (time.time(), time.time()))
    manager, runner = restore(scene, check_mode=True, overwrite="always")
    result = manager.run()
    assert result["preview"]["metadata"] == ["same"] and result["preview"]["overwrite"] == ["sub/same"]
    assert [c[1] for c in runner.calls] == ["ls", "find", "restore"], "the blob of sub/same was found, but at /srv/data/same"
    monkeypatch.setattr(_restore, "SINGLE_BLOB_LIMIT", 1)
    manager, runner = restore(scene, check_mode=True, overwrite="always")
    assert manager.run()["preview"] == result["preview"]
    assert [c[1] for c in runner.calls] == ["ls", "restore"], "files that may be several blobs are compared by a restore"


def blob_args(call):
    return sorted(call[call.index("--blob") + 1:])


def sha256_of(text):
    return hashlib.sha256(text.encode()).hexdigest()


def test_files_written_after_the_snapshot_are_looked_up_beside_the_listing_the_others_after_it(scene, monkeypatch):
    src, target = scene
    manager, _runner = restore(scene, overwrite="always", delete=True)
    manager.run()
    os.utime(target / "same", (time.time(), time.time()))  # touched after the backup: looked up while restic lists
    (target / "sub" / "deep").write_text("DEEP")  # other bytes of the same size, and an mtime before the snapshot's
    os.utime(target / "sub" / "deep", (1, 1))
    manager, runner = restore(scene, check_mode=True, overwrite="always")
    result = manager.run()
    assert result["preview"]["metadata"] == ["same"] and result["preview"]["overwrite"] == ["sub/deep"]
    assert [c[1] for c in runner.calls] == ["ls", "find", "find"]
    assert blob_args(runner.calls[1]) == [sha256_of("same")], "the early find asks for the file written after the snapshot"
    assert blob_args(runner.calls[2]) == [sha256_of("DEEP")], "the second find asks only for what the first did not"
    assert not runner.processes[1].killed, "the early find's answer was used"
    monkeypatch.setattr(_restore, "prefetch_candidates", lambda *args, **kwargs: [])
    manager, runner = restore(scene, check_mode=True, overwrite="always")
    assert manager.run()["preview"] == result["preview"], "the same preview as one find after the listing"
    assert [c[1] for c in runner.calls] == ["ls", "find"] and blob_args(runner.calls[1]) == sorted([sha256_of("same"), sha256_of("DEEP")])


def test_a_file_the_early_find_asked_for_settles_a_copy_of_its_bytes_not_asked(scene):
    src, target = scene
    manager, _runner = restore(scene, overwrite="always", delete=True)
    manager.run()
    (src / "sub" / "copy").write_text("same")
    os.utime(src / "sub" / "copy", (2, 2))
    shutil.copy(src / "sub" / "copy", target / "sub" / "copy")
    os.utime(target / "sub" / "copy", (1, 1))  # ambiguous, not a candidate, bytes of a candidate
    os.utime(target / "same", (time.time(), time.time()))
    manager, runner = restore(scene, check_mode=True, overwrite="always")
    assert manager.run()["preview"]["metadata"] == ["same", "sub/copy"]
    assert [c[1] for c in runner.calls] == ["ls", "find"], "sha256 of sub/copy was asked already: no second find"


def test_the_early_find_fails_the_preview_only_when_its_answer_is_needed(scene, monkeypatch):
    src, target = scene
    real_answer = SnapshotRestic.answer

    def find_fails(self, argv):
        if argv[1] == "find":
            return 1, "", "Fatal: unable to load index: something broke"
        return real_answer(self, argv)

    monkeypatch.setattr(SnapshotRestic, "answer", find_fails)
    manager, runner = restore(scene, check_mode=True, overwrite="if-newer")
    assert manager.run()["preview"]["newer"] == ["newer"], "newer was looked up early, but its size decides it"
    assert runner.processes[1].killed
    os.utime(target / "same", (time.time(), time.time()))
    manager, runner = restore(scene, check_mode=True, overwrite="if-newer")
    with pytest.raises(_restore.SreOpsError, match="something broke"):
        manager.run()


def test_prefetch_candidates_are_small_files_written_after_the_snapshot_within_limits():
    entries = {"": E("dir", 0), "new": E(size=10, mtime=T0 + 1), "old": E(size=10, mtime=T0), "empty": E(size=0, mtime=T0 + 1),
               "large": E(size=_restore.SINGLE_BLOB_LIMIT, mtime=T0 + 1), "dir": E("dir", 0, T0 + 1), "link": E("symlink", 0, T0 + 1)}
    assert _restore.prefetch_candidates(entries, T0) == ["new"]
    entries.update({f"n{i}": E(size=10, mtime=T0 + 1) for i in range(3)})
    assert len(_restore.prefetch_candidates(entries, T0, limit=4)) == 4
    assert _restore.prefetch_candidates(entries, T0, limit=3) == [], "more than one find takes: looked up after the listing"
    assert _restore.prefetch_candidates(entries, T0, limit_bytes=39) == [], "too many bytes to hash on a guess"


@pytest.mark.skipif(shutil.which("restic") is None, reason="needs restic (make bootstrap installs it)")
def test_preview_decides_same_size_files_with_the_real_restic_find(tmp_path):
    src = tmp_path / "data"
    (src / "a").mkdir(parents=True)
    (src / "b").mkdir()
    (src / "c").mkdir()
    for name, text in (("a/touched", "same bytes"), ("a/edited", "old bytes!"), ("b/touched", "same bytes"), ("empty", ""),
                       ("c/back-dated", "old bytes?"), ("c/back-dated-same", "kept bytes")):
        (src / name).write_text(text)
    (src / "big").write_bytes(os.urandom(_restore.SINGLE_BLOB_LIMIT + 1))
    env = dict(os.environ, RESTIC_REPOSITORY=str(tmp_path / "repo"), RESTIC_PASSWORD="pw", RESTIC_CACHE_DIR=str(tmp_path / "cache"))
    for args in (["init", "-q"], ["backup", "-q", str(src)]):
        assert subprocess.run(["restic", *args], env=env, capture_output=True, check=False).returncode == 0
    (src / "a" / "edited").write_text("new bytes!")
    later = time.time() + 60
    for name in ("a/touched", "a/edited", "b/touched", "empty", "big"):
        os.utime(src / name, (later, later))
    (src / "c" / "back-dated").write_text("new bytes?")  # same size, an mtime before the snapshot's: the second find decides
    for name in ("c/back-dated", "c/back-dated-same"):
        os.utime(src / name, (1000, 1000))
    repo = Repository(str(tmp_path / "repo"), runner=Runner(), password="pw", cache_dir=str(tmp_path / "cache"))
    result = RestoreManager(repo, path=str(src), overwrite="always", check_mode=True, marker_dir=str(tmp_path / "markers")).run()
    assert result["preview"]["metadata"] == ["a/touched", "b/touched", "big", "c/back-dated-same", "empty"]
    assert result["preview"]["newer"] == ["a/edited"] and result["preview"]["overwrite"] == ["c/back-dated"]


def test_restore_into_a_new_target_and_exclude(scene, tmp_path):
    src, _target = scene
    fresh = tmp_path / "elsewhere" / "copy"
    manager, _runner = restore((src, fresh), exclude=["sub"])
    result = manager.run()
    assert result["preview"]["create"] == ["", "changed", "link", "newer", "same"]
    assert sorted(os.listdir(fresh)) == ["changed", "link", "newer", "same"]


def test_refuses_a_target_inside_a_running_backup(scene, tmp_path):
    src, target = scene
    from ansible_collections.sre.ops.plugins.module_utils._backup import RunMarker  # pylint: disable=import-outside-toplevel

    with RunMarker(str(target) + "-markers", "/r", [str(target.parent)]):
        manager, _runner = restore(scene)
        with pytest.raises(RestoreError, match="is inside the source .* of a backup running now"):
            manager.run()


@pytest.mark.parametrize("kwargs, message", [
    ({"overwrite": "sometimes"}, "overwrite must be one of"),
    ({"path": "relative/path"}, "must be an absolute path"),
    ({"database": {"type": "sqlite"}, "include": ["x"]}, "apply to file restores"),
    ({"metrics_dir": "/tmp"}, "metrics_dir needs name"),
])
def test_bad_arguments(kwargs, message):
    with pytest.raises(InvalidInputError, match=message):
        RestoreManager(Repository("/r", runner=FakeRunner(), password="x"), **kwargs)


def test_root_target_is_refused(scene):
    src, _target = scene
    manager, _runner = restore((src, "/"))
    with pytest.raises(InvalidInputError, match="must not be /"):
        manager.run()


def test_verify_tree_reports_mismatches(tmp_path):
    (tmp_path / "f").write_text("abc")
    os.chmod(tmp_path / "f", 0o600)
    expected = {"f": E(size=3, mode=0o644), "g": E()}
    problems = _restore.verify_tree(expected, str(tmp_path))
    assert problems == ["f: restored mode 600, snapshot has 644", "g: missing after restore"]


def test_restore_patterns_escape_glob_characters():
    assert _restore.restore_patterns("/srv/a[1]/b*c?") == "/srv/a\\[1\\]/b\\*c\\?"


def test_exchange_swaps_atomically_here(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.write_text("A")
    b.write_text("B")
    if not _restore.exchange(str(a), str(b)):
        pytest.skip("this kernel or file system has no RENAME_EXCHANGE")
    assert a.read_text() == "B" and b.read_text() == "A"


def test_entry_from_stat_kinds(tmp_path):
    os.mkfifo(tmp_path / "fifo")
    assert _restore.tree_entries(str(tmp_path))["fifo"].kind == "other"
    assert stat.S_IMODE(os.stat(tmp_path).st_mode) == _restore.tree_entries(str(tmp_path))[""].mode
