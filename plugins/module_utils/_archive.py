# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: vet and unpack a release source (tar, compressed tar, zip or directory) in one pass.

Nothing here relies on tarfile's extraction filters, which resolve paths with os.path.realpath and stop
resolving past PATH_MAX (gh-135034, CVE-2025-4517); the checks are our own and do not touch the disk:

- One pass over the members builds a table of the tree the release will be. A member whose path passes
  through a symlink of the archive (or through a file) is refused, and so is a name given twice.
- Symlinks are created last, once every member is known, and only after their targets are resolved
  against that table - following the archive's own links, to any depth, without a length limit - and
  found to stay inside the release. Hard links may only name a regular file extracted before them.
- Every file, directory and link is created relative to a directory descriptor, walking one component
  at a time with O_NOFOLLOW, so even a gap in the checks above cannot make the kernel follow a link out.

The same pass runs without writing (``dest=None``) for check mode: it reads every byte, so a truncated or
corrupt archive fails the preview exactly as it would fail the real run.
"""

from __future__ import annotations

import bz2
import collections
import dataclasses
import errno
import hashlib
import lzma
import os
import queue
import stat
import struct
import tarfile
import threading
import time
import typing as t
import zipfile
import zlib

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError

FILE, DIR, SYMLINK, HARDLINK = "file", "directory", "symlink", "hard link"
FORMATS = ("directory", "tar", "gzip", "bzip2", "xz", "zip")
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2", zipfile.ZIP_LZMA: "lzma"}
MAX_SYMLINK_HOPS = 40  # as Linux's MAXSYMLINKS
MAX_NAME_BYTES = 255
CHUNK = 1024 * 1024
SPECIAL_BITS = stat.S_ISUID | stat.S_ISGID | stat.S_ISVTX
_OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_CREATE_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_DIR_FD_CACHE = 64
_ZLIB_DECOMPRESS = type(zlib.decompressobj())


class ArchiveError(SreOpsError):
    """The source was refused (hostile or unsupported member) or could not be read (corrupt, truncated)."""


class CorruptData(Exception):
    """The compressed stream is damaged. Not a zlib.error, so tarfile passes it on instead of rewording it."""


def sha256_fd(fd: int) -> str:
    """The sha256 of an open file, read from its start; the file offset is left at the start again."""
    digest = hashlib.sha256()
    os.lseek(fd, 0, os.SEEK_SET)
    while True:
        block = os.read(fd, CHUNK)
        if not block:
            break
        digest.update(block)
    os.lseek(fd, 0, os.SEEK_SET)
    return digest.hexdigest()


def sha256_file(path: str) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return sha256_fd(fd)
    finally:
        os.close(fd)


def walk_sorted(path: str) -> t.Iterator[tuple[str, str, os.stat_result]]:
    """(full path, path relative to path, lstat) of every entry below path, a directory's entries in name order
    before its subdirectories'; links are listed, never followed."""
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(root, name)
            yield full, os.path.relpath(full, path), os.lstat(full)


def sha256_tree(path: str) -> str:
    """A digest of a directory tree: relative paths, types, modes, link targets and file contents."""
    digest = hashlib.sha256()
    for full, rel, info in walk_sorted(path):
        digest.update(f"{rel}\0{stat.S_IFMT(info.st_mode)}\0{stat.S_IMODE(info.st_mode)}\0".encode("utf-8", "surrogateescape"))
        if stat.S_ISLNK(info.st_mode):
            digest.update(os.readlink(full).encode("utf-8", "surrogateescape"))
        elif stat.S_ISREG(info.st_mode):
            digest.update(sha256_file(full).encode())
    return digest.hexdigest()


def detect_format(path: str) -> str:
    """What src is, by its content (never by its name): one of FORMATS."""
    if os.path.isdir(path):
        return "directory"
    try:
        with open(path, "rb") as handle:
            head = handle.read(tarfile.BLOCKSIZE)
    except FileNotFoundError:
        raise ArchiveError(f"src {path} does not exist on the host") from None
    except IsADirectoryError:
        return "directory"
    except OSError as exc:
        raise ArchiveError(f"cannot read src {path}: {exc.strerror}") from exc
    if not head:
        raise ArchiveError(f"src {path} is empty: not an archive")
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if len(head) == tarfile.BLOCKSIZE:
        if not head.strip(b"\0"):
            return "tar"  # an end-of-archive block: an empty tar, refused later for having no members
        try:
            tarfile.TarInfo.frombuf(head, "utf-8", "surrogateescape")
            return "tar"
        except tarfile.HeaderError:
            pass
    raise ArchiveError(
        f"src {path} is not an archive this module reads (tar, tar.gz, tar.bz2, tar.xz or zip, recognised by content): "
        f"it starts with {head[:8].hex(' ')}"
    )


# ----- what a source contains -----------------------------------------------------------------------
@dataclasses.dataclass
class Member:
    """One entry of a source, its name normalised (relative, no '.', no trailing slash)."""

    name: str
    kind: str
    mode: int
    mtime: float | None = None
    size: int = 0
    link: str = ""  # a symlink's target as stored, or a hard link's normalised target
    raw: str = ""  # the name as stored, for messages


@dataclasses.dataclass
class Report:
    """What an unpack found: counts, the special mode bits it dropped, and the member table."""

    members: int = 0
    files: int = 0
    bytes: int = 0
    special_bits_dropped: list[str] = dataclasses.field(default_factory=list)
    table: MemberTable | None = None


class MemberTable:
    """The tree a source will become, built one member at a time; every refusal names the member."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.kinds: dict[str, str] = {}
        self.symlinks: dict[str, str] = {}
        self._last_parent = None  # type: str | None

    def refuse(self, raw: str, problem: str) -> ArchiveError:
        return ArchiveError(f"{self.label}: archive member {raw!r} {problem}; refusing the archive")

    def normalise(self, raw: str, windows_drives: bool = False) -> str:
        """The member's path inside the release ('' for the release root itself), or a refusal."""
        if raw and len(raw) <= MAX_NAME_BYTES // 4 and raw[0] not in "/." and ".." not in raw and "//" not in raw and "/." not in raw and ":" not in raw:
            return raw.rstrip("/")  # nothing to normalise: the common case, kept cheap
        if raw.startswith("/") or (windows_drives and len(raw) > 1 and raw[1] == ":" and raw[0].isalpha()):
            raise self.refuse(raw, "has an absolute path")
        if ".." in raw.replace("\\", "/").split("/"):
            raise self.refuse(raw, "contains '..'")
        parts = [part for part in raw.split("/") if part not in ("", ".")]
        for part in parts:
            if len(os.fsencode(part)) > MAX_NAME_BYTES:
                raise self.refuse(raw, f"has a path component longer than {MAX_NAME_BYTES} bytes")
        return "/".join(parts)

    def obstacle(self, name: str) -> str | None:
        """Why name cannot be created as a real path in the tree (a parent is a symlink or a file), or None."""
        parts = name.split("/")
        for depth in range(1, len(parts)):
            prefix = "/".join(parts[:depth])
            kind = self.kinds.get(prefix)
            if kind == SYMLINK:
                return f"passes through {prefix!r}, which is a symlink in the archive"
            if kind is not None and kind != DIR:
                return f"is inside {prefix!r}, which is a {kind} in the archive"
        return None

    def add(self, member: Member) -> None:
        """Vet a member against everything before it (a directory may be given again, or after its content)."""
        name = member.name
        parent = name.rpartition("/")[0]
        if parent and parent != self._last_parent:
            problem = self.obstacle(name)
            if problem:
                raise self.refuse(member.raw, problem)
            parts = parent.split("/")
            for depth in range(1, len(parts) + 1):
                self.kinds.setdefault("/".join(parts[:depth]), DIR)
            self._last_parent = parent
        existing = self.kinds.get(name)
        if existing is not None:
            if existing == DIR and member.kind == DIR:
                return
            raise self.refuse(member.raw, f"appears twice in the archive (as a {existing} and as a {member.kind})")
        if member.kind == SYMLINK:
            if member.link.startswith("/"):
                raise self.refuse(member.raw, f"is a symlink to {member.link!r}, outside the release")
            if not member.link:
                raise self.refuse(member.raw, "is a symlink with an empty target")
            self.symlinks[name] = member.link
        elif member.kind == HARDLINK:
            target = member.link
            if self.kinds.get(target) != FILE:
                if target.startswith("/") or ".." in target.split("/"):
                    raise self.refuse(member.raw, f"is a hard link to {target!r}, outside the release")
                raise self.refuse(member.raw, f"is a hard link to {target!r}, which is not a regular file earlier in the archive")
        self.kinds[name] = FILE if member.kind == HARDLINK else member.kind

    def check_symlinks(self) -> None:
        for name in self.symlinks:
            self._resolve(name)

    def _resolve(self, name: str) -> None:
        """Follow a symlink through the archive's own links; refuse it if it leaves the release."""
        stack = name.split("/")[:-1]
        pending = collections.deque(self.symlinks[name].split("/"))
        hops = 0
        known = True  # the path so far exists in the archive; past a missing name the kernel would stop
        while pending:
            part = pending.popleft()
            if part in ("", "."):
                continue
            if part == "..":
                if not stack:
                    raise self.refuse(name, f"is a symlink to {self.symlinks[name]!r}, which leads outside the release")
                stack.pop()
                continue
            stack.append(part)
            if not known:
                continue
            kind = self.kinds.get("/".join(stack))
            if kind == SYMLINK:
                hops += 1
                if hops > MAX_SYMLINK_HOPS:
                    raise self.refuse(name, f"is a symlink whose target {self.symlinks[name]!r} loops (more than {MAX_SYMLINK_HOPS} links)")
                target = self.symlinks["/".join(stack)]
                stack.pop()
                pending.extendleft(reversed(target.split("/")))
            elif kind != DIR:
                known = False  # missing, or a file: the rest is checked as written (stricter than the kernel)


# ----- writing a tree without ever following a link -------------------------------------------------
def _set_mtime(target: int | str, mtime: float | None, **kwargs: t.Any) -> None:
    """Keep the member's time where it can be set; an absurd one (year 30000) is not worth failing for."""
    if mtime is None:
        return
    try:
        os.utime(target, (mtime, mtime), **kwargs)
    except (OSError, OverflowError, ValueError):
        pass


class TreeWriter:
    """Creates members under dest through directory descriptors opened with O_NOFOLLOW, one component at a time."""

    def __init__(self, dest: str) -> None:
        self.root_fd = os.open(dest, _OPEN_DIR)
        self._umask = os.umask(0o022)
        os.umask(self._umask)
        self._fds: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._dir_meta: dict[str, tuple[int, float | None]] = {}
        self._symlinks: list[Member] = []

    def close(self) -> None:
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        os.close(self.root_fd)

    def _fail(self, member: Member, exc: OSError) -> ArchiveError:
        reason = exc.strerror or str(exc)
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            reason = "a symlink or file is in the way (links are never followed)"
        return ArchiveError(f"cannot write archive member {member.raw or member.name!r}: {reason}")

    def _dir_fd(self, path: str) -> int:
        if not path:
            return self.root_fd
        fd = self._fds.get(path)
        if fd is not None:
            self._fds.move_to_end(path)
            return fd
        parent, _sep, base = path.rpartition("/")
        parent_fd = self._dir_fd(parent)
        try:
            os.mkdir(base, 0o700, dir_fd=parent_fd)
        except FileExistsError:
            pass
        else:
            self._dir_meta.setdefault(path, (0o755, None))
        fd = os.open(base, _OPEN_DIR, dir_fd=parent_fd)
        self._fds[path] = fd
        if len(self._fds) > _DIR_FD_CACHE:
            _old, old_fd = self._fds.popitem(last=False)
            os.close(old_fd)
        return fd

    def directory(self, member: Member, mode: int) -> None:
        try:
            self._dir_fd(member.name)
        except OSError as exc:
            raise self._fail(member, exc) from exc
        self._dir_meta[member.name] = (mode, member.mtime)

    def file(self, member: Member, mode: int, chunks: t.Iterable[bytes]) -> None:
        parent, _sep, base = member.name.rpartition("/")
        try:
            fd = os.open(base, _CREATE_FILE, mode, dir_fd=self._dir_fd(parent))
        except OSError as exc:
            raise self._fail(member, exc) from exc
        try:
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    view = view[os.write(fd, view):]
            if mode & self._umask:  # the umask took bits away: set the member's mode exactly
                os.fchmod(fd, mode)
            _set_mtime(fd, member.mtime)
        except OSError as exc:
            raise self._fail(member, exc) from exc
        finally:
            os.close(fd)

    def hardlink(self, member: Member) -> None:
        parent, _sep, base = member.name.rpartition("/")
        target_parent, _sep, target_base = member.link.rpartition("/")
        try:
            os.link(target_base, base, src_dir_fd=self._dir_fd(target_parent), dst_dir_fd=self._dir_fd(parent), follow_symlinks=False)
        except OSError as exc:
            raise self._fail(member, exc) from exc

    def symlink(self, member: Member) -> None:
        self._symlinks.append(member)  # created last: no member may be written through one

    def finish(self) -> None:
        for member in self._symlinks:
            parent, _sep, base = member.name.rpartition("/")
            try:
                parent_fd = self._dir_fd(parent)
                os.symlink(member.link, base, dir_fd=parent_fd)
                _set_mtime(base, member.mtime, dir_fd=parent_fd, follow_symlinks=False)
            except OSError as exc:
                raise self._fail(member, exc) from exc
        # Deepest first: setting a directory's mode or time before its content is written would not stick.
        for name in sorted(self._dir_meta, key=lambda n: n.count("/"), reverse=True):
            mode, mtime = self._dir_meta[name]
            try:
                fd = self._dir_fd(name)
                os.fchmod(fd, mode)
                _set_mtime(fd, mtime)
            except OSError as exc:
                raise self._fail(Member(name, DIR, mode), exc) from exc


class _DryWriter:
    """Check mode: the same pass, nothing written."""

    def directory(self, member: Member, mode: int) -> None:
        pass

    def file(self, member: Member, mode: int, chunks: t.Iterable[bytes]) -> None:
        for _chunk in chunks:
            pass

    def hardlink(self, member: Member) -> None:
        pass

    def symlink(self, member: Member) -> None:
        pass

    def finish(self) -> None:
        pass

    def close(self) -> None:
        pass


# ----- reading each kind of source ------------------------------------------------------------------
Source = t.Iterator[t.Tuple[Member, t.Optional[t.Callable[[], t.Iterable[bytes]]]]]


_USTAR = struct.Struct("100s8s8s8s12s12s8sc100s6s2s32s32s8s8s155s12x")
_PLAIN_TYPES = frozenset((tarfile.REGTYPE, tarfile.AREGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE))


def _octal(field: bytes) -> int:
    if field[:1] in (b"\x80", b"\xff"):
        raise ValueError("a base-256 number: tarfile's own parser handles it")
    return int(field.split(b"\0", 1)[0].strip() or b"0", 8)


class _TarInfo(tarfile.TarInfo):
    """tarfile's TarInfo, with two changes.

    It records why tarfile stopped reading headers: tarfile treats a corrupt or missing header after the
    first member as the end of the archive, which would silently publish a partial release.

    It parses the common header (a plain file, directory or link with octal numbers and a good checksum)
    in one struct call: tarfile's field-by-field parsing is the largest cost of a 20,000-member archive.
    The result is the same TarInfo tarfile's frombuf makes (a unit test holds the two side by side);
    anything else - base-256 numbers, GNU or PAX extension headers, sparse files, a bad checksum, an
    end-of-archive block - goes to tarfile's own frombuf.
    """

    @classmethod
    def frombuf(cls, buf: bytes, encoding: str, errors: str) -> tarfile.TarInfo:
        try:
            fields = _USTAR.unpack(buf)
            if fields[7] not in _PLAIN_TYPES:
                raise ValueError("not a plain member")
            chksum = _octal(fields[6])
            if chksum != sum(buf) - sum(buf[148:156]) + 256:
                raise ValueError("checksum: tarfile's parser decides (it also knows signed checksums)")
            obj = cls()
            obj.mode, obj.uid, obj.gid, obj.size, obj.mtime = (_octal(f) for f in fields[1:6])
            obj.devmajor, obj.devminor = _octal(fields[13]), _octal(fields[14])
            obj.name, obj.linkname, obj.uname, obj.gname, prefix = (
                f.split(b"\0", 1)[0].decode(encoding, errors) for f in (fields[0], fields[8], fields[11], fields[12], fields[15]))
        except (ValueError, struct.error):
            return super().frombuf(buf, encoding, errors)
        obj.chksum = chksum
        obj.type = fields[7]
        if obj.type == tarfile.AREGTYPE and obj.name.endswith("/"):
            obj.type = tarfile.DIRTYPE  # a V7 directory
        if obj.type == tarfile.DIRTYPE:
            obj.name = obj.name.rstrip("/")
        if prefix:
            obj.name = prefix + "/" + obj.name
        return obj

    @classmethod
    def fromtarfile(cls, tarfile_: tarfile.TarFile) -> tarfile.TarInfo:  # pylint: disable=arguments-renamed # `tarfile` is the module here
        try:
            return super().fromtarfile(tarfile_)
        except tarfile.HeaderError as exc:
            tarfile_.sreops_stop = exc  # type: ignore[attr-defined]
            raise


def _tar_kind(info: tarfile.TarInfo) -> str | None:
    if info.isreg():
        return FILE
    if info.isdir():
        return DIR
    if info.issym():
        return SYMLINK
    if info.islnk():
        return HARDLINK
    return None


def _chunks(handle: t.IO[bytes], size: int, what: str) -> t.Iterator[bytes]:
    remaining = size
    while remaining > 0:
        block = handle.read(min(remaining, CHUNK))
        if not block:
            raise EOFError(f"the data of {what!r} ends {remaining} bytes early")
        remaining -= len(block)
        yield block


def _tar_source(stream: t.IO[bytes], table: MemberTable, progress: dict[str, str]) -> Source:
    archive = tarfile.open(fileobj=stream, mode="r:", tarinfo=_TarInfo)  # pylint: disable=consider-using-with
    try:
        for info in archive:
            progress["last"] = info.name
            kind = _tar_kind(info)
            if kind is None:
                what = "a device file or fifo" if info.ischr() or info.isblk() or info.isfifo() else f"of unsupported type {info.type!r}"
                raise table.refuse(info.name, f"is {what}")
            name = table.normalise(info.name)
            if not name:
                if kind != DIR:
                    raise table.refuse(info.name, "names the release root but is not a directory")
                continue
            link = ""
            if kind == SYMLINK:
                link = info.linkname
            elif kind == HARDLINK:
                if info.linkname.startswith("/") or ".." in info.linkname.replace("\\", "/").split("/"):
                    raise table.refuse(info.name, f"is a hard link to {info.linkname!r}, outside the release")
                link = table.normalise(info.linkname)
            member = Member(name, kind, info.mode, info.mtime, info.size if kind == FILE else 0, link, info.name)
            if kind == FILE:
                # The data follows the header: read it straight from the stream (as tarfile's own extraction
                # does), except for sparse members, whose data needs tarfile's map.
                handle = stream if not info.issparse() and stream.tell() == info.offset_data else archive.extractfile(info)
                yield member, lambda handle=handle, size=info.size, what=info.name: _chunks(handle, size, what)  # type: ignore[misc]
            else:
                yield member, None
        stop = getattr(archive, "sreops_stop", None)
        if not isinstance(stop, tarfile.EOFHeaderError):
            if isinstance(stop, tarfile.InvalidHeaderError):
                raise tarfile.ReadError(f"a corrupt tar header follows ({stop})")
            raise EOFError("the tar data ends without its end-of-archive marker")
    finally:
        archive.close()


def _zip_source(stream: t.IO[bytes], table: MemberTable, progress: dict[str, str]) -> Source:
    with zipfile.ZipFile(stream) as archive:
        infos = archive.infolist()
        planned = []
        # The central directory is read up front, so vet every member before a byte is written.
        for info in infos:
            raw = info.filename
            unix = (info.external_attr >> 16) if info.create_system == 3 else 0
            file_type = stat.S_IFMT(unix)
            if info.is_dir() or file_type == stat.S_IFDIR:
                kind = DIR
            elif file_type in (0, stat.S_IFREG):
                kind = FILE
            elif file_type == stat.S_IFLNK:
                raise table.refuse(raw, "is a symlink; links in zip archives are not supported (use a tar archive)")
            else:
                raise table.refuse(raw, "is a device file, fifo or socket")
            if info.flag_bits & 0x1:
                raise table.refuse(raw, "is encrypted; encrypted zip archives are not supported")
            if kind == FILE and info.compress_type not in ZIP_METHODS:
                raise table.refuse(raw, f"uses compression method {info.compress_type}, which is not supported "
                                        f"(supported: {', '.join(ZIP_METHODS.values())})")
            name = table.normalise(raw, windows_drives=True)
            if not name:
                continue
            perms = stat.S_IMODE(unix) or (0o755 if kind == DIR else 0o644)
            try:
                mtime: float | None = time.mktime(info.date_time + (0, 0, -1))
            except (OverflowError, ValueError):
                mtime = None
            member = Member(name, kind, perms, mtime, info.file_size if kind == FILE else 0, "", raw)
            table.add(member)
            planned.append((member, info))
        for member, info in planned:
            progress["last"] = member.raw
            if member.kind == FILE:
                yield member, lambda info=info, size=member.size, what=member.raw: _zip_chunks(archive, info, size, what)  # type: ignore[misc]
            else:
                yield member, None


def _zip_chunks(archive: zipfile.ZipFile, info: zipfile.ZipInfo, size: int, what: str) -> t.Iterator[bytes]:
    try:
        handle = archive.open(info)
    except (NotImplementedError, RuntimeError) as exc:  # a method this Python lacks (no bz2/lzma module)
        raise zipfile.BadZipFile(f"member {what!r} cannot be decompressed here: {exc}") from exc
    with handle:
        yield from _chunks(handle, size, what)
        if handle.read(1):  # also makes zipfile check the CRC
            raise zipfile.BadZipFile(f"member {what!r} holds more data than its header says")


def _directory_source(src: str, table: MemberTable) -> Source:
    for full, raw, info in walk_sorted(src):
        name = table.normalise(raw)
        if stat.S_ISLNK(info.st_mode):
            yield Member(name, SYMLINK, 0o777, info.st_mtime, 0, os.readlink(full), raw), None
        elif stat.S_ISDIR(info.st_mode):
            yield Member(name, DIR, stat.S_IMODE(info.st_mode), info.st_mtime, 0, "", raw), None
        elif stat.S_ISREG(info.st_mode):
            yield Member(name, FILE, stat.S_IMODE(info.st_mode), info.st_mtime, info.st_size, "", raw), (
                lambda full=full, size=info.st_size, raw=raw: _file_chunks(full, size, raw))
        else:
            raise ArchiveError(f"{src}: source entry {raw!r} is a device file, fifo or socket; refusing the source")


def _file_chunks(path: str, size: int, what: str) -> t.Iterator[bytes]:
    with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "rb") as handle:
        yield from _chunks(handle, size, what)


class _Decompressed:
    """A read-only stream of src's decompressed bytes, decompressed by a second thread.

    zlib, bz2 and lzma release the GIL while they work, so decompressing ahead in a thread lets the
    main thread parse members and write files at the same time - as `tar xzf` does with a gzip process.
    The stream checks what the stdlib readers check: a truncated stream, a gzip checksum (zlib's gzip
    mode verifies CRC-32 and length), and garbage after a gzip stream (zero padding is allowed).
    It can be read, told and seeked forward (tarfile skips a member's padding that way), never back.
    """

    _QUEUE_DEPTH = 16

    def __init__(self, fd: int, fmt: str) -> None:
        self._fd = fd
        self._fmt = fmt
        self._queue: queue.Queue[bytes | BaseException | None] = queue.Queue(self._QUEUE_DEPTH)
        self._stop = threading.Event()
        self._chunk = b""
        self._offset = 0  # into _chunk
        self._position = 0  # bytes handed out so far
        self._done = False
        self._thread = threading.Thread(target=self._produce, name="sre.ops-decompress", daemon=True)
        self._thread.start()

    def _decompressor(self) -> t.Any:
        if self._fmt == "gzip":
            return zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        if self._fmt == "bzip2":
            return bz2.BZ2Decompressor()
        return lzma.LZMADecompressor()

    def _put(self, item: bytes | BaseException | None) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _produce(self) -> None:
        try:
            decompressor = self._decompressor()
            started = False
            while not self._stop.is_set():
                data = os.read(self._fd, CHUNK)
                if not data:
                    if not decompressor.eof:
                        raise EOFError(f"the {self._fmt} data ends before its end-of-stream marker")
                    break
                while data:
                    if decompressor.eof:
                        if not data.strip(b"\0"):
                            data = b""  # zero padding after the last stream
                            break
                        if self._fmt == "gzip" and not data.startswith(b"\x1f\x8b"):
                            raise CorruptData(f"its gzip data is corrupt: garbage after the gzip stream (starts with {data[:8].hex(' ')})")
                        decompressor = self._decompressor()  # another concatenated stream
                    for out in self._inflate(decompressor, data):
                        if not self._put(out):
                            return
                    started = True
                    data = decompressor.unused_data if decompressor.eof else b""
            if not started:
                raise EOFError(f"the {self._fmt} data is empty")
            self._put(None)
        except (zlib.error, lzma.LZMAError, OSError) as exc:  # bz2 reports damage as OSError
            self._put(CorruptData(f"its {self._fmt} data is corrupt: {exc}"))
        except BaseException as exc:  # pylint: disable=broad-exception-caught
            self._put(exc)

    @staticmethod
    def _inflate(decompressor: t.Any, data: bytes) -> t.Iterator[bytes]:
        """Decompress data in pieces of at most CHUNK bytes, so input that expands enormously (a compression
        bomb) never sits in memory whole; the queue's depth bounds what is held ahead of the reader."""
        if isinstance(decompressor, _ZLIB_DECOMPRESS):  # zlib hands back the input it did not use
            while True:
                out = decompressor.decompress(data, CHUNK)
                if out:
                    yield out
                data = decompressor.unconsumed_tail
                if decompressor.eof or (not data and len(out) < CHUNK):
                    return
        out = decompressor.decompress(data, CHUNK)  # bz2 and lzma keep it, and say when they need more
        while True:
            if out:
                yield out
            if decompressor.eof or decompressor.needs_input:
                return
            out = decompressor.decompress(b"", CHUNK)

    def _next_chunk(self) -> bool:
        if self._done:
            return False
        item = self._queue.get()
        if item is None:
            self._done = True
            return False
        if isinstance(item, BaseException):
            self._done = True
            raise item
        self._chunk, self._offset = item, 0
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            parts = [self._chunk[self._offset:]]
            self._chunk, self._offset = b"", 0
            while self._next_chunk():
                parts.append(self._chunk)
                self._chunk = b""
            data = b"".join(parts)
            self._position += len(data)
            return data
        available = len(self._chunk) - self._offset
        if size <= available:  # the common case: a header or a small file inside the current chunk
            data = self._chunk[self._offset:self._offset + size]
            self._offset += size
            self._position += size
            return data
        parts = [self._chunk[self._offset:]]
        wanted = size - available
        self._chunk, self._offset = b"", 0
        while wanted > 0 and self._next_chunk():
            take = self._chunk[:wanted]
            parts.append(take)
            self._offset = len(take)
            wanted -= len(take)
        data = b"".join(parts)
        self._position += len(data)
        return data

    def tell(self) -> int:
        return self._position

    def seek(self, position: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            position += self._position
        elif whence != os.SEEK_SET:
            raise OSError(errno.ESPIPE, "a decompressed stream cannot seek from its end")
        if position < self._position:
            raise OSError(errno.ESPIPE, "a decompressed stream cannot seek backwards")
        while self._position < position:
            if not self.read(min(position - self._position, CHUNK)):
                break
        return self._position

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._stop.set()
        while self._thread.is_alive():
            try:
                self._queue.get(timeout=0.1)
            except queue.Empty:
                pass
        self._thread.join()


def _read_problem(fmt: str, exc: BaseException) -> str:
    if isinstance(exc, CorruptData):
        return str(exc)
    if isinstance(exc, EOFError):
        detail = str(exc) or "unexpected end of data"
        return f"it is truncated: {detail[:1].lower()}{detail[1:]}"
    if isinstance(exc, zipfile.BadZipFile):
        return f"it is not a valid zip archive: {exc}"
    if isinstance(exc, tarfile.TarError):
        return f"it is not a valid tar archive: {exc}"
    if isinstance(exc, (zlib.error, lzma.LZMAError, OSError)) and fmt in ("gzip", "bzip2", "xz"):
        return f"its {fmt} data is corrupt: {exc}"
    return f"it cannot be read: {exc}"


# ----- the whole pass ---------------------------------------------------------------------------------
def unpack(src: str, dest: str | None, fmt: str | None = None, src_fd: int | None = None) -> Report:
    """Vet every member of src and, unless dest is None (check mode), create it under dest (an empty directory).

    Raises ArchiveError naming src and the member or the problem; the caller removes dest on failure.
    src_fd, when given, is an open descriptor of src to read (so what was checksummed is what is unpacked).
    """
    fmt = fmt or detect_format(src)
    table = MemberTable(src)
    report = Report(table=table)
    writer: TreeWriter | _DryWriter = TreeWriter(dest) if dest is not None else _DryWriter()
    progress = {"last": ""}
    raw: t.IO[bytes] | None = None
    stream: t.Any = None
    try:
        if fmt == "directory":
            source = _directory_source(src, table)
        else:
            raw = open(os.dup(src_fd) if src_fd is not None else src, "rb")  # pylint: disable=consider-using-with
            raw.seek(0)
            stream = _Decompressed(raw.fileno(), fmt) if fmt in ("gzip", "bzip2", "xz") else raw
            source = _zip_source(stream, table, progress) if fmt == "zip" else _tar_source(stream, table, progress)
        try:
            _apply(source, table, writer, report, zip_vetted=fmt == "zip")
            table.check_symlinks()
            writer.finish()
            if stream is not None and fmt in ("gzip", "bzip2", "xz"):
                while stream.read(CHUNK):  # to the end of the compressed stream, so its checksum is verified
                    pass
        except ArchiveError:
            raise
        except (CorruptData, EOFError, OSError, tarfile.TarError, zipfile.BadZipFile, zlib.error, lzma.LZMAError) as exc:
            where = f" (after member {progress['last']!r})" if progress["last"] else ""
            raise ArchiveError(f"cannot unpack {src}: {_read_problem(fmt, exc)}{where}") from exc
    finally:
        writer.close()
        if stream is not None and stream is not raw:
            stream.close()
        if raw is not None:
            raw.close()
    if report.members == 0:
        raise ArchiveError(f"{src} contains nothing (no files or directories): refusing an empty release")
    return report


def _apply(source: Source, table: MemberTable, writer: TreeWriter | _DryWriter, report: Report, zip_vetted: bool) -> None:
    for member, chunks in source:
        if not zip_vetted:
            table.add(member)
        report.members += 1
        mode = member.mode & 0o777
        if member.mode & SPECIAL_BITS and member.kind in (FILE, DIR):
            report.special_bits_dropped.append(f"{member.name} ({stat.S_IMODE(member.mode):04o})")
        if member.kind == FILE:
            report.files += 1
            report.bytes += member.size
            writer.file(member, mode, chunks() if chunks is not None else ())
        elif member.kind == DIR:
            writer.directory(member, mode)
        elif member.kind == HARDLINK:
            writer.hardlink(member)
        else:
            writer.symlink(member)
