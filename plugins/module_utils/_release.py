# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: releases on a host, an atomic `current` switch, a ledger, correct rollback.

Layout under the application root:
  releases/<id>/           complete releases, never visible half-written (unpacked in .staging-*, renamed in)
  releases/.staging-*      unfinished stagings of killed runs, removed by the next run
  releases/.trash-*        releases being deleted (renamed out first), removed by the next run
  shared/                  paths linked into every release (shared_paths)
  current -> releases/<id> switched by renaming a temporary symlink over it
  ledger.json              what happened to each release; the truth about `current` is readlink, always
  .release.lock            every run that changes anything holds an flock on it (see _lock.PathLock)

Every change runs under the lock, so two runs never interleave, and every step that the ledger must
follow is journalled: the ledger records the step ("pending") before it is taken, so the next run
completes the bookkeeping of a step a killed run took, or forgets a step it never took, instead of
deciding again from half-updated state.
"""

from __future__ import annotations

import contextlib
import copy
import os
import re
import shutil
import stat
import tempfile
import time
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError, SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._io import fsync_dir, read_json, symlink_atomic, write_json_atomic
from ansible_collections.sre.ops.plugins.module_utils._lock import LockTimeout, PathLock, describe_holder

if t.TYPE_CHECKING:
    from ansible_collections.sre.ops.plugins.module_utils._archive import MemberTable, Report

LEDGER = "ledger.json"
LOCK = ".release.lock"
# what a run that was killed while staging or removing a release leaves in releases/
LEFTOVER_PREFIXES = (".staging-", ".trash-")
LEDGER_VERSION = 1
HISTORY_LIMIT = 200
DEFAULT_LOCK_TIMEOUT = 300
RELEASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
STATES = ("staged", "active", "good", "failed", "rolled_back", "absent")


class ReleaseError(SreOpsError):
    """A release operation was refused or failed."""


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


# ----- options ----------------------------------------------------------------------------------------
def argument_spec() -> dict[str, t.Any]:
    return {
        "argument_spec": {
            "path": {"type": "path", "required": True},
            "release": {"type": "str"},
            "state": {"type": "str", "choices": list(STATES), "default": "active"},
            "src": {"type": "path"},
            # handled by the action plugin (plugins/action/release.py); accepted here so the documentation matches
            "remote_src": {"type": "bool", "default": False},
            "checksum": {"type": "str"},
            "shared_paths": {"type": "list", "elements": "str", "default": []},
            "keep_releases": {"type": "int", "default": 5},
            "protect": {"type": "list", "elements": "str", "default": []},
            "lock_timeout": {"type": "float", "default": DEFAULT_LOCK_TIMEOUT},
        },
        "required_if": [("state", "staged", ["release"]), ("state", "active", ["release"]), ("state", "absent", ["release"])],
    }


def check_release_id(release: str, option: str = "release") -> str:
    if not isinstance(release, str) or not RELEASE_ID.fullmatch(release):
        raise InvalidInputError(
            f"{option} {release!r} is not a valid release id: use letters, digits, '.', '_', '+', '-' "
            "(at most 128, starting with a letter or digit)"
        )
    return release


def parse_checksum(checksum: str | None) -> str | None:
    if checksum is None:
        return None
    match = re.fullmatch(r"sha256:([0-9a-fA-F]{64})", checksum.strip())
    if not match:
        raise InvalidInputError(f"checksum {checksum!r} must look like sha256:<64 hex digits>")
    return match.group(1).lower()


def check_shared_paths(paths: list[str]) -> list[str]:
    """Normalised shared paths: relative, inside the release, none inside another."""
    clean: list[str] = []
    for entry in paths:
        parts = [p for p in entry.split("/") if p not in ("", ".")]
        if entry.startswith("/") or not parts or ".." in parts:
            raise InvalidInputError(f"shared_paths entry {entry!r} must be a relative path inside the release (no '..')")
        clean.append("/".join(parts))
    for entry in clean:
        for other in clean:
            if entry != other and other.startswith(entry + "/"):
                raise InvalidInputError(f"shared_paths entries {entry!r} and {other!r} overlap: one is inside the other")
    if len(set(clean)) != len(clean):
        raise InvalidInputError(f"shared_paths lists a path twice: {', '.join(sorted(clean))}")
    return clean


def run(params: dict[str, t.Any], check_mode: bool) -> dict[str, t.Any]:
    """Validate every option, then carry out the state: what the module does, without AnsibleModule."""
    state = params["state"]
    release = check_release_id(params["release"]) if params.get("release") is not None else None
    protect = [check_release_id(p, "protect entry") for p in params.get("protect") or []]
    keep = params.get("keep_releases", 5)
    if keep is None or keep < 0:
        raise InvalidInputError(f"keep_releases must be 0 (keep all) or more, got {keep}")
    timeout = params.get("lock_timeout", DEFAULT_LOCK_TIMEOUT)
    if timeout is None or timeout < 0:
        raise InvalidInputError(f"lock_timeout must be 0 or more seconds, got {timeout}")
    checksum = params.get("checksum")
    parse_checksum(checksum)
    shared = check_shared_paths(params.get("shared_paths") or [])
    src = params.get("src")
    if src is not None and not os.path.isabs(src):
        raise InvalidInputError(f"src {src!r} must be an absolute path on the host")
    if src is not None and checksum is not None and os.path.isdir(src):
        raise InvalidInputError("checksum applies to an archive src, not to a directory")
    manager = ReleaseManager(params["path"], check_mode=check_mode, lock_timeout=timeout)
    if state == "staged":
        return manager.stage(t.cast(str, release), src, checksum, shared)
    if state == "active":
        return manager.activate(t.cast(str, release), src, checksum, shared, keep, protect)
    if state in ("good", "failed"):
        return manager.mark(release, state)
    if state == "rolled_back":
        return manager.rollback(release)
    return manager.remove(t.cast(str, release), protect)


# ----- the ledger -------------------------------------------------------------------------------------
def empty_ledger() -> dict[str, t.Any]:
    return {"version": LEDGER_VERSION, "seq": 0, "current": None, "releases": {}, "history": []}


def newest_good(ledger: dict[str, t.Any], on_disk: t.Collection[str], exclude: str | None = None) -> str | None:
    """The good release most recently made current (by the ledger's sequence, never by mtime)."""
    candidates = [
        (rec.get("last_activated_seq") or 0, rec.get("outcome_seq") or 0, rid)
        for rid, rec in ledger["releases"].items()
        if rec.get("outcome") == "good" and rid in on_disk and rid != exclude
    ]
    return max(candidates)[2] if candidates else None


def newest_staged(ledger: dict[str, t.Any], on_disk: t.Collection[str]) -> str | None:
    candidates = [(ledger["releases"].get(rid, {}).get("staged_seq") or 0, rid) for rid in on_disk]
    return max(candidates)[1] if candidates else None


class ReleaseManager:
    """One application root. Every public method returns a result dict (changed, diff, ...)."""

    def __init__(
        self,
        path: str,
        check_mode: bool = False,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
        checkpoint: t.Callable[[str], None] | None = None,
    ) -> None:
        if not os.path.isabs(path):
            raise InvalidInputError(f"path {path!r} must be absolute")
        self.path = os.path.normpath(path)
        self.releases_dir = os.path.join(self.path, "releases")
        self.shared_dir = os.path.join(self.path, "shared")
        self.current_link = os.path.join(self.path, "current")
        self.ledger_path = os.path.join(self.path, LEDGER)
        self.lock_path = os.path.join(self.path, LOCK)
        self.check_mode = check_mode
        self.lock_timeout = lock_timeout
        # A test hook: called after each durable step, so a test can kill the process there.
        self.checkpoint = checkpoint or (lambda step: None)
        # What check mode pretends it did to the disk, so its predictions match a real run.
        self._virtual_added: set[str] = set()
        self._virtual_removed: set[str] = set()
        self._virtual_current: tuple[str | None] | None = None
        self.notes: list[str] = []
        self.changes: list[str] = []
        self._stored: dict[str, t.Any] | None = None
        self._layout_created: list[str] = []

    # ----- reading ----------------------------------------------------------------------------------
    def _scan_releases(self) -> set[str]:
        try:
            names = os.listdir(self.releases_dir)
        except (FileNotFoundError, NotADirectoryError):
            return set()
        found = set()
        for name in names:
            if RELEASE_ID.fullmatch(name):
                try:
                    if stat.S_ISDIR(os.lstat(os.path.join(self.releases_dir, name)).st_mode):
                        found.add(name)
                except FileNotFoundError:
                    pass
        return found

    def releases_on_disk(self) -> set[str]:
        return (self._scan_releases() | self._virtual_added) - self._virtual_removed

    def leftovers(self) -> list[str]:
        try:
            return sorted(n for n in os.listdir(self.releases_dir) if n.startswith(LEFTOVER_PREFIXES))
        except (FileNotFoundError, NotADirectoryError):
            return []

    def _readlink_current(self) -> str:
        return os.readlink(self.current_link)

    def current_state(self) -> tuple[str | None, str, str | None]:
        """(release id or None, status, raw link target). status: absent, release, dangling, outside, not_a_symlink."""
        try:
            target = self._readlink_current()
        except FileNotFoundError:
            return None, "absent", None
        except OSError:
            return None, "not_a_symlink", None
        resolved = os.path.normpath(os.path.join(self.path, target))
        name = os.path.basename(resolved)
        if os.path.dirname(resolved) == self.releases_dir and RELEASE_ID.fullmatch(name):
            return (name, "release", target) if name in self._scan_releases() else (None, "dangling", target)
        return None, "outside", target

    def current(self) -> str | None:
        if self._virtual_current is not None:
            return self._virtual_current[0]
        release, status, _target = self.current_state()
        if status == "not_a_symlink":
            raise ReleaseError(f"{self.current_link} exists but is not a symlink; refusing to manage it")
        return release

    def _ledger_document(self) -> t.Any:
        return read_json(self.ledger_path, default=None)

    def _read_ledger(self) -> dict[str, t.Any]:
        ledger = self._ledger_document()
        if ledger is None:
            return empty_ledger()
        if not isinstance(ledger, dict) or ledger.get("version") != LEDGER_VERSION or not isinstance(ledger.get("releases"), dict):
            raise ReleaseError(f"{self.ledger_path} is not a release ledger this module understands (version {LEDGER_VERSION})")
        return ledger

    def _load(self) -> tuple[dict[str, t.Any], list[str]]:
        """The ledger reconciled with the disk, and what was reconciled (a real run writes that back)."""
        ledger = self._read_ledger()
        self._stored = copy.deepcopy(ledger)
        reconciled: list[str] = []
        current, status, target = self.current_state()
        on_disk = self._scan_releases()
        pending = ledger.pop("pending", None)
        if isinstance(pending, dict):
            reconciled.append(self._finish_pending(ledger, pending, current, on_disk))
        for rid in sorted(on_disk - set(ledger["releases"])):
            ledger["releases"][rid] = {"id": rid, "source": None, "source_checksum": None, "staged_at": None, "outcome": "unknown"}
            reconciled.append(f"release {rid} was on disk but not in the ledger: recorded with outcome unknown")
        if current and ledger.get("current") != current:
            reconciled.append(f"current points at {current}, the ledger said {ledger.get('current') or 'nothing'}: recorded the activation")
            self._record_activation(ledger, current, by="reconciled", previous=ledger.get("current"))
        elif not current and ledger.get("current"):
            reconciled.append(f"the ledger said current is {ledger['current']}, but current is {status}" + (f" ({target})" if target else ""))
            ledger["current"] = None
        return ledger, reconciled

    def _finish_pending(self, ledger: dict[str, t.Any], pending: dict[str, t.Any], current: str | None, on_disk: set[str]) -> str:
        """Complete, or forget, the step an interrupted run journalled."""
        op, release = pending.get("op"), pending.get("release")
        if op == "switch":
            if current == release:
                for rid, outcome in (pending.get("outcomes") or {}).items():
                    if rid in ledger["releases"]:
                        self._set_outcome(ledger, rid, outcome)
                self._record_activation(ledger, release, by=pending.get("by", "activate"), previous=pending.get("previous"))
                return f"completed the interrupted {pending.get('by', 'switch')} to {release} (current already pointed at it)"
            return f"forgot the interrupted {pending.get('by', 'switch')} to {release} (current was never switched)"
        if op == "stage":
            if release in on_disk:
                ledger["releases"][release] = dict(pending.get("record") or {"id": release, "outcome": "unknown"})
                self._event(ledger, "staged", release)
                return f"completed the interrupted staging of {release}"
            return f"forgot the interrupted staging of {release} (it never became visible)"
        if op == "remove":
            if release not in on_disk:
                record = ledger["releases"].pop(release, None)
                self._event(ledger, "removed", release, outcome=(record or {}).get("outcome"))
                return f"completed the interrupted removal of {release}"
            return f"forgot the interrupted removal of {release} (it is still in place)"
        return f"dropped an unknown pending step {pending!r}"

    def info(self) -> dict[str, t.Any]:
        ledger, reconciled = self._load()
        current, status, target = self.current_state()
        on_disk = self.releases_on_disk()
        for rid, record in ledger["releases"].items():
            record["on_disk"] = rid in on_disk
        locked_by = self._lock_holder()
        return {
            "path": self.path,
            "current": current,
            "current_status": status,
            "current_target": target,
            "current_path": os.path.join(self.releases_dir, current) if current else None,
            "previous_good": newest_good(ledger, on_disk, exclude=current),
            "last_good": newest_good(ledger, on_disk),
            "releases": [dict(ledger["releases"][r], id=r) for r in self._by_age(ledger, on_disk)],
            "leftovers": self.leftovers(),
            "to_reconcile": reconciled,
            "locked_by": locked_by,
            "ledger": ledger,
        }

    def _lock_holder(self) -> dict[str, t.Any] | None:
        """What the exclusive holder of the lock recorded ({} if nothing), or None when nobody holds it (never waits)."""
        try:
            with PathLock(self.lock_path, 0, shared=True, create=False):
                return None
        except LockTimeout as exc:
            return exc.holder or {}

    @staticmethod
    def _by_age(ledger: dict[str, t.Any], ids: t.Iterable[str]) -> list[str]:
        return sorted(ids, key=lambda r: (ledger["releases"].get(r, {}).get("staged_seq") or 0, r))

    # ----- ledger bookkeeping -------------------------------------------------------------------------
    @staticmethod
    def _next_seq(ledger: dict[str, t.Any]) -> int:
        ledger["seq"] = int(ledger.get("seq") or 0) + 1
        return ledger["seq"]

    @staticmethod
    def _event(ledger: dict[str, t.Any], event: str, release: str, **extra: t.Any) -> None:
        ledger.setdefault("history", []).append({"at": now(), "event": event, "release": release, **extra})
        ledger["history"] = ledger["history"][-HISTORY_LIMIT:]

    def _set_outcome(self, ledger: dict[str, t.Any], release: str, outcome: str) -> None:
        record = ledger["releases"][release]
        record.update({"outcome": outcome, "outcome_at": now(), "outcome_seq": self._next_seq(ledger)})
        self._event(ledger, f"marked {outcome}", release)

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
        if self.check_mode:
            return
        write_json_atomic(self.ledger_path, ledger)
        self._stored = copy.deepcopy(ledger)

    def _journal(self, ledger: dict[str, t.Any], step: dict[str, t.Any], checkpoint: str) -> None:
        """Record the step about to be taken, so a run killed right after it is completed by the next run."""
        if self.check_mode:
            return
        self._save(dict(ledger, pending=step))
        self.checkpoint(checkpoint)

    # ----- locking and layout -----------------------------------------------------------------------
    @contextlib.contextmanager
    def _locked(self, purpose: str, create_root: bool = False) -> t.Iterator[None]:
        """Hold the application root's lock for a whole operation; a failed run leaves the root as it was.

        Only staging creates a missing root: without one there is nothing to mark, roll back or remove, so
        those run unlocked on the empty state (and change nothing) rather than leave an empty root behind.
        """
        def waiting(_holder: t.Any) -> None:
            self.checkpoint("waiting-for-lock")

        if not create_root and not os.path.isdir(self.path):
            yield
            return
        if self.check_mode:  # a reader: waits for a writer to finish, writes nothing, creates nothing
            reader = PathLock(self.lock_path, self.lock_timeout, shared=True, create=False, on_wait=waiting)
            try:
                reader.acquire()
            except LockTimeout as exc:
                raise LockTimeout(f"{exc.msg} (lock_timeout)", exc.path, exc.holder) from None
            try:
                yield
            finally:
                reader.release()
            return
        deadline = time.monotonic() + self.lock_timeout
        while True:
            created = self._make_dirs(self.path)
            lock_existed = os.path.lexists(self.lock_path)
            lock = PathLock(self.lock_path, max(0.0, deadline - time.monotonic()), purpose=purpose, on_wait=waiting)
            try:
                lock.acquire()
                break
            except LockTimeout as exc:
                raise LockTimeout(f"{self.lock_path} is locked by {describe_holder(exc.holder)}; gave up after waiting "
                                  f"{self.lock_timeout:g} s (lock_timeout)", exc.path, exc.holder) from None
            except FileNotFoundError:  # a failed first run of another process removed the root meanwhile
                if time.monotonic() >= deadline:
                    raise ReleaseError(f"cannot lock {self.lock_path}: the application root keeps disappearing") from None
            except NotADirectoryError as exc:
                raise ReleaseError(f"path {self.path} is not a directory") from exc
        self._layout_created = []
        self.checkpoint("locked")
        try:
            yield
        except BaseException:
            for directory in reversed(self._layout_created):
                with contextlib.suppress(OSError):
                    os.rmdir(directory)  # only if still empty
            if not lock_existed:
                lock.release(unlink=True)
            for directory in reversed(created):
                with contextlib.suppress(OSError):
                    os.rmdir(directory)
            raise
        finally:
            lock.release()

    def _make_dirs(self, path: str) -> list[str]:
        """makedirs that returns what it created, outermost first."""
        missing = []
        probe = path
        while not os.path.lexists(probe):
            missing.append(probe)
            probe = os.path.dirname(probe)
        for directory in reversed(missing):
            try:
                os.mkdir(directory, 0o755)
            except FileExistsError:
                pass
            except OSError as exc:
                raise ReleaseError(f"cannot create {directory}: {exc.strerror}") from exc
        return list(reversed(missing))

    def _ensure_layout(self) -> None:
        for directory in (self.releases_dir, self.shared_dir):
            try:
                os.mkdir(directory, 0o755)
                self._layout_created.append(directory)
            except FileExistsError:
                pass

    def _clean_leftovers(self) -> list[str]:
        """Unfinished stagings and removals. Safe under the lock: every run creates and finishes its own
        while holding it, so whatever is found here belongs to a run that died."""
        removed = self.leftovers()
        for name in removed:
            if not self.check_mode:
                shutil.rmtree(os.path.join(self.releases_dir, name), ignore_errors=True)
            self.changes.append(f"remove leftover {name}")
        return removed

    # ----- staging ------------------------------------------------------------------------------------
    def _stage(self, ledger: dict[str, t.Any], release: str, src: str | None, checksum: str | None, shared_paths: list[str]) -> bool:
        """Returns True if the release was (or would be) staged now."""
        record = ledger["releases"].get(release)
        if release in self.releases_on_disk():
            if checksum and record and record.get("source_checksum") and record["source_checksum"] != f"sha256:{checksum}":
                raise ReleaseError(
                    f"release {release} already exists from a different source ({record['source_checksum']}, not sha256:{checksum}); "
                    "releases are immutable: use a new release id"
                )
            return False
        if src is None:
            raise ReleaseError(f"release {release} is not staged on this host and no src was given")
        if self.check_mode and not os.path.lexists(src):
            # In a --check preview, an earlier task (the upload) has not really put src there: predict the staging.
            self.notes.append(f"src {src} is not on the host yet (uploaded by an earlier task in a real run); it was not vetted")
            self._virtual_stage(ledger, release, {"id": release, "source": src, "outcome": "unknown"})
            return True
        # imported only where an archive is read: a host compiles the module_utils on every module run, and
        # a rollout's switch and mark steps (every wave) never read one
        from ansible_collections.sre.ops.plugins.module_utils._archive import detect_format, sha256_fd  # pylint: disable=import-outside-toplevel

        fmt = detect_format(src)
        if fmt == "directory":
            if checksum is not None:
                raise InvalidInputError("checksum applies to an archive src, not to a directory")
            return self._unpack_and_publish(ledger, release, src, fmt, None, None, shared_paths)
        try:
            src_fd = os.open(src, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise ReleaseError(f"cannot read src {src}: {exc.strerror}") from exc
        try:
            actual = sha256_fd(src_fd)
            if checksum is not None and actual != checksum:
                raise ReleaseError(f"checksum mismatch for {src}: expected sha256:{checksum}, got sha256:{actual}; nothing was written")
            return self._unpack_and_publish(ledger, release, src, fmt, src_fd, actual, shared_paths)
        finally:
            os.close(src_fd)

    def _virtual_stage(self, ledger: dict[str, t.Any], release: str, record: dict[str, t.Any]) -> None:
        self._virtual_added.add(release)
        self._virtual_removed.discard(release)
        ledger["releases"][release] = dict(record, staged_seq=self._next_seq(ledger))

    def _unpack_and_publish(self, ledger: dict[str, t.Any], release: str, src: str, fmt: str, src_fd: int | None,
                            digest: str | None, shared_paths: list[str]) -> bool:
        from ansible_collections.sre.ops.plugins.module_utils._archive import sha256_tree, unpack  # pylint: disable=import-outside-toplevel

        record = {"id": release, "source": src, "source_checksum": None, "staged_at": now(), "outcome": "unknown"}
        self.changes.append(f"stage {release} from {src}")
        if self.check_mode:
            report = unpack(src, None, fmt, src_fd=src_fd)  # reads every byte: a broken archive fails the preview too
            self._check_shared_paths(report.table, shared_paths)
            self._note_special_bits(report)
            self._virtual_stage(ledger, release, record)
            return True
        self._ensure_layout()
        staging = tempfile.mkdtemp(prefix=f".staging-{release}-", dir=self.releases_dir)
        self.checkpoint("staging-created")
        seeded: list[str] = []
        journalled = False
        unjournalled: dict[str, t.Any] | None = None
        try:
            report = unpack(src, staging, fmt, src_fd=src_fd)
            self._check_shared_paths(report.table, shared_paths)
            for shared in shared_paths:
                self._link_shared(staging, shared, seeded)
            os.chmod(staging, 0o755)
            self._note_special_bits(report)
            self.checkpoint("unpacked")
            record["source_checksum"] = "sha256:" + (digest or sha256_tree(src))
            record["staged_seq"] = self._next_seq(ledger)
            unjournalled = copy.deepcopy(self._stored) if os.path.exists(self.ledger_path) else None
            self._journal(ledger, {"op": "stage", "release": release, "record": record}, "stage-journalled")
            journalled = True
            os.rename(staging, os.path.join(self.releases_dir, release))
        except BaseException as exc:
            shutil.rmtree(staging, ignore_errors=True)
            if journalled:  # the staging never became visible: the ledger goes back to what it was (best effort:
                # if that fails too, the next run forgets the journalled step)
                with contextlib.suppress(OSError, SreOpsError):
                    if unjournalled is None:
                        os.unlink(self.ledger_path)
                    else:
                        self._save(unjournalled)
            for path in reversed(seeded):  # shared/ content this failed staging seeded: nothing of it may stay
                if os.path.isdir(path) and not os.path.islink(path):
                    shutil.rmtree(path, ignore_errors=True)
                else:
                    with contextlib.suppress(OSError):
                        os.unlink(path)
            if isinstance(exc, OSError):
                raise ReleaseError(f"cannot stage {release} from {src}: {exc.strerror or exc}") from exc
            raise
        fsync_dir(self.releases_dir)
        self.checkpoint("renamed")
        ledger["releases"][release] = record
        self._event(ledger, "staged", release)
        self._save(ledger)
        self.checkpoint("staged")
        return True

    def _note_special_bits(self, report: Report) -> None:
        dropped = report.special_bits_dropped
        if dropped:
            shown = ", ".join(dropped[:5]) + (f" and {len(dropped) - 5} more" if len(dropped) > 5 else "")
            self.notes.append(f"setuid, setgid and sticky bits are not kept in releases: dropped from {shown}")

    @staticmethod
    def _check_shared_paths(table: MemberTable | None, shared_paths: list[str]) -> None:
        for shared in shared_paths:
            problem = table.obstacle(shared) if table is not None else None
            if problem:
                raise InvalidInputError(f"shared_paths entry {shared!r} {problem}; it cannot be linked to shared/")

    def _link_shared(self, release_dir: str, rel: str, seeded: list[str]) -> None:
        """Replace release_dir/rel by a link to shared/rel (no parent of rel is a link: _check_shared_paths)."""
        target_in_shared = os.path.join(self.shared_dir, rel)
        in_release = os.path.join(release_dir, rel)
        if not os.path.lexists(target_in_shared):
            # The first release to name this path seeds it from the release, else an empty directory.
            seeded.extend(self._make_dirs(os.path.dirname(target_in_shared)))
            seeded.append(target_in_shared)
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

    # ----- switching and removing ---------------------------------------------------------------------
    def _switch(self, ledger: dict[str, t.Any], release: str, by: str, outcomes: dict[str, str] | None = None) -> None:
        previous = self.current()
        outcomes = outcomes or {}
        step = {"op": "switch", "release": release, "by": by, "previous": previous, "outcomes": outcomes}
        self.changes.append(f"switch current from {previous or 'nothing'} to {release}")
        self.changes.extend(f"record {rid} {outcome}" for rid, outcome in outcomes.items())
        self._journal(ledger, step, "switch-journalled")
        if self.check_mode:
            self._virtual_current = (release,)
        else:
            symlink_atomic(os.path.join("releases", release), self.current_link)
            self.checkpoint("switched")
        for rid, outcome in outcomes.items():
            self._set_outcome(ledger, rid, outcome)
        self._record_activation(ledger, release, by=by, previous=previous)
        self._save(ledger)
        self.checkpoint("switch-recorded")

    def _remove(self, ledger: dict[str, t.Any], release: str, why: str) -> None:
        self.changes.append(f"{why} {release}")
        if self.check_mode:
            self._virtual_removed.add(release)
            ledger["releases"].pop(release, None)
            return
        self._journal(ledger, {"op": "remove", "release": release}, "remove-journalled")
        trash = tempfile.mkdtemp(prefix=f".trash-{release}-", dir=self.releases_dir)
        # Rename first: the release disappears atomically, the slow delete happens out of sight.
        os.rename(os.path.join(self.releases_dir, release), os.path.join(trash, release))
        fsync_dir(self.releases_dir)
        self.checkpoint("renamed-to-trash")
        record = ledger["releases"].pop(release, None)
        self._event(ledger, "removed", release, outcome=(record or {}).get("outcome"))
        self._save(ledger)
        self.checkpoint("removed")
        shutil.rmtree(trash, ignore_errors=True)

    def _prune(self, ledger: dict[str, t.Any], keep: int, protect: list[str]) -> list[str]:
        if not keep:
            return []
        on_disk = self.releases_on_disk()
        current = self.current()
        keepers = {current, newest_good(ledger, on_disk), newest_good(ledger, on_disk, exclude=current), newest_staged(ledger, on_disk), *protect}
        ordered = self._by_age(ledger, on_disk)
        excess = len(ordered) - keep
        doomed = [r for r in ordered if r not in keepers][: max(0, excess)]
        for release in doomed:
            self._remove(ledger, release, "prune")
        return doomed

    # ----- results ------------------------------------------------------------------------------------
    def _snapshot(self, ledger: dict[str, t.Any], current: str | None) -> dict[str, t.Any]:
        on_disk = self.releases_on_disk()
        return {
            "current": current,
            "releases": self._by_age(ledger, on_disk),
            "outcomes": {rid: ledger["releases"].get(rid, {}).get("outcome", "unknown") for rid in sorted(on_disk)},
        }

    def _finish(self, ledger: dict[str, t.Any], before: dict[str, t.Any], reconciled: list[str], **extra: t.Any) -> dict[str, t.Any]:
        if ledger != self._stored:
            self._save(ledger)  # reconciliation only, or the last step's record
        current = self.current()
        after = self._snapshot(ledger, current)
        changed = bool(self.changes or reconciled)
        return {
            "changed": changed,
            "path": self.path,
            "current": current,
            "previous": before["current"] if before["current"] != current else None,
            "previous_good": newest_good(ledger, self.releases_on_disk(), exclude=current),
            "releases": after["releases"],
            "staged": False,
            "switched": False,
            "pruned": [],
            "leftovers_removed": [],
            "reconciled": reconciled,
            "changes": self.changes + [f"reconcile: {note}" for note in reconciled],
            "notes": self.notes,
            "diff": {"before": before, "after": after},
            **extra,
        }

    def _begin(self) -> tuple[dict[str, t.Any], list[str], dict[str, t.Any]]:
        ledger, reconciled = self._load()
        stored = self._stored or empty_ledger()
        before = self._snapshot(stored, self.current())
        _release, status, target = self.current_state()
        if status in ("dangling", "outside"):
            self.notes.append(f"current points at {target}, which is not a release under {self.releases_dir} ({status})")
        return ledger, reconciled, before

    # ----- states -------------------------------------------------------------------------------------
    def stage(self, release: str, src: str | None, checksum: str | None, shared_paths: list[str]) -> dict[str, t.Any]:
        with self._locked(f"sre.ops.release state=staged release={release}", create_root=True):
            ledger, reconciled, before = self._begin()
            staged = self._stage(ledger, release, src, parse_checksum(checksum), check_shared_paths(shared_paths))
            leftovers = self._clean_leftovers()
            return self._finish(ledger, before, reconciled, release=release, staged=staged, leftovers_removed=leftovers)

    def activate(self, release: str, src: str | None, checksum: str | None, shared_paths: list[str],
                 keep_releases: int, protect: list[str]) -> dict[str, t.Any]:
        with self._locked(f"sre.ops.release state=active release={release}", create_root=True):
            ledger, reconciled, before = self._begin()
            staged = self._stage(ledger, release, src, parse_checksum(checksum), check_shared_paths(shared_paths))
            leftovers = self._clean_leftovers()
            switched = self.current() != release
            if switched:
                self._switch(ledger, release, by="activate")
            pruned = self._prune(ledger, keep_releases, protect)
            return self._finish(ledger, before, reconciled, release=release, staged=staged, switched=switched,
                                pruned=pruned, leftovers_removed=leftovers)

    def mark(self, release: str | None, outcome: str) -> dict[str, t.Any]:
        with self._locked(f"sre.ops.release state={outcome} release={release or 'current'}"):
            ledger, reconciled, before = self._begin()
            release = release or self.current()
            if not release:
                _rid, status, target = self.current_state()
                raise ReleaseError(f"no release given and {self.current_link} does not point at a release ({status}"
                                   + (f": {target}" if target else "") + f"): nothing to mark {outcome}")
            if release not in self.releases_on_disk():
                raise ReleaseError(f"release {release} is not on this host (releases: {', '.join(sorted(self.releases_on_disk())) or 'none'})")
            leftovers = self._clean_leftovers()
            record = ledger["releases"][release]
            # An outcome recorded before the release's latest activation is about an earlier time it was current:
            # recording it again says "this activation passed (or failed) too", which the deploy role relies on.
            stale = int(record.get("outcome_seq") or 0) < int(record.get("last_activated_seq") or 0)
            if record.get("outcome") != outcome or stale:
                self.changes.append(f"mark {release} {outcome}")
                self._set_outcome(ledger, release, outcome)
                self._save(ledger)
                self.checkpoint("marked")
            return self._finish(ledger, before, reconciled, release=release, outcome=outcome, leftovers_removed=leftovers)

    def rollback(self, release: str | None) -> dict[str, t.Any]:
        with self._locked(f"sre.ops.release state=rolled_back release={release or 'last good'}"):
            ledger, reconciled, before = self._begin()
            current = self.current()
            on_disk = self.releases_on_disk()
            if release is not None:
                if release not in on_disk:
                    raise ReleaseError(f"cannot roll back to {release}: it is not on this host (releases: {', '.join(sorted(on_disk)) or 'none'})")
                target: str | None = release
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
            leftovers = self._clean_leftovers()
            switched = target != current
            if switched:
                outcomes = {}
                if current and ledger["releases"].get(current, {}).get("outcome") != "failed":
                    outcomes[current] = "rolled_back"
                self._switch(ledger, target, by="rollback", outcomes=outcomes)
            return self._finish(ledger, before, reconciled, release=target, rolled_back_from=current if switched else None,
                                switched=switched, leftovers_removed=leftovers)

    def remove(self, release: str, protect: list[str]) -> dict[str, t.Any]:
        with self._locked(f"sre.ops.release state=absent release={release}"):
            ledger, reconciled, before = self._begin()
            current = self.current()
            on_disk = self.releases_on_disk()
            pruned = []
            if release in on_disk:
                if release == current:
                    raise ReleaseError(f"refusing to remove {release}: it is the current release")
                if release == newest_good(ledger, on_disk):
                    raise ReleaseError(f"refusing to remove {release}: it is the last release marked good (the rollback target)")
                if release == newest_good(ledger, on_disk, exclude=current):
                    raise ReleaseError(f"refusing to remove {release}: it is the rollback target (the good release most recently current)")
                if release in protect:
                    raise ReleaseError(f"refusing to remove {release}: it is listed in protect")
            leftovers = self._clean_leftovers()
            if release in on_disk:
                self._remove(ledger, release, "remove")
                pruned = [release]
            return self._finish(ledger, before, reconciled, release=release, pruned=pruned, leftovers_removed=leftovers)
