# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: a normalized snapshot of a host, in facets, stored atomically and compressed.

A snapshot document (JSON, gzip) holds, per facet, the items found and a digest over their portable
values. The ``files`` facet is kept per directory: each directory's entries (one list per entry, see
COLUMNS), a digest over the entries' portable attributes (``local``) and a Merkle digest over the
directory and everything below it (``tree``), so two hosts can find where their trees differ by
exchanging digests before any file list.

Unchanged files are not re-read: when a file's inode, size, mtime and ctime equal the previous
snapshot's, its sha256 is taken from there. ctime cannot be set back from user space, so a content
change whose mtime was restored (``touch -r``) is still re-hashed. Files changed shortly before the
previous snapshot started are always re-hashed (their timestamps may not have moved since).
Directories are scanned by the module's own process and forked worker processes when the host has more than one
core; without multiprocessing support the same code runs in the module's own process alone.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import gzip
import hashlib
import json
import operator
import os
import socket
import stat
import time
import typing as t
import zlib

from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError, SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._host_facets import (
    GlobMatcher, Runner, collect_cron, collect_kernel_modules, collect_listening, collect_mounts, collect_packages,
    collect_services, collect_sysctl, collect_table, display, is_utf8, parse_group, parse_mountinfo, parse_passwd,
)
from ansible_collections.sre.ops.plugins.module_utils._io import write_atomic

FORMAT = "sre.ops.snapshot"
FORMAT_VERSION = 1
DEFAULT_DIR = "/var/lib/sre-ops/drift"
DEFAULT_PATH = DEFAULT_DIR + "/baseline.json.gz"
# The options of every module that scans files (documented in the sre.ops._snapshot doc fragment).
SCAN_SPEC = {"workers": {"type": "int", "default": 0}, "trust_stat": {"type": "bool", "default": True}}
DEFAULT_FILES = [{"path": "/etc"}, {"path": "/usr/local/bin"}, {"path": "/usr/local/sbin"}]
FACETS = ("files", "packages", "services", "sysctl", "listening", "users", "groups", "cron", "mounts", "kernel_modules")

# One list per directory entry, in this order (compact to store, fast to compare).
COLUMNS = ("name", "type", "mode", "uid", "gid", "size", "mtime_ns", "ctime_ns", "inode", "nlink", "target", "sha256", "grown_from")
(N_NAME, N_TYPE, N_MODE, N_UID, N_GID, N_SIZE, N_MTIME, N_CTIME, N_INO, N_NLINK, N_TARGET, N_SHA, N_GROWN) = range(len(COLUMNS))
ATTRIBUTES = ("type", "mode", "uid", "gid", "size", "mtime", "ctime", "inode", "nlink", "target", "sha256")
ATTRIBUTE_INDEX = {"type": N_TYPE, "mode": N_MODE, "uid": N_UID, "gid": N_GID, "size": N_SIZE, "mtime": N_MTIME, "ctime": N_CTIME,
                   "inode": N_INO, "nlink": N_NLINK, "target": N_TARGET, "sha256": N_SHA}
# Attributes that mean the same on two hosts; fleet comparison and the Merkle digests use only these.
PORTABLE = ("type", "mode", "uid", "gid", "size", "target", "sha256")
PRESETS = {
    "all": ATTRIBUTES,
    "content": PORTABLE,
    "permissions": ("type", "mode", "uid", "gid", "target"),
    "growing": ("type", "mode", "uid", "gid", "inode", "size", "target", "sha256", "growing"),
}
TYPE_NAMES = {"f": "file", "d": "directory", "l": "symlink", "p": "fifo", "s": "socket", "c": "char device", "b": "block device", "?": "unknown"}
_TYPES = {stat.S_IFREG: "f", stat.S_IFDIR: "d", stat.S_IFLNK: "l", stat.S_IFIFO: "p", stat.S_IFSOCK: "s", stat.S_IFCHR: "c", stat.S_IFBLK: "b"}
# Filesystems whose content is the kernel's, not configuration: never descended into from a parent rule.
PSEUDO_FILESYSTEMS = frozenset((
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs", "pstore", "bpf",
    "configfs", "fusectl", "mqueue", "hugetlbfs", "autofs", "binfmt_misc", "efivarfs", "rpc_pipefs", "nsfs",
))
RACY_WINDOW_NS = 2_000_000_000
# Directory digests sent for fleet comparison are cut to 64 bits: enough to tell a few thousand versions apart.
DIGEST_CHARS = 16
ISSUE_LIMIT = 200
HASH_BLOCK = 1 << 20
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)
_NOATIME = getattr(os, "O_NOATIME", 0)


class SnapshotError(SreOpsError):
    """A snapshot could not be taken, read or written."""


class SnapshotMissing(SnapshotError):
    """There is no snapshot at the path."""


def iso_time(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // 1_000_000_000))


def iso_time_ns(ns: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 1_000_000_000)) + f".{ns % 1_000_000_000:09d}Z"


# ----- file rules -----------------------------------------------------------------------------------
def normalize_rules(raw_rules: list[dict[str, t.Any]]) -> list[dict[str, t.Any]]:
    """Validate the files option and expand presets; errors name the rule and the field."""
    rules = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules):
        where = f"files[{index}]"
        if not isinstance(raw, dict):
            raise InvalidInputError(f"{where} must be a dictionary with at least path, got {raw!r}")
        unknown = sorted(set(raw) - {"path", "attributes", "exclude", "include", "one_file_system"})
        if unknown:
            raise InvalidInputError(f"{where} has unknown keys {', '.join(unknown)}; use path, attributes, exclude, include, one_file_system")
        path = raw.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise InvalidInputError(f"{where}.path must be an absolute path, got {path!r}")
        path = os.path.normpath(path)
        if path.startswith("//"):
            path = "/" + path.lstrip("/")
        if path in seen:
            raise InvalidInputError(f"{where}.path {path} is listed twice; give each path once")
        seen.add(path)
        attributes = _expand_attributes(raw.get("attributes") or ["all"], where)
        patterns = {}
        for key in ("exclude", "include"):
            value = raw.get(key) or []
            if isinstance(value, str):
                value = [value]
            if not isinstance(value, list) or not all(isinstance(p, str) and p for p in value):
                raise InvalidInputError(f"{where}.{key} must be a list of glob patterns, got {value!r}")
            patterns[key] = sorted(set(value))
        rules.append({
            "path": path,
            "attributes": attributes,
            "exclude": patterns["exclude"],
            "include": patterns["include"],
            "one_file_system": bool(raw.get("one_file_system", False)),
        })
    return rules


def _expand_attributes(names: t.Any, where: str) -> list[str]:
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, list):
        raise InvalidInputError(f"{where}.attributes must be a list, got {names!r}")
    chosen: set[str] = set()
    for name in names:
        if name in PRESETS:
            chosen.update(PRESETS[name])
        elif name in ATTRIBUTES or name == "growing":
            chosen.add(name)
        else:
            raise InvalidInputError(
                f"{where}.attributes: unknown attribute {name!r}; choose from {', '.join(ATTRIBUTES)}, growing, "
                f"or a preset ({', '.join(PRESETS)})"
            )
    if "growing" in chosen:
        # Growth is judged by checking that the old content is still the start of the file.
        chosen.update(("size", "sha256"))
    chosen.add("type")
    return [a for a in ATTRIBUTES + ("growing",) if a in chosen]


def portable_indexes(rule: dict[str, t.Any]) -> list[int]:
    attrs = set(rule["attributes"])
    if "growing" in attrs:
        attrs -= {"size", "sha256"}
    return [ATTRIBUTE_INDEX[a] for a in PORTABLE if a in attrs]


def portable_entry(entry: list[t.Any], indexes: list[int]) -> list[t.Any]:
    """The values of an entry two hosts can share (name first)."""
    return [entry[N_NAME]] + [entry[index] for index in indexes]


def _local_digest(entries: list[list[t.Any]], indexes: list[int]) -> str:
    getter = operator.itemgetter(N_NAME, *indexes)
    payload = json.dumps(list(map(getter, entries)), separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8", "surrogateescape")).hexdigest()


# ----- scanning -------------------------------------------------------------------------------------
# What the scanning functions read. The parent fills it before the worker processes are forked, so the
# workers inherit the previous snapshot instead of receiving it through a pipe.
_SCAN: dict[str, t.Any] = {}


def _hash_file(path: str, lstat_result: os.stat_result, prefix_len: int | None,
               issues: list[list[t.Any]]) -> tuple[str | None, str | None, os.stat_result | None, bool]:
    """sha256 of a regular file, and of its first prefix_len bytes; (sha, prefix_sha, fstat, vanished).

    Opened with O_NOFOLLOW|O_NONBLOCK and checked with fstat, so a file swapped for a link, FIFO or device
    between the directory listing and the open is never followed or read.
    """
    try:
        try:
            fd = os.open(path, _OPEN_FLAGS | _NOATIME)
        except PermissionError:
            # O_NOATIME is allowed to the file's owner and to root only.
            fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        issues.append([path, "vanished", "removed while the snapshot was taken"])
        return None, None, None, True
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            issues.append([path, "changed_during_scan", "replaced by a symlink while the snapshot was taken"])
        else:
            issues.append([path, "unreadable", exc.strerror or str(exc)])
        return None, None, None, False
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_ino != lstat_result.st_ino:
            issues.append([path, "changed_during_scan", "replaced while the snapshot was taken; not read"])
            return None, None, None, False
        digest = hashlib.sha256()
        prefix_digest = None
        if prefix_len == 0:
            prefix_digest = digest.hexdigest()
        remaining = prefix_len if prefix_len else None
        # Ask for what the file holds (plus one byte to see the end): a 1 MiB request for a small file would make
        # the allocator map and unmap a fresh 1 MiB buffer for every file.
        want = info.st_size + 1 if info.st_size < HASH_BLOCK else HASH_BLOCK
        total = 0
        while True:
            try:
                chunk = os.read(fd, want)
            except OSError as exc:
                issues.append([path, "unreadable", exc.strerror or str(exc)])
                return None, None, info, False
            if not chunk:
                break
            if remaining is not None and len(chunk) >= remaining:
                digest.update(chunk[:remaining])
                prefix_digest = digest.hexdigest()
                digest.update(chunk[remaining:])
                remaining = None
            else:
                digest.update(chunk)
                if remaining is not None:
                    remaining -= len(chunk)
            total += len(chunk)
            if len(chunk) < want and total >= info.st_size:
                break
            want = HASH_BLOCK
        return digest.hexdigest(), prefix_digest, info, False
    finally:
        os.close(fd)


def _make_entry(name: str, path: str, info: os.stat_result, rule_index: int, previous: list[t.Any] | None,
                issues: list[list[t.Any]]) -> list[t.Any] | None:
    """One entry list for path, or None if it vanished; hashes only what the cache cannot vouch for."""
    ctx = _SCAN
    mode = info.st_mode
    kind = _TYPES.get(stat.S_IFMT(mode), "?")
    target = None
    sha = None
    grown = None
    if kind == "f":
        if ctx["want_sha"][rule_index]:
            if (previous is not None and previous[N_TYPE] == "f" and previous[N_SHA] is not None
                    and previous[N_INO] == info.st_ino and previous[N_SIZE] == info.st_size
                    and previous[N_MTIME] == info.st_mtime_ns and previous[N_CTIME] == info.st_ctime_ns
                    and info.st_ctime_ns < ctx["trust_before_ns"]):
                sha = previous[N_SHA]
                grown = previous[N_GROWN]
            else:
                prefix_len = None
                if (ctx["growing"][rule_index] and previous is not None and previous[N_TYPE] == "f"
                        and previous[N_SHA] is not None and info.st_size >= previous[N_SIZE]):
                    prefix_len = previous[N_SIZE]
                sha, grown, opened, vanished = _hash_file(path, info, prefix_len, issues)
                if vanished:
                    return None
                if opened is not None:
                    info = opened
                    mode = info.st_mode
    elif kind == "l":
        try:
            target = os.readlink(path)
        except FileNotFoundError:
            issues.append([path, "vanished", "removed while the snapshot was taken"])
            return None
        except OSError as exc:
            issues.append([path, "unreadable", exc.strerror or str(exc)])
        try:
            os.stat(path)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                issues.append([path, "symlink_loop", f"resolving the link loops (-> {target})"])
    elif kind in ("c", "b"):
        target = f"{os.major(info.st_rdev)}:{os.minor(info.st_rdev)}"
    elif kind in ("p", "s"):
        issues.append([path, "special", f"{TYPE_NAMES[kind]}: metadata only, never opened"])
    if not is_utf8(name):
        issues.append([path, "non_utf8_name", "the name is not valid UTF-8; shown with \\x escapes"])
    # Only files and symlinks have a size worth comparing; a directory's depends on its filesystem.
    size = info.st_size if kind in ("f", "l") else 0
    return [name, kind, mode & 0o7777, info.st_uid, info.st_gid, size, info.st_mtime_ns, info.st_ctime_ns,
            info.st_ino, info.st_nlink, target, sha, grown]


def _quick_entry(name: str, path: str, inode: int, open_flags: int, buffer: bytearray) -> list[t.Any] | None:
    """The entry of a small regular file, from its open descriptor alone, or None to leave it to the general path.

    inode is the listing's (readdir's d_ino): a file swapped for another between the listing and the open is
    not the one listed and is left to the general path, which lstats it. Everything recorded comes from fstat on
    the open descriptor, and the content is read into the caller's reused buffer in one read (a file that holds
    more than its fstat size, or more than the buffer, goes to the general path too).
    """
    try:
        fd = os.open(path, open_flags)
    except OSError:
        return None
    try:
        opened = os.fstat(fd)
        if not stat.S_ISREG(opened.st_mode) or opened.st_ino != inode or opened.st_size >= HASH_BLOCK:
            return None
        length = os.readv(fd, (buffer,))
    except OSError:
        return None
    finally:
        os.close(fd)
    if length != opened.st_size:
        return None
    with memoryview(buffer) as view, view[:length] as data:
        sha = hashlib.sha256(data).hexdigest()
    return [name, "f", opened.st_mode & 0o7777, opened.st_uid, opened.st_gid, length, opened.st_mtime_ns, opened.st_ctime_ns,
            opened.st_ino, opened.st_nlink, None, sha, None]


def _scan_directory(dirpath: str, rule_index: int, issues: list[list[t.Any]]) -> tuple[t.Any, list[str]]:
    """Entries of one directory and the subdirectories to descend into.

    Returns (None, subdirs) when the entries equal the previous snapshot's (the caller reuses those), and
    ("unreadable", []) when the directory cannot be listed.
    """
    ctx = _SCAN
    exclude = ctx["exclude"][rule_index]
    include = ctx["include"][rule_index]
    stop = ctx["stop_dirs"]
    root_dev = ctx["root_dev"][rule_index]
    previous = ctx["prev_dirs"].get(dirpath)
    prev_by_name: dict[str, list[t.Any]] = {}
    if previous is not None and previous.get("entries") and ctx["prev_rule_same"](previous.get("rule"), rule_index):
        prev_by_name = {e[N_NAME]: e for e in previous["entries"]}
    else:
        previous = None
    prefix = dirpath + "/" if dirpath != "/" else "/"
    entries: list[list[t.Any]] = []
    subdirs: list[str] = []
    try:
        listing = os.scandir(dirpath)
    except FileNotFoundError:
        issues.append([dirpath, "vanished", "directory removed while the snapshot was taken"])
        return "vanished", []
    except OSError as exc:
        issues.append([dirpath, "unreadable", exc.strerror or str(exc)])
        return "unreadable", []
    other_roots = ctx["other_roots"]
    want_sha = ctx["want_sha"][rule_index]
    quick_hash = want_sha and not ctx["growing"][rule_index]
    open_flags = ctx["open_flags"]
    trust_before = ctx["trust_before_ns"]
    prev_get = prev_by_name.get
    buffer = ctx["buffer"]
    with listing:
        for item in listing:
            name = item.name
            path = prefix + name
            if path in other_roots:
                continue  # scanned under its own, deeper rule
            if exclude.any and exclude(name, path):
                continue
            old = prev_get(name)
            # The common case of a first snapshot (or a new file), inline and without an lstat: a small regular file
            # (by readdir's d_type) read and hashed in one go, its metadata from fstat on the open descriptor. Anything
            # unusual (an error, a file swapped or changed while read) takes the general path below.
            if quick_hash and old is None and name.isascii() and (not include.any or include(name, path)):
                try:
                    regular = item.is_file(follow_symlinks=False)
                except OSError:
                    regular = False
                if regular:
                    entry = _quick_entry(name, path, item.inode(), open_flags, buffer)
                    if entry is not None:
                        entries.append(entry)
                        continue
            try:
                info = item.stat(follow_symlinks=False)
            except FileNotFoundError:
                issues.append([path, "vanished", "removed while the snapshot was taken"])
                continue
            except OSError as exc:
                issues.append([path, "unreadable", exc.strerror or str(exc)])
                continue
            mode = info.st_mode
            if stat.S_ISDIR(mode) and path not in stop and (root_dev is None or info.st_dev == root_dev):
                subdirs.append(path)
            if include.any and not include(name, path):
                continue
            # The common case of a re-scan, kept inline: a regular file whose stat has not moved.
            if (want_sha and old is not None and stat.S_ISREG(mode) and old[N_INO] == info.st_ino and old[N_MTIME] == info.st_mtime_ns
                    and old[N_CTIME] == info.st_ctime_ns and old[N_SIZE] == info.st_size and old[N_TYPE] == "f"
                    and old[N_SHA] is not None and info.st_ctime_ns < trust_before and name.isascii()):
                entries.append([name, "f", mode & 0o7777, info.st_uid, info.st_gid, info.st_size, info.st_mtime_ns, info.st_ctime_ns,
                                info.st_ino, info.st_nlink, None, old[N_SHA], old[N_GROWN]])
                continue
            # A changed small file of a re-scan, read and hashed in one go too.
            if quick_hash and stat.S_ISREG(mode) and info.st_size < HASH_BLOCK and name.isascii():
                entry = _quick_entry(name, path, info.st_ino, open_flags, buffer)
                if entry is not None:
                    entries.append(entry)
                    continue
            entry = _make_entry(name, path, info, rule_index, old, issues)
            if entry is not None:
                entries.append(entry)
    entries.sort()
    if previous is not None and entries == previous["entries"]:
        return None, subdirs
    return entries, subdirs


def _scan_unit(unit: tuple[str, int, bool]) -> tuple[list[tuple[str, int, t.Any, str | None]], list[list[t.Any]]]:
    """Scan a directory (and, when recursive, everything below it). Runs in a worker process or in-process."""
    top, rule_index, recursive = unit
    issues: list[list[t.Any]] = []
    found = []
    indexes = _SCAN["portable"][rule_index]
    stack = [top]
    while stack:
        dirpath = stack.pop()
        entries, subdirs = _scan_directory(dirpath, rule_index, issues)
        local = _local_digest(entries, indexes) if isinstance(entries, list) else None
        found.append((dirpath, rule_index, entries, local))
        if recursive:
            stack.extend(reversed(subdirs))
    return found, issues


def _pseudo_mounts(mountinfo: str = "/proc/self/mountinfo") -> set[str]:
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as handle:
            mounts = parse_mountinfo(handle.read())
    except OSError:
        return set()
    return {m["mount_point"] for m in mounts if m["fstype"] in PSEUDO_FILESYSTEMS}


def _units(dir_roots: list[tuple[str, int]], target: int) -> list[tuple[str, int, bool]]:
    """Split the trees into units of work: expand level by level until there are enough for the workers."""
    units: list[tuple[str, int, bool]] = []
    frontier = list(dir_roots)
    depth = 0
    while frontier and len(frontier) < target and depth < 6:
        expanded = []
        for dirpath, rule_index in frontier:
            units.append((dirpath, rule_index, False))
            expanded.extend((sub, rule_index) for sub in _list_subdirs(dirpath, rule_index))
        frontier = expanded
        depth += 1
    units.extend((dirpath, rule_index, True) for dirpath, rule_index in frontier)
    return units


def _list_subdirs(dirpath: str, rule_index: int) -> list[str]:
    ctx = _SCAN
    exclude = ctx["exclude"][rule_index]
    root_dev = ctx["root_dev"][rule_index]
    prefix = dirpath + "/" if dirpath != "/" else "/"
    subdirs = []
    try:
        with os.scandir(dirpath) as listing:
            for item in listing:
                path = prefix + item.name
                if path in ctx["stop_dirs"] or (exclude.any and exclude(item.name, path)):
                    continue
                try:
                    if not item.is_dir(follow_symlinks=False):
                        continue
                    if root_dev is not None and item.stat(follow_symlinks=False).st_dev != root_dev:
                        continue
                except OSError:
                    continue
                subdirs.append(path)
    except OSError:
        return []
    return sorted(subdirs)


def worker_count(requested: int) -> int:
    if requested and requested > 0:
        return requested
    try:
        return max(1, min(len(os.sched_getaffinity(0)), 8))
    except (AttributeError, OSError):
        return max(1, min(os.cpu_count() or 1, 8))


def _run_units(units: list[tuple[str, int, bool]], workers: int) -> tuple[list[t.Any], str | None]:
    """Scan units with a pool of forked workers; fall back to this process where that is not possible."""
    note = None
    if workers > 1 and len(units) > 1:
        try:
            import multiprocessing  # pylint: disable=import-outside-toplevel
            from concurrent.futures import ProcessPoolExecutor  # pylint: disable=import-outside-toplevel

            context = multiprocessing.get_context("fork")
            # This process is one of the workers: the pool takes units from the front, this process from the back
            # (a unit whose future it can still cancel has not been handed to a worker). Its units never cross a
            # pipe, which spares pickling and unpickling their entries, and the pool forks one process fewer.
            with ProcessPoolExecutor(max_workers=workers - 1, mp_context=context) as pool:
                futures = [pool.submit(_scan_unit, unit) for unit in units]
                here = {}
                for index in range(len(units) - 1, -1, -1):
                    if futures[index].cancel():
                        here[index] = _scan_unit(units[index])
                return [here[index] if index in here else futures[index].result() for index in range(len(units))], None
        except (ImportError, OSError, ValueError, NotImplementedError, RuntimeError) as exc:
            note = f"parallel scanning unavailable ({type(exc).__name__}: {exc}); scanned in one process"
        except Exception as exc:  # pylint: disable=broad-except
            # BrokenProcessPool and friends: the work is redone here, never lost.
            note = f"parallel scanning failed ({type(exc).__name__}: {exc}); scanned in one process"
        return [_scan_unit(unit) for unit in units], note
    return [_scan_unit(unit) for unit in units], None


def scan_files(rules: list[dict[str, t.Any]], previous: dict[str, t.Any] | None = None, previous_started_ns: int | None = None,
               workers: int = 0, trust_stat: bool = True) -> dict[str, t.Any]:
    """The files facet for rules; previous (a files facet) supplies hashes of files whose stat has not moved."""
    prev_dirs = (previous or {}).get("dirs") or {}
    prev_roots = (previous or {}).get("roots") or {}
    prev_rules = (previous or {}).get("rules") or []
    roots = {rule["path"]: index for index, rule in enumerate(rules)}
    issues: list[list[t.Any]] = []
    _SCAN.clear()
    _SCAN.update({
        "prev_dirs": prev_dirs,
        "prev_rule_same": lambda prev_index, index: (
            isinstance(prev_index, int) and 0 <= prev_index < len(prev_rules) and prev_rules[prev_index] == rules[index]),
        "trust_before_ns": (previous_started_ns - RACY_WINDOW_NS) if (trust_stat and previous_started_ns) else -1,
        "want_sha": ["sha256" in r["attributes"] for r in rules],
        # O_NOATIME is allowed to root and to a file's owner: as root it spares every file an atime update.
        "open_flags": _OPEN_FLAGS | (_NOATIME if os.geteuid() == 0 else 0),
        # Small files are read into this one buffer (each worker process writes its own copy).
        "buffer": bytearray(HASH_BLOCK),
        "growing": ["growing" in r["attributes"] for r in rules],
        "exclude": [GlobMatcher(r["exclude"]) for r in rules],
        "include": [GlobMatcher(r["include"]) for r in rules],
        "portable": [portable_indexes(r) for r in rules],
        "other_roots": set(roots),
        "stop_dirs": set(roots) | _pseudo_mounts(),
        "root_dev": [None] * len(rules),
    })
    root_entries: dict[str, dict[str, t.Any]] = {}
    dir_roots: list[tuple[str, int]] = []
    for path, index in roots.items():
        previous_root = (prev_roots.get(path) or {}).get("entry")
        if not _SCAN["prev_rule_same"]((prev_roots.get(path) or {}).get("rule"), index):
            previous_root = None
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            root_entries[path] = {"rule": index, "entry": None}
            issues.append([path, "missing", "the path does not exist"])
            continue
        except OSError as exc:
            root_entries[path] = {"rule": index, "entry": None}
            issues.append([path, "unreadable", exc.strerror or str(exc)])
            continue
        entry = _make_entry(path, path, info, index, previous_root, issues)
        root_entries[path] = {"rule": index, "entry": entry}
        if entry is not None and entry[N_TYPE] == "d":
            if rules[index]["one_file_system"]:
                _SCAN["root_dev"][index] = info.st_dev
            dir_roots.append((path, index))
    count = worker_count(workers)
    units = _units(dir_roots, count * 8) if count > 1 else [(p, i, True) for p, i in dir_roots]
    results, note = _run_units(units, count)
    dirs: dict[str, dict[str, t.Any]] = {}
    for found, unit_issues in results:
        issues.extend(unit_issues)
        for dirpath, rule_index, entries, local in found:
            if entries is None:
                same = prev_dirs[dirpath]
                dirs[dirpath] = {"rule": rule_index, "entries": same["entries"], "local": same["local"]}
            elif isinstance(entries, str):
                if entries == "unreadable":
                    dirs[dirpath] = {"rule": rule_index, "entries": None, "local": None, "error": entries}
            else:
                dirs[dirpath] = {"rule": rule_index, "entries": entries, "local": local}
    _SCAN.clear()
    facet = {
        "status": "ok",
        "rules": rules,
        "columns": list(COLUMNS),
        "roots": root_entries,
        "dirs": dirs,
        "issues": issues,
        "workers": count if note is None else 1,
    }
    if note:
        facet["note"] = note
    add_tree_digests(facet)
    return facet


def add_tree_digests(facet: dict[str, t.Any]) -> None:
    """Merkle digests: each directory's over its local digest and its subdirectories'; each root's over both."""
    dirs = facet["dirs"]
    for dirpath in sorted(dirs, key=lambda p: p.count("/"), reverse=True):
        info = dirs[dirpath]
        digest = hashlib.sha256((info.get("local") or info.get("error") or "").encode())
        prefix = dirpath + "/" if dirpath != "/" else "/"
        for entry in info.get("entries") or ():
            if entry[N_TYPE] == "d":
                child = dirs.get(prefix + entry[N_NAME])
                if child is not None:
                    digest.update(entry[N_NAME].encode("utf-8", "surrogateescape") + b"\0" + child["tree"].encode() + b"\n")
        info["tree"] = digest.hexdigest()
    rules = facet["rules"]
    for path, root in facet["roots"].items():
        entry = root.get("entry")
        own = portable_entry(entry, portable_indexes(rules[root["rule"]]))[1:] if entry else None
        digest = hashlib.sha256(json.dumps(own, separators=(",", ":")).encode("utf-8", "surrogateescape"))
        if path in dirs:
            digest.update(dirs[path]["tree"].encode())
        root["tree"] = digest.hexdigest()
    facet["digest"] = hashlib.sha256(
        json.dumps(sorted((p, r["tree"]) for p, r in facet["roots"].items()), separators=(",", ":")).encode("utf-8", "surrogateescape")
    ).hexdigest()
    facet["count"] = sum(len(d.get("entries") or ()) for d in dirs.values()) + sum(1 for r in facet["roots"].values() if r.get("entry"))


def file_entries(facet: dict[str, t.Any]) -> t.Iterator[tuple[str, list[t.Any], dict[str, t.Any]]]:
    """Every (path, entry, rule) of a files facet, roots included."""
    rules = facet["rules"]
    for path, root in facet["roots"].items():
        if root.get("entry"):
            yield path, root["entry"], rules[root["rule"]]
    for dirpath, info in facet["dirs"].items():
        prefix = dirpath + "/" if dirpath != "/" else "/"
        rule = rules[info["rule"]]
        for entry in info.get("entries") or ():
            yield prefix + entry[N_NAME], entry, rule


# ----- other facets: parsers (pure, tested on captured output) and collectors ---------------------------
def item_digest(items: dict[str, t.Any]) -> str:
    return hashlib.sha256(json.dumps(items, sort_keys=True, separators=(",", ":")).encode("utf-8", "surrogateescape")).hexdigest()


# ----- the document -----------------------------------------------------------------------------------
def make_config(facets: list[str], files: list[dict[str, t.Any]], sysctl_exclude: list[str], listening_owned_only: bool) -> dict[str, t.Any]:
    unknown = [f for f in facets if f not in FACETS]
    if unknown:
        raise InvalidInputError(f"facets: unknown facet {', '.join(unknown)}; choose from {', '.join(FACETS)}")
    return {
        "facets": [f for f in FACETS if f in facets],
        "files": normalize_rules(files) if "files" in facets else [],
        "sysctl_exclude": sorted(set(sysctl_exclude)),
        "listening_owned_only": bool(listening_owned_only),
    }


def take_snapshot(config: dict[str, t.Any], runner: Runner, previous: dict[str, t.Any] | None = None,
                  workers: int = 0, trust_stat: bool = True) -> dict[str, t.Any]:
    started_ns = time.time_ns()
    started = time.monotonic()
    facets: dict[str, dict[str, t.Any]] = {}
    for name in config["facets"]:
        if name == "files":
            prev_files = (previous or {}).get("facets", {}).get("files")
            facet = scan_files(config["files"], prev_files, (previous or {}).get("started_ns"), workers, trust_stat)
        else:
            if name == "packages":
                facet = collect_packages(runner)
            elif name == "services":
                facet = collect_services(runner)
            elif name == "sysctl":
                facet = collect_sysctl(config["sysctl_exclude"])
            elif name == "listening":
                facet = collect_listening(config["listening_owned_only"])
            elif name == "users":
                facet = collect_table("/etc/passwd", parse_passwd)
            elif name == "groups":
                facet = collect_table("/etc/group", parse_group)
            elif name == "cron":
                facet = collect_cron()
            elif name == "mounts":
                facet = collect_mounts()
            else:
                facet = collect_kernel_modules()
            facet["digest"] = item_digest(facet["items"])
            facet["count"] = len(facet["items"])
        facets[name] = facet
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "host": socket.gethostname(),
        "taken_at": iso_time(started_ns),
        "started_ns": started_ns,
        "duration_s": round(time.monotonic() - started, 3),
        "config": config,
        "facets": facets,
        "acceptances": [],
    }


def summary(doc: dict[str, t.Any]) -> dict[str, t.Any]:
    """Per-facet digests and counts, and per file root its Merkle digest: what hosts exchange first."""
    facets = {}
    for name, facet in doc["facets"].items():
        facets[name] = {"digest": facet.get("digest"), "count": facet.get("count", 0), "status": facet.get("status", "ok")}
        if facet.get("note"):
            facets[name]["note"] = facet["note"]
    files = doc["facets"].get("files")
    roots = {display(p): r["tree"] for p, r in files["roots"].items()} if files else {}
    return {"taken_at": doc["taken_at"], "host": doc.get("host"), "facets": facets, "roots": roots}


def issue_report(doc: dict[str, t.Any], limit: int = 50) -> dict[str, t.Any]:
    issues = (doc["facets"].get("files") or {}).get("issues") or []
    counts: dict[str, int] = {}
    for _path, kind, _detail in issues:
        counts[kind] = counts.get(kind, 0) + 1
    return {"counts": counts, "items": [{"path": display(p), "kind": k, "detail": d} for p, k, d in issues[:limit]]}


def bucket_of(key: str) -> str:
    """Which of the 64 buckets a facet item falls in (by its key), for comparing facets bucket by bucket."""
    return f"{hashlib.sha256(key.encode('utf-8', 'surrogateescape')).digest()[0] >> 2:02x}"


def bucket_digests(items: dict[str, t.Any]) -> dict[str, str]:
    buckets: dict[str, dict[str, t.Any]] = {}
    for key, value in items.items():
        buckets.setdefault(bucket_of(key), {})[key] = value
    return {name: item_digest(content)[:DIGEST_CHARS] for name, content in sorted(buckets.items())}


def query(doc: dict[str, t.Any], facets: list[str] | None = None, facet_buckets: list[str] | None = None,
          buckets: dict[str, list[str]] | None = None, roots: list[str] | None = None, dirs: list[str] | None = None) -> dict[str, t.Any]:
    """Parts of a stored snapshot: a facet's items, or (for fleet comparison) its bucket digests or the items of some
    buckets; the directory digests below file roots; the entries of directories. Strings are made JSON-safe."""
    result: dict[str, t.Any] = {"summary": summary(doc)}
    stored = {name: facet for name, facet in doc["facets"].items() if name != "files"}
    if facets:
        result["items"] = {f: stored[f]["items"] for f in facets if f in stored}
    if facet_buckets:
        result["buckets"] = {f: bucket_digests(stored[f]["items"]) for f in facet_buckets if f in stored}
    if buckets:
        chosen: dict[str, dict[str, t.Any]] = {}
        for facet, names in buckets.items():
            if facet in stored:
                wanted = set(names)
                chosen[facet] = {k: v for k, v in stored[facet]["items"].items() if bucket_of(k) in wanted}
        result["bucket_items"] = chosen
    files = doc["facets"].get("files")
    if files and roots:
        by_display = {display(p): p for p in files["roots"]}
        trees = {}
        for wanted in roots:
            path = by_display.get(wanted)
            if path is None:
                continue
            root = files["roots"][path]
            rule = files["rules"][root["rule"]]
            indexes = portable_indexes(rule)
            own = portable_entry(root["entry"], indexes)[1:] if root.get("entry") else None
            below = {
                display(d): (info.get("local") or "unreadable")[:DIGEST_CHARS]
                for d, info in files["dirs"].items()
                if info["rule"] == root["rule"] and (d == path or d.startswith(path.rstrip("/") + "/"))
            }
            trees[wanted] = {"entry": own, "attributes": [a for a in PORTABLE if ATTRIBUTE_INDEX[a] in indexes], "dirs": below}
        result["trees"] = trees
    if files and dirs:
        by_display = {display(d): d for d in files["dirs"]} if any(not d.isascii() for d in dirs) else {}
        entries = {}
        for wanted in dirs:
            info = files["dirs"].get(by_display.get(wanted, wanted))
            if info is None or info.get("entries") is None:
                continue
            indexes = portable_indexes(files["rules"][info["rule"]])
            entries[wanted] = [[display(v) if isinstance(v, str) else v for v in portable_entry(e, indexes)] for e in info["entries"]]
        result["entries"] = entries
    return result


# ----- storage -----------------------------------------------------------------------------------------
def encode(doc: dict[str, t.Any]) -> bytes:
    payload = json.dumps(doc, separators=(",", ":"), ensure_ascii=True).encode("ascii")
    return gzip.compress(payload, compresslevel=1, mtime=0)


def write_snapshot(path: str, doc: dict[str, t.Any]) -> int:
    """Write atomically (temp file, fsync, rename), readable by root only; returns the bytes written."""
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
    except OSError as exc:
        raise SnapshotError(f"cannot create {directory} for the snapshot: {exc.strerror}") from exc
    data = encode(doc)
    write_atomic(path, data, mode=0o600)
    return len(data)


def read_snapshot(path: str) -> dict[str, t.Any]:
    """The snapshot at path; SnapshotMissing if there is none, SnapshotError (saying what is wrong) if unreadable."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError as exc:
        raise SnapshotMissing(f"there is no snapshot at {path}") from exc
    except OSError as exc:
        raise SnapshotError(f"cannot read the snapshot {path}: {exc.strerror}") from exc
    try:
        doc = json.loads(gzip.decompress(raw).decode("ascii"))
    except (OSError, EOFError, zlib.error, UnicodeDecodeError, ValueError) as exc:
        raise SnapshotError(f"{path} is corrupt: not a gzip-compressed JSON snapshot ({type(exc).__name__}: {exc})") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise SnapshotError(f"{path} is not an sre.ops snapshot (format {doc.get('format') if isinstance(doc, dict) else None!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise SnapshotError(f"{path} has snapshot format version {doc.get('format_version')!r}; this collection reads version {FORMAT_VERSION}")
    for key in ("config", "facets", "taken_at", "started_ns"):
        if key not in doc:
            raise SnapshotError(f"{path} is corrupt: the snapshot has no {key!r}")
    return doc


@contextlib.contextmanager
def locked(path: str, enabled: bool = True) -> t.Iterator[None]:
    """Hold an exclusive flock on <path>.lock for a read-decide-write of the snapshot at path."""
    if not enabled:
        yield
        return
    directory = os.path.dirname(path) or "."
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd = os.open(path + ".lock", os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
    except OSError as exc:
        raise SnapshotError(f"cannot lock {path}.lock: {exc.strerror}") from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
