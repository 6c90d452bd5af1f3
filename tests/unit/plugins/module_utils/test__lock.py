# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import multiprocessing
import os
import signal
import socket

import pytest

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._lock import LockTimeout, PathLock, describe_holder, read_holder

FORK = multiprocessing.get_context("fork")


def hold(path, locked, release, shared=False, unlink=False):
    """A child process: take the lock, say so, hold it until told to let go."""
    lock = PathLock(path, timeout=30, purpose="test holder", shared=shared).acquire()
    locked.set()
    release.wait(30)
    lock.release(unlink=unlink)


def start_holder(path, **kwargs):
    locked, release = FORK.Event(), FORK.Event()
    child = FORK.Process(target=hold, args=(path, locked, release), kwargs=kwargs)
    child.start()
    assert locked.wait(30), "the holder never got the lock"
    return child, release


def test_busy_lock_times_out_naming_the_holder(tmp_path):
    path = str(tmp_path / "app.lock")
    child, release = start_holder(path)
    try:
        with pytest.raises(LockTimeout) as caught:
            PathLock(path, timeout=0.05).acquire()
        message = str(caught.value)
        assert f"pid {child.pid} on {socket.gethostname()} since 20" in message and "(test holder)" in message
        assert message.startswith(f"{path} is locked by") and message.endswith("gave up after waiting 0.05 s")
        assert caught.value.holder["pid"] == child.pid
    finally:
        release.set()
        child.join(30)
    with PathLock(path, timeout=0) as lock:
        assert lock.held
        assert read_holder(path)["pid"] == os.getpid()
    assert read_holder(path) is None, "a released lock must not keep its holder's record"


def test_the_kernel_releases_the_lock_of_a_killed_holder(tmp_path):
    path = str(tmp_path / "app.lock")
    child, _release = start_holder(path)
    os.kill(child.pid, signal.SIGKILL)
    child.join(30)
    assert child.exitcode == -signal.SIGKILL
    with PathLock(path, timeout=0) as lock:  # no wait needed: nothing to clean up
        assert lock.held
    assert "has exited" in describe_holder({"host": socket.gethostname(), "pid": child.pid, "since": "x"})


def test_waiter_gets_the_lock_when_the_holder_lets_go_and_is_told_who_it_waits_for(tmp_path):
    path = str(tmp_path / "app.lock")
    child, release = start_holder(path)
    seen = []

    def on_wait(holder):
        seen.append(holder)
        release.set()  # let the holder go only once we are really waiting

    with PathLock(path, timeout=30, on_wait=on_wait) as lock:
        assert lock.held
    child.join(30)
    assert len(seen) == 1 and seen[0]["pid"] == child.pid


def test_shared_locks_coexist_and_exclude_a_writer(tmp_path):
    path = str(tmp_path / "app.lock")
    child, release = start_holder(path, shared=True)
    try:
        with PathLock(path, timeout=0, shared=True) as reader:
            assert reader.held
        with pytest.raises(LockTimeout, match="did not record itself"):
            PathLock(path, timeout=0).acquire()
    finally:
        release.set()
        child.join(30)


def test_a_reader_that_may_not_write_creates_nothing(tmp_path):
    path = str(tmp_path / "app.lock")
    with PathLock(path, timeout=0, shared=True, create=False) as lock:
        assert not lock.held
    assert not os.path.exists(path)
    open(path, "w").close()
    os.chmod(path, 0o444)
    with PathLock(path, timeout=0, shared=True, create=False) as lock:
        assert lock.held
    assert os.path.getsize(path) == 0


def test_unlinking_on_release_never_lets_two_holders_in(tmp_path):
    path = str(tmp_path / "app.lock")
    child, release = start_holder(path, unlink=True)
    waited = []

    def on_wait(holder):
        waited.append(holder)
        release.set()

    with PathLock(path, timeout=30, on_wait=on_wait) as lock:
        child.join(30)
        assert waited and os.path.exists(path), "the waiter must have moved to a new lock file"
        assert os.fstat(lock._fd).st_ino == os.stat(path).st_ino  # pylint: disable=protected-access
        with pytest.raises(LockTimeout, match=f"pid {os.getpid()} "):
            PathLock(path, timeout=0).acquire()


def test_a_symlinked_lock_file_is_refused(tmp_path):
    os.symlink(str(tmp_path / "elsewhere"), str(tmp_path / "app.lock"))
    with pytest.raises(SreOpsError, match="is a symlink; refusing"):
        PathLock(str(tmp_path / "app.lock"), timeout=0).acquire()
    assert not os.path.exists(tmp_path / "elsewhere")


def test_bad_use_is_refused(tmp_path):
    with pytest.raises(ValueError):
        PathLock(str(tmp_path / "x"), timeout=-1)
    lock = PathLock(str(tmp_path / "x"), timeout=0).acquire()
    with pytest.raises(RuntimeError):
        lock.acquire()
    lock.release()
    lock.release()  # releasing twice is harmless
