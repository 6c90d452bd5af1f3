# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stage a 20,001-file / ~103 MB release: sre.ops.release's vetted unpacking versus a plain `tar xzf`.

Each side runs as its own process on the same archive into a fresh directory on the same filesystem,
rounds interleaved, with `sync` before each run so no side pays for the other's write-back:

- `tar xzf archive -C dir` - what a user would otherwise run (no vetting at all);
- sre.ops.release state=staged (ReleaseManager.stage: sha256 check, one-pass vetting and unpacking through
  O_NOFOLLOW directory descriptors, the ledger), in a fresh Python process, so start-up is counted;
- the previous implementation, for reference: tarfile.getmembers() + lexical checks + extractall(filter="data").

Usage (from the installed collection, the project's venv on PATH):
    python benchmarks/release_staging_vs_tar.py [--rounds 5] [--dir /var/tmp]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

COLLECTIONS = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))

OURS = """
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.sre.ops.plugins.module_utils._release import ReleaseManager
result = ReleaseManager(sys.argv[2]).stage("r1", sys.argv[3], "sha256:" + sys.argv[4], [])
assert result["staged"], result
"""

PREVIOUS = """
import os, sys, tarfile
with tarfile.open(sys.argv[1]) as archive:
    members = archive.getmembers()
    for member in members:  # the lexical checks the previous implementation made
        name = member.name
        assert not name.startswith("/") and ".." not in name.split("/")
        assert member.isfile() or member.isdir() or member.issym() or member.islnk()
    archive.extractall(sys.argv[2], members=members, filter="data")
"""


def build_archive(path: str, files: int = 20_000, mean_size: int = 5_120) -> tuple[int, int]:
    """A release-shaped tree: 200 packages of 100 modules, sizes 0..2*mean_size, incompressible content."""
    rng = random.Random(20001)
    with tarfile.open(path, "w:gz", compresslevel=6) as tar:
        for package in range(files // 100):
            info = tarfile.TarInfo(f"app/pkg{package:03d}")
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tar.addfile(info)
            for module in range(100):
                data = rng.randbytes(rng.randint(0, 2 * mean_size))
                info = tarfile.TarInfo(f"app/pkg{package:03d}/mod{module:03d}.py")
                info.size, info.mode, info.mtime = len(data), 0o644, 1_700_000_000
                tar.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("VERSION")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"r1\n"))
    with tarfile.open(path) as tar:
        members = len(tar.getmembers())
    return members, os.path.getsize(path)


def timed(command: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system, the process and its children) seconds of one command."""
    subprocess.run(["sync"], check=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where the archive and the unpacked trees go (default: the temp dir)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sreops-bench-staging-", dir=args.dir) as tmp:
        archive = os.path.join(tmp, "app.tar.gz")
        members, size = build_archive(archive)
        with open(archive, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        sides = {
            "tar xzf": lambda dest: ["tar", "xzf", archive, "-C", dest],
            "sre.ops.release state=staged": lambda dest: [sys.executable, "-c", OURS, COLLECTIONS, dest, archive, digest],
            "previous: tarfile filter=data": lambda dest: [sys.executable, "-c", PREVIOUS, archive, dest],
        }
        results: dict[str, list[tuple[float, float]]] = {side: [] for side in sides}
        for round_no in range(args.rounds):
            for side, command in sides.items():
                dest = os.path.join(tmp, f"out-{round_no}-{len(results[side])}-{side.split()[0]}")
                os.makedirs(dest)
                target = os.path.join(dest, "root") if side.startswith("sre") else dest
                results[side].append(timed(command(target)))
                shutil.rmtree(dest)
        load = os.getloadavg()[0]
    print(f"archive: {members} members, {size / 1e6:.1f} MB tar.gz; {args.rounds} rounds, interleaved; load average {load:.1f}")
    print(f"{'approach':<34}{'wall s (median)':>16}{'cpu s (median)':>16}")
    for side, values in results.items():
        print(f"{side:<34}{statistics.median(v[0] for v in values):>16.2f}{statistics.median(v[1] for v in values):>16.2f}")
    ours = statistics.median(v[0] for v in results["sre.ops.release state=staged"])
    tar = statistics.median(v[0] for v in results["tar xzf"])
    previous = statistics.median(v[0] for v in results["previous: tarfile filter=data"])
    print(f"ratio sre.ops.release / tar xzf (wall): {ours / tar:.2f}x; previous implementation / tar xzf: {previous / tar:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
