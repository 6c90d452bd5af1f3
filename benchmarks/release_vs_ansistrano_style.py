# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Activate a ~20 MB release on 4 fleet hosts: sre.ops.release versus ansistrano-style separate tasks.

Both sides upload the same artifact from the controller and end with `current` pointing at the new
release, a shared `log` path linked in, and old releases pruned to 5. The ansistrano-style side runs the
steps ansistrano's copy+unarchive strategy runs (setup, update code, shared links, symlink, cleanup) as
separate tasks, the way its roles do; hook includes are left out (they would only add task headers).
Each side deploys `--rounds` new releases in turn; the table shows the median wall time per deploy.

Usage (root, from the installed collection): python benchmarks/release_vs_ansistrano_style.py [--rounds 3] [--mb 20]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fleet"))

from sreops_fleet import Fleet, FleetConfig, on_test_net  # noqa: E402 pylint: disable=wrong-import-position
from sreops_fleet.releases import build  # noqa: E402 pylint: disable=wrong-import-position

ROOT = "/srv/app"


def ours(artifact: str, digest: str, release: str) -> list:
    return [{
        "name": "deploy with sre.ops.release", "hosts": "app", "gather_facts": False,
        "tasks": [
            {"name": "Upload the artifact", "ansible.builtin.copy": {"src": artifact, "dest": f"/srv/artifacts/{release}.tar.gz", "mode": "0644"}},
            {"name": "Activate the release", "sre.ops.release": {
                "path": ROOT, "release": release, "src": f"/srv/artifacts/{release}.tar.gz", "remote_src": True, "checksum": f"sha256:{digest}",
                "shared_paths": ["log"], "keep_releases": 5}},
        ],
    }]


def ansistrano_style(artifact: str, release: str) -> list:
    rel = f"{ROOT}/releases/{release}"
    return [{
        "name": "deploy ansistrano-style", "hosts": "app", "gather_facts": False,
        "tasks": [
            # setup
            {"name": "Ensure deployment base path exists", "ansible.builtin.file": {"path": ROOT, "state": "directory", "mode": "0755"}},
            {"name": "Ensure releases folder exists", "ansible.builtin.file": {"path": f"{ROOT}/releases", "state": "directory", "mode": "0755"}},
            {"name": "Ensure shared elements folder exists", "ansible.builtin.file": {"path": f"{ROOT}/shared", "state": "directory", "mode": "0755"}},
            {"name": "Ensure shared paths exist", "ansible.builtin.file": {"path": f"{ROOT}/shared/{{{{ item }}}}", "state": "directory", "mode": "0755"},
             "loop": ["log"]},
            {"name": "Set the release version", "ansible.builtin.set_fact": {"deploy_release": release}},
            {"name": "Get the release path", "ansible.builtin.command": f"echo {rel}", "register": "release_path", "changed_when": False},
            {"name": "Get the releases path", "ansible.builtin.command": f"echo {ROOT}/releases", "register": "releases_path", "changed_when": False},
            {"name": "Get the shared path", "ansible.builtin.command": f"echo {ROOT}/shared", "register": "shared_path", "changed_when": False},
            # update code (copy + unarchive strategy)
            {"name": "Create the release folder", "ansible.builtin.file": {"path": rel, "state": "directory", "mode": "0755"}},
            {"name": "Copy the artifact", "ansible.builtin.copy": {"src": artifact, "dest": f"{ROOT}/releases/{release}.tar.gz", "mode": "0644"}},
            {"name": "Unarchive it", "ansible.builtin.unarchive": {"src": f"{ROOT}/releases/{release}.tar.gz", "dest": rel, "remote_src": True}},
            {"name": "Delete the artifact", "ansible.builtin.file": {"path": f"{ROOT}/releases/{release}.tar.gz", "state": "absent"}},
            {"name": "Write the REVISION file", "ansible.builtin.copy": {"content": release, "dest": f"{rel}/REVISION", "mode": "0644"}},
            # shared paths
            {"name": "Remove shared paths from the release", "ansible.builtin.file": {"path": f"{rel}/{{{{ item }}}}", "state": "absent"},
             "loop": ["log"]},
            {"name": "Ensure parent dirs of shared paths exist", "ansible.builtin.file": {"path": rel, "state": "directory", "mode": "0755"}},
            {"name": "Link the shared paths",
             "ansible.builtin.file": {"src": f"{ROOT}/shared/{{{{ item }}}}", "dest": f"{rel}/{{{{ item }}}}", "state": "link"},
             "loop": ["log"]},
            # symlink
            {"name": "Get the current folder", "ansible.builtin.stat": {"path": f"{ROOT}/current"}, "register": "current_stat"},
            {"name": "Remove current if it is a folder", "ansible.builtin.file": {"path": f"{ROOT}/current", "state": "absent"},
             "when": "current_stat.stat.isdir is defined and current_stat.stat.isdir and not current_stat.stat.islnk"},
            {"name": "Switch current to the new release", "ansible.builtin.file": {"src": rel, "dest": f"{ROOT}/current", "state": "link"}},
            # cleanup
            {"name": "Clean up old releases", "ansible.builtin.shell": f"ls -1dt {ROOT}/releases/* | tail -n +6 | xargs --no-run-if-empty rm -rf",
             "changed_when": False},
        ],
    }]


def run(fleet: Fleet, playbook: list, path: str) -> tuple[float, int]:
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(playbook, handle)
    started = time.perf_counter()
    proc = subprocess.run(["ansible-playbook", path], env=fleet.env(), capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(proc.stdout[-4000:] + proc.stderr[-2000:])
    tasks = len(re.findall(r"^TASK \[", proc.stdout, re.M))
    return elapsed, tasks


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--mb", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="sreops-bench-") as tmp:
        fleet = Fleet(FleetConfig(run_dir=os.path.join(tmp, "fleet"), address_base=on_test_net("127.0.7.10"), http_port=8000))
        fleet.up()
        try:
            subprocess.run(["ansible", "app", "-m", "ansible.builtin.file", "-a", "path=/srv/artifacts state=directory"],
                           env=fleet.env(), capture_output=True, check=True)
            results: dict[str, list[float]] = {"sre.ops.release": [], "ansistrano-style tasks": []}
            tasks: dict[str, int] = {}
            size = 0.0
            for i in range(args.rounds):
                for side in results:
                    release = f"{'o' if side.startswith('sre') else 'a'}{i}"
                    artifact = build(release, os.path.join(tmp, "artifacts"), padding_bytes=args.mb * 1024 * 1024)
                    size = os.path.getsize(artifact["path"]) / 1e6
                    if side.startswith("sre"):
                        playbook = ours(artifact["path"], artifact["sha256"], release)
                    else:
                        playbook = ansistrano_style(artifact["path"], release)
                    elapsed, count = run(fleet, playbook, os.path.join(tmp, "pb.json"))
                    results[side].append(elapsed)
                    tasks[side] = count
                    # each side starts from an empty application root
                    subprocess.run(["ansible", "app", "-m", "ansible.builtin.shell", "-a", f"rm -rf {ROOT} /srv/artifacts/*"],
                                   env=fleet.env(), capture_output=True, check=True)
        finally:
            fleet.down()
    print(f"release: {size:.1f} MB tar.gz, 4 hosts, {args.rounds} rounds each (median wall time per deploy)")
    print(f"{'approach':<28}{'wall s':>9}{'tasks/host':>12}")
    for side, values in results.items():
        print(f"{side:<28}{statistics.median(values):>9.2f}{tasks[side]:>12}")
    ratio = statistics.median(results["ansistrano-style tasks"]) / statistics.median(results["sre.ops.release"])
    print(f"ratio (ansistrano-style / sre.ops.release): {ratio:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
