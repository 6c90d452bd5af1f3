# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: crash-safe file writes shared by every module that changes files."""

from __future__ import annotations

import json
import os
import tempfile
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError


# Extended attributes that carry access control: the SELinux context and the POSIX ACL of a file.
PRESERVED_XATTRS = ("security.selinux", "system.posix_acl_access")


def write_atomic(path: str, data: bytes, mode: int | None = None, fsync: bool = True) -> None:
    """Write data to path so a reader sees either the old or the new file, never a partial one.

    When path is a symlink, the file it points to is replaced and the link stays. The new file keeps the
    owner, group, mode, SELinux context and ACL of the file it replaces (mode, when given, wins; a new file
    gets mode or 0644). The temporary file lives in the destination directory because rename(2) is only
    atomic within one filesystem; the directory is fsynced too, so the rename itself survives a crash.
    """
    target = os.path.realpath(path)
    directory = os.path.dirname(target)
    try:
        existing: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        existing = None
    except OSError as exc:
        raise SreOpsError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(target)}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise SreOpsError(f"cannot create a temporary file next to {target}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        if existing is not None:
            _copy_owner_and_xattrs(target, tmp, existing)
        os.chmod(tmp, mode if mode is not None else (existing.st_mode & 0o7777 if existing is not None else 0o644))
        os.replace(tmp, target)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise SreOpsError(f"cannot write {target}: {exc.strerror}") from exc
    if fsync:
        fsync_dir(directory)


def _copy_owner_and_xattrs(source: str, dest: str, source_stat: os.stat_result) -> None:
    try:
        os.chown(dest, source_stat.st_uid, source_stat.st_gid)
    except PermissionError:
        pass  # only root may give a file away; like ansible's atomic_move, the write still happens
    if not hasattr(os, "getxattr"):
        return
    for name in PRESERVED_XATTRS:
        try:
            os.setxattr(dest, name, os.getxattr(source, name))
        except OSError:
            pass  # not set on the source, or not supported by this filesystem or kernel


def fsync_dir(directory: str) -> None:
    """Persist a directory's entries (renames, new links) to disk."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def write_json_atomic(path: str, document: t.Any, mode: int | None = None) -> None:
    """Write a JSON document atomically, in a stable key order so content hashes are meaningful."""
    payload = json.dumps(document, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    write_atomic(path, payload, mode=mode)


def read_json(path: str, default: t.Any = None) -> t.Any:
    """Read a JSON document; a missing file gives default, a corrupt one an error naming the file."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return default
    except OSError as exc:
        raise SreOpsError(f"cannot read {path}: {exc.strerror}") from exc
    return parse_json(raw, path)


def parse_json(raw: bytes, path: str) -> t.Any:
    """The JSON document in raw, read from path (named in the error if it is not valid JSON)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise SreOpsError(f"{path} is not valid JSON: {exc}") from exc


def symlink_atomic(target: str, link_path: str) -> None:
    """Point link_path at target by creating a temporary symlink and renaming it over the old one."""
    directory = os.path.dirname(os.path.abspath(link_path))
    tmp = os.path.join(directory, f".{os.path.basename(link_path)}.{os.getpid()}.tmp")
    try:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(target, tmp)
        os.replace(tmp, link_path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise SreOpsError(f"cannot point {link_path} at {target}: {exc.strerror}") from exc
    fsync_dir(directory)
