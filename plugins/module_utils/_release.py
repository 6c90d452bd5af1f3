# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: releases on a host, an atomic `current` switch, a ledger, correct rollback.

Layout under the application root:
  releases/<id>/         complete releases, never visible half-written (unpacked in .staging-*, renamed in)
  releases/.staging-*    unfinished stagings, removed by the next run
  releases/.trash-*      releases being deleted (renamed out first), removed by the next run
  shared/                paths linked into every release (shared_paths)
  current -> releases/<id>   switched by renaming a temporary symlink over it
  ledger.json            what happened to each release; the truth about `current` is readlink, always
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import stat
import tarfile
import tempfile
import time
import typing as t
import zipfile

from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError, SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._io import fsync_dir, read_json, symlink_atomic, write_json_atomic

LEDGER = "ledger.json"
LEDGER_VERSION = 1
HISTORY_LIMIT = 200
RELEASE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$")
OUTCOMES = ("good", "failed", "rolled_back", "unknown")
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".zip")


class ReleaseError(SreOpsError):
    """A release operation was refused or failed."""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def check_release_id(release: str, option: str = "release") -> str:
    if not RELEASE_ID.match(release or "") or release in (".", ".."):
        raise InvalidInputError(
            f"{option} {release!r} is not a valid release id: use letters, digits, '.', '_', '+', '-' (at most 128, not starting with '.')"
        )
    return release


def sha256_file(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()


def sha256_tree(path: str) -> str:
    """A digest of a directory tree: relative paths, types, modes, link targets and file contents."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(dirs + files):
            full = os.path.join(root, name)
            rel = os.path.relpath(full, path)
            info = os.lstat(full)
            digest.update(f"{rel}\0{stat.S_IFMT(info.st_mode)}\0{stat.S_IMODE(info.st_mode)}\0".encode())
            if stat.S_ISLNK(info.st_mode):
                digest.update(os.readlink(full).encode())
            elif stat.S_ISREG(info.st_mode):
                digest.update(sha256_file(full).encode())
    return digest.hexdigest()


def parse_checksum(checksum: str | None) -> str | None:
    if checksum is None:
        return None
    match = re.fullmatch(r"sha256:([0-9a-fA-F]{64})", checksum.strip())
    if not match:
        raise InvalidInputError(f"checksum {checksum!r} must look like sha256:<64 hex digits>")
    return match.group(1).lower()


# ----- archive safety -------------------------------------------------------------------------------
def _inside(name: str) -> bool:
    """True if a relative member path stays inside the release once normalised."""
    if name.startswith("/") or os.path.isabs(name):
        return False
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    depth = 0
    for part in parts:
        depth += -1 if part == ".." else 1
        if depth < 0:
            return False
    return True


def check_tar_members(members: list[tarfile.TarInfo]) -> None:
    """Refuse members that could write outside the release or create special files; name the member."""
    for member in members:
        name = member.name
        if name.startswith("/") or os.path.isabs(name):
            raise ReleaseError(f"archive member {name!r} has an absolute path; refusing the archive")
        if ".." in name.replace("\\", "/").split("/"):
            raise ReleaseError(f"archive member {name!r} contains '..'; refusing the archive")
        if member.ischr() or member.isblk() or member.isfifo() or member.isdev():
            raise ReleaseError(f"archive member {name!r} is a device file or fifo; refusing the archive")
        if member.issym():
            target = os.path.join(os.path.dirname(name), member.linkname)
            if member.linkname.startswith("/") or not _inside(target):
                raise ReleaseError(f"archive member {name!r} is a symlink to {member.linkname!r}, outside the release; refusing the archive")
        if member.islnk():
            if member.linkname.startswith("/") or not _inside(member.linkname):
                raise ReleaseError(f"archive member {name!r} is a hard link to {member.linkname!r}, outside the release; refusing the archive")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise ReleaseError(f"archive member {name!r} has an unsupported type; refusing the archive")


def check_zip_members(infos: list[zipfile.ZipInfo]) -> None:
    for info in infos:
        name = info.filename
        if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
            raise ReleaseError(f"archive member {name!r} has an absolute path; refusing the archive")
        if ".." in name.replace("\\", "/").split("/"):
            raise ReleaseError(f"archive member {name!r} contains '..'; refusing the archive")
        mode = (info.external_attr >> 16) & 0o170000
        if mode and mode not in (stat.S_IFREG, stat.S_IFDIR):
            raise ReleaseError(f"archive member {name!r} is a link or special file; refusing the archive")


def check_tree_links(path: str) -> None:
    """A directory source (or an unpacked release) may not hold links leading outside it."""
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            full = os.path.join(root, name)
            info = os.lstat(full)
            rel = os.path.relpath(full, path)
            if stat.S_ISLNK(info.st_mode):
                target = os.readlink(full)
                if target.startswith("/") or not _inside(os.path.join(os.path.dirname(rel), target)):
                    raise ReleaseError(f"source entry {rel!r} is a symlink to {target!r}, outside the release; refusing the source")
            elif not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)):
                raise ReleaseError(f"source entry {rel!r} is a device file, fifo or socket; refusing the source")


def source_kind(src: str) -> str:
    if os.path.isdir(src):
        return "directory"
    if not os.path.isfile(src):
        raise ReleaseError(f"src {src} does not exist on the host (or is not a file or directory)")
    if src.endswith(".zip"):
        return "zip"
    if tarfile.is_tarfile(src):
        return "tar"
    raise ReleaseError(f"src {src} is neither a directory nor a tar (.tar, .tar.gz, .tar.bz2, .tar.xz) or zip archive")


def unpack(src: str, kind: str, dest: str) -> None:
    """Unpack into dest (an empty directory), after vetting every member; nothing is written for a refused archive."""
    if kind == "directory":
        check_tree_links(src)
        shutil.copytree(src, dest, symlinks=True, dirs_exist_ok=True)
        return
    if kind == "zip":
        with zipfile.ZipFile(src) as archive:
            infos = archive.infolist()
            check_zip_members(infos)
            archive.extractall(dest)
        return
    with tarfile.open(src) as archive:
        members = archive.getmembers()
        check_tar_members(members)
        if hasattr(tarfile, "data_filter"):
            archive.extractall(dest, members=members, filter="data")
        else:  # Python < 3.12 without the backported filters: members were vetted above
            archive.extractall(dest, members=members)  # nosec B202


# ----- the ledger -----------------------------------------------------------------------------------
def empty_ledger() -> dict[str, t.Any]:
    return {"version": LEDGER_VERSION, "seq": 0, "releases": {}, "history": []}


def newest_good(ledger: dict[str, t.Any], on_disk: set[str], exclude: str | None = None) -> str | None:
    """The good release most recently made current (by the ledger's sequence, never by mtime)."""
    candidates = [
        (rec.get("last_activated_seq") or 0, rec.get("outcome_seq") or 0, rid)
        for rid, rec in ledger["releases"].items()
        if rec.get("outcome") == "good" and rid in on_disk and rid != exclude
    ]
    return max(candidates)[2] if candidates else None


class ReleaseManager:
    """One application root. Every public method returns a result dict (changed, diff, ...)."""

    def __init__(
        self,
        path: str,
        check_mode: bool = False,
        checkpoint: t.Callable[[str], None] | None = None,
    ) -> None:
        if not os.path.isabs(path):
            raise InvalidInputError(f"path {path!r} must be absolute")
        self.path = os.path.normpath(path)
        self.releases_dir = os.path.join(self.path, "releases")
        self.shared_dir = os.path.join(self.path, "shared")
        self.current_link = os.path.join(self.path, "current")
        self.ledger_path = os.path.join(self.path, LEDGER)
        self.check_mode = check_mode
        # A test hook: called after each durable step, so a test can kill the process there.
        self.checkpoint = checkpoint or (lambda step: None)
        # What check mode pretends it did to the disk, so its predictions match a real run.
        self._virtual_added: set[str] = set()
        self._virtual_removed: set[str] = set()
        self.notes: list[str] = []

    # ----- reading ----------------------------------------------------------------------------------
    def releases_on_disk(self) -> list[str]:
        try:
            names = os.listdir(self.releases_dir)
        except FileNotFoundError:
            names = []
        found = {n for n in names if not n.startswith(".") and os.path.isdir(os.path.join(self.releases_dir, n))}
        return sorted((found | self._virtual_added) - self._virtual_removed)

    def leftovers(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.releases_dir) if n.startswith((".staging-", ".trash-")))
        except FileNotFoundError:
            return []

    def current(self) -> str | None:
        try:
            target = os.readlink(self.current_link)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise ReleaseError(f"{self.current_link} exists but is not a symlink; refusing to manage it") from exc
        return os.path.basename(os.path.normpath(target))

    def ledger(self) -> dict[str, t.Any]:
        ledger = read_json(self.ledger_path, default=None)
        if ledger is None:
            return empty_ledger()
        if not isinstance(ledger, dict) or ledger.get("version") != LEDGER_VERSION or not isinstance(ledger.get("releases"), dict):
            raise ReleaseError(f"{self.ledger_path} is not a release ledger this module understands (version {LEDGER_VERSION})")
        return ledger

    def reconciled_ledger(self) -> dict[str, t.Any]:
        """The ledger, corrected by what is on disk: readlink current is the truth (a kill may have come between)."""
        ledger = self.ledger()
        current = self.current()
        on_disk = set(self.releases_on_disk())
        for rid in on_disk:
            if rid not in ledger["releases"]:
                ledger["releases"][rid] = {"id": rid, "source": None, "source_checksum": None, "staged_at": None, "outcome": "unknown"}
        if current and current in ledger["releases"] and ledger.get("current") != current:
            self._record_activation(ledger, current, by="reconciled", previous=ledger.get("current"))
        for rid, record in ledger["releases"].items():
            record["on_disk"] = rid in on_disk
        return ledger

    def info(self) -> dict[str, t.Any]:
        ledger = self.reconciled_ledger()
        current = self.current()
        on_disk = set(self.releases_on_disk())
        return {
            "path": self.path,
            "current": current,
            "current_path": os.path.join(self.releases_dir, current) if current else None,
            "previous_good": newest_good(ledger, on_disk, exclude=current),
            "last_good": newest_good(ledger, on_disk),
            "releases": [dict(ledger["releases"][r], id=r) for r in self._by_age(ledger, on_disk)],
            "leftovers": self.leftovers(),
            "ledger": {k: v for k, v in ledger.items() if k != "releases"} | {"releases": ledger["releases"]},
        }

    @staticmethod
    def _by_age(ledger: dict[str, t.Any], ids: t.Iterable[str]) -> list[str]:
        return sorted(ids, key=lambda r: (ledger["releases"].get(r, {}).get("staged_seq") or 0, r))

    # ----- ledger bookkeeping -------------------------------------------------------------------------
    def _next_seq(self, ledger: dict[str, t.Any]) -> int:
        ledger["seq"] = int(ledger.get("seq") or 0) + 1
        return ledger["seq"]

    def _event(self, ledger: dict[str, t.Any], event: str, release: str, **extra: t.Any) -> None:
        ledger.setdefault("history", []).append({"at": now(), "event": event, "release": release, **extra})
        ledger["history"] = ledger["history"][-HISTORY_LIMIT:]

    def _record_activation(self, ledger: dict[str, t.Any], release: str, by: str, previous: str | None) -> None:
        stamp = now()
        seq = self._next_seq(ledger)
        if previous and previous in ledger["releases"] and previous != release:
            ledger["releases"][previous]["deactivated_at"] = stamp
        record = ledger["releases"].setdefault(release, {"id": release, "outcome": "unknown"})
        record.update({"activated_at": stamp, "last_activated_seq": seq, "activated_by": by})
        record.pop("deactivated_at", None)
        ledger["current"] = release
        self._event(ledger, "activated", release, by=by, previous=previous)

    def _save(self, ledger: dict[str, t.Any]) -> None:
        clean = dict(ledger, releases={rid: {k: v for k, v in rec.items() if k != "on_disk"} for rid, rec in ledger["releases"].items()})
        write_json_atomic(self.ledger_path, clean)

    # ----- writing ----------------------------------------------------------------------------------
    def _ensure_layout(self) -> None:
        for directory in (self.path, self.releases_dir, self.shared_dir):
            os.makedirs(directory, mode=0o755, exist_ok=True)

    def _clean_leftovers(self) -> list[str]:
        removed = []
        for name in self.leftovers():
            if not self.check_mode:
                shutil.rmtree(os.path.join(self.releases_dir, name), ignore_errors=True)
            removed.append(name)
        return removed

    def _stage(self, ledger: dict[str, t.Any], release: str, src: str | None, checksum: str | None,
               shared_paths: list[str]) -> bool:
        """Returns True if the release was (or would be) staged now."""
        final = os.path.join(self.releases_dir, release)
        record = ledger["releases"].get(release)
        if os.path.isdir(final):
            if checksum and record and record.get("source_checksum") and record["source_checksum"] != f"sha256:{checksum}":
                raise ReleaseError(
                    f"release {release} already exists from a different source ({record['source_checksum']}, not sha256:{checksum}); "
                    "releases are immutable: use a new release id"
                )
            return False
        if src is None:
            raise ReleaseError(f"release {release} is not staged on this host and no src was given")
        if self.check_mode and not os.path.exists(src):
            # In a --check preview, an earlier task (the upload) has not really put src there: predict the staging.
            self.notes.append(f"src {src} is not on the host yet (uploaded by an earlier task in a real run); it was not vetted")
            self._virtual_added.add(release)
            ledger["releases"][release] = {"id": release, "staged_seq": self._next_seq(ledger), "outcome": "unknown"}
            return True
        kind = source_kind(src)
        if checksum is not None:
            if kind == "directory":
                raise InvalidInputError("checksum applies to an archive src, not to a directory")
            actual = sha256_file(src)
            if actual != checksum:
                raise ReleaseError(f"checksum mismatch for {src}: expected sha256:{checksum}, got sha256:{actual}; nothing was written")
        for shared in shared_paths:
            if not _inside(shared) or shared.strip("/") in ("", "."):
                raise InvalidInputError(f"shared_paths entry {shared!r} must be a relative path inside the release")
        # Vet before anything is created: a refused archive writes nothing, and check mode predicts the refusal.
        self._vet(src, kind)
        if self.check_mode:
            self._virtual_added.add(release)
            ledger["releases"][release] = {"id": release, "staged_seq": self._next_seq(ledger), "outcome": "unknown"}
            return True
        self._ensure_layout()
        staging = tempfile.mkdtemp(prefix=f".staging-{release}-", dir=self.releases_dir)
        self.checkpoint("staging-created")
        try:
            unpack(src, kind, staging)
            self.checkpoint("unpacked")
            for shared in shared_paths:
                self._link_shared(staging, shared)
            os.chmod(staging, 0o755)
        except (ReleaseError, InvalidInputError):
            shutil.rmtree(staging, ignore_errors=True)
            raise
        except (OSError, tarfile.TarError, zipfile.BadZipFile, EOFError) as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise ReleaseError(f"cannot unpack {src}: {exc}") from exc
        os.rename(staging, final)
        fsync_dir(self.releases_dir)
        self.checkpoint("renamed")
        seq = self._next_seq(ledger)
        ledger["releases"][release] = {
            "id": release,
            "source": src,
            "source_checksum": f"sha256:{checksum}" if checksum else ("sha256:" + (sha256_file(src) if kind != "directory" else sha256_tree(src))),
            "staged_at": now(),
            "staged_seq": seq,
            "outcome": "unknown",
        }
        self._event(ledger, "staged", release)
        self._save(ledger)
        self.checkpoint("staged")
        return True

    def _vet(self, src: str, kind: str) -> None:
        if kind == "directory":
            check_tree_links(src)
        elif kind == "zip":
            with zipfile.ZipFile(src) as archive:
                check_zip_members(archive.infolist())
        else:
            with tarfile.open(src) as archive:
                check_tar_members(archive.getmembers())

    def _link_shared(self, release_dir: str, shared: str) -> None:
        rel = shared.strip("/")
        target_in_shared = os.path.join(self.shared_dir, rel)
        in_release = os.path.join(release_dir, rel)
        if not os.path.lexists(target_in_shared):
            # First release to name this path seeds it from the release, else an empty directory.
            os.makedirs(os.path.dirname(target_in_shared), exist_ok=True)
            if os.path.isdir(in_release) and not os.path.islink(in_release):
                shutil.copytree(in_release, target_in_shared, symlinks=True)
            elif os.path.isfile(in_release) and not os.path.islink(in_release):
                shutil.copy2(in_release, target_in_shared)
            else:
                os.makedirs(target_in_shared)
        if os.path.lexists(in_release):
            if os.path.isdir(in_release) and not os.path.islink(in_release):
                shutil.rmtree(in_release)
            else:
                os.unlink(in_release)
        os.makedirs(os.path.dirname(in_release), exist_ok=True)
        os.symlink(os.path.relpath(target_in_shared, os.path.dirname(os.path.join(self.releases_dir, "x", rel))), in_release)

    def _prune(self, ledger: dict[str, t.Any], keep: int | None, protect: list[str], current: str | None) -> list[str]:
        if not keep:
            return []
        on_disk = set(self.releases_on_disk())
        keepers = {current, newest_good(ledger, on_disk), *protect}
        ordered = self._by_age(ledger, on_disk)
        excess = len(ordered) - keep
        doomed = [r for r in ordered if r not in keepers][: max(0, excess)]
        for release in doomed:
            self._remove(ledger, release)
        return doomed

    def _remove(self, ledger: dict[str, t.Any], release: str) -> None:
        if self.check_mode:
            self._virtual_removed.add(release)
            return
        trash = tempfile.mkdtemp(prefix=f".trash-{release}-", dir=self.releases_dir)
        # Rename first: the release disappears atomically, the slow delete happens out of sight.
        os.rename(os.path.join(self.releases_dir, release), os.path.join(trash, release))
        fsync_dir(self.releases_dir)
        self.checkpoint("renamed-to-trash")
        record = ledger["releases"].pop(release, None)
        self._event(ledger, "removed", release, outcome=(record or {}).get("outcome"))
        self._save(ledger)
        shutil.rmtree(trash, ignore_errors=True)

    def _switch(self, ledger: dict[str, t.Any], release: str, by: str) -> None:
        previous = ledger.get("current") if self.check_mode else self.current()
        if not self.check_mode:
            symlink_atomic(os.path.join("releases", release), self.current_link)
            self.checkpoint("switched")
        self._record_activation(ledger, release, by=by, previous=previous)
        if not self.check_mode:
            self._save(ledger)
            self.checkpoint("ledger-written")

    def _result(self, changed: bool, before: dict[str, t.Any], ledger: dict[str, t.Any], **extra: t.Any) -> dict[str, t.Any]:
        current = ledger.get("current") if self.check_mode else self.current()
        on_disk = set(self.releases_on_disk())
        after = {"current": current, "releases": self._by_age(ledger, on_disk)}
        return {
            "changed": changed,
            "path": self.path,
            "current": current,
            "previous": before["current"] if before["current"] != current else None,
            "previous_good": newest_good(ledger, on_disk, exclude=current),
            "releases": after["releases"],
            "diff": {"before": before, "after": after},
            "notes": self.notes,
            **extra,
        }

    def _before(self) -> dict[str, t.Any]:
        return {"current": self.current(), "releases": self._by_age(self.ledger(), self.releases_on_disk())}

    # ----- states -----------------------------------------------------------------------------------
    def stage(self, release: str, src: str | None, checksum: str | None, shared_paths: list[str]) -> dict[str, t.Any]:
        before = self._before()
        ledger = self.reconciled_ledger()
        leftovers = self._clean_leftovers()
        staged = self._stage(ledger, release, src, parse_checksum(checksum), shared_paths)
        return self._result(staged or bool(leftovers), before, ledger, release=release, staged=staged,
                            switched=False, pruned=[], leftovers_removed=leftovers)

    def activate(self, release: str, src: str | None, checksum: str | None, shared_paths: list[str],
                 keep_releases: int | None, protect: list[str]) -> dict[str, t.Any]:
        before = self._before()
        ledger = self.reconciled_ledger()
        leftovers = self._clean_leftovers()
        staged = self._stage(ledger, release, src, parse_checksum(checksum), shared_paths)
        switched = self.current() != release
        if switched:
            self._switch(ledger, release, by="activate")
        pruned = self._prune(ledger, keep_releases, protect, release)
        changed = staged or switched or bool(pruned) or bool(leftovers)
        return self._result(changed, before, ledger, release=release, staged=staged, switched=switched,
                            pruned=pruned, leftovers_removed=leftovers)

    def mark(self, release: str | None, outcome: str) -> dict[str, t.Any]:
        before = self._before()
        ledger = self.reconciled_ledger()
        release = release or self.current()
        if not release:
            raise ReleaseError(f"no release given and {self.current_link} does not exist: nothing to mark {outcome}")
        record = ledger["releases"].get(release)
        if record is None or not os.path.isdir(os.path.join(self.releases_dir, release)):
            raise ReleaseError(f"release {release} is not on this host (releases: {', '.join(self.releases_on_disk()) or 'none'})")
        changed = record.get("outcome") != outcome
        if changed:
            record["outcome"] = outcome
            record["outcome_at"] = now()
            record["outcome_seq"] = self._next_seq(ledger)
            self._event(ledger, f"marked {outcome}", release)
            if not self.check_mode:
                self._save(ledger)
        return self._result(changed, before, ledger, release=release, outcome=outcome, staged=False, switched=False, pruned=[])

    def rollback(self, release: str | None) -> dict[str, t.Any]:
        before = self._before()
        ledger = self.reconciled_ledger()
        current = self.current()
        on_disk = set(self.releases_on_disk())
        if release is not None:
            if release not in on_disk:
                raise ReleaseError(f"cannot roll back to {release}: it is not on this host (releases: {', '.join(sorted(on_disk)) or 'none'})")
            target = release
        else:
            record = ledger["releases"].get(current or "", {})
            if current and record.get("activated_by") == "rollback" and record.get("outcome") == "good":
                target = current  # already rolled back: a second run changes nothing
            else:
                target = newest_good(ledger, on_disk, exclude=current)
            if target is None:
                raise ReleaseError(
                    f"no release marked good to roll back to under {self.path} (current: {current or 'none'}; "
                    f"releases: {', '.join(sorted(on_disk)) or 'none'}); mark one good or name one with release"
                )
        switched = target != current
        if switched:
            if current and current in ledger["releases"] and ledger["releases"][current].get("outcome") != "failed":
                ledger["releases"][current]["outcome"] = "rolled_back"
                ledger["releases"][current]["outcome_at"] = now()
                ledger["releases"][current]["outcome_seq"] = self._next_seq(ledger)
            self._switch(ledger, target, by="rollback")
        return self._result(switched, before, ledger, release=target, rolled_back_from=current if switched else None,
                            staged=False, switched=switched, pruned=[])

    def remove(self, release: str, protect: list[str]) -> dict[str, t.Any]:
        before = self._before()
        ledger = self.reconciled_ledger()
        current = self.current()
        on_disk = set(self.releases_on_disk())
        if release not in on_disk:
            return self._result(False, before, ledger, release=release, staged=False, switched=False, pruned=[])
        if release == current:
            raise ReleaseError(f"refusing to remove {release}: it is the current release")
        if release == newest_good(ledger, on_disk):
            raise ReleaseError(f"refusing to remove {release}: it is the last release marked good (the rollback target)")
        if release in protect:
            raise ReleaseError(f"refusing to remove {release}: it is listed in protect")
        self._remove(ledger, release)
        return self._result(True, before, ledger, release=release, staged=False, switched=False, pruned=[release])
