# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Snapshots of real file trees: attributes, the hash cache, odd files, parallel scanning, Merkle digests, storage."""

from __future__ import annotations

import gzip
import hashlib
import json
import multiprocessing
import os
import socket
import stat
import time

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _snapshot as snap
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError

FUTURE = time.time_ns() + 3600 * 10**9  # a previous snapshot "taken later" than every file: the cache is trusted


class NoCommands:
    def which(self, name):
        return None

    def run(self, argv):
        raise AssertionError(f"no command expected, got {argv}")


def rules(*specs):
    return snap.normalize_rules([spec if isinstance(spec, dict) else {"path": spec} for spec in specs])


def entries(facet):
    return {path: entry for path, entry, _rule in snap.file_entries(facet)}


def sha(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "motd").write_bytes(b"hello world\n")
    (root / "sub" / "app.conf").write_bytes(b"setting=1\n")
    (root / "sub" / "deep" / "data").write_bytes(b"x" * 5000)
    os.symlink("motd", root / "link")
    return root


def test_rules_expand_presets_and_refuse_mistakes():
    assert rules({"path": "/etc/", "attributes": ["permissions"]})[0]["attributes"] == ["type", "mode", "uid", "gid", "target"]
    assert rules({"path": "/var/log/app.log", "attributes": ["growing"]})[0]["attributes"] == [
        "type", "mode", "uid", "gid", "size", "inode", "target", "sha256", "growing"]
    assert rules({"path": "/x", "attributes": ["mode"]})[0]["attributes"] == ["type", "mode"]
    for bad, message in [
        ({"path": "etc"}, "files[0].path must be an absolute path"),
        ({"path": "/etc", "attributes": ["md5"]}, "files[0].attributes: unknown attribute 'md5'"),
        ({"path": "/etc", "recurse": True}, "files[0] has unknown keys recurse"),
        ({"path": "/etc", "exclude": [""]}, "files[0].exclude must be a list of glob patterns"),
    ]:
        with pytest.raises(InvalidInputError, match=message.replace("[", r"\[").replace("]", r"\]")):
            rules(bad)
    with pytest.raises(InvalidInputError, match="is listed twice"):
        rules("/etc", "/etc/")


def test_a_tree_with_every_attribute(tree):
    facet = snap.scan_files(rules(str(tree)), workers=1)
    found = entries(facet)
    motd = found[f"{tree}/motd"]
    info = os.lstat(tree / "motd")
    assert motd[snap.N_TYPE] == "f" and motd[snap.N_SHA] == sha(b"hello world\n")
    assert motd[snap.N_MODE] == stat.S_IMODE(info.st_mode) and motd[snap.N_SIZE] == 12
    assert (motd[snap.N_INO], motd[snap.N_MTIME], motd[snap.N_CTIME]) == (info.st_ino, info.st_mtime_ns, info.st_ctime_ns)
    assert found[f"{tree}/link"][snap.N_TARGET] == "motd" and found[f"{tree}/link"][snap.N_TYPE] == "l"
    assert found[f"{tree}/sub"][snap.N_TYPE] == "d" and found[f"{tree}/sub"][snap.N_SIZE] == 0
    assert found[str(tree)][snap.N_TYPE] == "d"
    assert facet["count"] == len(found) == 7 and facet["issues"] == []


def test_special_files_are_never_opened_and_odd_names_are_reported(tree):
    os.mkfifo(tree / "fifo")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tree / "sock"))
    os.symlink("loop", tree / "loop")
    bad = os.fsdecode(os.fsencode(str(tree)) + b"/bad\xffname")
    with open(bad, "wb") as handle:
        handle.write(b"data")
    try:
        facet = snap.scan_files(rules(str(tree)), workers=1)
    finally:
        sock.close()
    found = entries(facet)
    assert found[f"{tree}/fifo"][snap.N_TYPE] == "p" and found[f"{tree}/fifo"][snap.N_SHA] is None
    assert found[f"{tree}/sock"][snap.N_TYPE] == "s"
    assert found[bad][snap.N_SHA] == sha(b"data")
    kinds = {(os.path.basename(snap.display(p)), kind) for p, kind, _detail in facet["issues"]}
    assert kinds == {("fifo", "special"), ("sock", "special"), ("loop", "symlink_loop"), ("bad\\xffname", "non_utf8_name")}
    doc = {"facets": {"files": facet}}
    report = snap.issue_report(doc)
    assert report["counts"] == {"special": 2, "symlink_loop": 1, "non_utf8_name": 1}
    json.dumps(report)  # safe to return: no lone surrogates
    assert any(item["path"].endswith("bad\\xffname") for item in report["items"])


def test_files_that_vanish_during_the_walk_are_reported(tree, monkeypatch):
    (tree / "vanishing").write_bytes(b"soon gone")
    real_scandir = os.scandir

    class Vanishing:
        def __init__(self, path):
            self.inner = real_scandir(path)

        def __enter__(self):
            return self.inner.__enter__()

        def __exit__(self, *exc):
            return self.inner.__exit__(*exc)

        def __iter__(self):
            listed = list(self.inner)
            if os.path.exists(tree / "vanishing"):
                os.unlink(tree / "vanishing")  # listed by the kernel already, gone before its lstat
            return iter(listed)

    listing_before = sorted(os.listdir(tree))
    assert "vanishing" in listing_before
    monkeypatch.setattr(snap.os, "scandir", Vanishing)
    facet = snap.scan_files(rules(str(tree)), workers=1)
    assert f"{tree}/vanishing" not in entries(facet)
    assert [(p, k) for p, k, _d in facet["issues"]] == [(f"{tree}/vanishing", "vanished")]


def test_a_file_vanishing_between_listing_and_hashing(tree, monkeypatch):
    real_open = os.open

    def gone(path, flags, *args):
        if str(path).endswith("/motd"):
            raise FileNotFoundError(2, "No such file or directory")
        return real_open(path, flags, *args)

    monkeypatch.setattr(snap.os, "open", gone)
    facet = snap.scan_files(rules(str(tree)), workers=1)
    assert f"{tree}/motd" not in entries(facet)
    assert [k for p, k, _d in facet["issues"] if p.endswith("/motd")] == ["vanished"]


def test_unreadable_files_and_directories_are_reported(tree, monkeypatch):
    real_open, real_scandir = os.open, os.scandir

    def denied_open(path, flags, *args):
        if str(path).endswith("/app.conf"):
            raise PermissionError(13, "Permission denied")
        return real_open(path, flags, *args)

    def denied_scandir(path):
        if str(path).endswith("/deep"):
            raise PermissionError(13, "Permission denied")
        return real_scandir(path)

    monkeypatch.setattr(snap.os, "open", denied_open)
    monkeypatch.setattr(snap.os, "scandir", denied_scandir)
    facet = snap.scan_files(rules(str(tree)), workers=1)
    found = entries(facet)
    assert found[f"{tree}/sub/app.conf"][snap.N_SHA] is None
    deep = facet["dirs"][f"{tree}/sub/deep"]
    assert {k: v for k, v in deep.items() if k != "tree"} == {"rule": 0, "entries": None, "local": None, "error": "unreadable"}
    assert sorted((os.path.basename(p), k) for p, k, _d in facet["issues"]) == [("app.conf", "unreadable"), ("deep", "unreadable")]


# An ASCII name takes the scan's inline path, a non-ASCII name the general one: both must distrust a moved ctime.
@pytest.mark.parametrize("name", ["motd", "m\u00f6td"])
def test_unchanged_files_are_not_reread_but_a_content_change_with_mtime_restored_is(tree, monkeypatch, name):
    (tree / name).write_bytes(b"hello world\n")
    first = snap.scan_files(rules(str(tree)), workers=1)
    # Poison the stored hashes: a file taken from the cache keeps the poisoned value.
    for info in first["dirs"].values():
        for entry in info["entries"]:
            if entry[snap.N_TYPE] == "f":
                entry[snap.N_SHA] = "cached"
    motd = tree / name
    before = os.stat(motd)
    with open(motd, "r+b") as handle:
        handle.write(b"HELLO")  # same size
    os.utime(motd, ns=(before.st_atime_ns, before.st_mtime_ns))  # touch -r: mtime restored, ctime moves on
    hashed = []
    real_quick, real_full = snap._quick_entry, snap._hash_file
    monkeypatch.setattr(snap, "_quick_entry", lambda name, path, *a: hashed.append(path) or real_quick(name, path, *a))
    monkeypatch.setattr(snap, "_hash_file", lambda path, *a: hashed.append(path) or real_full(path, *a))
    second = snap.scan_files(rules(str(tree)), previous=first, previous_started_ns=FUTURE, workers=1)
    found = entries(second)
    assert hashed == [str(motd)]
    assert found[str(motd)][snap.N_SHA] == sha(b"HELLO world\n")
    assert found[f"{tree}/sub/app.conf"][snap.N_SHA] == "cached"
    # trust_stat=False re-reads everything
    third = snap.scan_files(rules(str(tree)), previous=first, previous_started_ns=FUTURE, workers=1, trust_stat=False)
    assert entries(third)[f"{tree}/sub/app.conf"][snap.N_SHA] == sha(b"setting=1\n")


def test_files_changed_just_before_the_previous_snapshot_are_rehashed(tree):
    first = snap.scan_files(rules(str(tree)), workers=1)
    for info in first["dirs"].values():
        for entry in info["entries"]:
            if entry[snap.N_TYPE] == "f":
                entry[snap.N_SHA] = "cached"
    # the previous snapshot started right after the files were written: their timestamps cannot be trusted
    again = snap.scan_files(rules(str(tree)), previous=first, previous_started_ns=time.time_ns(), workers=1)
    assert entries(again)[f"{tree}/motd"][snap.N_SHA] == sha(b"hello world\n")


def test_directories_whose_entries_did_not_change_reuse_the_previous_lists(tree):
    first = snap.scan_files(rules(str(tree)), workers=1)
    (tree / "sub" / "new").write_bytes(b"new")
    second = snap.scan_files(rules(str(tree)), previous=first, previous_started_ns=FUTURE, workers=1)
    assert second["dirs"][f"{tree}/sub/deep"]["entries"] is first["dirs"][f"{tree}/sub/deep"]["entries"]
    assert second["dirs"][f"{tree}/sub"]["entries"] is not first["dirs"][f"{tree}/sub"]["entries"]


def test_growing_files_record_the_digest_of_their_old_content(tmp_path):
    log = tmp_path / "app.log"
    log.write_bytes(b"line 1\n")
    spec = rules({"path": str(log), "attributes": ["growing"]})
    first = snap.scan_files(spec, workers=1)
    with open(log, "ab") as handle:
        handle.write(b"line 2\n")
    grown = snap.scan_files(spec, previous=first, previous_started_ns=FUTURE, workers=1)
    entry = grown["roots"][str(log)]["entry"]
    assert entry[snap.N_GROWN] == sha(b"line 1\n") and entry[snap.N_SHA] == sha(b"line 1\nline 2\n")
    log.write_bytes(b"rewritten\n\n\n\n\n")
    rewritten = snap.scan_files(spec, previous=first, previous_started_ns=FUTURE, workers=1)
    assert rewritten["roots"][str(log)]["entry"][snap.N_GROWN] == sha(b"rewritt"), "the first 7 bytes, as long as the old content"


def test_exclude_include_and_nested_rules(tree):
    (tree / "cache").mkdir()
    (tree / "cache" / "big").write_bytes(b"x")
    (tree / "x.swp").write_bytes(b"x")
    facet = snap.scan_files(rules(
        {"path": str(tree), "exclude": ["*.swp", "cache"]},
        {"path": f"{tree}/sub", "attributes": ["permissions"], "include": ["*.conf", f"{tree}/sub/deep"]},
    ), workers=1)
    found = entries(facet)
    assert f"{tree}/x.swp" not in found and f"{tree}/cache" not in found and f"{tree}/cache/big" not in found
    assert f"{tree}/sub/app.conf" in found and f"{tree}/sub/deep" in found and f"{tree}/sub/deep/data" not in found
    assert found[f"{tree}/sub/app.conf"][snap.N_SHA] is None, "the deeper rule (permissions) governs its subtree"
    assert "sub" not in [e[0] for e in facet["dirs"][str(tree)]["entries"]], "a nested root is not listed twice"
    assert found[f"{tree}/sub"][snap.N_TYPE] == "d"


def test_pseudo_filesystems_are_not_descended_into(tree, monkeypatch):
    monkeypatch.setattr(snap, "_pseudo_mounts", lambda: {f"{tree}/sub"})
    found = entries(snap.scan_files(rules(str(tree)), workers=1))
    assert f"{tree}/sub" in found and f"{tree}/sub/app.conf" not in found


def test_missing_paths_are_recorded_as_absent(tmp_path):
    facet = snap.scan_files(rules(str(tmp_path / "nope")), workers=1)
    assert facet["roots"][str(tmp_path / "nope")]["entry"] is None
    assert [k for _p, k, _d in facet["issues"]] == ["missing"]


def test_parallel_and_serial_scans_agree(tree):
    for index in range(30):
        (tree / "sub" / f"d{index}").mkdir()
        (tree / "sub" / f"d{index}" / "f").write_bytes(str(index).encode())
    serial = snap.scan_files(rules(str(tree)), workers=1)
    parallel = snap.scan_files(rules(str(tree)), workers=2)
    assert parallel["workers"] == 2 and "note" not in parallel
    assert parallel["digest"] == serial["digest"]
    assert {d: i["entries"] for d, i in parallel["dirs"].items()} == {d: i["entries"] for d, i in serial["dirs"].items()}


_PARENT_PID = os.getpid()
_WORKER_RAN = multiprocessing.get_context("fork").Event()


def _unit_and_pid(unit):
    # The worker process says it has started; this process waits for that before its first unit (bounded), so both
    # sides of the split certainly take part.
    if os.getpid() != _PARENT_PID:
        _WORKER_RAN.set()
    else:
        _WORKER_RAN.wait(120)
    return [unit[0], os.getpid()], []


def test_this_process_and_the_pool_split_the_units_each_unit_once_in_order(monkeypatch):
    global _PARENT_PID  # pylint: disable=global-statement
    _PARENT_PID = os.getpid()
    _WORKER_RAN.clear()
    monkeypatch.setattr(snap, "_scan_unit", _unit_and_pid)
    units = [(f"/unit/{index}", 0, True) for index in range(40)]
    results, note = snap._run_units(units, 2)
    assert note is None
    assert [found[0] for found, _issues in results] == [unit[0] for unit in units]
    pids = {found[1] for found, _issues in results}
    assert len(pids) == 2 and os.getpid() in pids


def test_without_worker_processes_one_process_does_the_work(tree, monkeypatch):
    def no_fork(method):
        raise OSError(38, "Function not implemented")

    monkeypatch.setattr(multiprocessing, "get_context", no_fork)
    for index in range(10):
        (tree / f"d{index}").mkdir()
    facet = snap.scan_files(rules(str(tree)), workers=2)
    assert facet["workers"] == 1 and "parallel scanning unavailable (OSError" in facet["note"]
    assert facet["digest"] == snap.scan_files(rules(str(tree)), workers=1)["digest"]


def test_merkle_digests_move_only_along_the_changed_path(tree):
    (tree / "other").mkdir()
    (tree / "other" / "f").write_bytes(b"same")
    spec = rules({"path": str(tree), "attributes": ["all"]})
    first = snap.scan_files(spec, workers=1)
    os.utime(tree / "motd", ns=(1, 1))  # times are not portable: the digests do not move
    touched = snap.scan_files(spec, workers=1)
    assert touched["digest"] == first["digest"]
    (tree / "sub" / "deep" / "data").write_bytes(b"y" * 5000)
    changed = snap.scan_files(spec, workers=1)
    moved = {d for d in first["dirs"] if first["dirs"][d]["tree"] != changed["dirs"][d]["tree"]}
    assert moved == {str(tree), f"{tree}/sub", f"{tree}/sub/deep"}
    local = {d for d in first["dirs"] if first["dirs"][d]["local"] != changed["dirs"][d]["local"]}
    assert local == {f"{tree}/sub/deep"}
    assert changed["roots"][str(tree)]["tree"] != first["roots"][str(tree)]["tree"]


def test_snapshots_are_stored_compressed_atomically_and_private(tree, tmp_path):
    config = snap.make_config(["files", "users"], [{"path": str(tree)}], [], False)
    doc = snap.take_snapshot(config, NoCommands(), workers=1)
    path = str(tmp_path / "state" / "baseline.json.gz")
    size = snap.write_snapshot(path, doc)
    assert os.path.getsize(path) == size and stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / "state").st_mode) == 0o700
    assert [n for n in os.listdir(tmp_path / "state") if n != "baseline.json.gz"] == []
    with gzip.open(path) as handle:
        raw = json.load(handle)
    assert raw["format"] == "sre.ops.snapshot" and raw["format_version"] == 1
    assert snap.read_snapshot(path) == json.loads(json.dumps(doc))
    summary = snap.summary(doc)
    assert set(summary["facets"]) == {"files", "users"} and summary["roots"] == {str(tree): doc["facets"]["files"]["roots"][str(tree)]["tree"]}


@pytest.mark.parametrize("content, message", [
    (b"not gzip", "is corrupt: not a gzip-compressed JSON snapshot"),
    (gzip.compress(b"{not json", mtime=0), "is corrupt: not a gzip-compressed JSON snapshot"),
    (gzip.compress(b'{"format": "other"}', mtime=0), "is not an sre.ops snapshot"),
    (gzip.compress(b'{"format": "sre.ops.snapshot", "format_version": 99}', mtime=0), "has snapshot format version 99"),
    (gzip.compress(b'{"format": "sre.ops.snapshot", "format_version": 1, "config": {}}', mtime=0), "is corrupt: the snapshot has no 'facets'"),
])
def test_unusable_snapshots_say_what_is_wrong(tmp_path, content, message):
    path = tmp_path / "snap.json.gz"
    path.write_bytes(content)
    with pytest.raises(snap.SnapshotError, match=message):
        snap.read_snapshot(str(path))
    with pytest.raises(snap.SnapshotMissing):
        snap.read_snapshot(str(tmp_path / "missing.json.gz"))


def test_query_returns_buckets_trees_and_entries(tree):
    bad = os.fsdecode(os.fsencode(str(tree)) + b"/sub/bad\xffname")
    with open(bad, "wb") as handle:
        handle.write(b"data")
    config = snap.make_config(["files"], [{"path": str(tree)}], [], False)
    doc = snap.take_snapshot(config, NoCommands(), workers=1)
    doc["facets"]["users"] = {"status": "ok", "items": {"root": {"uid": 0}, "alice": {"uid": 1000}}}
    parts = snap.query(doc, facets=["users"], facet_buckets=["users"], buckets={"users": [snap.bucket_of("alice")]},
                       roots=[str(tree)], dirs=[f"{tree}/sub"])
    assert parts["items"]["users"]["alice"] == {"uid": 1000}
    assert set(parts["buckets"]["users"]) == {snap.bucket_of("root"), snap.bucket_of("alice")}
    assert "alice" in parts["bucket_items"]["users"]
    tree_part = parts["trees"][str(tree)]
    assert tree_part["attributes"] == ["type", "mode", "uid", "gid", "size", "target", "sha256"]
    assert set(tree_part["dirs"]) == {str(tree), f"{tree}/sub", f"{tree}/sub/deep"} and len(tree_part["dirs"][str(tree)]) == 16
    rows = {row[0]: row for row in parts["entries"][f"{tree}/sub"]}
    assert rows["app.conf"][1:] == ["f", rows["app.conf"][2], 0, 0, 10, None, sha(b"setting=1\n")]
    assert "bad\\xffname" in rows
    json.dumps(parts)


def _locked_increment(path, counter, rounds):
    for _round in range(rounds):
        with snap.locked(path):
            with open(counter, encoding="ascii") as handle:
                value = int(handle.read())
            with open(counter, "w", encoding="ascii") as handle:
                handle.write(str(value + 1))


def test_the_lock_serializes_read_decide_write(tmp_path):
    counter = tmp_path / "counter"
    counter.write_text("0")
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_locked_increment, args=(str(tmp_path / "snap.json.gz"), str(counter), 200)) for _worker in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [w.exitcode for w in workers] == [0, 0, 0]
    assert counter.read_text() == "600"


def test_the_quick_path_for_small_files_records_what_the_general_path_does(tree, monkeypatch):
    quick = snap.scan_files(rules(str(tree)), workers=1)
    monkeypatch.setattr(snap, "_quick_entry", lambda *args: None)
    general = snap.scan_files(rules(str(tree)), workers=1)
    assert {d: i["entries"] for d, i in quick["dirs"].items()} == {d: i["entries"] for d, i in general["dirs"].items()}
    # a file that changes size between the listing and the read is left to the general path
    real_readv = os.readv
    monkeypatch.undo()
    monkeypatch.setattr(snap.os, "readv", lambda fd, buffers: real_readv(fd, buffers) + 5)
    motd = str(tree / "motd")
    buffer = bytearray(snap.HASH_BLOCK)
    assert snap._quick_entry("motd", motd, os.lstat(motd).st_ino, snap._OPEN_FLAGS, buffer) is None
    monkeypatch.undo()
    # a file that is not the one listed (another inode at the name) is left to the general path too
    assert snap._quick_entry("motd", motd, os.lstat(motd).st_ino + 1, snap._OPEN_FLAGS, buffer) is None
    assert snap._quick_entry("motd", motd, os.lstat(motd).st_ino, snap._OPEN_FLAGS, buffer)[snap.N_SHA] == sha((tree / "motd").read_bytes())
