# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _restic
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError
from ansible_collections.sre.ops.plugins.module_utils._restic import (
    Completed, LockedError, NoRepositoryError, Repository, SnapshotNotFoundError, UnreachableError, WrongPasswordError,
)

from ...utils.restic_fakes import FakeRunner, fixture


def repo(runner, **kwargs):
    kwargs.setdefault("password", "s3cret")
    return Repository("/var/backups/restic", runner=runner, hostname="web1", **kwargs)


@pytest.mark.parametrize("text, expected", [
    ("1970-01-01T00:00:00Z", 0),
    ("2026-12-03T07:46:23.117909062Z", 1796283983117909062),
    ("2026-12-03T08:46:23.117909062+01:00", 1796283983117909062),
    ("2026-02-01T10:00:00Z", 1769940000000000000),
    ("2026-02-01T10:00:00.5-0130", 1769945400500000000),
])
def test_parse_time_ns_keeps_nanoseconds_and_offsets(text, expected):
    assert _restic.parse_time_ns(text) == expected


def test_parse_time_ns_fast_path_agrees_with_the_full_parse_and_checks_the_fraction():
    _restic._SECONDS.clear()
    first = _restic.parse_time_ns("2026-12-03T07:46:23.117909062Z")  # parsed in full, its second remembered
    assert _restic.parse_time_ns("2026-12-03T07:46:23.000000001Z") == first - 117909061, "the same second, from the cache"
    assert _restic.parse_time_ns("2026-12-03T07:46:23.1Z") == first - 17909062
    for bad in ("2026-12-03T07:46:23.11790906xZ", "2026-12-03T07:46:23.\u00b2\u00b2\u00b2\u00b2\u00b2\u00b2\u00b2\u00b2\u00b2Z"):
        with pytest.raises(_restic.ResticError, match="unexpected timestamp"):
            _restic.parse_time_ns(bad)


def test_parse_time_ns_rejects_garbage():
    with pytest.raises(_restic.ResticError, match="unexpected timestamp"):
        _restic.parse_time_ns("yesterday")


def test_parse_time_ns_reuses_a_parsed_second_but_still_checks_the_fraction():
    assert _restic.parse_time_ns("2026-12-03T08:46:23.5+01:00") == 1796283983500000000
    assert _restic.parse_time_ns("2026-12-03T08:46:23.000000007+01:00") == 1796283983000000007
    assert _restic.parse_time_ns("2026-12-03T08:46:23+01:00") == 1796283983000000000
    for bad in ("2026-12-03T08:46:23.+01:00", "2026-12-03T08:46:23.1234567890+01:00", "2026-12-03T08:46:23.1.5+01:00"):
        with pytest.raises(_restic.ResticError, match="unexpected timestamp"):
            _restic.parse_time_ns(bad)


@pytest.mark.parametrize("value, seconds", [(90, 90.0), ("90", 90.0), ("90s", 90.0), ("15m", 900.0), ("1h30m", 5400.0), ("2d", 172800.0), ("1w", 604800.0)])
def test_parse_duration(value, seconds):
    assert _restic.parse_duration(value, "min_interval") == seconds


@pytest.mark.parametrize("value", ["soon", "1x", "-5", "1h 30m", -1])
def test_parse_duration_names_the_option(value):
    with pytest.raises(InvalidInputError, match="min_interval"):
        _restic.parse_duration(value, "min_interval")


def test_json_document_reads_snapshots_fixture():
    stdout, _err = fixture("snapshots")
    snaps = _restic.json_document(stdout, "snapshots")
    assert [s["hostname"] for s in snaps].count("web2") == 1
    assert all(len(s["id"]) == 64 and s["short_id"] == s["id"][:8] for s in snaps)


def test_json_lines_skips_status_lines_and_noise():
    stdout, _err = fixture("backup-initial")
    docs = _restic.json_lines(stdout + "\nnot json\n{broken\n")
    assert docs[-1]["message_type"] == "summary"


@pytest.mark.parametrize("name, error, words", [
    ("wrong-password", WrongPasswordError, "wrong repository password"),
    ("no-repository", NoRepositoryError, "there is no restic repository at /var/backups/restic (set init=true"),
    ("unreachable-sftp", UnreachableError, "cannot reach the repository"),
    ("locked", LockedError, "is locked: unable to create lock in backend: repository is already locked by PID"),
    ("ls-missing", SnapshotNotFoundError, "snapshot not found"),
])
def test_classify_failure_from_real_restic_messages(name, error, words):
    stdout, stderr = fixture(name)
    found = _restic.classify_failure("x", Completed(["restic"], 1, stdout, stderr, 0.1), "/var/backups/restic")
    assert type(found) is error  # pylint: disable=unidiomatic-typecheck
    assert words in found.msg


def test_passwords_in_urls_never_reach_messages():
    err = "Fatal: unable to open repository at rest:https://ops:hunter2@backup1/: connection refused"
    found = _restic.classify_failure("x", Completed([], 1, "", err, 0), "rest:https://ops:hunter2@backup1/")
    assert "hunter2" not in found.msg and "ops:***@backup1" in found.msg


def test_password_travels_in_the_environment_not_argv():
    runner = FakeRunner().add("snapshots", stdout="[]")
    repository = repo(runner, options={"sftp.command": "ssh -i key host -s sftp"})
    repository.snapshots()
    assert "s3cret" not in " ".join(runner.calls[0])
    assert runner.envs[0]["RESTIC_PASSWORD"] == "s3cret" and runner.envs[0]["RESTIC_REPOSITORY"] == "/var/backups/restic"
    assert runner.calls[0][1:3] == ["-o", "sftp.command=ssh -i key host -s sftp"]


def test_password_file_must_exist(tmp_path):
    repository = Repository("/r", runner=FakeRunner(), password_file=str(tmp_path / "missing"))
    with pytest.raises(InvalidInputError, match="password_file .* does not exist"):
        repository.check_password_source()


def locked_then(runner, lock_json, after_unlock_rc=0):
    _out, locked_err = fixture("locked")
    runner.add("forget", rc=1, stderr=locked_err)
    runner.add("list locks", stdout="1a4571a6aaaa\n")
    runner.add("cat lock", stdout=json.dumps(lock_json))
    return runner


def test_stale_lock_of_this_host_is_removed_and_reported(monkeypatch):
    monkeypatch.setattr(_restic, "pid_alive", lambda pid: pid != 3202)
    monkeypatch.setattr(_restic, "pid_exists", lambda pid: False)
    runner = locked_then(FakeRunner(), {"time": "2026-12-03T08:06:57Z", "exclusive": False, "hostname": "web1", "pid": 3202})
    runner.add("unlock").add("list locks", stdout="").add("forget", stdout="[]")
    repository = repo(runner)
    repository.run("forget", "--json")
    assert runner.commands() == ["forget", "list locks", "cat lock", "unlock", "list locks", "forget"]
    assert repository.stale_locks_removed == [{"id": "1a4571a6aaaa", "pid": 3202, "hostname": "web1", "exclusive": False,
                                               "created": "2026-12-03T08:06:57Z"}]
    assert "no longer exists on web1" in repository.notes[0]


def test_a_lock_restic_keeps_after_unlock_is_not_reported_removed_and_not_retried(monkeypatch):
    # restic's own staleness rule still sees the process (a killed restic its parent never reaps)
    monkeypatch.setattr(_restic, "pid_alive", lambda pid: pid != 3202)
    monkeypatch.setattr(_restic, "pid_exists", lambda pid: True)
    clock = iter(range(0, 1000))
    runner = locked_then(FakeRunner(), {"time": "2026-12-03T08:06:57Z", "exclusive": True, "hostname": "web1", "pid": 3202})
    runner.add("unlock").add("list locks", stdout="1a4571a6aaaa\n")
    runner.add("cat lock", stdout=json.dumps({"time": "2026-12-03T08:06:57Z", "exclusive": True, "hostname": "web1", "pid": 3202}))
    naps = []
    repository = repo(runner, lock_wait=0, clock=lambda: next(clock), sleep=naps.append)
    with pytest.raises(LockedError, match="set lock_wait to wait for it"):
        repository.run("forget", "--json")
    assert runner.commands() == ["forget", "list locks", "cat lock", "unlock", "list locks", "cat lock"]
    assert len(naps) == _restic.ZOMBIE_REAP_WAIT_S - 1, "waited for the zombie to be reaped, then gave up"
    assert repository.stale_locks_removed == [] and repository.notes == [
        "restic kept the stale exclusive lock 1a4571a6 held by PID 3202 on web1 (?) since 2026-12-03T08:06:57Z: "
        "the process has not been reaped by its parent yet"]


def test_a_zombie_holder_is_given_time_to_be_reaped_before_unlock(monkeypatch):
    monkeypatch.setattr(_restic, "pid_alive", lambda pid: False)
    reaped = iter([True, True, False])
    monkeypatch.setattr(_restic, "pid_exists", lambda pid: next(reaped))
    runner = locked_then(FakeRunner(), {"time": "2026-12-03T08:06:57Z", "exclusive": True, "hostname": "web1", "pid": 3202})
    runner.add("unlock").add("list locks", stdout="").add("forget", stdout="[]")
    naps = []
    repository = repo(runner, sleep=naps.append)
    repository.run("forget", "--json")
    assert naps == [0.05, 0.05]
    assert [lock["pid"] for lock in repository.stale_locks_removed] == [3202]


def test_lock_of_a_live_process_is_not_removed(monkeypatch):
    monkeypatch.setattr(_restic, "pid_alive", lambda pid: True)
    runner = locked_then(FakeRunner(), {"time": "2026-12-03T08:06:57Z", "exclusive": True, "hostname": "web1", "pid": 3202})
    with pytest.raises(LockedError, match="set lock_wait to wait for it"):
        repo(runner, lock_wait=0).run("forget", "--json")
    assert "unlock" not in runner.commands()


def test_lock_of_another_host_is_waited_for_until_lock_wait_then_reported(monkeypatch):
    monkeypatch.setattr(_restic, "pid_alive", lambda pid: False)  # irrelevant: another host's PIDs cannot be judged here
    now = [0.0]
    runner = FakeRunner()
    for _attempt in range(4):
        locked_then(runner, {"time": "2026-12-03T08:06:57Z", "exclusive": True, "hostname": "web2", "pid": 1})
    repository = repo(runner, lock_wait=5, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    with pytest.raises(LockedError, match=r"waited 5s"):
        repository.run("forget", "--json")
    assert "unlock" not in runner.commands() and now[0] >= 5


def test_lock_released_while_waiting_lets_the_command_run(monkeypatch):
    monkeypatch.setattr(_restic, "pid_alive", lambda pid: True)
    now = [0.0]
    runner = locked_then(FakeRunner(), {"time": "t", "exclusive": True, "hostname": "web2", "pid": 1})
    runner.add("forget", stdout="[]")
    repository = repo(runner, lock_wait=60, sleep=lambda s: now.__setitem__(0, now[0] + s), clock=lambda: now[0])
    assert repository.run("forget", "--json").rc == 0
    assert 0 < now[0] <= 2


def test_ls_returns_the_snapshot_and_its_nodes():
    stdout, stderr = fixture("ls")
    head, nodes = repo(FakeRunner().add("ls", stdout=stdout, stderr=stderr)).ls("latest", host="web1")
    assert head["hostname"] == "web1" and len(head["id"]) == 64
    files = {os.path.basename(n["path"]): n for n in nodes if n["type"] != "dir"}
    assert set(files) == {"a.txt", "big.bin", "link"}
    assert _restic.go_mode_to_posix(files["a.txt"]["mode"]) == 0o4755
    assert _restic.go_mode_to_posix(files["big.bin"]["mode"]) == 0o644


def test_ls_of_a_missing_snapshot_is_an_error_although_restic_exits_0():
    stdout, stderr = fixture("ls-missing")
    with pytest.raises(SnapshotNotFoundError, match="snapshot 'deadbeef' does not exist in /var/backups/restic"):
        repo(FakeRunner().add("ls", stdout=stdout, stderr=stderr)).ls("deadbeef")


def test_open_ls_streams_the_same_snapshot_and_nodes_as_ls():
    stdout, stderr = fixture("ls")
    head, nodes = repo(FakeRunner().add("ls", stdout=stdout, stderr=stderr)).ls("latest", host="web1")
    runner = FakeRunner().add("ls", stdout=stdout, stderr=stderr)
    listing = repo(runner).open_ls("latest", host="web1")
    assert listing.head() == head
    assert [node for batch in listing.batches() for node in batch] == nodes
    assert runner.calls[0][1:5] == ["ls", "--json", "--no-lock", "latest"] and "--host" in runner.calls[0]
    assert runner.processes[0].returncode == 0 and not runner.processes[0].killed


@pytest.mark.parametrize("size", [1, 7, 64, 1 << 18])
def test_started_batches_cut_at_line_ends_whatever_the_chunk_size(size):
    lines = ['{"a": 1}', "", '{"b": "x y"}', "Ignoring something", '{"c": [1, 2]}']
    runner = FakeRunner().add("ls", stdout="\n".join(lines))  # no newline after the last line
    started = repo(runner).start("ls", stream=True)
    got = [line for batch in started.batches(size) for line in batch]
    assert [line.decode() for line in got if line] == [line for line in lines if line]
    assert started.finish().rc == 0


@pytest.mark.parametrize("name, error", [("ls-missing", SnapshotNotFoundError), ("wrong-password", WrongPasswordError)])
def test_open_ls_failures_are_the_errors_ls_raises(name, error):
    stdout, stderr = fixture(name)
    rc = 0 if name == "ls-missing" else 1
    with pytest.raises(error) as streamed:
        repo(FakeRunner().add("ls", rc=rc, stdout=stdout, stderr=stderr)).open_ls("deadbeef").head()
    with pytest.raises(error) as buffered:
        repo(FakeRunner().add("ls", rc=rc, stdout=stdout, stderr=stderr)).ls("deadbeef")
    assert streamed.value.msg == buffered.value.msg


def test_a_listing_that_fails_after_its_head_raises_at_the_end():
    stdout, _stderr = fixture("ls")
    listing = repo(FakeRunner().add("ls", rc=1, stdout=stdout, stderr="Fatal: unable to load tree: ciphertext verification failed")).open_ls("x")
    assert listing.head()["struct_type"] == "snapshot"
    with pytest.raises(_restic.ResticError, match="ciphertext verification failed"):
        list(listing.batches())


def test_a_started_find_is_read_later_or_cancelled():
    answer = json.dumps([{"object_type": "blob", "id": "ab" * 32, "path": "/srv/a"}, {"object_type": "tree", "id": "cd" * 32}])
    runner = FakeRunner().add("find --blob", stdout=answer).add("find --blob", stdout=answer)
    repository = repo(runner)
    assert _restic.blobs_found(repository.start_find_blobs("f" * 64, ["ab" * 32])) == {"ab" * 32: {"/srv/a"}}
    started = repository.start_find_blobs("f" * 64, ["ab" * 32])
    started.cancel()
    assert runner.processes[1].killed and runner.calls[1][-2:] == ["--blob", "ab" * 32]
    with pytest.raises(ValueError):
        repository.start_find_blobs("f" * 64, ["00"] * (_restic.FIND_BATCH + 1))


def test_resolve_prefix_latest_and_missing():
    stdout, _err = fixture("snapshots")
    snaps = json.loads(stdout)
    runner = FakeRunner().add("snapshots", stdout=stdout).add("snapshots", stdout=stdout).add("snapshots", stdout="[]")
    repository = repo(runner)
    assert repository.resolve(snaps[0]["short_id"])["id"] == snaps[0]["id"]
    newest = max(snaps, key=lambda s: _restic.parse_time_ns(s["time"]))
    assert repository.resolve("latest")["id"] == newest["id"]
    with pytest.raises(SnapshotNotFoundError, match="no snapshot in /var/backups/restic for host web9"):
        repository.resolve("latest", host="web9")


def test_check_separates_findings_from_other_failures():
    runner = FakeRunner().add("check", rc=1, stderr="Pack ID does not match, want 1234, got 5678\nFatal: repository contains errors")
    passed, completed = repo(runner).check("10%")
    assert not passed and "--read-data-subset=10%" in runner.calls[0] and "repository contains errors" in completed.stderr
    _out, err = fixture("wrong-password")
    with pytest.raises(WrongPasswordError):
        repo(FakeRunner().add("check", rc=1, stderr=err)).check()


def test_stale_on_this_host_needs_same_host_and_dead_pid():
    lock = _restic.Lock("id", "web1", 42, True, "t")
    assert _restic.stale_on_this_host(lock, "web1", alive=lambda pid: False)
    assert not _restic.stale_on_this_host(lock, "web1", alive=lambda pid: True)
    assert not _restic.stale_on_this_host(lock, "web2", alive=lambda pid: False)


def test_pid_alive_sees_this_process_and_not_a_reaped_one():
    import subprocess  # pylint: disable=import-outside-toplevel

    proc = subprocess.Popen(["true"])  # pylint: disable=consider-using-with
    proc.wait()
    assert _restic.pid_alive(os.getpid())
    assert not _restic.pid_alive(proc.pid)
