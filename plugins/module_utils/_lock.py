# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: a lock on a path that the kernel releases when its holder dies.

``PathLock`` takes ``fcntl.flock`` on a lock file. flock belongs to the open file, so a holder killed by
SIGKILL (or a crashed host process) cannot leave a stale lock behind, and there is nothing to clean up.
The exclusive holder writes who it is (host, pid, since when, what for) into the lock file, so a run that
gives up waiting can name the holder instead of saying "locked".

    with PathLock("/srv/app/.lock", timeout=60, purpose="sre.ops.release state=active"):
        ...  # read, decide, write
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError

_FIRST_POLL = 0.01
_MAX_POLL = 0.25


class LockTimeout(SreOpsError):
    """The lock stayed busy for the whole timeout. ``holder`` is what the holder recorded (or None)."""

    def __init__(self, msg: str, path: str, holder: dict[str, t.Any] | None) -> None:
        super().__init__(msg, path=path, holder=holder)
        self.path = path
        self.holder = holder


HOLDER_MAX = 65536  # bytes of a lock file read for the holder's record


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def read_holder(path: str) -> dict[str, t.Any] | None:
    """What the last exclusive holder of the lock file recorded, or None (never locked, or released)."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read(HOLDER_MAX)
    except OSError:
        return None
    return parse_holder(raw)


def parse_holder(raw: bytes) -> dict[str, t.Any] | None:
    """The holder record in the first HOLDER_MAX bytes of a lock file, or None."""
    try:
        holder = json.loads(raw[:HOLDER_MAX].decode("utf-8")) if raw[:HOLDER_MAX].strip() else None
    except (UnicodeDecodeError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def _pid_alive_here(holder: dict[str, t.Any]) -> bool | None:
    """True/False when the holder ran on this host and its pid can be checked, else None (cannot tell)."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return None
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


def describe_holder(holder: dict[str, t.Any] | None) -> str:
    """'pid 4242 on web1 since 2026-11-27T17:00:00Z (sre.ops.release state=active release=v3)'."""
    if not holder:
        return "a process that did not record itself (a reader, or a holder that has just started)"
    text = f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('since', '?')}"
    if holder.get("purpose"):
        text += f" ({holder['purpose']})"
    if _pid_alive_here(holder) is False:
        text = f"another process (the last recorded holder, {text}, has exited)"
    return text


class PathLock:
    """An flock on ``path``, exclusive by default; wait up to ``timeout`` seconds, then raise LockTimeout.

    - ``shared=True`` takes a shared lock (readers that must not see a writer's half-done work); a shared
      holder writes nothing, so it can lock a file it may only read.
    - ``create=False`` does not create a missing lock file: the lock is then not taken (``held`` is False),
      which suits read-only callers (check mode) that must not write anything.
    - ``on_wait`` is called once, with the holder's record, when the lock is busy and the wait begins.
    - ``release(unlink=True)`` deletes the lock file while still holding it; waiters notice (the file
      they locked is no longer at ``path``) and retry on the new one, so that is safe.

    The lock protects against other PathLock users (any process, any host sharing the filesystem
    semantics of flock), not against code that ignores it.
    """

    def __init__(
        self,
        path: str,
        timeout: float,
        purpose: str = "",
        shared: bool = False,
        create: bool = True,
        mode: int = 0o644,
        on_wait: t.Callable[[dict[str, t.Any] | None], None] | None = None,
    ) -> None:
        if timeout < 0:
            raise ValueError("timeout must be 0 or more seconds")
        self.path = path
        self.timeout = timeout
        self.purpose = purpose
        self.shared = shared
        self.create = create
        self.mode = mode
        self.on_wait = on_wait
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def holder(self) -> dict[str, t.Any] | None:
        return read_holder(self.path)

    def _open(self) -> int | None:
        flags = os.O_NOFOLLOW | os.O_CLOEXEC
        if self.shared and not self.create:
            flags |= os.O_RDONLY
        else:
            flags |= os.O_RDWR | (os.O_CREAT if self.create else 0)
        try:
            return os.open(self.path, flags, self.mode)
        except FileNotFoundError:
            if self.create:
                raise
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise SreOpsError(f"lock file {self.path} is a symlink; refusing to use it") from exc
            raise

    def _still_at_path(self, fd: int) -> bool:
        """After a wait the file may have been unlinked (release(unlink=True)); then our lock guards nothing."""
        try:
            now = os.stat(self.path, follow_symlinks=False)
        except FileNotFoundError:
            return False
        mine = os.fstat(fd)
        return (now.st_dev, now.st_ino) == (mine.st_dev, mine.st_ino)

    def acquire(self) -> PathLock:
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already locked by this PathLock")
        operation = fcntl.LOCK_SH if self.shared else fcntl.LOCK_EX
        deadline = time.monotonic() + self.timeout
        poll = _FIRST_POLL
        announced = False
        while True:
            fd = self._open()
            if fd is None:
                return self
            try:
                while True:
                    try:
                        fcntl.flock(fd, operation | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        pass
                    if not announced and self.on_wait is not None:
                        self.on_wait(self.holder())
                    announced = True
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        holder = self.holder()
                        raise LockTimeout(
                            f"{self.path} is locked by {describe_holder(holder)}; gave up after waiting {self.timeout:g} s",
                            self.path, holder,
                        )
                    time.sleep(min(poll, remaining))
                    poll = min(poll * 2, _MAX_POLL)
                if not self._still_at_path(fd):
                    os.close(fd)
                    continue
            except BaseException:
                os.close(fd)
                raise
            self._fd = fd
            break
        if not self.shared:
            record = {"host": socket.gethostname(), "pid": os.getpid(), "since": _utc_now(), "purpose": self.purpose}
            payload = json.dumps(record, sort_keys=True).encode("utf-8") + b"\n"
            try:
                os.ftruncate(self._fd, 0)
                os.pwrite(self._fd, payload, 0)
            except OSError:
                pass  # the record only helps messages; the lock itself is held
        return self

    def release(self, unlink: bool = False) -> None:
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if unlink:
                try:
                    os.unlink(self.path)
                except FileNotFoundError:
                    pass
            elif not self.shared:
                try:
                    os.ftruncate(fd, 0)  # the record would otherwise outlive the hold
                except OSError:
                    pass
        finally:
            os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> PathLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()
