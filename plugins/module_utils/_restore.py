# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: restore from restic with a preview, beside the target, switched in by rename.

restic 0.14 has no restore dry run, and restores in place. Here:
  - the preview compares the snapshot's listing (`restic ls --json`, one process) with the target tree:
    files to create, to overwrite (content differs), whose metadata only differs, unchanged, newer in the
    target than in the snapshot, and present only in the target. A file of the same size whose mtime
    differs is compared by content (restored into a scratch directory), so "overwrite" means bytes differ.
  - the real run restores into a sibling directory (.NAME.sreops-restore-PID-*), checks it against the
    listing (restic --verify checks the bytes against the snapshot's content hashes), carries over what
    the policy keeps from the target (newer files, files not in the snapshot) as hard links, and swaps it
    with the target by rename (renameat2 RENAME_EXCHANGE where the kernel has it: one atomic step).
  - an interrupted run leaves only its sibling directories, removed by the next run; a switch interrupted
    between two renames (kernels without RENAME_EXCHANGE) is completed from its journal.
"""

from __future__ import annotations

import ctypes
import contextlib
import ctypes.util
import dataclasses
import fnmatch
import gc
import hashlib
import os
import shutil
import sqlite3
import stat
import subprocess
import tempfile
import threading
import time
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._backup import MARKER_DIR, inside, mysql_connection, mysql_option_file, running_backups
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError, SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._io import fsync_dir, read_json, write_json_atomic
from ansible_collections.sre.ops.plugins.module_utils._metrics import drill_families, metrics_path, read_samples, render, write_textfile
from ansible_collections.sre.ops.plugins.module_utils._restic import (
    FIND_BATCH, Completed, Repository, Started, blobs_found, classify_failure, go_mode_to_posix, parse_time_ns,
)

OVERWRITE = ("always", "if-changed", "if-newer", "never")
PREVIEW_LIMIT = 100
# restic's chunker cuts no chunk before 512 KiB: a smaller file is a single blob, its id the SHA-256 of the file.
SINGLE_BLOB_LIMIT = 512 * 1024
RESTORE_PREFIX = "sreops-restore"
OLD_PREFIX = "sreops-old"
RENAME_EXCHANGE = 2
AT_FDCWD = -100


class RestoreError(SreOpsError):
    """A restore was refused or failed; the target was left as it was."""


class Entry(t.NamedTuple):
    """One path, in the snapshot or on disk: what the comparison needs (a tuple: 200,000 of them are made and compared)."""

    kind: str  # file, dir, symlink, other
    size: int = 0
    mtime_ns: int = 0
    mode: int = 0
    uid: int = 0
    gid: int = 0


@dataclasses.dataclass
class Plan:
    create: list[str] = dataclasses.field(default_factory=list)
    overwrite: list[str] = dataclasses.field(default_factory=list)
    metadata: list[str] = dataclasses.field(default_factory=list)
    unchanged: list[str] = dataclasses.field(default_factory=list)
    newer: list[str] = dataclasses.field(default_factory=list)
    extra: list[str] = dataclasses.field(default_factory=list)
    ambiguous: list[str] = dataclasses.field(default_factory=list)
    create_bytes: int = 0
    overwrite_bytes: int = 0

    def changes(self, overwrite: str, delete: bool) -> bool:
        newer_taken = overwrite == "always" and bool(self.newer)
        existing_taken = overwrite != "never" and bool(self.overwrite or self.metadata or self.ambiguous)
        return bool(self.create) or existing_taken or newer_taken or (delete and bool(self.extra))


# ----- listing and tree -------------------------------------------------------------------------------
def snapshot_entries(nodes: list[dict[str, t.Any]], root: str) -> dict[str, Entry]:
    """The snapshot's nodes at and below root, keyed by path relative to root ('' is root itself)."""
    entries: dict[str, Entry] = {}
    add_snapshot_nodes(entries, nodes, root)
    return entries


def add_snapshot_nodes(entries: dict[str, Entry], nodes: list[dict[str, t.Any]], root: str) -> None:
    """Add one batch of a listing's nodes at and below root to entries (a listing is read batch by batch as restic prints it)."""
    root = root.rstrip("/") or "/"
    prefix = root + "/" if root != "/" else "/"
    cut = len(prefix)
    kinds = {"file": "file", "dir": "dir", "symlink": "symlink"}
    for node in nodes:
        path = node.get("path", "")
        if path.startswith(prefix):
            rel = path[cut:]
        elif path == root:
            rel = ""
        else:
            continue
        kind = kinds.get(node.get("type", ""), "other")
        mtime = node.get("mtime")
        entries[rel] = Entry(kind, int(node.get("size") or 0) if kind == "file" else 0, parse_time_ns(mtime) if mtime else 0,
                             go_mode_to_posix(int(node.get("mode", 0))), int(node.get("uid", 0)), int(node.get("gid", 0)))


def _entry_from_stat(st: os.stat_result) -> Entry:
    mode = st.st_mode
    if stat.S_ISREG(mode):
        kind = "file"
    elif stat.S_ISDIR(mode):
        kind = "dir"
    elif stat.S_ISLNK(mode):
        kind = "symlink"
    else:
        kind = "other"
    return Entry(kind, st.st_size if kind == "file" else 0, st.st_mtime_ns, stat.S_IMODE(mode), st.st_uid, st.st_gid)


def tree_entries(root: str) -> dict[str, Entry]:
    """The target as it is: every path at and below root (symlinks are not followed)."""
    try:
        top = os.lstat(root)
    except FileNotFoundError:
        return {}
    entries = {"": _entry_from_stat(top)}
    if not stat.S_ISDIR(top.st_mode):
        return entries
    s_isdir, s_isreg, s_imode = stat.S_ISDIR, stat.S_ISREG, stat.S_IMODE
    stack = [("", root)]
    while stack:
        rel_dir, abs_dir = stack.pop()
        head = rel_dir + "/" if rel_dir else ""
        with os.scandir(abs_dir) as listing:
            for item in listing:
                rel = head + item.name
                st = item.stat(follow_symlinks=False)
                mode = st.st_mode
                if s_isreg(mode):  # the common case without a call: 100,000 files are read while restic lists
                    entries[rel] = Entry("file", st.st_size, st.st_mtime_ns, s_imode(mode), st.st_uid, st.st_gid)
                else:
                    entries[rel] = _entry_from_stat(st)
                    if s_isdir(mode):
                        stack.append((rel, item.path))
    return entries


@contextlib.contextmanager
def collector_paused() -> t.Iterator[None]:
    """Python's cycle collector off while a large listing is read and compared.

    A snapshot of 100,000 files is as many small dicts and entries, none in a reference cycle; the collector, started
    every few hundred allocations, would walk the ones that survive again and again (a tenth of the preview's CPU)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


class TreeWalk(threading.Thread):
    """tree_entries(root) in a thread: os.scandir and stat release the GIL while restic runs beside."""

    def __init__(self, root: str) -> None:
        super().__init__(daemon=True)
        self.root = root
        self._entries: dict[str, Entry] = {}
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            self._entries = tree_entries(self.root)
        except BaseException as exc:  # pylint: disable=broad-exception-caught  # re-raised in the caller's thread
            self._error = exc

    def entries(self) -> dict[str, Entry]:
        self.join()
        if self._error is not None:
            raise self._error
        return self._entries


PREFETCH_BYTES = 64 << 20


def prefetch_candidates(entries: dict[str, Entry], snapshot_ns: int, limit: int = FIND_BATCH, limit_bytes: int = PREFETCH_BYTES) -> list[str]:
    """The target's files a listing is likely to show as same size, other mtime: written after the snapshot was taken,
    and small enough to be one blob. None when there are more than one `restic find` takes or they are many bytes to
    hash (then most of them will have changed size, and what is ambiguous is looked up after the listing)."""
    chosen = [rel for rel, e in entries.items() if e.kind == "file" and 0 < e.size < SINGLE_BLOB_LIMIT and e.mtime_ns > snapshot_ns]
    if len(chosen) > limit or sum(entries[rel].size for rel in chosen) > limit_bytes:
        return []
    return chosen


class BlobPrefetch(threading.Thread):
    """Beside the listing: once the target is read, its likely-ambiguous files (prefetch_candidates) hashed and one
    `restic find --blob` started on their SHA-256, so restic's two walks of the snapshot run at the same time.

    settle_by_blob_ids uses what it asked (digests) and found, and asks restic again only for ids it did not ask."""

    def __init__(self, walk: TreeWalk, target_root: str, snapshot_ns: int, start_find: t.Callable[[list[str]], Started]) -> None:
        super().__init__(daemon=True)
        self.walk = walk
        self.target_root = target_root
        self.snapshot_ns = snapshot_ns
        self.start_find = start_find
        self.digests: dict[str, str] = {}
        self.asked: set[str] = set()
        self._find: Started | None = None
        self._error: BaseException | None = None
        self.start()

    def run(self) -> None:
        try:
            entries = self.walk.entries()
        except BaseException:  # pylint: disable=broad-exception-caught  # the caller's own walk.entries() reports it
            return
        try:
            for rel in prefetch_candidates(entries, self.snapshot_ns):
                with contextlib.suppress(OSError):
                    self.digests[rel] = sha256_file(os.path.join(self.target_root, rel) if rel else self.target_root)
            if self.digests:
                ids = sorted(set(self.digests.values()))
                self._find = self.start_find(ids)
                self.asked = set(ids)
        except BaseException as exc:  # pylint: disable=broad-exception-caught  # re-raised in the caller's thread, if its answer is needed
            self._error = exc
            self.digests, self.asked = {}, set()

    def found(self) -> dict[str, set[str]]:
        """The early find's answer (its failure raised here, where its answer is needed)."""
        self.join()
        if self._error is not None:
            raise self._error
        return blobs_found(self._find) if self._find is not None else {}

    def close(self) -> None:
        """Stop the early find if nobody read it (nothing was ambiguous): restic find --no-lock leaves nothing behind."""
        self.join()
        if self._find is not None:
            self._find.cancel()


def _matches(pattern: str, rel: str) -> bool:
    """A glob matches a path, or one of its parent directories; a pattern without '/' matches any one name."""
    parts = rel.split("/")
    if "/" not in pattern.strip("/"):
        return any(fnmatch.fnmatchcase(part, pattern.strip("/")) for part in parts)
    pattern = pattern.strip("/")
    return any(fnmatch.fnmatchcase("/".join(parts[:i]), pattern) for i in range(1, len(parts) + 1))


def select(entries: dict[str, Entry], include: list[str], exclude: list[str]) -> dict[str, Entry]:
    """The entries the include/exclude patterns keep; directories leading to a kept entry are kept too."""
    if not include and not exclude:
        return entries
    chosen = {}
    for rel, entry in entries.items():
        if rel == "":
            continue
        if include and not any(_matches(p, rel) for p in include):
            continue
        if any(_matches(p, rel) for p in exclude):
            continue
        chosen[rel] = entry
    for rel in list(chosen):
        parts = rel.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in entries:
                chosen.setdefault(parent, entries[parent])
    if "" in entries:
        chosen[""] = entries[""]
    return chosen


def compare(snapshot: dict[str, Entry], target: dict[str, Entry], scope: t.Callable[[str], bool]) -> Plan:
    """What a restore of snapshot over target would do, by metadata; same-size files with another mtime are ambiguous."""
    plan = Plan()
    for rel in sorted(snapshot):
        want = snapshot[rel]
        have = target.get(rel)
        if have == want:  # same kind, size, mtime, mode and owner: unchanged whatever the kind (one tuple comparison)
            plan.unchanged.append(rel)
            continue
        if have is None:
            plan.create.append(rel)
            plan.create_bytes += want.size
            continue
        if have.kind != want.kind:
            (plan.newer if have.mtime_ns > want.mtime_ns and want.kind != "dir" else plan.overwrite).append(rel)
            plan.overwrite_bytes += want.size
            continue
        if want.kind == "dir":
            if (have.mode, have.uid, have.gid) != (want.mode, want.uid, want.gid):
                plan.metadata.append(rel)
            else:
                plan.unchanged.append(rel)
            continue
        same_meta = (have.mode, have.uid, have.gid) == (want.mode, want.uid, want.gid) or want.kind == "symlink"
        if want.kind == "file" and have.size != want.size:
            (plan.newer if have.mtime_ns > want.mtime_ns else plan.overwrite).append(rel)
            plan.overwrite_bytes += want.size
        elif have.mtime_ns != want.mtime_ns:
            if want.kind == "file":
                plan.ambiguous.append(rel)
            else:
                (plan.newer if have.mtime_ns > want.mtime_ns else plan.overwrite).append(rel)
        elif not same_meta:
            plan.metadata.append(rel)
        else:
            plan.unchanged.append(rel)
    plan.extra = sorted(rel for rel in target if rel not in snapshot and scope(rel))
    return plan


def same_content(path_a: str, path_b: str) -> bool:
    try:
        with open(path_a, "rb") as a, open(path_b, "rb") as b:
            while True:
                block_a, block_b = a.read(1 << 20), b.read(1 << 20)
                if block_a != block_b:
                    return False
                if not block_a:
                    return True
    except OSError:
        return False


def _settle(plan: Plan, rel: str, same_bytes: bool, want: Entry, have: Entry) -> None:
    if same_bytes:
        plan.metadata.append(rel)
    elif have.mtime_ns > want.mtime_ns:
        plan.newer.append(rel)
    else:
        plan.overwrite.append(rel)
        plan.overwrite_bytes += want.size


def _sort(plan: Plan) -> None:
    for name in ("metadata", "newer", "overwrite"):
        getattr(plan, name).sort()


def settle_by_blob_ids(plan: Plan, snapshot: dict[str, Entry], target: dict[str, Entry], path: str, target_root: str,
                       find: t.Callable[[list[str]], dict[str, set[str]]], prefetched: BlobPrefetch | None = None) -> None:
    """Same size, other mtime, and smaller than restic's minimum chunk: such a file is one data blob whose id is the
    SHA-256 of its bytes, so hashing the target's copies and one `restic find --blob` decide them without a restore.
    An empty file has no blob and equal bytes. What this cannot decide stays ambiguous (a larger file; a blob found
    only at another path, as restic's walk skips repeated subtrees). Digests and ids a BlobPrefetch already hashed and
    asked are taken from it; find is called only for the ids it did not ask."""
    if prefetched is not None:
        prefetched.join()  # its digests and ids are complete once it has started its find
    known = prefetched.digests if prefetched is not None else {}
    asked = prefetched.asked if prefetched is not None else set()
    digests: dict[str, str] = {}
    left = []
    for rel in plan.ambiguous:
        if snapshot[rel].size == 0:
            _settle(plan, rel, True, snapshot[rel], target[rel])
            continue
        if snapshot[rel].size < SINGLE_BLOB_LIMIT:
            if rel in known:
                digests[rel] = known[rel]
                continue
            try:
                digests[rel] = sha256_file(os.path.join(target_root, rel) if rel else target_root)
                continue
            except OSError:
                pass
        left.append(rel)
    wanted = set(digests.values())
    found = prefetched.found() if prefetched is not None and wanted & asked else {}
    missing = sorted(wanted - asked)
    if missing:
        found.update(find(missing))
    base = path.rstrip("/")
    for rel, digest in digests.items():
        where = found.get(digest)
        if where and (f"{base}/{rel}" if rel else base or "/") not in where:
            left.append(rel)
        else:
            _settle(plan, rel, bool(where), snapshot[rel], target[rel])
    plan.ambiguous = sorted(left)
    _sort(plan)


def resolve_ambiguous(plan: Plan, snapshot: dict[str, Entry], target: dict[str, Entry], restored_root: str, target_root: str) -> None:
    """Same size, other mtime: bytes decide between overwrite (or newer) and a metadata-only change."""
    for rel in plan.ambiguous:
        restored = os.path.join(restored_root, rel) if rel else restored_root
        current = os.path.join(target_root, rel) if rel else target_root
        _settle(plan, rel, same_content(restored, current), snapshot[rel], target[rel])
    plan.ambiguous = []
    _sort(plan)


def _capped(items: list[str], limit: int) -> list[str]:
    return items[:limit]


def preview_of(plan: Plan, overwrite: str, delete: bool, limit: int = PREVIEW_LIMIT) -> dict[str, t.Any]:
    """The preview a user reads: counts, the first paths of each kind, and what happens to newer and extra files."""
    newer_action = {"always": "overwritten", "if-changed": "refused", "if-newer": "kept", "never": "kept"}[overwrite]
    return {
        "create": _capped(plan.create, limit),
        "overwrite": _capped(plan.overwrite, limit) if overwrite != "never" else [],
        "metadata": _capped(plan.metadata, limit) if overwrite != "never" else [],
        "newer": _capped(plan.newer, limit),
        "extra": _capped(plan.extra, limit),
        "kept": _capped((plan.overwrite + plan.metadata if overwrite == "never" else []) + (plan.newer if newer_action == "kept" else []), limit),
        "counts": {
            "create": len(plan.create), "overwrite": len(plan.overwrite), "metadata": len(plan.metadata),
            "unchanged": len(plan.unchanged), "newer": len(plan.newer), "extra": len(plan.extra),
        },
        "bytes": {"create": plan.create_bytes, "overwrite": plan.overwrite_bytes},
        "newer_files": newer_action,
        "extra_files": "deleted" if delete else "left in place",
        "limit": limit,
    }


def prepared_diff(plan: Plan, overwrite: str, delete: bool, target: str, limit: int = PREVIEW_LIMIT) -> str:
    lines = [f"restore into {target}:"]
    for label, items in (("+ create", plan.create), ("~ overwrite", plan.overwrite if overwrite != "never" else []),
                         ("~ metadata", plan.metadata if overwrite != "never" else []),
                         ("! newer in target" + (" (overwritten)" if overwrite == "always" else " (kept)" if overwrite != "if-changed" else " (refused)"),
                          plan.newer),
                         ("- delete" if delete else "  leave (not in snapshot)", plan.extra)):
        for rel in items[:limit]:
            lines.append(f"{label}: {rel or '.'}")
        if len(items) > limit:
            lines.append(f"{label}: ... and {len(items) - limit} more")
    return "\n".join(lines) + "\n"


# ----- switching -------------------------------------------------------------------------------------
def same_sqlite(path_a: str, path_b: str) -> bool:
    """Whether two SQLite files hold the same schema and rows (a backup-API copy is not byte-identical to its source)."""
    try:
        conn_a = sqlite3.connect(f"file:{path_a}?mode=ro", uri=True)
        conn_b = sqlite3.connect(f"file:{path_b}?mode=ro", uri=True)
    except sqlite3.Error:
        return False
    try:
        sentinel = object()
        dump_a, dump_b = conn_a.iterdump(), conn_b.iterdump()
        while True:
            line_a, line_b = next(dump_a, sentinel), next(dump_b, sentinel)
            if line_a != line_b:
                return False
            if line_a is sentinel:
                return True
    except sqlite3.Error:
        return False
    finally:
        conn_a.close()
        conn_b.close()


def _renameat2() -> t.Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        func = libc.renameat2
    except (OSError, AttributeError):
        return None
    func.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return func


def exchange(path_a: str, path_b: str) -> bool:
    """Swap two paths atomically; False where the kernel or filesystem cannot (then the caller renames twice)."""
    func = _renameat2()
    if func is None:
        return False
    if func(AT_FDCWD, os.fsencode(path_a), AT_FDCWD, os.fsencode(path_b), RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not supported here
        return False
    raise OSError(err, os.strerror(err), path_a)


def _journal(parent: str, name: str) -> str:
    return os.path.join(parent, f".{name}.sreops-switch.json")


def switch_in(new: str, target: str, old_dir: str) -> None:
    """Put new at target; the previous target ends up inside old_dir (removed by the caller)."""
    parent, name = os.path.split(target)
    if not os.path.lexists(target):
        os.rename(new, target)
        fsync_dir(parent)
        return
    if exchange(new, target):
        os.rename(new, os.path.join(old_dir, name))
        fsync_dir(parent)
        return
    journal = _journal(parent, name)
    write_json_atomic(journal, {"new": new, "old": os.path.join(old_dir, name), "target": target}, mode=0o600)
    os.rename(target, os.path.join(old_dir, name))
    os.rename(new, target)
    fsync_dir(parent)
    os.unlink(journal)


def recover(target: str) -> list[str]:
    """Finish or undo what an interrupted run left beside target; the paths it removed."""
    parent, name = os.path.split(target)
    done = []
    journal = _journal(parent, name)
    doc = read_json(journal, None) if os.path.exists(journal) else None
    if doc and not os.path.lexists(target) and os.path.lexists(doc.get("new", "")):
        os.rename(doc["new"], target)
        fsync_dir(parent)
        done.append(f"completed an interrupted switch of {target}")
    if doc is not None:
        os.unlink(journal)
    try:
        names = os.listdir(parent)
    except FileNotFoundError:
        return done
    for leftover in names:
        for prefix in (f".{name}.{RESTORE_PREFIX}-", f".{name}.{OLD_PREFIX}-"):
            if leftover.startswith(prefix):
                pid = leftover[len(prefix):].split("-", 1)[0]
                if pid.isdigit() and int(pid) != os.getpid() and _gone(int(pid)):
                    shutil.rmtree(os.path.join(parent, leftover), ignore_errors=True)
                    done.append(os.path.join(parent, leftover))
    return done


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def carry_over(rel: str, target_root: str, staged_root: str) -> bool:
    """Put the target's own version of rel into the staged tree (hard link, or a copy across devices)."""
    src = os.path.join(target_root, rel)
    dst = os.path.join(staged_root, rel)
    parent_rel = os.path.dirname(rel)
    if parent_rel and not os.path.isdir(os.path.join(staged_root, parent_rel)):
        if os.path.lexists(os.path.join(staged_root, parent_rel)):
            return False  # the snapshot has a file where the target has a directory
        carry_over(parent_rel, target_root, staged_root)
    st = os.lstat(src)
    if os.path.lexists(dst) and not (stat.S_ISDIR(st.st_mode) and os.path.isdir(dst)):
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        else:
            os.unlink(dst)
    if stat.S_ISDIR(st.st_mode):
        if not os.path.isdir(dst):
            os.mkdir(dst, stat.S_IMODE(st.st_mode))
            os.chown(dst, st.st_uid, st.st_gid)
            os.chmod(dst, stat.S_IMODE(st.st_mode))
        return True
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), dst)
        os.lchown(dst, st.st_uid, st.st_gid)
        return True
    try:
        os.link(src, dst, follow_symlinks=False)
    except OSError:
        shutil.copy2(src, dst, follow_symlinks=False)
    return True


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_tree(expected: dict[str, Entry], root: str) -> list[str]:
    """Differences between the staged tree and the snapshot's listing (type, size, mode, owner)."""
    problems = []
    for rel, want in expected.items():
        path = os.path.join(root, rel) if rel else root
        try:
            have = _entry_from_stat(os.lstat(path))
        except FileNotFoundError:
            problems.append(f"{rel or '.'}: missing after restore")
            continue
        if have.kind != want.kind:
            problems.append(f"{rel or '.'}: restored as {have.kind}, snapshot has {want.kind}")
        elif want.kind == "file" and have.size != want.size:
            problems.append(f"{rel or '.'}: restored {have.size} bytes, snapshot has {want.size}")
        elif want.kind != "symlink" and have.mode != want.mode:
            problems.append(f"{rel or '.'}: restored mode {have.mode:o}, snapshot has {want.mode:o}")
        if len(problems) >= 20:
            break
    return problems


def restore_patterns(path: str) -> str:
    """A restic --include pattern that names exactly this path (glob characters escaped)."""
    out = []
    for char in path:
        out.append("\\" + char if char in "*?[]\\" else char)
    return "".join(out)


# ----- databases -------------------------------------------------------------------------------------
def _client_env(database: dict[str, t.Any]) -> dict[str, str]:
    env = dict(os.environ)
    if database.get("password") is not None and database["type"] == "postgresql":
        env["PGPASSWORD"] = str(database["password"])
    return env


def psql_argv(database: dict[str, t.Any], dbname: str, sql: str) -> list[str]:
    argv = [database.get("client_command") or "psql", "--no-password", "--no-psqlrc", "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1",
            f"--dbname={dbname}", "-c", sql]
    if database.get("host"):
        argv.append(f"--host={database['host']}")
    if database.get("port"):
        argv.append(f"--port={database['port']}")
    if database.get("user"):
        argv.append(f"--username={database['user']}")
    return argv


def mysql_argv(database: dict[str, t.Any], scratch: str, dbname: str | None, sql: str | None) -> list[str]:
    client = database.get("client_command") or shutil.which("mariadb") or "mysql"
    argv = [client, *mysql_option_file(database, scratch), "--batch", "--skip-column-names", *mysql_connection(database)]
    if dbname:
        argv.append(f"--database={dbname}")
    if sql is not None:
        argv += ["-e", sql]
    return argv


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_mysql_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def quote_literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# ----- the manager -----------------------------------------------------------------------------------
class RestoreManager:
    """One restore task: files to a directory (or one file), or a database, with preview, probes and drill figures."""

    def __init__(
        self,
        repo: Repository,
        *,
        snapshot: str = "latest",
        host: str | None = None,
        tags: list[str] | None = None,
        path: str | None = None,
        target: str | None = None,
        include: list[str] | None = None,
        exclude: list[str] | None = None,
        delete: bool = False,
        overwrite: str = "if-changed",
        verify: bool = True,
        database: dict[str, t.Any] | None = None,
        probe_command: list[str] | None = None,
        probe_sql: str | None = None,
        probe_expect: str | None = None,
        expect_checksums: dict[str, str] | None = None,
        remove_after: bool = False,
        metrics_dir: str | None = None,
        name: str | None = None,
        preview_limit: int = PREVIEW_LIMIT,
        check_mode: bool = False,
        marker_dir: str = MARKER_DIR,
        clock: t.Callable[[], float] = time.time,
    ) -> None:
        if overwrite not in OVERWRITE:
            raise InvalidInputError(f"overwrite must be one of {', '.join(OVERWRITE)}")
        self.repo = repo
        self.snapshot = snapshot or "latest"
        self.host = host
        self.tags = tags or []
        self.path = path.rstrip("/") if path and path != "/" else path
        self.target = os.path.abspath(target) if target else None
        self.include = include or []
        self.exclude = exclude or []
        self.delete = delete
        self.overwrite = overwrite
        self.verify = verify
        self.database = database
        self.probe_command = probe_command
        self.probe_sql = probe_sql
        self.probe_expect = probe_expect
        self.expect_checksums = expect_checksums or {}
        self.remove_after = remove_after
        self.metrics_dir = metrics_dir
        self.name = name
        self.preview_limit = preview_limit
        self.check_mode = check_mode
        self.marker_dir = marker_dir
        self.clock = clock
        self.started = clock()
        self.notes: list[str] = []
        if metrics_dir and not name:
            raise InvalidInputError("metrics_dir needs name (the backup label in the metrics)")
        if self.path and not self.path.startswith("/"):
            raise InvalidInputError(f"path {path!r} must be an absolute path inside the snapshot")
        if database and (self.include or self.exclude or delete):
            raise InvalidInputError("include, exclude and delete apply to file restores, not to database restores")

    # ----- shared --------------------------------------------------------------------------------------
    def _check_target(self, target: str) -> None:
        if target in ("/", "") or os.path.dirname(target) == target:
            raise InvalidInputError("target must not be / (a restore switches the target by rename); restore into a directory")
        for backup in running_backups(self.marker_dir):
            for source in backup.get("paths") or []:
                if source and (inside(target, source) or inside(source, target)):
                    raise RestoreError(
                        f"target {target} is inside the source {source} of a backup running now (PID {backup.get('pid')}); "
                        "restoring there would change what that backup reads. Wait for it, or restore elsewhere")
        if os.path.ismount(target):
            raise InvalidInputError(f"target {target} is a mount point, which cannot be switched by rename; restore into a directory below it")

    def _base(self, head: dict[str, t.Any]) -> dict[str, t.Any]:
        age = self.clock() - parse_time_ns(head["time"]) / 1e9
        return {"snapshot_id": head["id"], "short_id": head.get("short_id", head["id"][:8]), "snapshot_time": head["time"],
                "snapshot_host": head.get("hostname"), "snapshot_paths": head.get("paths", []), "data_age_seconds": round(age, 3),
                "repository": self.repo.display, "notes": self.notes + self.repo.notes, "stale_locks_removed": self.repo.stale_locks_removed}

    def run(self) -> dict[str, t.Any]:
        self.repo.check_password_source()
        if self.database:
            result = DatabaseRestore(self).run()
        else:
            result = self._restore_files()
        return self._finish(result)

    def _finish(self, result: dict[str, t.Any]) -> dict[str, t.Any]:
        if not self.check_mode:
            probe = self._probe(result)
            if probe is not None:
                result["probe"] = probe
            result["rto_seconds"] = round(self.clock() - self.started, 3)
            if self.remove_after:
                self._remove_restored(result)
            if self.metrics_dir and self.name:
                self._write_metrics(result, success=True)
        return result

    def record_failure(self) -> None:
        if self.metrics_dir and self.name and not self.check_mode:
            try:
                self._write_metrics({}, success=False)
            except (OSError, SreOpsError):
                pass

    def _write_metrics(self, result: dict[str, t.Any], success: bool) -> None:
        if not self.metrics_dir or not self.name:
            return
        path = metrics_path(self.metrics_dir, "restore_drill", self.name)
        outcome = {"success": success, "finished": self.clock(), "rto_seconds": result.get("rto_seconds"),
                   "data_age_seconds": result.get("data_age_seconds"), "restored_bytes": result.get("restored_bytes"),
                   "restored_files": result.get("restored_files")}
        write_textfile(path, render(drill_families(self.name, outcome, read_samples(path))))

    # ----- probes ------------------------------------------------------------------------------------
    def _probe(self, result: dict[str, t.Any]) -> dict[str, t.Any] | None:
        out: dict[str, t.Any] = {}
        restored = result.get("target")
        if self.expect_checksums and not self.database:
            mismatched = []
            for rel, want in sorted(self.expect_checksums.items()):
                path = os.path.join(restored, rel)
                try:
                    have = sha256_file(path)
                except OSError as exc:
                    mismatched.append(f"{rel}: {exc.strerror}")
                    continue
                if have != str(want).lower().replace("sha256:", ""):
                    mismatched.append(f"{rel}: sha256 {have}, expected {want}")
            out["checksums"] = {"checked": len(self.expect_checksums), "mismatched": mismatched}
            if mismatched:
                raise RestoreError(f"restored files do not match expect_checksums: {'; '.join(mismatched[:5])}", result=result)
        if self.probe_sql:
            rows = DatabaseRestore(self).query(result, self.probe_sql)
            out["sql"] = {"query": self.probe_sql, "output": rows}
            if self.probe_expect is not None and rows.strip() != self.probe_expect.strip():
                raise RestoreError(f"probe_sql returned {rows.strip()!r}, expected {self.probe_expect.strip()!r}", result=result)
        if self.probe_command:
            env = dict(os.environ, SREOPS_RESTORED=str(restored or result.get("database", "")))
            started = time.monotonic()
            try:
                proc = subprocess.run(self.probe_command, capture_output=True, env=env, cwd=restored if restored and os.path.isdir(restored) else None,
                                      check=False, stdin=subprocess.DEVNULL, timeout=3600)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise RestoreError(f"probe_command could not run: {exc}", result=result) from exc
            out["command"] = {"rc": proc.returncode, "stdout": proc.stdout.decode("utf-8", "replace")[-2000:],
                              "stderr": proc.stderr.decode("utf-8", "replace")[-2000:], "seconds": round(time.monotonic() - started, 3)}
            if proc.returncode != 0:
                raise RestoreError(f"probe_command failed (exit status {proc.returncode}): {out['command']['stderr'].strip()[-300:]}", result=result)
        return out or None

    def _remove_restored(self, result: dict[str, t.Any]) -> None:
        if self.database:
            DatabaseRestore(self).drop(result)
        else:
            target = result["target"]
            if os.path.isdir(target) and not os.path.islink(target):
                shutil.rmtree(target)
            elif os.path.lexists(target):
                os.unlink(target)
        result["removed_after"] = True

    # ----- files -------------------------------------------------------------------------------------
    def _prepare_target(self, target: str) -> TreeWalk:
        """Check the target, complete or undo an interrupted restore there, and start reading it."""
        self._check_target(target)
        cleaned = [] if self.check_mode else recover(target)
        if cleaned:
            self.notes.extend(f"removed what an interrupted restore left: {c}" for c in cleaned)
        return TreeWalk(target)

    def _restore_files(self) -> dict[str, t.Any]:
        # Three things run at once: restic lists the snapshot (read as it comes), a thread reads the target, and then
        # hashes the files written since the snapshot and starts `restic find` on them (BlobPrefetch).
        walk = self._prepare_target(self.target or self.path) if self.target or self.path else None
        listing = self.repo.open_ls(self.snapshot, self.host, self.tags)
        prefetch = None
        try:
            with collector_paused():
                head = listing.head()
                paths = head.get("paths") or []
                path = self.path
                if not path:
                    if len(paths) != 1:
                        raise InvalidInputError(f"snapshot {head['short_id']} holds {len(paths)} paths ({', '.join(paths)}); choose one with path")
                    path = paths[0].rstrip("/") or "/"
                target = self.target or path
                walk = walk or self._prepare_target(target)
                prefetch = BlobPrefetch(walk, target, parse_time_ns(head["time"]), lambda ids: self.repo.start_find_blobs(head["id"], ids))
                wanted: dict[str, Entry] = {}
                for batch in listing.batches():
                    add_snapshot_nodes(wanted, batch, path)
                if "" not in wanted:
                    raise RestoreError(f"path {path} is not in snapshot {head['short_id']} (it holds {', '.join(paths)})")
                wanted = select(wanted, self.include, self.exclude)
                result = self._base(head)
                result.update(path=path, target=target, overwrite=self.overwrite, delete=self.delete)
                have = walk.entries()
                in_scope = select(have, self.include, self.exclude)
                plan = compare(wanted, have, lambda rel: rel in in_scope)
            if plan.ambiguous:
                settle_by_blob_ids(plan, wanted, have, path, target, lambda ids: self.repo.find_blobs(head["id"], ids), prefetch)
        finally:
            listing.close()
            if prefetch is not None:
                prefetch.close()
        if plan.ambiguous:
            scratch = tempfile.mkdtemp(prefix="sreops-compare-")
            try:
                self._restic_restore(head["id"], scratch, [path + "/" + rel for rel in plan.ambiguous], verify=False)
                resolve_ambiguous(plan, wanted, have, scratch + path, target)
            finally:
                shutil.rmtree(scratch, ignore_errors=True)
        changed = plan.changes(self.overwrite, self.delete)
        result.update(changed=changed, preview=preview_of(plan, self.overwrite, self.delete, self.preview_limit),
                      restored_files=sum(1 for e in wanted.values() if e.kind == "file"),
                      restored_bytes=sum(e.size for e in wanted.values() if e.kind == "file"))
        result["diff"] = {"prepared": prepared_diff(plan, self.overwrite, self.delete, target, self.preview_limit)} if changed else {}
        self._refuse_newer(plan, result)
        if not changed or self.check_mode:
            result["switched"] = False
            return result
        self._stage_and_switch(head, path, target, wanted, have, plan)
        result["switched"] = True
        result["verified"] = self.verify
        return result

    def _refuse_newer(self, plan: Plan, result: dict[str, t.Any]) -> None:
        if plan.newer and self.overwrite == "if-changed":
            shown = ", ".join(rel or "." for rel in plan.newer[:5]) + (f" and {len(plan.newer) - 5} more" if len(plan.newer) > 5 else "")
            raise RestoreError(
                f"refusing to overwrite {len(plan.newer)} file(s) in the target that are newer than the snapshot: {shown}. "
                "Set overwrite=always to replace them, or overwrite=if-newer to keep them; nothing was changed", result=result)

    def _restic_restore(self, snapshot_id: str, into: str, includes: list[str], verify: bool) -> None:
        args = ["restore", snapshot_id, "--target", into]
        for include in includes:
            args += ["--include", restore_patterns(include)]
        if verify:
            args.append("--verify")
        completed = self.repo.run(*args, what="restore")
        if "error" in completed.stderr.lower() and "0 errors" not in completed.stderr.lower():
            raise RestoreError(f"restic restore reported errors: {completed.stderr.strip()[-500:]}")

    def _stage_and_switch(self, head: dict[str, t.Any], path: str, target: str, wanted: dict[str, Entry], have: dict[str, Entry],
                          plan: Plan) -> None:
        parent, name = os.path.split(target)
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{name}.{RESTORE_PREFIX}-{os.getpid()}-", dir=parent)
        try:
            self._restic_restore(head["id"], staging, [path], verify=self.verify)
            staged = staging + path if path != "/" else staging
            if not os.path.lexists(staged):
                raise RestoreError(f"restic restored nothing at {path} from snapshot {head['short_id']}")
            self._prune_unselected(staged, wanted)
            problems = verify_tree(wanted, staged)
            if problems:
                raise RestoreError(f"the restored copy does not match the snapshot's listing: {'; '.join(problems[:5])}; the target was not touched")
            keep = list(plan.extra) if not self.delete else []
            keep += [rel for rel in have if rel not in wanted and rel not in plan.extra and rel]  # outside include/exclude
            if self.overwrite in ("if-newer", "never"):
                keep += plan.newer
            if self.overwrite == "never":
                keep += plan.overwrite + plan.metadata
            if wanted[""].kind == "dir" and have.get("", Entry("none")).kind == "dir":
                for rel in sorted(set(keep), key=lambda r: (r.count("/"), r)):
                    if rel and not carry_over(rel, target, staged):
                        self.notes.append(f"{rel} exists only in the target, under a path the snapshot has as a file: not kept")
            old_dir = tempfile.mkdtemp(prefix=f".{name}.{OLD_PREFIX}-{os.getpid()}-", dir=parent)
            try:
                switch_in(staged, target, old_dir)
            finally:
                shutil.rmtree(old_dir, ignore_errors=True)
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    @staticmethod
    def _prune_unselected(staged: str, wanted: dict[str, Entry]) -> None:
        """Drop what restic restored that include/exclude leave out (restic restores the whole path)."""
        if not os.path.isdir(staged) or os.path.islink(staged):
            return
        for rel, _entry in list(tree_entries(staged).items()):
            if rel and rel not in wanted and os.path.lexists(os.path.join(staged, rel)):
                full = os.path.join(staged, rel)
                if os.path.isdir(full) and not os.path.islink(full):
                    shutil.rmtree(full)
                else:
                    os.unlink(full)


class DatabaseRestore:
    """pg_restore into a named database (switched by ALTER DATABASE RENAME), MariaDB/MySQL into a new database,
    SQLite by renaming a checked copy over the file."""

    def __init__(self, manager: RestoreManager) -> None:
        self.m = manager
        self.db = manager.database or {}
        self.repo = manager.repo

    def _file_in_snapshot(self, head: dict[str, t.Any]) -> str:
        if self.m.path:
            return self.m.path
        paths = head.get("paths") or []
        if len(paths) != 1:
            raise InvalidInputError(f"snapshot {head['short_id']} holds {len(paths)} paths; choose the dump file with path")
        return paths[0]

    def run(self) -> dict[str, t.Any]:
        db = self.db
        kind = db["type"]
        head = self.repo.resolve(self.m.snapshot, self.m.host, self.m.tags)
        inner = self._file_in_snapshot(head)
        result = self.m._base(head)  # pylint: disable=protected-access
        result.update(path=inner, database_type=kind)
        if kind == "sqlite":
            target = self.m.target or db.get("path")
            if not target:
                raise InvalidInputError("target (or database.path) is required to restore a SQLite database")
            self.m._check_target(target)  # pylint: disable=protected-access
            return self._sqlite(head, inner, target, result)
        target_db = db.get("target_name") or db.get("name")
        if not target_db:
            raise InvalidInputError("database.target_name (or database.name) names the database to restore into")
        result["database"] = target_db
        exists = self._exists(target_db)
        if exists and self.m.overwrite != "always":
            raise RestoreError(f"database {target_db!r} exists; set overwrite=always to replace it (nothing was changed)")
        result.update(changed=True, replaced=exists,
                      diff={"before": {"database": target_db if exists else None}, "after": {"database": target_db, "snapshot": head["short_id"]}})
        if self.m.check_mode:
            return result
        with tempfile.TemporaryDirectory(prefix="sreops-dbrestore-") as scratch:
            self._chown(scratch)
            if kind == "postgresql":
                self._postgresql(head, inner, target_db, exists, scratch)
            else:
                self._mysql(head, inner, target_db, exists, scratch)
        result["restored_bytes"] = self._restored_bytes
        return result

    _restored_bytes = 0

    def _chown(self, path: str) -> None:
        os.chmod(path, 0o700)
        if self.db.get("os_user"):
            import pwd  # pylint: disable=import-outside-toplevel

            entry = pwd.getpwnam(self.db["os_user"])
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _client(self, argv: list[str], scratch: str | None = None, data: bytes | None = None) -> str:
        proc = self.repo.runner.spawn(argv, env=_client_env(self.db), stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                                      user=self.db.get("os_user"), cwd=scratch or "/")
        out, err = proc.communicate(data)
        if proc.returncode != 0:
            raise RestoreError(f"{os.path.basename(argv[0])} failed (exit status {proc.returncode}): {err.decode('utf-8', 'replace').strip()[-500:]}")
        return out.decode("utf-8", "replace")

    def _sql(self, dbname: str | None, sql: str, scratch: str | None = None) -> str:
        if self.db["type"] == "postgresql":
            return self._client(psql_argv(self.db, dbname or self.db.get("maintenance_db") or "postgres", sql), scratch)
        with tempfile.TemporaryDirectory(prefix="sreops-sql-") as own:
            self._chown(own)
            return self._client(mysql_argv(self.db, scratch or own, dbname, sql), scratch or own)

    def _exists(self, name: str) -> bool:
        if self.db["type"] == "postgresql":
            return self._sql(None, f"SELECT 1 FROM pg_database WHERE datname = {quote_literal(name)}").strip() == "1"
        found = self._sql(None, f"SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {quote_literal(name)}")
        if found.strip() != name:
            return False
        leftover = self._sql(None, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = "
                                   f"{quote_literal(name)} AND TABLE_NAME = '_sreops_restore_in_progress'")
        if leftover.strip() == "1":
            self._sql(None, f"DROP DATABASE {quote_mysql_ident(name)}")
            self.m.notes.append(f"dropped database {name!r}, left half-restored by an interrupted restore")
            return False
        return True

    def _stream_dump(self, head: dict[str, t.Any], inner: str, consumer_argv: list[str], scratch: str) -> None:
        """restic dump | consumer, each failure reported with its own message."""
        with tempfile.TemporaryFile() as restic_err, tempfile.TemporaryFile() as consumer_err:
            dump = self.repo.runner.spawn(self.repo.argv("dump", "--no-lock", head["id"], inner), env=self.repo.env(), stderr=restic_err)
            consumer = self.repo.runner.spawn(consumer_argv, env=_client_env(self.db), stdin=dump.stdout, stdout=subprocess.DEVNULL,
                                              stderr=consumer_err, user=self.db.get("os_user"), cwd=scratch)
            if dump.stdout is not None:
                dump.stdout.close()
            consumer.wait()
            dump.wait()
            if dump.returncode != 0:
                restic_err.seek(0)
                err = restic_err.read().decode("utf-8", "replace")
                raise classify_failure("dump", _done(dump.returncode, err), self.repo.url)
            if consumer.returncode != 0:
                consumer_err.seek(0)
                raise RestoreError(f"{os.path.basename(consumer_argv[0])} failed (exit status {consumer.returncode}): "
                                   f"{consumer_err.read().decode('utf-8', 'replace').strip()[-500:]}")

    def _postgresql(self, head: dict[str, t.Any], inner: str, target_db: str, exists: bool, scratch: str) -> None:
        suffix = f"{os.getpid()}_{int(time.time())}"
        staging = f"{target_db[:40]}_sreops_restore_{suffix}"
        self._sql(None, f"CREATE DATABASE {quote_ident(staging)}", scratch)
        try:
            argv = [self.db.get("restore_command") or "pg_restore", "--no-password", "--exit-on-error", f"--dbname={staging}"]
            for key, flag in (("host", "--host"), ("port", "--port"), ("user", "--username")):
                if self.db.get(key):
                    argv.append(f"{flag}={self.db[key]}")
            self._stream_dump(head, inner, argv, scratch)
            if exists:
                old = f"{target_db[:40]}_sreops_old_{suffix}"
                self._sql(None, f"ALTER DATABASE {quote_ident(target_db)} RENAME TO {quote_ident(old)}", scratch)
                try:
                    self._sql(None, f"ALTER DATABASE {quote_ident(staging)} RENAME TO {quote_ident(target_db)}", scratch)
                except RestoreError:
                    self._sql(None, f"ALTER DATABASE {quote_ident(old)} RENAME TO {quote_ident(target_db)}", scratch)
                    raise
                self._sql(None, f"DROP DATABASE {quote_ident(old)}", scratch)
            else:
                self._sql(None, f"ALTER DATABASE {quote_ident(staging)} RENAME TO {quote_ident(target_db)}", scratch)
        except BaseException:
            try:
                self._sql(None, f"DROP DATABASE IF EXISTS {quote_ident(staging)}", scratch)
            except RestoreError:
                pass
            raise

    def _mysql(self, head: dict[str, t.Any], inner: str, target_db: str, exists: bool, scratch: str) -> None:
        # MariaDB and MySQL cannot rename a database: the restore goes into its final name, marked in
        # progress by a table that is dropped last, so a half-restored database is recognised and redone.
        if exists:
            self._sql(None, f"DROP DATABASE {quote_mysql_ident(target_db)}", scratch)
        self._sql(None, f"CREATE DATABASE {quote_mysql_ident(target_db)}", scratch)
        self._sql(target_db, "CREATE TABLE _sreops_restore_in_progress (started TIMESTAMP)", scratch)
        try:
            self._stream_dump(head, inner, mysql_argv(self.db, scratch, target_db, None), scratch)
        except BaseException:
            try:
                self._sql(None, f"DROP DATABASE IF EXISTS {quote_mysql_ident(target_db)}", scratch)
            except RestoreError:
                pass
            raise
        self._sql(target_db, "DROP TABLE _sreops_restore_in_progress", scratch)

    def _sqlite(self, head: dict[str, t.Any], inner: str, target: str, result: dict[str, t.Any]) -> dict[str, t.Any]:
        parent, name = os.path.split(target)
        result["target"] = target
        exists = os.path.lexists(target)
        snapshot_mtime = parse_time_ns(head["time"])
        if self.m.check_mode and not exists:
            result.update(changed=True, diff={"before": {"file": None}, "after": {"file": target, "snapshot": head["short_id"]}})
            return result
        if not self.m.check_mode:
            os.makedirs(parent, exist_ok=True)
        # The copy is made beside the target so the final rename stays on one file system; check mode uses /tmp.
        scratch_parent = parent if not self.m.check_mode else None
        staging = tempfile.mkdtemp(prefix=f".{name}.{RESTORE_PREFIX}-{os.getpid()}-", dir=scratch_parent)
        try:
            copy = os.path.join(staging, name)
            with open(copy, "wb") as handle:
                dump = self.repo.runner.spawn(self.repo.argv("dump", "--no-lock", head["id"], inner), env=self.repo.env(), stdout=handle)
                _out, err = dump.communicate()
                if dump.returncode != 0:
                    raise classify_failure("dump", _done(dump.returncode, err.decode("utf-8", "replace") if err else ""), self.repo.url)
            self._restored_bytes = os.path.getsize(copy)
            result["restored_bytes"] = self._restored_bytes
            result["restored_files"] = 1
            conn = sqlite3.connect(copy)
            try:
                verdict = conn.execute("PRAGMA integrity_check").fetchall()
            finally:
                conn.close()
            if verdict != [("ok",)]:
                raise RestoreError(f"the restored SQLite database fails PRAGMA integrity_check: {verdict[:3]}; {target} was not touched")
            if exists and (same_content(copy, target) or same_sqlite(copy, target)):
                result.update(changed=False, diff={})
                return result
            if exists and os.lstat(target).st_mtime_ns > snapshot_mtime and self.m.overwrite == "if-changed":
                raise RestoreError(f"{target} changed after snapshot {head['short_id']} was taken; set overwrite=always to replace it "
                                   "(nothing was changed)")
            if exists and self.m.overwrite in ("never", "if-newer") and os.lstat(target).st_mtime_ns > snapshot_mtime:
                result.update(changed=False, diff={}, kept=True)
                return result
            result.update(changed=True, diff={"before": {"file": target if exists else None, "sha256": sha256_file(target) if exists else None},
                                              "after": {"file": target, "sha256": sha256_file(copy), "snapshot": head["short_id"]}})
            if self.m.check_mode:
                return result
            if exists:
                st = os.stat(target)
                os.chown(copy, st.st_uid, st.st_gid)
                os.chmod(copy, stat.S_IMODE(st.st_mode))
            os.replace(copy, target)
            fsync_dir(parent)
            return result
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def query(self, result: dict[str, t.Any], sql: str) -> str:
        if self.db["type"] == "sqlite":
            conn = sqlite3.connect(f"file:{result['target']}?mode=ro", uri=True)
            try:
                rows = conn.execute(sql).fetchall()
            except sqlite3.Error as exc:
                raise RestoreError(f"probe_sql failed on {result['target']}: {exc}", result=result) from exc
            finally:
                conn.close()
            return "\n".join("|".join(str(v) for v in row) for row in rows)
        return self._sql(result["database"], sql)

    def drop(self, result: dict[str, t.Any]) -> None:
        if self.db["type"] == "sqlite":
            os.unlink(result["target"])
        elif self.db["type"] == "postgresql":
            self._sql(None, f"DROP DATABASE {quote_ident(result['database'])}")
        else:
            self._sql(None, f"DROP DATABASE {quote_mysql_ident(result['database'])}")


def _done(rc: int, stderr: str) -> Completed:
    return Completed([], rc, "", stderr, 0.0)
