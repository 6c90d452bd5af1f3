# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _backup, _restic
from ansible_collections.sre.ops.plugins.module_utils._backup import BackupError, BackupManager
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError
from ansible_collections.sre.ops.plugins.module_utils._restic import NoRepositoryError, Repository, Runner

from ...utils.restic_fakes import FakeRunner, fixture

NOW = 1_800_000_000.0


def manager(runner, tmp_path, **kwargs):
    repo_path = kwargs.pop("repo_path", str(tmp_path / "repo"))
    repo = Repository(repo_path, runner=runner, password="pw", hostname="web1")
    kwargs.setdefault("paths", [str(tmp_path)])
    return BackupManager(repo, marker_dir=str(tmp_path / "markers"), clock=lambda: NOW, **kwargs)


def existing_repo(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "config").write_text("x")


def test_summary_from_real_backup_output():
    stdout, _err = fixture("backup-initial")
    summary = _backup.parse_backup_summary(stdout)
    assert summary["files_new"] == 2 and summary["dirs_new"] >= 3 and summary["data_added"] > 700_000
    assert len(summary["snapshot_id"]) == 8  # restic 0.14 reports the short id


def test_backup_runs_one_restic_process_and_reports_the_summary(tmp_path):
    existing_repo(tmp_path)
    stdout, _err = fixture("backup-initial")
    runner = FakeRunner().add("backup", stdout=stdout)
    result = manager(runner, tmp_path, tags=["app"], exclude=["*.tmp"], one_file_system=True).run()
    assert len(runner.calls) == 1
    argv = runner.calls[0]
    assert argv[argv.index("--host") + 1] == "web1" and argv[argv.index("--tag") + 1] == "app"
    assert argv[argv.index("--exclude") + 1] == "*.tmp" and "--one-file-system" in argv and "--dry-run" not in argv
    assert argv[-2:] == ["--", str(tmp_path)]
    assert result["changed"] and result["snapshot_id"] == json.loads(stdout.splitlines()[-1])["snapshot_id"]
    assert result["files_new"] == 2 and result["initialised"] is False
    assert not os.listdir(tmp_path / "markers"), "the run marker must be gone after the run"


def test_check_mode_is_restic_dry_run_and_returns_no_snapshot(tmp_path):
    existing_repo(tmp_path)
    stdout, _err = fixture("backup-dry-run")
    runner = FakeRunner().add("backup --dry-run", stdout=stdout)
    result = manager(runner, tmp_path, check_mode=True).run()
    assert result["changed"] and result["snapshot_id"] is None and result["files_unmodified"] == 2
    assert not os.path.exists(tmp_path / "markers")


def test_missing_repository_without_init_is_an_error_before_restic_runs(tmp_path):
    with pytest.raises(NoRepositoryError, match="set init=true"):
        manager(FakeRunner(), tmp_path).run()


def test_missing_repository_in_check_mode_reports_init_without_writing(tmp_path):
    result = manager(FakeRunner(), tmp_path, init=True, check_mode=True).run()
    assert result["changed"] and result["initialised"] and not os.path.exists(tmp_path / "repo")


def fake_init(argv):
    with open(os.path.join(os.environ["RESTIC_REPOSITORY_SEEN"], "config"), "w", encoding="utf-8") as handle:
        handle.write("x")
    return 0, "", ""


def test_init_then_backup_in_a_directory_renamed_into_place(tmp_path, monkeypatch):
    stdout, _err = fixture("backup-initial")
    runner = FakeRunner().add("backup", stdout=stdout)
    runner.script.insert(0, (lambda argv: "init" in argv, fake_init))
    original = runner.run

    def run(argv, env=None, **kwargs):
        os.environ["RESTIC_REPOSITORY_SEEN"] = (env or {}).get("RESTIC_REPOSITORY", "")
        return original(argv, env=env, **kwargs)

    monkeypatch.setattr(runner, "run", run)
    result = manager(runner, tmp_path, init=True).run()
    assert runner.commands() == ["init", "backup"] and result["initialised"]
    assert runner.calls[0][-2:] == ["--repository-version", "2"]
    assert runner.envs[0]["RESTIC_REPOSITORY"] != str(tmp_path / "repo"), "initialised elsewhere, then renamed"
    assert (tmp_path / "repo" / "config").exists()
    assert sorted(os.listdir(tmp_path)) == ["markers", "repo"]


def test_losing_an_init_race_on_a_local_repository_uses_the_winner(tmp_path, monkeypatch):
    runner = FakeRunner()

    def winner_appears(argv):
        (tmp_path / "repo").mkdir()
        (tmp_path / "repo" / "config").write_text("winner")
        (tmp_path / "repo" / "keys").mkdir()
        return 0, "", ""

    runner.script.append((lambda argv: "init" in argv, winner_appears))
    stdout, _err = fixture("backup-initial")
    runner.add("backup", stdout=stdout)
    result = manager(runner, tmp_path, init=True).run()
    assert (tmp_path / "repo" / "config").read_text() == "winner"
    assert any("initialised the repository at the same moment" in n for n in result["notes"])
    assert sorted(os.listdir(tmp_path)) == ["markers", "repo"], "the losing copy is removed"


def test_losing_an_init_race_on_a_remote_repository_explains_the_repair(tmp_path):
    _out, missing = fixture("no-repository")
    runner = FakeRunner().add("cat config", rc=1, stderr=missing)
    runner.add("init", rc=1, stderr="Fatal: create repository at sftp:b:/r failed: config file already exists\n")
    repo = Repository("sftp:b:/r", runner=runner, password="pw", hostname="web1")
    with pytest.raises(BackupError, match="another host initialised sftp:b:/r at the same moment.*restic key remove"):
        BackupManager(repo, init=True, marker_dir=str(tmp_path)).run()


def test_init_only(tmp_path):
    runner = FakeRunner()
    runner.script.append((lambda argv: "init" in argv, lambda argv: (0, "", "")))
    result = manager(runner, tmp_path, paths=None, init=True, check_mode=True).run()
    assert result["changed"] and not runner.calls
    existing_repo(tmp_path)
    assert not manager(runner, tmp_path, paths=None, init=True).run()["changed"]


def test_refuses_to_initialise_a_non_empty_directory(tmp_path):
    (tmp_path / "repo").mkdir()
    (tmp_path / "repo" / "precious").write_text("x")
    with pytest.raises(BackupError, match="not empty and is not a restic repository"):
        manager(FakeRunner(), tmp_path, init=True).run()


def test_missing_path_names_it(tmp_path):
    existing_repo(tmp_path)
    with pytest.raises(BackupError, match=f"paths do not exist on this host: {tmp_path}/nope"):
        manager(FakeRunner(), tmp_path, paths=[str(tmp_path), str(tmp_path / "nope")]).run()


def test_min_interval_skips_when_the_newest_snapshot_is_young(tmp_path):
    existing_repo(tmp_path)
    snaps = [{"id": "a" * 64, "short_id": "aaaaaaaa", "time": "2027-01-15T07:50:00Z", "hostname": "web1", "paths": [str(tmp_path)]}]
    runner = FakeRunner().add("snapshots", stdout=json.dumps(snaps))
    result = manager(runner, tmp_path, min_interval="1h", tags=["app"]).run()  # NOW is 2027-01-15T08:00:00Z
    assert not result["changed"] and result["snapshot_id"] == "a" * 64 and result["age_seconds"] == 600
    argv = runner.calls[0]
    assert argv[argv.index("--host") + 1] == "web1" and argv[argv.index("--tag") + 1] == "app" and argv[argv.index("--path") + 1] == str(tmp_path)


def test_min_interval_backs_up_when_the_newest_snapshot_is_old(tmp_path):
    existing_repo(tmp_path)
    snaps = [{"id": "a" * 64, "short_id": "aaaaaaaa", "time": "2027-01-15T06:00:00Z"}]
    stdout, _err = fixture("backup-initial")
    runner = FakeRunner().add("snapshots", stdout=json.dumps(snaps)).add("backup", stdout=stdout)
    assert manager(runner, tmp_path, min_interval=3600).run()["changed"]


def test_partial_snapshot_fails_and_names_unreadable_files(tmp_path):
    existing_repo(tmp_path)
    stdout, _err = fixture("backup-initial")
    runner = FakeRunner().add("backup", rc=3, stdout=stdout, stderr="error: open /srv/data/secret: permission denied\n")
    with pytest.raises(BackupError, match="incomplete: restic could not read 1 file") as info:
        manager(runner, tmp_path).run()
    assert info.value.details["result"]["partial"] is True


def test_a_killed_earlier_run_gets_its_stale_lock_removed(tmp_path, monkeypatch):
    existing_repo(tmp_path)
    (tmp_path / "markers").mkdir()
    dead = subprocess.Popen(["true"])  # pylint: disable=consider-using-with
    dead.wait()
    (tmp_path / "markers" / f"{dead.pid}.json").write_text(json.dumps({"pid": dead.pid, "start": "1", "paths": [str(tmp_path)]}))
    monkeypatch.setattr(_restic, "pid_alive", lambda pid: pid != 777)
    monkeypatch.setattr(_restic, "pid_exists", lambda pid: False)
    stdout, _err = fixture("backup-initial")
    runner = FakeRunner().add("list locks", stdout="abc\n").add("cat lock", stdout=json.dumps(
        {"time": "2027-01-15T07:00:00Z", "exclusive": False, "hostname": "web1", "pid": 777})).add("unlock").add("list locks").add("backup", stdout=stdout)
    result = manager(runner, tmp_path).run()
    assert runner.commands() == ["list locks", "cat lock", "unlock", "list locks", "backup"]
    assert result["stale_locks_removed"][0]["pid"] == 777
    assert any("was killed before it finished" in note for note in result["notes"])
    assert not os.listdir(tmp_path / "markers")


def test_running_backups_are_visible_to_restores(tmp_path):
    marker = _backup.RunMarker(str(tmp_path), "/r", ["/srv/data"])
    with marker:
        running = _backup.running_backups(str(tmp_path))
        assert [m["paths"] for m in running] == [["/srv/data"]]
        assert stat.S_IMODE(os.stat(marker.path).st_mode) == 0o600
    assert _backup.running_backups(str(tmp_path)) == []


def test_dump_commands_keep_passwords_off_the_command_line(tmp_path):
    argv, env, name = _backup.dump_command({"type": "postgresql", "name": "orders", "host": "/srv/pg", "port": 5433, "user": "app",
                                            "password": "pgsecret", "dump_extra_args": ["--no-owner"]}, str(tmp_path))
    assert argv == ["pg_dump", "--format=custom", "--no-password", "--dbname=orders", "--host=/srv/pg", "--port=5433", "--username=app",
                    "--no-owner"]
    assert env == {"PGPASSWORD": "pgsecret"} and name == "orders.pgdump"
    argv, env, name = _backup.dump_command({"type": "mysql", "name": "shop", "host": "/srv/my/mysqld.sock", "user": "app", "password": 'a"b',
                                            "dump_command": "mysqldump"}, str(tmp_path))
    assert "a\"b" not in " ".join(argv) and env == {} and name == "shop.sql"
    assert argv[1] == f"--defaults-extra-file={tmp_path}/client.cnf" and "--single-transaction" in argv and argv[-1] == "shop"
    assert "--socket=/srv/my/mysqld.sock" in argv
    assert stat.S_IMODE(os.stat(tmp_path / "client.cnf").st_mode) == 0o600
    assert (tmp_path / "client.cnf").read_text() == '[client]\npassword="a\\"b"\n'


@pytest.mark.parametrize("database, message", [
    ({"type": "oracle"}, "database.type must be one of"),
    ({"type": "sqlite"}, "database.path is required"),
    ({"type": "sqlite", "path": "/nonexistent.db"}, "database.path /nonexistent.db does not exist"),
    ({"type": "postgresql"}, "database.name is required"),
])
def test_database_options_are_checked(database, message, tmp_path):
    with pytest.raises(InvalidInputError, match=message):
        manager(FakeRunner(), tmp_path, paths=None, database=database)


def test_sqlite_copy_is_consistent_while_a_writer_commits(tmp_path):
    db = str(tmp_path / "live.db")
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE accounts (id INTEGER PRIMARY KEY, balance INTEGER)")
    conn.executemany("INSERT INTO accounts VALUES (?, 100)", [(i,) for i in range(200)])
    conn.commit()
    stop = threading.Event()

    def transfer() -> None:
        writer = sqlite3.connect(db, timeout=30)
        n = 0
        while not stop.is_set():
            with writer:
                writer.execute("UPDATE accounts SET balance = balance - 1 WHERE id = ?", (n % 200,))
                writer.execute("UPDATE accounts SET balance = balance + 1 WHERE id = ?", ((n + 7) % 200,))
            n += 1
        writer.close()

    thread = threading.Thread(target=transfer)
    thread.start()
    try:
        time.sleep(0.05)
        copies = []
        for i in range(5):
            scratch = tmp_path / f"s{i}"
            scratch.mkdir()
            copies.append(_backup.sqlite_copy(db, str(scratch)))
    finally:
        stop.set()
        thread.join()
    for copy in copies:
        check = sqlite3.connect(copy)
        assert check.execute("SELECT SUM(balance), COUNT(*) FROM accounts").fetchone() == (20000, 200)
        check.close()


def test_sqlite_copy_refuses_a_corrupt_database(tmp_path):
    db = tmp_path / "bad.db"
    db.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4000)
    scratch = tmp_path / "s"
    scratch.mkdir()
    with pytest.raises(BackupError, match="SQLite database"):
        _backup.sqlite_copy(str(db), str(scratch))


# ----- the relay into restic's stdin, with real processes ------------------------------------------------
FAKE_RESTIC = r'''
import json, os, signal, sys
signal.signal(signal.SIGINT, signal.default_int_handler)  # the test runner may start us with SIGINT ignored
data = sys.stdin.buffer.read()
with open(os.environ["FAKE_RESTIC_LOG"], "w") as log:
    log.write(json.dumps({"bytes": len(data), "args": sys.argv[1:]}))
print(json.dumps({"message_type": "summary", "files_new": 1, "total_bytes_processed": len(data), "data_added": len(data), "snapshot_id": "0123abcd"}))
'''


@pytest.fixture
def fake_restic(tmp_path):
    script = tmp_path / "fake-restic"
    script.write_text(f"#!{sys.executable}\n{FAKE_RESTIC}")
    script.chmod(0o755)
    log = tmp_path / "restic.log"
    os.environ["FAKE_RESTIC_LOG"] = str(log)
    yield str(script), log
    os.environ.pop("FAKE_RESTIC_LOG", None)


def db_manager(tmp_path, binary, dump_command):
    existing_repo(tmp_path)
    repo = Repository(str(tmp_path / "repo"), runner=Runner(), password="pw", hostname="web1", binary=binary)
    return BackupManager(repo, database={"type": "postgresql", "name": "app", "dump_command": dump_command}, marker_dir=str(tmp_path / "m"))


def test_a_successful_dump_is_relayed_whole(tmp_path, fake_restic):
    binary, log = fake_restic
    dump = tmp_path / "dump"
    dump.write_text("#!/bin/sh\nhead -c 3000000 /dev/zero\n")
    dump.chmod(0o755)
    result = db_manager(tmp_path, binary, str(dump)).run()
    seen = json.loads(log.read_text())
    assert seen["bytes"] == 3_000_000 and result["snapshot_id"] == "0123abcd"
    assert seen["args"][-3:] == ["--stdin", "--stdin-filename", "app.pgdump"]


def test_a_failed_dump_interrupts_restic_before_its_input_ends(tmp_path, fake_restic):
    binary, log = fake_restic
    dump = tmp_path / "dump"
    dump.write_text("#!/bin/sh\nhead -c 100000 /dev/zero\necho 'FATAL: password authentication failed' >&2\nexit 1\n")
    dump.chmod(0o755)
    with pytest.raises(BackupError, match="could not dump postgresql database 'app' .exit status 1.: FATAL: password authentication failed"):
        db_manager(tmp_path, binary, str(dump)).run()
    assert not log.exists(), "restic saw the end of its input: it would have written a snapshot"


def test_an_empty_dump_is_refused(tmp_path, fake_restic):
    binary, log = fake_restic
    dump = tmp_path / "dump"
    dump.write_text("#!/bin/sh\nexit 0\n")
    dump.chmod(0o755)
    with pytest.raises(BackupError, match="it produced no output"):
        db_manager(tmp_path, binary, str(dump)).run()
    assert not log.exists()


# ----- the scheduled job ---------------------------------------------------------------------------------------
def test_the_scheduled_job_runs_backup_then_retention(tmp_path):
    existing_repo(tmp_path)
    job = {"repository": str(tmp_path / "repo"), "password": "pw", "paths": [str(tmp_path)], "tags": ["app"], "host": "web1",
           "retention": {"keep_last": 3}, "prune": True, "name": "app", "metrics_dir": str(tmp_path / "metrics")}
    (tmp_path / "job.json").write_text(json.dumps(job))
    stdout, _err = fixture("backup-initial")
    forget, _err = fixture("forget-dry-run")
    runner = FakeRunner().add("backup", stdout=stdout).add("forget --dry-run", stdout=forget).add("forget").add("prune")
    status, result = _backup.run_job(str(tmp_path / "job.json"), runner=runner)
    assert status == 0 and result["files_new"] == 2 and len(result["retention"]["removed"]) == 3 and result["retention"]["pruned"]
    argv = runner.calls[1]
    assert argv[argv.index("--host") + 1] == "web1" and argv[argv.index("--tag") + 1] == "app" and argv[argv.index("--path") + 1] == str(tmp_path)
    assert os.path.exists(tmp_path / "metrics" / "sreops_backup_app.prom")


def test_the_scheduled_job_reports_failure_in_its_metrics(tmp_path):
    existing_repo(tmp_path)
    job = {"repository": str(tmp_path / "repo"), "password": "pw", "paths": [str(tmp_path)], "name": "app", "metrics_dir": str(tmp_path / "m")}
    (tmp_path / "job.json").write_text(json.dumps(job))
    _out, err = fixture("wrong-password")
    status, result = _backup.run_job(str(tmp_path / "job.json"), runner=FakeRunner().add("backup", rc=1, stderr=err))
    assert status == 1 and "wrong repository password" in result["msg"]
    assert "sreops_backup_last_run_success{backup=\"app\"} 0" in (tmp_path / "m" / "sreops_backup_app.prom").read_text()


def test_the_role_installs_every_module_util_the_job_imports():
    """The role copies module_utils for the scheduled job by name: a new import must not break scheduled backups."""
    import re  # pylint: disable=import-outside-toplevel

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
    utils = os.path.join(root, "plugins", "module_utils")
    with open(os.path.join(root, "roles", "backup", "tasks", "main.yml"), encoding="utf-8") as handle:
        copied = set(re.search(r"loop: \[(_errors\.py[^\]]*)\]", handle.read()).group(1).replace(" ", "").split(","))
    needed, todo = set(), ["_backup.py"]
    while todo:
        name = todo.pop()
        needed.add(name)
        with open(os.path.join(utils, name), encoding="utf-8") as handle:
            for module in re.findall(r"ansible_collections\.sre\.ops\.plugins\.module_utils\.(_\w+)", handle.read()):
                if f"{module}.py" not in needed:
                    todo.append(f"{module}.py")
    assert needed <= copied, f"roles/backup/tasks/main.yml does not install {sorted(needed - copied)}"
