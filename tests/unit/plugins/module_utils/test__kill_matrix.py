# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Kill matrix with the real restic on local repositories: SIGKILL a backup, a retention+prune and a restore at
random moments (the module's process and its restic child together, like a power cut), then prove:

- the repository passes `restic check` as the kill left it;
- every earlier snapshot still restores byte-for-byte;
- the next run succeeds, removes the stale lock the killed restic left (its process is gone on this host) and
  says so; a restore target is the old tree or the complete new one, never a mix, and no leftovers remain.

At least 10 kills per operation land while the run is still working (a kill after the run ended does not count);
SREOPS_KILLS_PER_OPERATION=50 makes a longer run (SREOPS_KILL_SEED repeats one). `make unit` runs the matrix once;
the compat stage's reruns of the unit tests on other ansible-core versions leave it out (it drives restic, not
ansible-core).
The SSH path is proven on the fleet by tests/integration/test_backup.py for a representative subset.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest

from ansible_collections.sre.ops.plugins.module_utils._restore import tree_entries

pytestmark = pytest.mark.skipif(shutil.which("restic") is None, reason="needs restic (make bootstrap installs it)")

KILLS_PER_OPERATION = max(10, int(os.environ.get("SREOPS_KILLS_PER_OPERATION", "10")))
MAX_ATTEMPTS = 3 * KILLS_PER_OPERATION
DRIVER = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "utils", "kill_driver.py")
COLLECTIONS_ROOT = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 7))
SEED = int(os.environ.get("SREOPS_KILL_SEED", "0")) or random.SystemRandom().randrange(1, 1 << 30)


def manifest(root: str) -> dict[str, tuple[str, str | None]]:
    """Every path under root with its kind and content hash (link target for symlinks)."""
    out: dict[str, tuple[str, str | None]] = {}
    for rel, entry in sorted(tree_entries(root).items()):
        path = os.path.join(root, rel) if rel else root
        if entry.kind == "file":
            with open(path, "rb") as handle:
                out[rel] = ("file", hashlib.sha256(handle.read()).hexdigest())
        elif entry.kind == "symlink":
            out[rel] = ("symlink", os.readlink(path))
        else:
            out[rel] = (entry.kind, None)
    return out


def fill(root: str, rng: random.Random, files: int, big: int = 0) -> None:
    os.makedirs(root, exist_ok=True)
    for i in range(files):
        sub = os.path.join(root, f"d{i % 7}")
        os.makedirs(sub, exist_ok=True)
        with open(os.path.join(sub, f"f{rng.randrange(1 << 30):x}.bin"), "wb") as handle:
            handle.write(rng.randbytes(rng.randint(1024, 64 * 1024)))
    for _file in range(big):
        with open(os.path.join(root, f"big-{rng.randrange(1 << 30):x}.bin"), "wb") as handle:
            handle.write(rng.randbytes(4 << 20))


class Lab:
    def __init__(self, base: str) -> None:
        self.base = base
        self.repo = os.path.join(base, "repo")
        self.markers = os.path.join(base, "markers")
        self.src = os.path.join(base, "src")
        self.env = dict(os.environ, RESTIC_REPOSITORY=self.repo, RESTIC_PASSWORD="kill-matrix", SREOPS_COLLECTIONS_ROOT=COLLECTIONS_ROOT)
        self.rng = random.Random(SEED)
        self.log: list[str] = []

    def restic(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["restic", *args], env=self.env, capture_output=True, text=True, check=False)

    def job(self, op: str, **args: object) -> list[str]:
        doc = {"op": op, "repo": self.repo, "password": "kill-matrix", "marker_dir": self.markers, "args": args}
        return [sys.executable, DRIVER, json.dumps(doc)]

    def run(self, op: str, **args: object) -> dict:
        proc = subprocess.run(self.job(op, **args), env=self.env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"the run after the kill failed: {proc.stderr[-2000:]}"
        return json.loads(proc.stdout)

    def timed(self, op: str, **args: object) -> float:
        started = time.monotonic()
        self.run(op, **args)
        return time.monotonic() - started

    def kill_at(self, delay: float, op: str, **args: object) -> bool:
        """Start the run and SIGKILL its whole process group after delay; True if it was still running."""
        proc = subprocess.Popen(self.job(op, **args), env=self.env, stdout=subprocess.DEVNULL,  # pylint: disable=consider-using-with
                                stderr=subprocess.DEVNULL, start_new_session=True)
        time.sleep(delay)
        running = proc.poll() is None
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        self.log.append(f"{op} killed after {delay:.2f}s ({'mid-run' if running else 'already finished'})")
        return running

    def locks(self) -> list[str]:
        try:
            return os.listdir(os.path.join(self.repo, "locks"))
        except FileNotFoundError:
            return []

    def assert_check_passes(self) -> None:
        checked = self.restic("check", "--no-lock")
        assert checked.returncode == 0, f"restic check failed after a kill (seed {SEED}): {checked.stdout[-1500:]} {checked.stderr[-1500:]}"

    def assert_restores(self, snapshot: str, path: str, expected: dict) -> None:
        out = os.path.join(self.base, "verify")
        shutil.rmtree(out, ignore_errors=True)
        restored = self.restic("restore", snapshot, "--target", out, "--no-lock")
        assert restored.returncode == 0, restored.stderr
        assert manifest(out + path) == expected, f"snapshot {snapshot} does not restore byte-for-byte (seed {SEED})"
        shutil.rmtree(out)


@pytest.fixture(scope="module")
def lab(tmp_path_factory) -> Lab:
    instance = Lab(str(tmp_path_factory.mktemp("kill-matrix")))
    fill(instance.src, instance.rng, 120, big=2)
    os.symlink("d0", os.path.join(instance.src, "link"))
    assert instance.restic("init").returncode == 0
    result = instance.run("backup", paths=[instance.src], tags=["base"])
    instance.baseline = (result["snapshot_id"], manifest(instance.src))  # type: ignore[attr-defined]
    print(f"kill matrix seed {SEED} (set SREOPS_KILL_SEED to repeat)")
    return instance


def kill_points(lab: Lab, duration: float, attempt) -> int:
    landed = attempts = 0
    while landed < KILLS_PER_OPERATION and attempts < MAX_ATTEMPTS:
        attempts += 1
        landed += attempt(lab.rng.uniform(0.02, max(0.1, duration)))
    assert landed >= KILLS_PER_OPERATION, f"only {landed} kills landed mid-run in {attempts} attempts: {lab.log}"
    return landed


def test_backup_killed_at_random_moments(lab: Lab):
    base_id, base_manifest = lab.baseline  # type: ignore[attr-defined]
    fill(lab.src, lab.rng, 20, big=1)
    duration = lab.timed("backup", paths=[lab.src], tags=["base"])
    reported = []

    def attempt(delay: float) -> bool:
        fill(lab.src, lab.rng, 10, big=1)
        landed = lab.kill_at(delay, "backup", paths=[lab.src], tags=["base"])
        lab.assert_check_passes()
        lab.assert_restores(base_id, lab.src, base_manifest)
        left = lab.locks()
        result = lab.run("backup", paths=[lab.src], tags=["base"])
        if left:
            assert [r["id"] for r in result["stale_locks_removed"]] == left, result
            assert any("no longer exists" in note for note in result["notes"])
            reported.append(left)
        assert lab.locks() == [], "the next run must leave no lock behind"
        return landed

    kill_points(lab, duration, attempt)
    print(f"backup: {len(reported)} stale locks removed by the next run; {lab.log}")


def test_retention_and_prune_killed_at_random_moments(lab: Lab):
    base_id, base_manifest = lab.baseline  # type: ignore[attr-defined]
    churn = os.path.join(lab.base, "churn")
    policy = {"policy": {"keep_last": 1}, "tags": ["churn"], "prune": True}

    def churn_snapshot() -> dict:
        shutil.rmtree(churn, ignore_errors=True)
        fill(churn, lab.rng, 30, big=1)
        return lab.run("backup", paths=[churn], tags=["churn"])

    churn_snapshot()
    churn_snapshot()
    duration = lab.timed("retention", **policy)
    reported = []

    def attempt(delay: float) -> bool:
        newest = churn_snapshot()  # the killed run forgets the one before it and prunes that one's data
        kept = manifest(churn)
        landed = lab.kill_at(delay, "retention", **policy)
        lab.assert_check_passes()
        lab.assert_restores(newest["snapshot_id"], churn, kept)
        left = lab.locks()
        after = [lab.run("retention", **policy)]
        if lab.locks():  # the killed run had already forgotten everything: the next backup meets the lock
            after.append(churn_snapshot())
        removed = [lock["id"] for result in after for lock in result["stale_locks_removed"]]
        if left:
            assert removed == left, (left, after)
            reported.append(left)
        assert lab.locks() == [], "the next runs must leave no lock behind"
        return landed

    kill_points(lab, duration, attempt)
    lab.assert_restores(base_id, lab.src, base_manifest)
    print(f"retention: {len(reported)} stale locks removed by the next runs; {lab.log}")


def test_restore_killed_at_random_moments(lab: Lab):
    base_id, base_manifest = lab.baseline  # type: ignore[attr-defined]
    target = os.path.join(lab.base, "restore", "data")

    def reset_target() -> dict:
        shutil.rmtree(os.path.dirname(target), ignore_errors=True)
        os.makedirs(os.path.dirname(target))
        shutil.copytree(os.path.join(lab.src, "d1"), target, symlinks=True)
        fill(target, lab.rng, 8)
        return manifest(target)

    args = {"snapshot": base_id, "path": lab.src, "target": target, "overwrite": "always", "delete": True}
    reset_target()
    duration = lab.timed("restore", **args)

    def attempt(delay: float) -> bool:
        before = reset_target()
        landed = lab.kill_at(delay, "restore", **args)
        state = manifest(target) if os.path.exists(target) else None
        assert state in (before, base_manifest), f"a killed restore left a mixed target (seed {SEED})"
        lab.assert_check_passes()
        result = lab.run("restore", **args)
        assert manifest(target) == base_manifest
        assert os.listdir(os.path.dirname(target)) == ["data"], f"leftovers: {os.listdir(os.path.dirname(target))} {result['notes']}"
        return landed

    kill_points(lab, duration, attempt)
    print(f"restore: {lab.log}")
