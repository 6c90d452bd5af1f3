# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: prove a repository restores (check + sample restore) and report what it holds.

A sample restore puts a few random files of a snapshot into a scratch directory with `restic restore
--verify` (restic compares the restored bytes with the snapshot's content hashes), then compares each
file's sha256 with the sha256 of the bytes `restic dump` streams for the same path, and, where the
original file is still on this host unchanged (same size and mtime as in the snapshot), with that too.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
import time
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._restic import Completed, Repository, ResticError, classify_failure, parse_time_ns, pid_alive
from ansible_collections.sre.ops.plugins.module_utils._restore import restore_patterns, sha256_file


class VerifyError(SreOpsError):
    """The repository or a sample restore failed verification."""


def _dump_sha256(repo: Repository, snapshot_id: str, path: str) -> tuple[str, int]:
    digest = hashlib.sha256()
    size = 0
    with tempfile.TemporaryFile() as err:
        proc = repo.runner.spawn(repo.argv("dump", "--no-lock", snapshot_id, path), env=repo.env(), stderr=err)
        if proc.stdout is None:
            raise VerifyError("internal error: restic dump has no output pipe")
        for block in iter(lambda: proc.stdout.read(1 << 20), b""):
            digest.update(block)
            size += len(block)
        proc.stdout.close()
        proc.wait()
        if proc.returncode != 0:
            err.seek(0)
            raise classify_failure("dump", Completed([], proc.returncode, "", err.read().decode("utf-8", "replace"), 0.0), repo.url)
    return digest.hexdigest(), size


class VerifyManager:
    def __init__(self, repo: Repository, *, check: bool = True, read_data: bool = False, read_data_subset: str | None = None,
                 sample_files: int = 5, sample_max_bytes: int = 256 << 20, snapshot: str = "latest", host: str | None = None,
                 tags: list[str] | None = None, scratch_dir: str | None = None, seed: int | None = None) -> None:
        self.repo = repo
        self.check = check
        self.read_data = read_data
        self.read_data_subset = read_data_subset
        self.sample_files = sample_files
        self.sample_max_bytes = sample_max_bytes
        self.snapshot = snapshot
        self.host = host
        self.tags = tags or []
        self.scratch_dir = scratch_dir
        self.rng = random.Random(seed)

    def run(self) -> dict[str, t.Any]:
        self.repo.check_password_source()
        started = time.monotonic()
        result: dict[str, t.Any] = {"changed": False, "repository": self.repo.display}
        problems = []
        if self.check:
            passed, completed = self.repo.check(self.read_data_subset, self.read_data)
            lines = [line for line in (completed.stdout + "\n" + completed.stderr).splitlines() if line.strip()]
            result["check"] = {"passed": passed, "read_data": self.read_data, "read_data_subset": self.read_data_subset,
                               "output": lines[-30:], "seconds": round(completed.duration, 3)}
            if not passed:
                problems.append("restic check found errors: " + "; ".join(lines[-5:]))
        if self.sample_files > 0:
            try:
                sample = self._sample()
            except ResticError as exc:
                if type(exc) is not ResticError:  # pylint: disable=unidiomatic-typecheck
                    raise  # a password, lock or reachability problem, not a finding
                sample = {"files": [], "error": exc.msg}
                problems.append(f"the sample restore failed: {exc.msg}")
            result["sample"] = sample
            bad = [s for s in sample["files"] if not s["match"]]
            if bad:
                problems.append(f"{len(bad)} sampled file(s) did not restore as in the snapshot: "
                                + "; ".join(f"{s['path']}: {s.get('problem', 'sha256 differs')}" for s in bad[:5]))
        result["seconds"] = round(time.monotonic() - started, 3)
        result["notes"] = self.repo.notes
        result["stale_locks_removed"] = self.repo.stale_locks_removed
        if problems:
            raise VerifyError("verification failed: " + " | ".join(problems), result=result)
        return result

    def _sample(self) -> dict[str, t.Any]:
        head, nodes = self.repo.ls(self.snapshot, self.host, self.tags)
        files = [n for n in nodes if n.get("type") == "file" and int(n.get("size", 0)) <= self.sample_max_bytes]
        chosen = sorted(self.rng.sample(files, min(self.sample_files, len(files))), key=lambda n: n["path"])
        out: dict[str, t.Any] = {"snapshot_id": head["id"], "short_id": head.get("short_id"), "candidates": len(files), "files": []}
        if not chosen:
            return out
        scratch = tempfile.mkdtemp(prefix="sreops-verify-", dir=self.scratch_dir)
        try:
            args = ["restore", head["id"], "--target", scratch, "--verify", "--no-lock"]
            for node in chosen:
                args += ["--include", restore_patterns(node["path"])]
            started = time.monotonic()
            self.repo.run(*args, what="restore")
            out["restore_seconds"] = round(time.monotonic() - started, 3)
            for node in chosen:
                out["files"].append(self._compare(head, node, scratch))
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return out

    def _compare(self, head: dict[str, t.Any], node: dict[str, t.Any], scratch: str) -> dict[str, t.Any]:
        path = node["path"]
        entry: dict[str, t.Any] = {"path": path, "size": int(node.get("size", 0))}
        restored = os.path.join(scratch, path.lstrip("/"))
        try:
            entry["sha256"] = sha256_file(restored)
            restored_size = os.path.getsize(restored)
        except OSError as exc:
            entry.update(match=False, problem=f"not restored ({exc.strerror})")
            return entry
        entry["snapshot_sha256"], dumped = _dump_sha256(self.repo, head["id"], path)
        match = entry["sha256"] == entry["snapshot_sha256"] and restored_size == entry["size"] == dumped
        try:
            st = os.lstat(path)
            if st.st_size == entry["size"] and st.st_mtime_ns == parse_time_ns(node["mtime"]):
                entry["source_sha256"] = sha256_file(path)
                match = match and entry["source_sha256"] == entry["sha256"]
        except OSError:
            pass
        entry["match"] = match
        if not match:
            entry["problem"] = f"restored {restored_size} bytes sha256 {entry['sha256'][:12]}, snapshot {dumped} bytes sha256 {entry['snapshot_sha256'][:12]}"
        return entry


class InfoManager:
    def __init__(self, repo: Repository, *, host: str | None = None, tags: list[str] | None = None, paths: list[str] | None = None,
                 stats: list[str] | None = None, max_age: float | None = None, locks: bool = False,
                 clock: t.Callable[[], float] = time.time) -> None:
        self.repo = repo
        self.host = host
        self.tags = tags or []
        self.paths = paths or []
        self.stats = stats if stats is not None else ["raw-data"]
        self.max_age = max_age
        self.locks = locks
        self.clock = clock

    def run(self) -> dict[str, t.Any]:
        self.repo.check_password_source()
        now = self.clock()
        snapshots = self.repo.snapshots(self.host, self.tags, self.paths)
        groups: dict[tuple[str, tuple[str, ...], tuple[str, ...]], dict[str, t.Any]] = {}
        listed = []
        for snap in snapshots:
            age = now - parse_time_ns(snap["time"]) / 1e9
            item = {"id": snap["id"], "short_id": snap.get("short_id", snap["id"][:8]), "time": snap["time"], "host": snap.get("hostname"),
                    "tags": snap.get("tags") or [], "paths": snap.get("paths") or [], "age_seconds": round(age, 3)}
            listed.append(item)
            key = (item["host"] or "", tuple(sorted(item["tags"])), tuple(item["paths"]))
            group = groups.setdefault(key, {"host": key[0], "tags": list(key[1]), "paths": list(key[2]), "count": 0})
            group["count"] += 1
            group.update(newest_id=item["id"], newest_time=item["time"], newest_age_seconds=item["age_seconds"])
        result: dict[str, t.Any] = {"changed": False, "repository": self.repo.display, "snapshots": listed,
                                    "groups": sorted(groups.values(), key=lambda g: (g["host"], g["tags"], g["paths"]))}
        result["newest_age_seconds"] = min((s["age_seconds"] for s in listed), default=None)
        if self.max_age is not None:
            result["stale_groups"] = [g for g in result["groups"] if g["newest_age_seconds"] > self.max_age]
            result["fresh"] = bool(listed) and not result["stale_groups"]
        stats = {}
        for mode in self.stats:
            stats[mode] = self.repo.stats(mode)
        result["stats"] = stats
        if self.locks:
            result["locks"] = [{"id": lock.id, "hostname": lock.hostname, "pid": lock.pid, "exclusive": lock.exclusive, "time": lock.time,
                                "stale_here": lock.hostname == self.repo.hostname and not pid_alive(lock.pid)} for lock in self.repo.locks()]
        result["notes"] = self.repo.notes
        result["stale_locks_removed"] = self.repo.stale_locks_removed
        return result
