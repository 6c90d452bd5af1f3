# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: drive the restic binary (0.14 and later) and read its JSON output.

Every call goes through a runner object (Runner here, a fake in unit tests), so the decisions made on
restic's answers are testable without restic. Repository passwords travel in the child's environment
(RESTIC_PASSWORD / RESTIC_PASSWORD_FILE), never on a command line, and never in a message.

Each restic process derives the repository key with scrypt before it does anything (about 0.3-1 s of
CPU), so the code below runs as few restic processes as a task needs: one in the common case.
"""

from __future__ import annotations

import dataclasses
import gc
import json
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError, SreOpsError

# restic's own rule (0.14 - 0.18): a lock that was not refreshed for 30 minutes is stale on any host.
RESTIC_STALE_LOCK_SECONDS = 30 * 60
# Blob ids per `restic find`: each call walks the whole snapshot once.
FIND_BATCH = 4000
_RFC3339 = re.compile(r"^(\d{4}-\d\d-\d\d)[T ](\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:?\d\d)?$")
_LOCKED = re.compile(r"repository is already locked (?:exclusively )?by PID (\d+) on (\S+) by (\S+)")
_URL_SECRET = re.compile(r"(://[^/:@\s]+:)[^@\s]+@")
# Go's os.FileMode bits as restic stores them in nodes.
GO_MODE_DIR = 1 << 31
GO_MODE_SYMLINK = 1 << 27
GO_MODE_SETUID = 1 << 23
GO_MODE_SETGID = 1 << 22
GO_MODE_STICKY = 1 << 20


class ResticError(SreOpsError):
    """restic failed; msg says what went wrong in the user's terms."""

    kind = "failed"


class WrongPasswordError(ResticError):
    kind = "wrong_password"


class NoRepositoryError(ResticError):
    kind = "no_repository"


class UnreachableError(ResticError):
    kind = "unreachable"


class LockedError(ResticError):
    kind = "locked"


class SnapshotNotFoundError(ResticError):
    kind = "snapshot_not_found"


@dataclasses.dataclass
class Completed:
    argv: list[str]
    rc: int
    stdout: str
    stderr: str
    duration: float


def default_signals() -> None:
    """In a child before exec: SIGINT and SIGTERM back to their defaults.

    A module may be started with SIGINT ignored (a background job of a non-interactive shell); a child that
    inherited that would ignore the SIGINT that tells restic to stop cleanly, removing its lock.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


class Runner:
    """Runs commands for the restic code. Tests pass an object with the same methods."""

    def run(self, argv: list[str], env: dict[str, str] | None = None, data: bytes | None = None,
            timeout: float | None = None, cwd: str | None = None) -> Completed:
        started = time.monotonic()
        try:
            proc = subprocess.run(
                argv, env=env, input=data, stdin=None if data is not None else subprocess.DEVNULL,
                capture_output=True, timeout=timeout, cwd=cwd, check=False, preexec_fn=default_signals,
            )
        except FileNotFoundError as exc:
            raise ResticError(f"cannot run {argv[0]}: it is not installed or not on PATH") from exc
        except subprocess.TimeoutExpired as exc:
            raise ResticError(f"{os.path.basename(argv[0])} {argv[1] if len(argv) > 1 else ''} did not finish within {timeout:g}s") from exc
        return Completed(argv, proc.returncode, proc.stdout.decode("utf-8", "replace"), proc.stderr.decode("utf-8", "replace"),
                         time.monotonic() - started)

    def spawn(self, argv: list[str], env: dict[str, str] | None = None, stdin: t.Any = subprocess.DEVNULL,
              stdout: t.Any = subprocess.PIPE, stderr: t.Any = subprocess.PIPE, user: str | None = None,
              cwd: str | None = None) -> subprocess.Popen:
        """A process whose streams the caller relays (database dumps into restic, restic dump into a file)."""
        kwargs: dict[str, t.Any] = {}
        if user:
            kwargs = {"user": user, "group": _primary_group(user), "extra_groups": []}
        try:
            return subprocess.Popen(  # pylint: disable=consider-using-with
                argv, env=env, stdin=stdin, stdout=stdout, stderr=stderr, cwd=cwd, preexec_fn=default_signals, **kwargs)
        except FileNotFoundError as exc:
            raise ResticError(f"cannot run {argv[0]}: it is not installed or not on PATH") from exc
        except (KeyError, PermissionError) as exc:
            raise InvalidInputError(f"cannot run {argv[0]} as OS user {user!r}: {exc}") from exc


def _primary_group(user: str) -> int:
    import pwd  # pylint: disable=import-outside-toplevel

    try:
        return pwd.getpwnam(user).pw_gid
    except KeyError as exc:
        raise InvalidInputError(f"OS user {user!r} does not exist on this host") from exc


def freeze_for_exit() -> None:
    """Before exit_json: what is alive now lives until the process ends, so the interpreter's last collections may skip it.

    Spares 10-15 ms of CPU per task (more after a large listing), which counts against a restic run of half a second."""
    gc.freeze()


def hide_secrets(text: str) -> str:
    """Drop passwords embedded in repository URLs (rest:https://user:secret@host/)."""
    return _URL_SECRET.sub(r"\1***@", text)


_SECONDS: dict[str, int] = {}


def parse_time_ns(value: str) -> int:
    """restic's RFC 3339 timestamps (nanoseconds, Z or an offset) as integer nanoseconds since the epoch."""
    # A listing holds a timestamp per file, most of them sharing their second with others: the part without the
    # fraction is parsed (and checked) once, the fraction (digits only, at most 9) each time.
    if len(value) == 30 and value[29] == "Z" and value[19] == ".":  # restic's most common form: nine digits, UTC
        fraction = value[20:29]
        seconds = _SECONDS.get(value[:19] + "Z")
        if seconds is not None and fraction.isascii() and fraction.isdigit():
            return seconds * 1_000_000_000 + int(fraction)
    whole, dot, rest = value.partition(".")
    after_fraction = rest.lstrip("0123456789")
    digits = rest[:len(rest) - len(after_fraction)]
    key = whole + after_fraction
    seconds = _SECONDS.get(key)
    if seconds is not None and (not dot or 0 < len(digits) <= 9):
        return seconds * 1_000_000_000 + (int(digits.ljust(9, "0")) if digits else 0)
    match = _RFC3339.match(value) or _RFC3339.match(value.strip())
    if not match:
        raise ResticError(f"unexpected timestamp from restic: {value!r}")
    date, hour, minute, second, fraction, zone = match.groups()
    offset = 0
    if zone and zone != "Z":
        zone_digits = zone[1:].replace(":", "")
        offset = (1 if zone[0] == "+" else -1) * (int(zone_digits[:2]) * 3600 + int(zone_digits[2:]) * 60)
    seconds = _days_from_civil(int(date[:4]), int(date[5:7]), int(date[8:10])) * 86400 + int(hour) * 3600 + int(minute) * 60 + int(second) - offset
    _SECONDS[key] = seconds
    return seconds * 1_000_000_000 + (int(fraction.ljust(9, "0")) if fraction else 0)


def _days_from_civil(year: int, month: int, day: int) -> int:
    """Days since 1970-01-01 for a proleptic Gregorian date (Howard Hinnant's algorithm; no datetime range limits)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def format_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def parse_duration(value: t.Any, option: str) -> float:
    """Seconds from an int or a duration string: 90, '90s', '15m', '1h30m', '2d', '1w'."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if value < 0:
            raise InvalidInputError(f"{option} must not be negative, got {value}")
        return float(value)
    text = str(value).strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
    parts = re.findall(r"(\d+(?:\.\d+)?)([smhdw])", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise InvalidInputError(f"{option} {value!r} is not a duration: use seconds or e.g. 90s, 15m, 1h30m, 2d, 1w")
    return sum(float(n) * units[u] for n, u in parts)


def json_lines(text: str) -> list[dict[str, t.Any]]:
    """The JSON objects of restic's line-oriented output (backup, ls); other lines are ignored."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
    return out


def json_document(text: str, what: str) -> t.Any:
    """The single JSON document some restic commands print (snapshots, forget, stats, find)."""
    start = min((i for i in (text.find("["), text.find("{")) if i >= 0), default=-1)
    if start < 0:
        raise ResticError(f"restic {what} printed no JSON")
    try:
        return json.JSONDecoder().raw_decode(text[start:])[0]
    except ValueError as exc:
        raise ResticError(f"restic {what} printed invalid JSON: {exc}") from exc


def go_mode_to_posix(mode: int) -> int:
    """Permission bits (with setuid/setgid/sticky) of a Go os.FileMode as restic records it."""
    bits = mode & 0o777
    if mode & GO_MODE_SETUID:
        bits |= 0o4000
    if mode & GO_MODE_SETGID:
        bits |= 0o2000
    if mode & GO_MODE_STICKY:
        bits |= 0o1000
    return bits


def pid_exists(pid: int) -> bool:
    """Whether the kernel still has this PID, a zombie included (what restic's own staleness rule asks)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def pid_alive(pid: int) -> bool:
    """Whether a process with this PID exists on this host (a zombie counts as gone)."""
    if pid <= 0 or not pid_exists(pid):
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return True


# How long a stale lock's dead process may stay a zombie before we give up waiting for its parent to reap it.
ZOMBIE_REAP_WAIT_S = 10.0


def classify_failure(what: str, completed: Completed, repository: str) -> ResticError:
    """The error for a failed restic command, in terms the user can act on (the command's output rides along)."""
    error = _classify(what, completed, repository)
    error.details["completed"] = completed
    return error


def _classify(what: str, completed: Completed, repository: str) -> ResticError:
    err = hide_secrets(completed.stderr.strip())
    lower = err.lower()
    detail = err.splitlines()[-1] if err else f"exit status {completed.rc}"
    repo = hide_secrets(repository)
    if "wrong password or no key found" in lower:
        return WrongPasswordError(f"wrong repository password for {repo}: restic found no key that opens it")
    if "repository is already locked" in lower:
        return LockedError(f"repository {repo} is locked: " + " ".join(line.strip() for line in err.splitlines() if line.strip())[:400])
    if ("unable to open config file" in lower and ("no such file" in lower or "is there a repository" in lower)) or "config file does not exist" in lower:
        return NoRepositoryError(f"there is no restic repository at {repo} (set init=true to create one)")
    unreachable = ("unable to open repository", "unable to start the sftp session", "connection refused", "no route to host",
                   "could not resolve", "no such host", "permission denied (publickey", "connection timed out", "dial tcp",
                   "host key verification failed", "network is unreachable")
    if any(marker in lower for marker in unreachable):
        return UnreachableError(f"cannot reach the repository {repo}: {detail}")
    if "no matching id found" in lower or "invalid id" in lower or "no snapshot matched" in lower:
        return SnapshotNotFoundError(f"snapshot not found in {repo}: {detail}")
    return ResticError(f"restic {what} failed (exit status {completed.rc}): {detail}")


@dataclasses.dataclass
class Lock:
    id: str
    hostname: str
    pid: int
    exclusive: bool
    time: str
    username: str = ""

    def describe(self) -> str:
        kind = "exclusive" if self.exclusive else "shared"
        return f"{kind} lock {self.id[:8]} held by PID {self.pid} on {self.hostname} ({self.username or '?'}) since {self.time}"


def stale_on_this_host(lock: Lock, hostname: str, alive: t.Callable[[int], bool] | None = None) -> bool:
    """A lock is ours to remove only when it was taken on this host and its process is gone."""
    return lock.hostname == hostname and not (alive or pid_alive)(lock.pid)


class Repository:
    """One restic repository, as seen from the host the task runs on."""

    def __init__(
        self,
        url: str,
        *,
        runner: t.Any,
        password: str | None = None,
        password_file: str | None = None,
        options: dict[str, t.Any] | None = None,
        binary: str = "restic",
        cache_dir: str | None = None,
        environment: dict[str, str] | None = None,
        lock_wait: float = 0.0,
        hostname: str | None = None,
        sleep: t.Callable[[float], None] = time.sleep,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        if not url:
            raise InvalidInputError("repository must not be empty")
        self.url = url
        self.runner = runner
        self.password = password
        self.password_file = password_file
        self.options = {str(k): str(v) for k, v in (options or {}).items()}
        self.binary = binary
        self.cache_dir = cache_dir
        self.environment = {str(k): str(v) for k, v in (environment or {}).items()}
        self.lock_wait = lock_wait
        self.hostname = hostname or socket.gethostname()
        self.sleep = sleep
        self.clock = clock
        self.notes: list[str] = []
        self.stale_locks_removed: list[dict[str, t.Any]] = []

    # ----- plumbing ------------------------------------------------------------------------------------
    @property
    def display(self) -> str:
        return hide_secrets(self.url)

    @property
    def is_local(self) -> bool:
        return ":" not in self.url.split("/", 1)[0] or self.url.startswith("local:")

    @property
    def local_path(self) -> str | None:
        if not self.is_local:
            return None
        return self.url[len("local:"):] if self.url.startswith("local:") else self.url

    def check_password_source(self) -> None:
        if self.password is None and not self.password_file:
            raise InvalidInputError("give the repository password as password (no_log) or password_file")
        if self.password_file and not os.path.isfile(self.password_file):
            raise InvalidInputError(f"password_file {self.password_file} does not exist on this host")

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RESTIC_")}
        env.update(self.environment)
        env["RESTIC_REPOSITORY"] = self.url
        if self.password is not None:
            env["RESTIC_PASSWORD"] = self.password
        elif self.password_file:
            env["RESTIC_PASSWORD_FILE"] = self.password_file
        if self.cache_dir:
            env["RESTIC_CACHE_DIR"] = self.cache_dir
        env.setdefault("LC_ALL", "C")
        return env

    def argv(self, *args: str) -> list[str]:
        argv = [self.binary]
        for key, value in sorted(self.options.items()):
            argv += ["-o", f"{key}={value}"]
        return argv + list(args)

    def run(self, *args: str, data: bytes | None = None, ok: tuple[int, ...] = (0,), what: str | None = None,
            timeout: float | None = None) -> Completed:
        """Run restic; on a lock conflict remove this host's stale locks, or wait up to lock_wait, and retry."""
        what = what or args[0]
        deadline = self.clock() + self.lock_wait
        while True:
            completed = self.runner.run(self.argv(*args), env=self.env(), data=data, timeout=timeout)
            if completed.rc in ok:
                return completed
            error = classify_failure(what, completed, self.url)
            if not isinstance(error, LockedError):
                raise error
            if self.remove_stale_locks():
                continue
            if self.clock() >= deadline:
                raise LockedError(error.msg + (f" (waited {self.lock_wait:g}s; lock_wait sets how long)" if self.lock_wait else
                                               " (set lock_wait to wait for it)"))
            self.sleep(min(2.0, max(0.1, deadline - self.clock())))

    # ----- locks ---------------------------------------------------------------------------------------
    def locks(self) -> list[Lock]:
        listed = self.run("list", "locks", "--no-lock", what="list locks")
        found = []
        for lock_id in listed.stdout.split():
            shown = self.runner.run(self.argv("cat", "lock", lock_id, "--no-lock"), env=self.env())
            if shown.rc != 0:
                continue  # removed since it was listed: its owner finished
            doc = json_document(shown.stdout, "cat lock")
            found.append(Lock(lock_id, str(doc.get("hostname", "")), int(doc.get("pid", 0)), bool(doc.get("exclusive")),
                              str(doc.get("time", "")), str(doc.get("username", ""))))
        return found

    def remove_stale_locks(self) -> bool:
        """Remove locks left by restic processes of this host that no longer exist; report each one.

        Locks of other hosts are left alone: whether their process still runs can only be judged there.
        restic's own `unlock` does the removal (it applies the same rule, plus its 30-minute one).
        """
        stale = [lock for lock in self.locks() if stale_on_this_host(lock, self.hostname)]
        if not stale:
            return False
        # restic counts a killed process that is still a zombie as alive and would keep its lock: give the
        # parent (often init, after a kill of the whole run) a moment to reap it.
        reaped_by = self.clock() + ZOMBIE_REAP_WAIT_S
        while any(pid_exists(lock.pid) for lock in stale) and self.clock() < reaped_by:
            self.sleep(0.05)
        unlocked = self.runner.run(self.argv("unlock"), env=self.env())
        if unlocked.rc != 0:
            raise classify_failure("unlock", unlocked, self.url)
        # restic judges staleness again itself: a killed process not yet reaped by its parent still answers
        # signal 0 there. Report only what is really gone, so a caller never retries on a lock still in place.
        remaining = {lock.id for lock in self.locks()}
        for lock in stale:
            if lock.id in remaining:
                self.notes.append(f"restic kept the stale {lock.describe()}: the process has not been reaped by its parent yet")
        stale = [lock for lock in stale if lock.id not in remaining]
        for lock in stale:
            self.stale_locks_removed.append({"id": lock.id, "pid": lock.pid, "hostname": lock.hostname,
                                             "exclusive": lock.exclusive, "created": lock.time})
            self.notes.append(f"removed a stale {lock.describe()}: that process no longer exists on {lock.hostname}")
        return bool(stale)

    # ----- repository ----------------------------------------------------------------------------------
    def exists(self) -> bool:
        path = self.local_path
        if path is not None:
            return os.path.isfile(os.path.join(path, "config"))
        try:
            self.run("cat", "config", "--no-lock", what="cat config")
        except NoRepositoryError:
            return False
        return True

    def init(self, extra: list[str] | None = None) -> Completed:
        return self.run("init", *(extra or []), what="init")

    def snapshots(self, host: str | None = None, tags: list[str] | None = None, paths: list[str] | None = None) -> list[dict[str, t.Any]]:
        """Snapshots, oldest first, filtered the way restic filters them (tags: every given tag must be on the snapshot)."""
        args = ["snapshots", "--json", "--no-lock"]
        args += filter_args(host, tags, paths)
        docs = json_document(self.run(*args).stdout, "snapshots") or []
        return sorted(docs, key=lambda s: parse_time_ns(s["time"]))

    def find_blobs(self, snapshot_id: str, blob_ids: list[str], batch: int = FIND_BATCH) -> dict[str, set[str]]:
        """The paths of the files of one snapshot that hold each of these data blobs (one restic walk per batch of ids).

        restic's walk visits a repeated subtree once, so a blob can be reported at one of several paths holding it;
        an id reported nowhere is in no file of the snapshot."""
        found: dict[str, set[str]] = {}
        for start in range(0, len(blob_ids), batch):
            completed = self.run("find", "--json", "--no-lock", "--snapshot", snapshot_id, "--blob", *blob_ids[start:start + batch], what="find")
            merge_found(found, completed.stdout)
        return found

    def start(self, *args: str, stream: bool = False, what: str | None = None) -> Started:
        """Run restic beside the caller (no lock retry: for read-only --no-lock commands); see Started."""
        return Started(self, what or args[0], self.argv(*args), stream)

    def open_ls(self, snapshot: str, host: str | None = None, tags: list[str] | None = None,
                paths: list[str] | None = None) -> Listing:
        """`restic ls --json` as a stream: the snapshot first, then its nodes in batches while restic still lists."""
        args = ["ls", "--json", "--no-lock", snapshot]
        if snapshot == "latest":
            args += filter_args(host, tags, paths)
        return Listing(self.start(*args, stream=True), snapshot, filter_text(host, tags, paths) if snapshot == "latest" else "")

    def start_find_blobs(self, snapshot_id: str, blob_ids: list[str]) -> Started:
        """`restic find --blob` started now, its answer read later with blobs_found (one walk: at most FIND_BATCH ids)."""
        if not 0 < len(blob_ids) <= FIND_BATCH:
            raise ValueError(f"start_find_blobs takes 1 to {FIND_BATCH} blob ids, not {len(blob_ids)}")
        return self.start("find", "--json", "--no-lock", "--snapshot", snapshot_id, "--blob", *blob_ids, what="find")

    def ls(self, snapshot: str, host: str | None = None, tags: list[str] | None = None,
           paths: list[str] | None = None) -> tuple[dict[str, t.Any], list[dict[str, t.Any]]]:
        """A snapshot and every node in it, in one restic process ('latest' honours the filters)."""
        args = ["ls", "--json", "--no-lock", snapshot]
        if snapshot == "latest":
            args += filter_args(host, tags, paths)
        completed = self.run(*args)
        head: dict[str, t.Any] | None = None
        nodes = []
        # One decode of all lines as an array: a snapshot of 100,000 files is as many lines.
        lines = [line for line in completed.stdout.splitlines() if line.startswith("{")]
        for doc in json.loads("[" + ",".join(lines) + "]"):
            kind = doc.get("struct_type")
            if kind == "snapshot" and head is None:
                head = doc
            elif kind == "node":
                nodes.append(doc)
        if head is None:
            # restic 0.14 prints "Ignoring ..." and exits 0 when no snapshot matches.
            reason = hide_secrets(completed.stderr.strip().splitlines()[-1]) if completed.stderr.strip() else "no snapshot matched"
            scope = filter_text(host, tags, paths) if snapshot == "latest" else ""
            raise SnapshotNotFoundError(f"snapshot {snapshot!r} does not exist in {self.display}{scope} ({reason})")
        return head, nodes

    def resolve(self, snapshot: str, host: str | None = None, tags: list[str] | None = None,
                paths: list[str] | None = None) -> dict[str, t.Any]:
        """The snapshot an id, an id prefix or 'latest' (with filters) names."""
        listed = self.snapshots(host, tags, paths) if snapshot == "latest" else self.snapshots()
        if snapshot == "latest":
            if not listed:
                raise SnapshotNotFoundError(f"no snapshot in {self.display}{filter_text(host, tags, paths)}")
            return listed[-1]
        matches = [s for s in listed if s["id"].startswith(snapshot.lower())]
        if len(matches) != 1:
            state = "does not exist" if not matches else f"is ambiguous ({len(matches)} snapshots start with it)"
            raise SnapshotNotFoundError(f"snapshot {snapshot!r} {state} in {self.display}")
        return matches[0]

    def check(self, read_data_subset: str | None = None, read_data: bool = False) -> tuple[bool, Completed]:
        """restic check: (passed, output). Lock, password and reachability problems raise as usual."""
        args = ["check"]
        if read_data:
            args.append("--read-data")
        elif read_data_subset:
            args.append(f"--read-data-subset={read_data_subset}")
        try:
            return True, self.run(*args, what="check")
        except ResticError as exc:
            if type(exc) is not ResticError:  # pylint: disable=unidiomatic-typecheck
                raise
            return False, exc.details["completed"]

    def stats(self, mode: str, snapshot: str | None = None) -> dict[str, t.Any]:
        args = ["stats", "--json", "--no-lock", "--mode", mode]
        if snapshot:
            args.append(snapshot)
        return json_document(self.run(*args, what="stats").stdout, "stats")


def merge_found(found: dict[str, set[str]], stdout: str) -> None:
    """Add the paths `restic find --json --blob` printed for each blob id to found."""
    for doc in json_document(stdout, "find") or []:
        if doc.get("object_type") == "blob":
            found.setdefault(doc["id"], set()).add(doc.get("path", ""))


class Started:
    """A restic process running beside the caller. Its output goes to a temporary file and is read once it ended
    (finish), or, with stream, comes through a pipe to read while restic still writes (batches). cancel stops it;
    a caller that leaves early calls cancel, so no restic process outlives the task."""

    def __init__(self, repo: Repository, what: str, argv: list[str], stream: bool) -> None:
        self.repo = repo
        self.what = what
        self.argv = argv
        self.started = time.monotonic()
        self._err = tempfile.TemporaryFile()  # pylint: disable=consider-using-with  # closed in _close
        self._out = None if stream else tempfile.TemporaryFile()  # pylint: disable=consider-using-with
        try:
            self.proc = repo.runner.spawn(argv, env=repo.env(), stdout=subprocess.PIPE if stream else self._out, stderr=self._err)
        except BaseException:
            self._close()
            raise
        self.completed: Completed | None = None

    def batches(self, size: int = 1 << 18) -> t.Iterator[list[bytes]]:
        """The complete lines restic printed so far, a batch at a time (stream only; finish afterwards)."""
        pipe = self.proc.stdout
        rest = b""
        while True:
            chunk = pipe.read1(size) if hasattr(pipe, "read1") else pipe.read(size)
            if not chunk:
                break
            cut = chunk.rfind(b"\n")
            if cut < 0:
                rest += chunk
                continue
            lines = (rest + chunk[:cut]).split(b"\n")
            rest = chunk[cut + 1:]
            yield lines
        if rest:
            yield [rest]

    def finish(self) -> Completed:
        """Wait for restic; its output, or the error its failure means (classify_failure)."""
        if self.completed is None:
            if self.proc.stdout is not None:
                self.proc.stdout.read()
            rc = self.proc.wait()
            out = ""
            if self._out is not None:
                self._out.seek(0)
                out = self._out.read().decode("utf-8", "replace")
            self._err.seek(0)
            err = self._err.read().decode("utf-8", "replace")
            self._close()
            self.completed = Completed(self.argv, rc, out, err, time.monotonic() - self.started)
        if self.completed.rc != 0:
            raise classify_failure(self.what, self.completed, self.repo.url)
        return self.completed

    def cancel(self) -> None:
        """Stop restic if it still runs (read-only --no-lock commands only: nothing of the repository is left to clean)."""
        if self.completed is None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self._close()
            self.completed = Completed(self.argv, -9, "", "cancelled", time.monotonic() - self.started)

    def _close(self) -> None:
        for handle in (self._out, self._err, getattr(getattr(self, "proc", None), "stdout", None)):
            if handle is not None:
                handle.close()


def blobs_found(started: Started) -> dict[str, set[str]]:
    """What a start_find_blobs found: the paths holding each blob id."""
    found: dict[str, set[str]] = {}
    merge_found(found, started.finish().stdout)
    return found


class Listing:
    """A running `restic ls --json`: head() is the snapshot (restic prints it first), batches() its nodes as decoded dicts."""

    def __init__(self, started: Started, snapshot: str, scope: str) -> None:
        self.started = started
        self.snapshot = snapshot
        self.scope = scope
        self._batches = started.batches()
        self._head: dict[str, t.Any] | None = None
        self._first: list[dict[str, t.Any]] = []

    def head(self) -> dict[str, t.Any]:
        """The snapshot being listed; raises what restic's failure means, or SnapshotNotFoundError."""
        while self._head is None:
            batch = next(self._batches, None)
            if batch is None:
                break
            docs = _decode_lines(batch)
            for index, doc in enumerate(docs):
                if doc.get("struct_type") == "snapshot":
                    self._head = doc
                    self._first = [d for d in docs[index + 1:] if d.get("struct_type") == "node"]
                    break
        if self._head is None:
            completed = self.started.finish()
            # restic 0.14 prints "Ignoring ..." and exits 0 when no snapshot matches.
            reason = hide_secrets(completed.stderr.strip().splitlines()[-1]) if completed.stderr.strip() else "no snapshot matched"
            raise SnapshotNotFoundError(f"snapshot {self.snapshot!r} does not exist in {self.started.repo.display}{self.scope} ({reason})")
        return self._head

    def batches(self) -> t.Iterator[list[dict[str, t.Any]]]:
        """The nodes after the snapshot, a batch at a time as restic prints them; restic's exit is checked at the end."""
        self.head()
        if self._first:
            yield self._first
        for batch in self._batches:
            yield [doc for doc in _decode_lines(batch) if doc.get("struct_type") == "node"]
        self.started.finish()

    def close(self) -> None:
        self.started.cancel()


def _decode_lines(lines: list[bytes]) -> list[dict[str, t.Any]]:
    # One decode per batch, as an array: a snapshot of 100,000 files is as many lines.
    objects = [line for line in lines if line.startswith(b"{")]
    return json.loads(b"[" + b",".join(objects) + b"]") if objects else []


def filter_args(host: str | None, tags: list[str] | None, paths: list[str] | None) -> list[str]:
    args: list[str] = []
    if host:
        args += ["--host", host]
    if tags:
        args += ["--tag", ",".join(tags)]
    for path in paths or []:
        args += ["--path", path]
    return args


def filter_text(host: str | None, tags: list[str] | None, paths: list[str] | None) -> str:
    parts = []
    if host:
        parts.append(f"host {host}")
    if tags:
        parts.append(f"tags {','.join(tags)}")
    if paths:
        parts.append(f"paths {','.join(paths)}")
    return f" for {' and '.join(parts)}" if parts else ""


def short(snapshot_id: str | None) -> str | None:
    return snapshot_id[:8] if snapshot_id else None


def repository_argument_spec() -> dict[str, t.Any]:
    """Options every module that opens a repository takes (documented in the sre.ops._restic fragment)."""
    return {
        "repository": {"type": "str", "required": True},
        "password": {"type": "str", "no_log": True},
        "password_file": {"type": "path", "no_log": False},
        "repository_options": {"type": "dict", "default": {}},
        "environment": {"type": "dict", "default": {}, "no_log": True},
        "restic_binary": {"type": "path", "default": "restic"},
        "cache_dir": {"type": "path"},
        "lock_wait": {"type": "raw", "default": 60},
    }


REPOSITORY_MUTUALLY_EXCLUSIVE = [("password", "password_file")]
REPOSITORY_REQUIRED_ONE_OF = [("password", "password_file")]


def repository_from_params(params: dict[str, t.Any], runner: t.Any | None = None, **kwargs: t.Any) -> Repository:
    repo = Repository(
        params["repository"],
        runner=runner or Runner(),
        password=params.get("password"),
        password_file=params.get("password_file"),
        options=params.get("repository_options") or {},
        binary=params.get("restic_binary") or "restic",
        cache_dir=params.get("cache_dir"),
        environment=params.get("environment") or {},
        lock_wait=parse_duration(params.get("lock_wait", 0), "lock_wait"),
        **kwargs,
    )
    return repo
