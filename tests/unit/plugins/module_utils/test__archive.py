# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The archive vetting and unpacking pass: hostile archives, broken archives, modes, and the O_NOFOLLOW floor."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import os
import stat
import struct
import tarfile
import zipfile

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _archive as arc
from sreops_fleet.hostile import entry, escape_chain, issue_archive, write_tar

ATTACKS = {
    # the issue's archive: a new file outside through `escape`, an existing one overwritten through a hard link
    "file and hard link through the chain": (
        lambda: issue_archive()[0], lambda: issue_archive()[1], "passes through 'a', which is a symlink in the archive"),
    # the chain's members placed through real directories only: the link resolver is what refuses it
    "escape link alone": (
        lambda: escape_chain(chain_member_through_links=False)[0],
        lambda: "escape", "is a symlink to 'a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/" + "l" * 254 + "/../outside', which leads outside the release"),
    "hard link through the escape link": (
        lambda: escape_chain(chain_member_through_links=False)[0] + [entry("hl", tarfile.LNKTYPE, linkname="escape/existing")],
        lambda: "hl", "is a hard link to 'escape/existing', which is not a regular file earlier in the archive"),
    "deeper chain": (
        lambda: escape_chain(steps="abcdefghijklmnopqrstuvwxyzABCDEF", chain_member_through_links=False)[0] + [entry("escape/owned", data=b"x")],
        lambda: "escape/owned", "passes through 'escape', which is a symlink in the archive"),
    "chain aiming at /": (
        lambda: escape_chain(chain_member_through_links=False, target="../" * 64 + "etc")[0],
        lambda: "escape", "which leads outside the release"),
}


@pytest.fixture
def sandbox(tmp_path):
    """dest inside a/, with a/outside/existing next to it: where an escape would land."""
    dest = tmp_path / "a" / "dest"
    dest.mkdir(parents=True)
    outside = tmp_path / "a" / "outside"
    outside.mkdir()
    (outside / "existing").write_text("original\n")
    return dest, outside


def snapshot(path):
    """Everything under path except dest/ (which may hold paths longer than PATH_MAX after a real unpack)."""
    found = []
    for base, dirs, files in os.walk(path):
        dirs[:] = [d for d in dirs if os.path.join(base, d) != str(path / "dest")]
        for name in dirs + files:
            full = os.path.join(base, name)
            content = open(full, "rb").read() if os.path.isfile(full) and not os.path.islink(full) else b""
            found.append((os.path.relpath(full, path), os.path.islink(full), content))
    return sorted(found)


@pytest.mark.parametrize("label", list(ATTACKS))
def test_escape_chains_are_refused_naming_the_member_and_nothing_lands_outside(tmp_path, sandbox, label):
    build, member, problem = ATTACKS[label]
    dest, outside = sandbox
    path = write_tar(tmp_path / "evil.tar", build())
    before = snapshot(tmp_path / "a")
    for target in (None, str(dest)):  # check mode, then a real unpack
        with pytest.raises(arc.ArchiveError) as caught:
            arc.unpack(path, target)
        assert str(caught.value) == f"{path}: archive member {member()!r} {problem}; refusing the archive" or (
            str(caught.value).startswith(f"{path}: archive member {member()!r} ") and problem in str(caught.value))
    assert sorted(os.listdir(outside)) == ["existing"] and (outside / "existing").read_text() == "original\n"
    assert snapshot(tmp_path / "a") == before, "something was written outside the destination"
    assert not os.path.lexists(tmp_path / "a" / "owned") and not os.path.lexists("/etc/owned")


def test_the_escape_archive_is_a_real_attack_on_this_python(tmp_path, sandbox):
    """The archive above escapes tarfile's own `data` filter wherever that filter has the realpath bug."""
    if not hasattr(tarfile, "data_filter"):
        pytest.skip("this Python's tarfile has no extraction filters")
    dest, outside = sandbox
    build, _member, _problem = ATTACKS["file and hard link through the chain"]
    path = write_tar(tmp_path / "evil.tar", build())
    with tarfile.open(path) as tar:
        try:
            tar.extractall(str(dest), filter="data")
        except tarfile.FilterError:
            pytest.skip("this Python's tarfile filter is fixed (gh-135034)")
    assert (outside / "owned").read_text() == "owned\n" and (outside / "existing").read_text() == "overwritten\n"


HOSTILE = [
    ("absolute", [entry("/etc/cron.d/evil", data=b"x")], "'/etc/cron.d/evil' has an absolute path"),
    ("dotdot", [entry("../../evil", data=b"x")], "'../../evil' contains '..'"),
    ("nested dotdot", [entry("a/../../evil", data=b"x")], "'a/../../evil' contains '..'"),
    ("backslash dotdot", [entry("a\\..\\..\\evil", data=b"x")], "contains '..'"),
    ("symlink absolute", [entry("etc", tarfile.SYMTYPE, linkname="/etc")], "'etc' is a symlink to '/etc', outside the release"),
    ("symlink escaping", [entry("a/up", tarfile.SYMTYPE, linkname="../../x")], "'a/up' is a symlink to '../../x', which leads outside"),
    ("symlink via a symlink", [entry("a/b", tarfile.DIRTYPE), entry("up", tarfile.SYMTYPE, linkname="a/b"),
                               entry("out", tarfile.SYMTYPE, linkname="up/../../..")], "'out' is a symlink to 'up/../../..'"),
    ("symlink loop", [entry("x", tarfile.SYMTYPE, linkname="y/z"), entry("y", tarfile.SYMTYPE, linkname="x")], "loops"),
    ("file through a symlink", [entry("etc", tarfile.SYMTYPE, linkname="conf"), entry("etc/passwd", data=b"x")],
     "'etc/passwd' passes through 'etc', which is a symlink in the archive"),
    ("symlink replacing a directory", [entry("conf/app.json", data=b"{}"), entry("conf", tarfile.SYMTYPE, linkname="x")],
     "'conf' appears twice in the archive (as a directory and as a symlink)"),
    ("file under a file", [entry("VERSION", data=b"x"), entry("VERSION/x", data=b"x")], "'VERSION/x' is inside 'VERSION', which is a file"),
    ("duplicate file", [entry("app.py", data=b"1"), entry("app.py", data=b"2")], "'app.py' appears twice in the archive"),
    ("hardlink outside", [entry("pw", tarfile.LNKTYPE, linkname="/etc/passwd")], "'pw' is a hard link to '/etc/passwd', outside the release"),
    ("hardlink dotdot", [entry("pw", tarfile.LNKTYPE, linkname="../x")], "'pw' is a hard link to '../x', outside the release"),
    ("hardlink to a missing member", [entry("pw", tarfile.LNKTYPE, linkname="missing")],
     "'pw' is a hard link to 'missing', which is not a regular file earlier in the archive"),
    ("hardlink to a later member", [entry("pw", tarfile.LNKTYPE, linkname="later"), entry("later", data=b"x")], "'pw' is a hard link to 'later'"),
    ("hardlink to a directory", [entry("d", tarfile.DIRTYPE), entry("pw", tarfile.LNKTYPE, linkname="d")], "'pw' is a hard link to 'd'"),
    ("hardlink to a symlink", [entry("s", tarfile.SYMTYPE, linkname="x"), entry("pw", tarfile.LNKTYPE, linkname="s")], "'pw' is a hard link to 's'"),
    ("char device", [entry("dev/null", tarfile.CHRTYPE)], "'dev/null' is a device file or fifo"),
    ("block device", [entry("sda", tarfile.BLKTYPE)], "'sda' is a device file or fifo"),
    ("fifo", [entry("pipe", tarfile.FIFOTYPE)], "'pipe' is a device file or fifo"),
    ("name too long", [entry("x" * 256, data=b"x")], "has a path component longer than 255 bytes"),
]


@pytest.mark.parametrize("label, entries, message", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_hostile_members_are_refused_before_anything_is_written_through_them(tmp_path, label, entries, message):
    path = write_tar(tmp_path / "evil.tar", [entry("VERSION.txt", data=b"x\n")] + entries)
    dest = tmp_path / "dest"
    dest.mkdir()
    for target in (None, str(dest)):
        with pytest.raises(arc.ArchiveError, match=message.replace("(", r"\(").replace(")", r"\)").replace("\\\\", "\\\\\\\\")) as caught:
            arc.unpack(path, target)
        assert str(caught.value).startswith(f"{path}: archive member ") and str(caught.value).endswith("; refusing the archive")


def test_safe_links_are_created_last_and_kept(tmp_path):
    entries = [
        entry("lib/real.so", data=b"so"),
        entry("lib/alias.so", tarfile.SYMTYPE, linkname="real.so"),
        entry("lib/hard.so", tarfile.LNKTYPE, linkname="lib/real.so"),
        entry("current-lib", tarfile.SYMTYPE, linkname="lib"),
        entry("via-link", tarfile.SYMTYPE, linkname="current-lib/../lib/real.so"),
        entry("dangling", tarfile.SYMTYPE, linkname="not/there"),
        entry("./bin/", tarfile.DIRTYPE, mode=0o750),
        entry("bin/run", data=b"#!/bin/sh\n", mode=0o755),
        entry("group-writable", data=b"x", mode=0o664),  # bits the usual umask would take away
    ]
    path = write_tar(tmp_path / "ok.tar", entries)
    dest = tmp_path / "dest"
    dest.mkdir()
    report = arc.unpack(path, str(dest))
    assert (report.members, report.files, report.special_bits_dropped) == (9, 3, [])
    assert stat.S_IMODE(os.stat(dest / "group-writable").st_mode) == 0o664
    assert os.readlink(dest / "lib" / "alias.so") == "real.so" and os.readlink(dest / "via-link") == "current-lib/../lib/real.so"
    assert os.stat(dest / "lib" / "hard.so").st_ino == os.stat(dest / "lib" / "real.so").st_ino
    assert (dest / "via-link").read_bytes() == b"so"
    assert stat.S_IMODE(os.stat(dest / "bin").st_mode) == 0o750 and stat.S_IMODE(os.stat(dest / "bin" / "run").st_mode) == 0o755
    assert os.stat(dest / "bin" / "run").st_mtime == 1_700_000_000 and os.stat(dest / "bin").st_mtime == 1_700_000_000


def test_a_symlink_in_the_way_is_never_followed_even_if_the_checks_miss_it(tmp_path, monkeypatch):
    """The floor under the checks: with vetting switched off, the kernel (O_NOFOLLOW) still refuses."""
    outside = tmp_path / "outside"
    outside.mkdir()
    dest = tmp_path / "dest"
    dest.mkdir()
    os.symlink(str(outside), dest / "conf")  # as if an earlier member had been a link to outside
    monkeypatch.setattr(arc.MemberTable, "add", lambda self, member: None)
    for name in ("conf/evil", "conf/sub/evil"):
        path = write_tar(tmp_path / "t.tar", [entry(name, data=b"x")])
        with pytest.raises(arc.ArchiveError, match=f"cannot write archive member '{name}': a symlink or file is in the way"):
            arc.unpack(path, str(dest))
    path = write_tar(tmp_path / "t.tar", [entry("conf", data=b"x")])
    with pytest.raises(arc.ArchiveError, match="cannot write archive member 'conf': File exists"):
        arc.unpack(path, str(dest))
    assert os.listdir(outside) == []


@pytest.mark.parametrize("special, expected", [(0o4755, "bin/su (4755)"), (0o2755, "bin/sg (2755)"), (0o1777, "tmp (1777)")])
def test_setuid_setgid_and_sticky_bits_are_dropped_and_reported(tmp_path, special, expected):
    name = expected.split(" ")[0]
    kind = tarfile.DIRTYPE if name == "tmp" else tarfile.REGTYPE
    path = write_tar(tmp_path / "m.tar", [entry(name, kind, data=b"" if kind == tarfile.DIRTYPE else b"x", mode=special)])
    dest = tmp_path / "dest"
    dest.mkdir()
    report = arc.unpack(path, str(dest))
    assert report.special_bits_dropped == [expected]
    assert stat.S_IMODE(os.stat(dest / name).st_mode) == special & 0o777
    assert arc.unpack(path, None).special_bits_dropped == [expected], "check mode reports the same"


def test_zip_keeps_unix_modes_and_gives_defaults_otherwise(tmp_path):
    path = tmp_path / "app.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, mode in (("bin/run.sh", 0o100755), ("conf/", 0o040750), ("conf/app.json", 0o100600), ("bin/su", 0o104755)):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 2, 3, 4, 6))
            info.create_system = 3
            info.external_attr = mode << 16
            archive.writestr(info, "" if name.endswith("/") else "x")
        archive.writestr("README", "no unix mode")  # create_system of this platform, no mode bits: default
        msdos = zipfile.ZipInfo("data/")
        msdos.create_system = 0  # made on MS-DOS/Windows: no Unix mode, so the default
        archive.writestr(msdos, "")
    dest = tmp_path / "dest"
    dest.mkdir()
    report = arc.unpack(str(path), str(dest))
    modes = {n: stat.S_IMODE(os.stat(dest / n).st_mode) for n in ("bin/run.sh", "conf", "conf/app.json", "bin/su", "data")}
    assert modes == {"bin/run.sh": 0o755, "conf": 0o750, "conf/app.json": 0o600, "bin/su": 0o755, "data": 0o755}
    assert stat.S_IMODE(os.stat(dest / "README").st_mode) in (0o644, 0o600)  # zipfile stores 0600 for writestr
    assert report.special_bits_dropped == ["bin/su (4755)"]


def zip_bytes(entries, method=zipfile.ZIP_STORED):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return bytearray(buffer.getvalue())


def patch_zip(raw, local_offset, central_offset):
    """Apply the same change to the first local header and the central directory entry."""
    local = raw.find(b"PK\x03\x04")
    central = raw.find(b"PK\x01\x02")
    return local + local_offset, central + central_offset


def encrypted_zip():
    raw = zip_bytes([("secret.txt", b"x" * 20)])
    local, central = patch_zip(raw, 6, 8)  # general purpose bit flag: bit 0 = encrypted
    raw[local] |= 1
    raw[central] |= 1
    return bytes(raw)


def deflate64_zip():
    raw = zip_bytes([("data.bin", b"x" * 20)])
    local, central = patch_zip(raw, 8, 10)  # compression method
    struct.pack_into("<H", raw, local, 9)
    struct.pack_into("<H", raw, central, 9)
    return bytes(raw)


def bad_crc_zip():
    raw = zip_bytes([("data.bin", b"hello world, stored")])
    at = raw.find(b"hello world")
    raw[at] ^= 0xFF
    return bytes(raw)


def tar_bytes(compress=None, files=200):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for i in range(files):
            info, data = entry(f"app/f{i:03d}.txt", data=os.urandom(900))
            tar.addfile(info, data)
    raw = buffer.getvalue()
    return {None: lambda d: d, "gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[compress](raw)


def flip_middle(data):
    data = bytearray(data)
    data[len(data) // 2] ^= 0x55
    return bytes(data)


MALFORMED = [
    ("truncated .tar.gz", "app.tar.gz", lambda: tar_bytes("gz")[:-5000], "it is truncated: the gzip data ends before its end-of-stream marker"),
    ("truncated .tar.xz", "app.tar.xz", lambda: tar_bytes("xz")[:-5000], "it is truncated: the xz data ends before its end-of-stream marker"),
    ("truncated .tar.bz2", "app.tar.bz2", lambda: tar_bytes("bz2")[:-5000], "it is truncated: the bzip2 data ends before its end-of-stream marker"),
    # each member of tar_bytes() is a 512-byte header and 900 bytes of data padded to 1024
    ("truncated inside a member", "app.tar", lambda: tar_bytes()[:1536 * 5 + 512 + 100], "it is truncated: the data of 'app/f005.txt' ends 800 bytes early"),
    ("truncated between members", "app.tar", lambda: tar_bytes()[:1536 * 6], "the tar data ends without its end-of-archive marker"),
    ("corrupt header", "app.tar", lambda: tar_bytes()[:1536 * 6] + b"\x01" * 512 + tar_bytes()[1536 * 6 + 512:],
     "it is not a valid tar archive: a corrupt tar header follows"),
    ("corrupt gzip data", "app.tar.gz", lambda: flip_middle(tar_bytes("gz")), "its gzip data is corrupt"),
    ("corrupt xz data", "app.tar.xz", lambda: flip_middle(tar_bytes("xz")), "its xz data is corrupt"),
    ("garbage after the gzip stream", "app.tar.gz", lambda: tar_bytes("gz") + b"garbage!", "garbage after the gzip stream"),
    ("gzip of something else", "app.tar.gz", lambda: gzip.compress(b"just some text, not a tar archive\n" * 40),
     "it is not a valid tar archive"),
    ("random bytes named .tar.gz", "app.tar.gz", lambda: bytes(range(7, 250)) * 40, "is not an archive this module reads"),
    ("empty file", "app.tar.gz", lambda: b"", "is empty: not an archive"),
    ("empty tar", "app.tar", lambda: b"\0" * 10240, "contains nothing"),
    ("encrypted zip", "app.zip", encrypted_zip, "archive member 'secret.txt' is encrypted; encrypted zip archives are not supported"),
    ("unsupported zip method", "app.zip", deflate64_zip, "archive member 'data.bin' uses compression method 9, which is not supported"),
    ("zip with a bad CRC", "app.zip", bad_crc_zip, "it is not a valid zip archive: Bad CRC-32 for file 'data.bin'"),
    ("truncated zip", "app.zip", lambda: bytes(zip_bytes([("a.txt", b"x" * 5000)], zipfile.ZIP_DEFLATED))[:-30], "it is not a valid zip archive"),
]


@pytest.mark.parametrize("label, name, make, message", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_archives_fail_naming_the_file_and_the_problem_in_check_mode_too(tmp_path, label, name, make, message):
    path = tmp_path / name
    path.write_bytes(make())
    dest = tmp_path / "dest"
    dest.mkdir()
    messages = []
    for target in (None, str(dest)):
        with pytest.raises(arc.ArchiveError) as caught:
            arc.unpack(str(path), target)
        messages.append(str(caught.value))
    assert messages[0] == messages[1], "check mode must fail exactly as the real run"
    assert str(path) in messages[0] and message in messages[0], messages[0]


def test_concatenated_streams_and_zero_padding_are_read_like_gzip_does(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.addfile(*entry("VERSION", data=b"v1\n"))
    raw = buffer.getvalue()
    path = tmp_path / "app.tar.gz"
    path.write_bytes(gzip.compress(raw[:512 * 3]) + gzip.compress(raw[512 * 3:]) + b"\0" * 512)
    dest = tmp_path / "dest"
    dest.mkdir()
    assert arc.unpack(str(path), str(dest)).files == 1 and (dest / "VERSION").read_bytes() == b"v1\n"


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_every_tar_compression_is_recognised_by_content_not_name(tmp_path, mode):
    big = b"0123456789abcdef" * (arc.CHUNK // 8) + b"tail!"
    path = write_tar(tmp_path / "misnamed.zip", [entry("VERSION", data=b"v1\n"), entry("big.bin", data=big)], mode)
    dest = tmp_path / "dest"
    dest.mkdir()
    report = arc.unpack(path, str(dest))
    assert (report.files, report.bytes) == (2, 3 + 2 * arc.CHUNK + 5)
    with tarfile.open(path) as tar:
        assert hashlib.sha256((dest / "big.bin").read_bytes()).digest() == hashlib.sha256(tar.extractfile("big.bin").read()).digest()


def test_sparse_members_are_unpacked_through_their_map(tmp_path):
    sparse = tmp_path / "sparse.bin"
    with open(sparse, "wb") as handle:
        handle.seek(1024 * 1024)
        handle.write(b"end")
    path = str(tmp_path / "sparse.tar")
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        tar.add(str(sparse), arcname="sparse.bin")
    dest = tmp_path / "dest"
    dest.mkdir()
    arc.unpack(path, str(dest))
    assert (dest / "sparse.bin").read_bytes() == sparse.read_bytes()


def test_directory_sources_are_vetted_like_archives(tmp_path):
    src = tmp_path / "src"
    (src / "lib").mkdir(parents=True)
    (src / "lib" / "real.so").write_bytes(b"so")
    os.symlink("real.so", src / "lib" / "alias.so")
    os.chmod(src / "lib" / "real.so", 0o750)
    dest = tmp_path / "dest"
    dest.mkdir()
    arc.unpack(str(src), str(dest))
    assert os.readlink(dest / "lib" / "alias.so") == "real.so" and stat.S_IMODE(os.stat(dest / "lib" / "real.so").st_mode) == 0o750
    assert arc.sha256_tree(str(src)) == arc.sha256_tree(str(dest))
    os.symlink("../../../etc/shadow", src / "lib" / "shadow")
    with pytest.raises(arc.ArchiveError, match="'lib/shadow' is a symlink to '../../../etc/shadow', which leads outside"):
        arc.unpack(str(src), None)
    os.unlink(src / "lib" / "shadow")
    os.mkfifo(src / "pipe")
    with pytest.raises(arc.ArchiveError, match="source entry 'pipe' is a device file, fifo or socket"):
        arc.unpack(str(src), None)


def test_missing_src_is_named(tmp_path):
    with pytest.raises(arc.ArchiveError, match=f"src {tmp_path}/nope.tar.gz does not exist on the host"):
        arc.unpack(str(tmp_path / "nope.tar.gz"), None)


@pytest.mark.parametrize("fmt, compress", [("gzip", gzip.compress), ("bzip2", bz2.compress), ("xz", lzma.compress)])
def test_a_compression_bomb_is_decompressed_in_bounded_pieces(tmp_path, fmt, compress):
    payload = b"\0" * (16 * arc.CHUNK + 7)
    data = compress(payload)
    assert len(data) < arc.CHUNK // 8, "the test needs input that expands a lot"
    path = tmp_path / "bomb"
    path.write_bytes(data)
    with open(path, "rb") as raw:
        stream = arc._Decompressed(raw.fileno(), fmt)  # pylint: disable=protected-access
        try:
            decompressor = stream._decompressor()  # pylint: disable=protected-access
            pieces = [len(piece) for piece in stream._inflate(decompressor, data)]  # pylint: disable=protected-access
            assert max(pieces) <= arc.CHUNK and sum(pieces) == len(payload) and decompressor.eof
            assert stream.read(len(payload) + 1) == payload, "the stream hands out everything, in order"
        finally:
            stream.close()


def header_variety(path):
    """Headers of every kind tarfile writes: ustar with a prefix, GNU long names and big numbers, PAX, a V7-style
    directory, links, devices; plus a member whose checksum was made with signed bytes."""
    long_dir = "/".join(["segment-" + "x" * 40] * 3)
    with tarfile.open(path, "w", format=tarfile.GNU_FORMAT) as tar:
        for name, fmt_kind in ((f"{long_dir}/file.txt", tarfile.REGTYPE), ("café/naïve.txt", tarfile.REGTYPE), ("d/", tarfile.DIRTYPE),
                               ("l" * 120, tarfile.SYMTYPE), ("h", tarfile.LNKTYPE), ("dev", tarfile.CHRTYPE)):
            info, data = entry(name, fmt_kind, data=b"x" * 700, linkname="t" * 150 if fmt_kind in (tarfile.SYMTYPE, tarfile.LNKTYPE) else "")
            info.uid = 8 ** 8 + 5  # needs base-256 in GNU format
            tar.addfile(info, data)
    raw = bytearray(open(path, "rb").read())
    with tarfile.open(fileobj=io.BytesIO(), mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name in (f"{long_dir[:120]}/ustar-prefixed.txt", "plain.txt", "v7dir/"):
            info, data = entry(name, tarfile.AREGTYPE if name.endswith("/") else tarfile.REGTYPE, data=b"y")
            tar.addfile(info, data)
        raw += tar.fileobj.getvalue()
    with tarfile.open(fileobj=io.BytesIO(), mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(*entry("p" * 300, data=b"z", mode=0o4755))
        raw += tar.fileobj.getvalue()
    return bytes(raw)


def test_the_fast_header_parser_makes_what_tarfiles_parser_makes(tmp_path):
    raw = header_variety(str(tmp_path / "variety.tar"))
    blocks = [raw[i:i + tarfile.BLOCKSIZE] for i in range(0, len(raw), tarfile.BLOCKSIZE)]
    signed = bytearray(blocks[0])  # a checksum some old tars make with signed bytes, and any corrupt block
    signed[0] = 0xE9
    blocks += [bytes(signed), b"\0" * 512, b"\1" * 512, b"short"]
    compared = 0
    for block in blocks:
        try:
            expected = tarfile.TarInfo.frombuf(block, "utf-8", "surrogateescape")
        except tarfile.HeaderError as exc:
            with pytest.raises(type(exc)):
                arc._TarInfo.frombuf(block, "utf-8", "surrogateescape")  # pylint: disable=protected-access
            continue
        got = arc._TarInfo.frombuf(block, "utf-8", "surrogateescape")  # pylint: disable=protected-access
        slots = [s for s in tarfile.TarInfo.__slots__ if hasattr(expected, s) or hasattr(got, s)]
        assert {s: getattr(got, s, None) for s in slots} == {s: getattr(expected, s, None) for s in slots}
        compared += 1
    assert compared >= 12
    with tarfile.open(fileobj=io.BytesIO(raw), tarinfo=arc._TarInfo) as fast, tarfile.open(fileobj=io.BytesIO(raw)) as slow:  # pylint: disable=protected-access
        assert [m.get_info() for m in fast.getmembers()] == [m.get_info() for m in slow.getmembers()]
