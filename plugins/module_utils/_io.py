# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: crash-safe file writes shared by every module that changes files."""

from __future__ import annotations

import json
import os
import tempfile
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError


def write_atomic(path: str, data: bytes, mode: int = 0o644, fsync: bool = True) -> None:
    """Write data to path so a reader sees either the old or the new file, never a partial one.

    The temporary file lives in the destination directory because rename(2) is only atomic within
    one filesystem. The directory is fsynced too, so the rename itself survives a crash.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise SreOpsError(f"cannot create a temporary file next to {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if fsync:
                os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise SreOpsError(f"cannot write {path}: {exc.strerror}") from exc
    if fsync:
        fsync_dir(directory)


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


def write_json_atomic(path: str, document: t.Any, mode: int = 0o644) -> None:
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
