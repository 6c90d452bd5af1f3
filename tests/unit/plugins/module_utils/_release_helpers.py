# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Release artifacts, and real processes running one release state each, that a test can pause or kill at a step."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import signal
import tarfile

from ansible_collections.sre.ops.plugins.module_utils import _release as rel
from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError

FORK = multiprocessing.get_context("fork")
VERSIONS = ("v0", "v1", "v2", "v3", "v4", "v5")
GUARD = 120  # seconds: only a bound on a hung child, never a measure of speed


def make_tar(path, files, extra=None, mode="w:gz", links_first=False):
    with tarfile.open(path, mode) as tar:
        if links_first:
            for info in extra or []:
                tar.addfile(info)
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755 if name.startswith("bin/") else 0o644
            tar.addfile(info, io.BytesIO(data))
        if not links_first:
            for info in extra or []:
                tar.addfile(info)
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


def release_files(version):
    return {"VERSION": f"{version}\n".encode(), "bin/run": b"#!/bin/sh\necho run\n", "log/.keep": b"", "conf/app.json": b"{}\n"}


def _call(state):
    def operation(manager, artifacts):
        path, digest = artifacts["v5"]
        try:
            if state == "staged":
                return manager.stage("v5", path, f"sha256:{digest}", ["log"])
            if state == "active":
                return manager.activate("v5", path, f"sha256:{digest}", ["log"], 3, [])
            if state in ("good", "failed"):
                return manager.mark(None, state)
            if state == "rolled_back":
                return manager.rollback(None)
            return manager.remove("v1", [])
        except SreOpsError as exc:
            return exc
    return operation


class Child:
    """One sre.ops.release state run in a forked process (a real second process, with its own flock)."""

    operation = staticmethod(_call)

    def __init__(self, root, state, artifacts, pause_at=None, kill_at=None, check=False):
        self.events = FORK.Queue()
        self.go = FORK.Event()
        self.process = FORK.Process(target=self._main, args=(root, state, artifacts, pause_at, kill_at, check), daemon=True)
        self.process.start()
        self.pid = self.process.pid
        self._result = None

    def _main(self, root, state, artifacts, pause_at, kill_at, check):
        reached = [0]

        def checkpoint(step):
            if step == "waiting-for-lock":
                self.events.put(("waiting", None))
                return
            if kill_at is not None and reached[0] == kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            reached[0] += 1
            if step == pause_at:
                self.events.put(("paused", None))
                self.go.wait(GUARD)

        result = _call(state)(rel.ReleaseManager(root, check_mode=check, checkpoint=checkpoint), artifacts)
        if isinstance(result, Exception):
            self.events.put(("error", str(result)))
        else:
            self.events.put(("result", result))

    def _expect(self, kind):
        got, payload = self.events.get(timeout=GUARD)
        assert got == kind, f"expected the child to be {kind}, it was {got}: {payload}"
        return payload

    def wait_paused(self):
        self._expect("paused")

    def wait_waiting(self):
        self._expect("waiting")

    def resume(self):
        self.go.set()

    def result(self):
        got, payload = self.events.get(timeout=GUARD)
        self.process.join(GUARD)
        return SreOpsError(payload) if got == "error" else payload

    def killed(self):
        self.process.join(GUARD)
        return self.process.exitcode == -signal.SIGKILL


def settled_state(root):
    """What must be equal after any interleaving or interruption, timestamps and counters aside."""
    with open(os.path.join(root, rel.LEDGER), encoding="utf-8") as handle:
        ledger = json.load(handle)
    entries = os.listdir(os.path.join(root, "releases"))
    on_disk = [n for n in entries if not n.startswith(".")]
    return {
        "current": os.readlink(os.path.join(root, "current")),
        "order": rel.ReleaseManager._by_age(ledger, on_disk),  # pylint: disable=protected-access
        "leftovers": sorted(n for n in entries if n.startswith(".")),
        "ledger current": ledger.get("current"),
        "pending": ledger.get("pending"),
        "records": {rid: {k: rec.get(k) for k in ("outcome", "source_checksum", "activated_by")} for rid, rec in ledger["releases"].items()},
        "shared": sorted(os.listdir(os.path.join(root, "shared"))),
        "contents": {n: open(os.path.join(root, "releases", n, "VERSION"), encoding="ascii").read() for n in on_disk},
    }
