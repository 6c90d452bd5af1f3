# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: back up files or a consistent database dump into a restic repository.

A run leaves a marker in /run/sre-ops/backup/<pid>.json while it works. The next run that finds a marker
whose process is gone knows a run was killed: it looks for that run's restic lock and removes it if the
process that held it no longer exists on this host. Restores read the same markers to refuse a target
inside the source of a running backup.

Database dumps never touch the disk for PostgreSQL and MariaDB/MySQL: the dump tool's output is relayed
into `restic backup --stdin`, and restic's stdin is closed only after the dump tool exits 0. If the dump
fails, restic is interrupted before it sees the end of its input, so it writes no snapshot.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError, SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._io import write_json_atomic
from ansible_collections.sre.ops.plugins.module_utils._restic import (
    Completed, LockedError, NoRepositoryError, Repository, ResticError, classify_failure, json_lines, parse_duration, parse_time_ns, pid_alive, short,
)

MARKER_DIR = "/run/sre-ops/backup"
RELAY_BLOCK = 1 << 20
SUMMARY_KEYS = ("files_new", "files_changed", "files_unmodified", "dirs_new", "dirs_changed", "dirs_unmodified",
                "data_blobs", "tree_blobs", "data_added", "total_files_processed", "total_bytes_processed", "total_duration")
DATABASE_TYPES = ("postgresql", "mysql", "sqlite")


class BackupError(SreOpsError):
    """A backup was refused or failed; nothing was added to the repository."""


# ----- run markers ------------------------------------------------------------------------------------
def _proc_start(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[19]
    except (OSError, IndexError):
        return None


def marker_alive(marker: dict[str, t.Any]) -> bool:
    pid = int(marker.get("pid", 0))
    return pid_alive(pid) and (marker.get("start") is None or _proc_start(pid) == marker.get("start"))


def read_markers(directory: str = MARKER_DIR) -> list[dict[str, t.Any]]:
    markers = []
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in sorted(names):
        if not name.endswith(".json"):
            continue
        path = os.path.join(directory, name)
        try:
            with open(path, encoding="utf-8") as handle:
                doc = json.load(handle)
        except (OSError, ValueError):
            doc = {"pid": int(name.split(".")[0]) if name.split(".")[0].isdigit() else 0}
        doc["marker"] = path
        markers.append(doc)
    return markers


def running_backups(directory: str = MARKER_DIR) -> list[dict[str, t.Any]]:
    """Backups in progress on this host (their markers' processes are alive)."""
    return [m for m in read_markers(directory) if marker_alive(m)]


class RunMarker:
    """The marker of this run; a context manager that removes it however the run ends (except SIGKILL)."""

    def __init__(self, directory: str, repository: str, paths: list[str]) -> None:
        self.path = os.path.join(directory, f"{os.getpid()}.json")
        self.doc = {"pid": os.getpid(), "start": _proc_start(os.getpid()), "repository": repository, "paths": paths,
                    "started": time.time()}
        self.directory = directory

    def __enter__(self) -> "RunMarker":
        os.makedirs(self.directory, mode=0o700, exist_ok=True)
        write_json_atomic(self.path, self.doc, mode=0o600)
        return self

    def __exit__(self, *exc: t.Any) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass


def inside(path: str, parent: str) -> bool:
    path, parent = os.path.realpath(path), os.path.realpath(parent)
    return path == parent or path.startswith(parent.rstrip(os.sep) + os.sep)


# ----- restic output -----------------------------------------------------------------------------------
def parse_backup_summary(stdout: str) -> dict[str, t.Any]:
    """The summary object of `restic backup --json` (status lines, if any, are skipped: it is the last object)."""
    for line in reversed(stdout.splitlines()):
        if '"summary"' in line:
            for doc in json_lines(line):
                if doc.get("message_type") == "summary":
                    return doc
    raise ResticError("restic backup printed no summary")


def unreadable_files(stderr: str) -> list[str]:
    """Lines in which restic reports files it could not read (exit status 3: snapshot created, incomplete)."""
    found = []
    for line in stderr.splitlines():
        if line.startswith("error: ") or ": permission denied" in line.lower():
            found.append(line.strip()[:300])
    return found[:20]


# ----- database dump commands ------------------------------------------------------------------------
def dump_command(database: dict[str, t.Any], scratch: str) -> tuple[list[str], dict[str, str], str]:
    """argv, extra environment and the file name in the snapshot for a PostgreSQL or MariaDB/MySQL dump."""
    kind = database["type"]
    name = database["name"]
    extra = [str(a) for a in database.get("dump_extra_args") or []]
    env: dict[str, str] = {}
    if kind == "postgresql":
        argv = [database.get("dump_command") or "pg_dump", "--format=custom", "--no-password", f"--dbname={name}"]
        if database.get("host"):
            argv.append(f"--host={database['host']}")
        if database.get("port"):
            argv.append(f"--port={database['port']}")
        if database.get("user"):
            argv.append(f"--username={database['user']}")
        if database.get("password") is not None:
            env["PGPASSWORD"] = str(database["password"])
        return argv + extra, env, database.get("stdin_filename") or f"{name}.pgdump"
    command = database.get("dump_command") or shutil.which("mariadb-dump") or "mysqldump"
    argv = [command, *mysql_option_file(database, scratch), "--single-transaction", "--quick", "--routines", "--triggers", "--events",
            "--hex-blob", *mysql_connection(database)]
    return argv + extra + [name], env, database.get("stdin_filename") or f"{name}.sql"


def mysql_option_file(database: dict[str, t.Any], scratch: str) -> list[str]:
    """The password in an option file only the client's user can read, never on the command line (must come first)."""
    if database.get("password") is None:
        return []
    option_file = os.path.join(scratch, "client.cnf")
    if not os.path.exists(option_file):
        fd = os.open(option_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write("[client]\npassword=\"" + str(database["password"]).replace("\\", "\\\\").replace('"', '\\"') + "\"\n")
    return [f"--defaults-extra-file={option_file}"]


def mysql_connection(database: dict[str, t.Any]) -> list[str]:
    """Socket (a path) or host, port and user options of the MariaDB/MySQL client tools."""
    args = []
    if database.get("host"):
        host = str(database["host"])
        args.append(f"--socket={host}" if host.startswith("/") else f"--host={host}")
    if database.get("port"):
        args.append(f"--port={database['port']}")
    if database.get("user"):
        args.append(f"--user={database['user']}")
    return args


def sqlite_copy(path: str, scratch: str) -> str:
    """A consistent copy of a live SQLite database made with the online backup API, checked with integrity_check."""
    import sqlite3  # pylint: disable=import-outside-toplevel  # only database backups pay for it

    copy = os.path.join(scratch, os.path.basename(path))
    try:
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    except sqlite3.Error as exc:
        raise BackupError(f"cannot open SQLite database {path}: {exc}") from exc
    try:
        target = sqlite3.connect(copy)
        try:
            # pages=-1 copies everything in one step, under one read transaction: a writer on another connection
            # cannot restart the copy half-way (it would with small steps on a busy database).
            source.backup(target, pages=-1)
            verdict = target.execute("PRAGMA integrity_check").fetchall()
        finally:
            target.close()
    except sqlite3.Error as exc:
        raise BackupError(f"cannot copy SQLite database {path}: {exc}") from exc
    finally:
        source.close()
    if verdict != [("ok",)]:
        raise BackupError(f"the copy of SQLite database {path} failed PRAGMA integrity_check: {'; '.join(str(r[0]) for r in verdict[:5])}")
    return copy


def _tail(handle: t.Any, limit: int = 2000) -> str:
    handle.seek(0)
    text = handle.read().decode("utf-8", "replace")
    return text[-limit:].strip()


def interrupt(proc: subprocess.Popen, grace: float = 60.0) -> None:
    """SIGINT, once a second (restic then removes its lock and writes no snapshot); SIGKILL after grace seconds.

    Repeated because a process that is still starting may not have its handler in place for the first one.
    """
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=1.0)
            return
        except subprocess.TimeoutExpired:
            continue
    proc.kill()
    proc.wait()


def stream_into_restic(repo: Repository, producer: subprocess.Popen | None, source_file: str | None, args: list[str]) -> tuple[str, str, int, bool]:
    """Feed restic's stdin from a producer process (or a file).

    Returns restic's stdout, stderr, exit status, and whether restic was interrupted because the producer
    failed: then restic got SIGINT before its input ended, so it removed its lock and wrote no snapshot.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        source = open(source_file, "rb") if source_file else None  # pylint: disable=consider-using-with
        interrupted = False
        try:
            restic = repo.runner.spawn(repo.argv(*args), env=repo.env(), stdin=subprocess.PIPE, stdout=out, stderr=err)
            reader = producer.stdout if producer is not None else source
            if reader is None or restic.stdin is None:
                raise BackupError("internal error: no pipe between the dump and restic")
            relayed = 0
            try:
                for block in iter(lambda: reader.read(RELAY_BLOCK), b""):
                    restic.stdin.write(block)
                    relayed += len(block)
            except BrokenPipeError:
                pass  # restic ended early (wrong password, lock ...): its stderr says why
            if producer is not None:
                reader.close()
                # An empty dump is a failed dump (pg_dump has been known to exit 0 after a refused login).
                if (producer.wait() != 0 or relayed == 0) and restic.poll() is None:
                    interrupt(restic)
                    interrupted = True
            if not interrupted:
                try:
                    restic.stdin.close()
                except BrokenPipeError:
                    pass
            restic.wait()
        finally:
            if source is not None:
                source.close()
        out.seek(0)
        return out.read().decode("utf-8", "replace"), _tail(err), restic.returncode, interrupted


# ----- the backup --------------------------------------------------------------------------------------
class BackupManager:
    """One backup task: files or a database, the RPO guard, check mode as restic's dry run."""

    def __init__(
        self,
        repo: Repository,
        *,
        paths: list[str] | None = None,
        database: dict[str, t.Any] | None = None,
        exclude: list[str] | None = None,
        exclude_file: list[str] | None = None,
        one_file_system: bool = False,
        tags: list[str] | None = None,
        host: str | None = None,
        min_interval: t.Any = None,
        init: bool = False,
        compression: str | None = None,
        pack_size: int | None = None,
        extra_args: list[str] | None = None,
        check_mode: bool = False,
        marker_dir: str = MARKER_DIR,
        metrics_dir: str | None = None,
        name: str | None = None,
        clock: t.Callable[[], float] = time.time,
    ) -> None:
        self.repo = repo
        self.paths = [os.path.abspath(p) for p in paths or []]
        self.database = database
        self.exclude = exclude or []
        self.exclude_file = exclude_file or []
        self.one_file_system = one_file_system
        self.tags = tags or []
        self.host = host or repo.hostname
        self.min_interval = parse_duration(min_interval, "min_interval") if min_interval not in (None, "", 0, "0") else None
        self.init = init
        self.compression = compression
        self.pack_size = pack_size
        self.extra_args = [str(a) for a in extra_args or []]
        self.check_mode = check_mode
        self.marker_dir = marker_dir
        self.metrics_dir = metrics_dir
        self.name = name
        self.clock = clock
        self.notes: list[str] = []
        self.init_only = not self.paths and not database
        if self.paths and database:
            raise InvalidInputError("give either paths or database, not both")
        if self.init_only and not init:
            raise InvalidInputError("give paths or database (or only init=true, to initialise the repository without a backup)")
        if database:
            self._check_database(database)
        if metrics_dir and not name:
            raise InvalidInputError("metrics_dir needs name (the backup label in the metrics)")

    # ----- checks ------------------------------------------------------------------------------------
    @staticmethod
    def _check_database(database: dict[str, t.Any]) -> None:
        kind = database.get("type")
        if kind not in DATABASE_TYPES:
            raise InvalidInputError(f"database.type must be one of {', '.join(DATABASE_TYPES)}, got {kind!r}")
        if kind == "sqlite":
            if not database.get("path"):
                raise InvalidInputError("database.path is required for database.type=sqlite")
            if not os.path.isfile(database["path"]):
                raise InvalidInputError(f"database.path {database['path']} does not exist on this host")
        elif not database.get("name"):
            raise InvalidInputError(f"database.name is required for database.type={kind}")

    def source_paths(self) -> list[str]:
        """The paths restic records in the snapshot (stdin sources are recorded as /<file name>)."""
        if self.paths or not self.database:
            return self.paths
        db = self.database or {}
        if db["type"] == "sqlite":
            return ["/" + (db.get("stdin_filename") or os.path.basename(db["path"]))]
        return ["/" + (db.get("stdin_filename") or f"{db['name']}.{'pgdump' if db['type'] == 'postgresql' else 'sql'}")]

    def _missing_paths(self) -> list[str]:
        return [p for p in self.paths if not os.path.lexists(p)]

    def _killed_runs(self) -> list[dict[str, t.Any]]:
        """Markers of earlier runs on this host that died without cleaning up (SIGKILL, power loss)."""
        return [m for m in read_markers(self.marker_dir) if not marker_alive(m) and m.get("pid") != os.getpid()]

    # ----- run ---------------------------------------------------------------------------------------
    def run(self) -> dict[str, t.Any]:
        started = self.clock()
        missing = self._missing_paths()
        if missing:
            raise BackupError(f"paths do not exist on this host: {', '.join(missing)}")
        if not self.check_mode or self.repo.password is not None:
            self.repo.check_password_source()
        elif self.repo.password_file and not os.path.isfile(self.repo.password_file):
            return self._unpreviewable(f"password_file {self.repo.password_file} does not exist yet")
        killed = self._killed_runs()
        exists: bool | None = None
        local = self.repo.local_path
        if local is not None:
            exists = os.path.isfile(os.path.join(local, "config"))
            if not exists and os.path.isdir(local) and os.listdir(local) and not self.check_mode:
                raise BackupError(f"{local} exists, is not empty and is not a restic repository; refusing to initialise it")
        if self.init_only:
            return self._init_only(exists)

        latest = None
        if self.min_interval is not None and exists is not False:
            try:
                snaps = self.repo.snapshots(self.host, self.tags, self.source_paths())
                exists = True
            except NoRepositoryError:
                snaps, exists = [], False
            if snaps:
                latest = snaps[-1]
                age = self.clock() - parse_time_ns(latest["time"]) / 1e9
                if age < self.min_interval:
                    return self._fresh_enough(latest, age)

        if exists is False:
            if not self.init:
                raise NoRepositoryError(f"there is no restic repository at {self.repo.display} (set init=true to create one)")
            if self.check_mode:
                return self._would_init()

        for marker in killed:
            self.notes.append(f"an earlier backup run (PID {marker.get('pid')}) on this host was killed before it finished")
        if killed and not self.check_mode:
            for marker in killed:
                try:
                    os.unlink(marker["marker"])
                except OSError:
                    pass
            try:
                self.repo.remove_stale_locks()
            except NoRepositoryError:
                pass

        initialised = False
        if exists is False:
            self._init()
            initialised = True
            exists = True
        try:
            summary, partial = self._backup_with_marker()
        except NoRepositoryError:
            if not self.init or initialised:
                raise
            if self.check_mode:
                return self._would_init()
            self._init()
            initialised = True
            summary, partial = self._backup_with_marker()
        return self._result(summary, partial, initialised, started)

    def _init(self) -> None:
        """Initialise the repository, safely against another host initialising it at the same moment.

        restic 0.14 writes a new key before it finds out the config exists, so two concurrent inits leave a key
        that opens with the password but not the repository. A local repository is therefore initialised in a
        temporary directory and renamed into place (the loser's rename fails and it discards its copy); a remote
        one cannot be, so losing that race is reported with the repair.
        """
        local = self.repo.local_path
        if local is not None:
            self._init_local(os.path.abspath(local))
            return
        try:
            self.repo.init(["--repository-version", "2"])
        except ResticError as exc:
            completed = exc.details.get("completed")
            if completed is None or "config file already exists" not in completed.stderr:
                raise
            raise BackupError(
                f"another host initialised {self.repo.display} at the same moment. restic then leaves the key this host created in the "
                "repository's keys/, where it opens with the password but not the repository, so some restic runs fail with "
                f"'config or key ... is damaged'. Remove it ('restic key list' shows it, created by {self.repo.hostname} just now; "
                "'restic key remove ID'), and initialise a shared repository from one host first (the sre.ops.backup role does)") from exc

    def _init_local(self, path: str) -> None:
        parent, name = os.path.split(path)
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{name}.init-", dir=parent)
        try:
            twin = Repository(staging, runner=self.repo.runner, password=self.repo.password, password_file=self.repo.password_file,
                              options=self.repo.options, binary=self.repo.binary, cache_dir=self.repo.cache_dir,
                              environment=self.repo.environment, hostname=self.repo.hostname)
            twin.init(["--repository-version", "2"])
            try:
                os.rename(staging, path)  # replaces an empty directory, fails on a repository someone else put there
            except OSError as exc:
                if not os.path.isfile(os.path.join(path, "config")):
                    raise BackupError(f"cannot put the new repository at {path}: {exc.strerror}") from exc
                self.notes.append("another run initialised the repository at the same moment; using that one")
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    def _global_args(self) -> list[str]:
        args = []
        if self.compression:
            args += ["--compression", self.compression]
        if self.pack_size:
            args += ["--pack-size", str(self.pack_size)]
        return args

    def _backup_args(self) -> list[str]:
        args = ["backup", "--json", "--host", self.host, *self._global_args()]
        for tag in self.tags:
            args += ["--tag", tag]
        if self.check_mode:
            args.append("--dry-run")
        return args + self.extra_args

    def _backup_with_marker(self) -> tuple[dict[str, t.Any], list[str]]:
        if self.check_mode:
            return self._backup()
        with RunMarker(self.marker_dir, self.repo.display, self.paths or [self.database.get("path", "") if self.database else ""]):
            return self._backup()

    def _backup(self) -> tuple[dict[str, t.Any], list[str]]:
        if self.paths:
            args = self._backup_args()
            for pattern in self.exclude:
                args += ["--exclude", pattern]
            for path in self.exclude_file:
                args += ["--exclude-file", path]
            if self.one_file_system:
                args.append("--one-file-system")
            completed = self.repo.run(*args, "--", *self.paths, ok=(0, 3), what="backup")
            partial = unreadable_files(completed.stderr) if completed.rc == 3 else []
            return parse_backup_summary(completed.stdout), partial
        return self._backup_database(), []

    def _backup_database(self) -> dict[str, t.Any]:
        db = self.database or {}
        scratch = tempfile.mkdtemp(prefix="sreops-dump-")
        try:
            os.chmod(scratch, 0o700)
            if db.get("os_user"):
                import pwd  # pylint: disable=import-outside-toplevel

                try:
                    entry = pwd.getpwnam(db["os_user"])
                except KeyError as exc:
                    raise InvalidInputError(f"database.os_user {db['os_user']!r} does not exist on this host") from exc
                os.chown(scratch, entry.pw_uid, entry.pw_gid)
            while True:
                try:
                    return self._dump_once(db, scratch)
                except LockedError:
                    # A dump cannot be replayed into restic, so the lock is dealt with before the next attempt.
                    if not self.repo.remove_stale_locks():
                        raise
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    def _dump_once(self, db: dict[str, t.Any], scratch: str) -> dict[str, t.Any]:
        args = [*self._backup_args(), "--stdin", "--stdin-filename", self.source_paths()[0].lstrip("/")]
        if db["type"] == "sqlite":
            copy = sqlite_copy(db["path"], scratch)
            try:
                stdout, stderr, rc, _interrupted = stream_into_restic(self.repo, None, copy, args)
            finally:
                os.unlink(copy)
        else:
            argv, extra_env, _name = dump_command(db, scratch)
            env = dict(os.environ, **extra_env)
            with tempfile.TemporaryFile() as dump_err:
                producer = self.repo.runner.spawn(argv, env=env, stdout=subprocess.PIPE, stderr=dump_err, user=db.get("os_user"), cwd=scratch)
                stdout, stderr, rc, interrupted = stream_into_restic(self.repo, producer, None, args)
                if rc != 0 and not interrupted:
                    raise classify_failure("backup", _completed(rc, stdout, stderr), self.repo.url)
                if producer.returncode != 0 or interrupted:
                    raise BackupError(f"{os.path.basename(argv[0])} could not dump {db['type']} database {db['name']!r} "
                                      f"(exit status {producer.returncode}): {_tail(dump_err, 600) or 'it produced no output'}; "
                                      "nothing was added to the repository")
        if rc != 0:
            raise classify_failure("backup", _completed(rc, stdout, stderr), self.repo.url)
        summary = parse_backup_summary(stdout)
        if not summary.get("total_bytes_processed"):
            raise BackupError(f"the {db['type']} dump of {db.get('name') or db.get('path')} was empty; refusing an empty snapshot")
        return summary

    # ----- results -----------------------------------------------------------------------------------
    def _base(self) -> dict[str, t.Any]:
        return {"repository": self.repo.display, "host": self.host, "tags": self.tags, "paths": self.source_paths(),
                "notes": self.notes + self.repo.notes, "stale_locks_removed": self.repo.stale_locks_removed}

    def _fresh_enough(self, latest: dict[str, t.Any], age: float) -> dict[str, t.Any]:
        result = self._base()
        result.update(changed=False, skipped_reason=f"the newest snapshot {latest['short_id']} is {age:.0f}s old, younger than min_interval",
                      snapshot_id=latest["id"], short_id=latest["short_id"], snapshot_time=latest["time"], age_seconds=round(age, 3))
        return result

    def _would_init(self) -> dict[str, t.Any]:
        result = self._base()
        result.update(changed=True, initialised=True, snapshot_id=None,
                      diff={"before": {"repository": None}, "after": {"repository": self.repo.display, "snapshot": "(first snapshot)"}})
        result["notes"].append("the repository does not exist yet; a real run initialises it and takes the first snapshot")
        return result

    def _init_only(self, exists: bool | None) -> dict[str, t.Any]:
        if exists is None:
            exists = self.repo.exists()
        result = self._base()
        result.update(changed=not exists, initialised=not exists, snapshot_id=None)
        if not exists:
            result["diff"] = {"before": {"repository": None}, "after": {"repository": self.repo.display}}
            if not self.check_mode:
                self._init()
        return result

    def _unpreviewable(self, why: str) -> dict[str, t.Any]:
        result = self._base()
        result.update(changed=True, snapshot_id=None)
        result["notes"].append(f"cannot preview the backup: {why}; a real run would back up")
        return result

    def _result(self, summary: dict[str, t.Any], partial: list[str], initialised: bool, started: float) -> dict[str, t.Any]:
        finished = self.clock()
        result = self._base()
        stats = {key: summary.get(key) for key in SUMMARY_KEYS}
        snapshot_id = None if self.check_mode else summary.get("snapshot_id")
        result.update(changed=True, initialised=initialised, snapshot_id=snapshot_id, short_id=short(snapshot_id),
                      wall_seconds=round(finished - started, 3), **stats)
        result["duration"] = stats["total_duration"]
        if partial:
            result["partial"] = True
            result["unreadable"] = partial
        after = {k: stats[k] for k in ("files_new", "files_changed", "files_unmodified", "data_added")}
        after["snapshot"] = snapshot_id or "(new snapshot)"
        result["diff"] = {"before": {"snapshot": None}, "after": after}
        if self.metrics_dir and self.name and not self.check_mode:
            self.write_metrics({"success": not partial, "finished": finished, "duration_seconds": round(finished - started, 3),
                                "files_new": stats["files_new"], "files_changed": stats["files_changed"],
                                "files_unmodified": stats["files_unmodified"], "added_bytes": stats["data_added"],
                                "processed_bytes": stats["total_bytes_processed"]})
        if partial:
            raise BackupError(f"snapshot {short(snapshot_id)} is incomplete: restic could not read {len(partial)} file(s): {'; '.join(partial[:3])}",
                              result=result)
        return result

    def write_metrics(self, outcome: dict[str, t.Any]) -> None:
        if not self.metrics_dir or not self.name:
            return
        # Imported here: most runs write no metrics, and every import is compiled again on each run under AnsiballZ.
        from ansible_collections.sre.ops.plugins.module_utils._metrics import (  # pylint: disable=import-outside-toplevel
            backup_families, metrics_path, read_samples, render, write_textfile,
        )

        path = metrics_path(self.metrics_dir, "backup", self.name)
        write_textfile(path, render(backup_families(self.name, outcome, read_samples(path))))

    def record_failure(self) -> None:
        """After a failed run: the metrics say so, keeping the last success's figures (best effort: the failure matters more)."""
        if self.metrics_dir and self.name and not self.check_mode:
            try:
                self.write_metrics({"success": False, "finished": self.clock()})
            except (OSError, SreOpsError):
                pass


def _completed(rc: int, stdout: str, stderr: str) -> Completed:
    return Completed([], rc, stdout, stderr, 0.0)


def database_argument_spec(restore: bool = False) -> dict[str, t.Any]:
    """Suboptions of the database option of sre.ops.backup (and, with restore=True, sre.ops.restore)."""
    spec: dict[str, t.Any] = {
        "type": {"type": "str", "required": True, "choices": list(DATABASE_TYPES)},
        "name": {"type": "str"},
        "path": {"type": "path"},
        "host": {"type": "str"},
        "port": {"type": "int"},
        "user": {"type": "str"},
        "password": {"type": "str", "no_log": True},
        "os_user": {"type": "str"},
        "stdin_filename": {"type": "str"},
    }
    if restore:
        spec.update({
            "target_name": {"type": "str"},
            "client_command": {"type": "path"},
            "restore_command": {"type": "path"},
            "maintenance_db": {"type": "str"},
        })
    else:
        spec.update({"dump_command": {"type": "path"}, "dump_extra_args": {"type": "list", "elements": "str", "default": []}})
    return spec


# ----- the scheduled job -------------------------------------------------------------------------------
def run_job(config_path: str, runner: t.Any = None) -> tuple[int, dict[str, t.Any]]:
    """What the sre.ops.backup role's timer or cron entry runs: the same backup (and retention) as the modules.

    The job file is JSON written by the role: repository options, the backup options of sre.ops.backup and
    an optional "retention" policy of sre.ops.backup_retention. Returns (exit status, result).
    """
    from ansible_collections.sre.ops.plugins.module_utils._restic import repository_from_params  # pylint: disable=import-outside-toplevel
    from ansible_collections.sre.ops.plugins.module_utils._retention import RetentionManager  # pylint: disable=import-outside-toplevel

    with open(config_path, encoding="utf-8") as handle:
        job = json.load(handle)
    manager = None
    try:
        repo = repository_from_params(job, runner=runner)
        manager = BackupManager(
            repo, paths=job.get("paths") or None, database=job.get("database") or None, exclude=job.get("exclude"),
            exclude_file=job.get("exclude_file"), one_file_system=bool(job.get("one_file_system")), tags=job.get("tags"),
            host=job.get("host"), min_interval=job.get("min_interval"), init=bool(job.get("init")), compression=job.get("compression"),
            pack_size=job.get("pack_size"), metrics_dir=job.get("metrics_dir"), name=job.get("name"),
        )
        result = manager.run()
        policy = job.get("retention") or {}
        if policy:
            result["retention"] = RetentionManager(
                repo, policy=policy, host=manager.host, tags=manager.tags, paths=manager.source_paths(), prune=bool(job.get("prune")),
            ).run()
        return 0, result
    except SreOpsError as exc:
        if manager is not None and not isinstance(exc, InvalidInputError):
            manager.record_failure()
        return 1, {"failed": True, "msg": exc.msg}
