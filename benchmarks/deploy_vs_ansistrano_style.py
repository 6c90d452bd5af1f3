# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sre.ops.deploy role against the real ansistrano role, side by side in one run, on 4 fleet hosts.

Every round builds a new ~22 MB / 2,000-file release of the demo app and deploys it three ways:
  - ansistrano (the ansistrano/deploy role from a checkout given with --ansistrano), all hosts at once,
    ansistrano_deploy_via=copy_unarchive: file work only - no load balancer, no restart, no health gate;
  - sre.ops.deploy in one wave (ramp 100%, min_ready 0): upload once per host, unpack, drain in HAProxy,
    switch, restart, health gate, mark good, back in;
  - sre.ops.deploy with the demo's safety settings (min_ready 75% -> 4 waves of one host).
Median wall time of --rounds rounds after a warm-up round (the first install), and the ratios to ansistrano.

Usage (root, from the installed collection, with the project's venv on PATH):
  python benchmarks/deploy_vs_ansistrano_style.py --ansistrano /path/to/ansistrano-deploy-checkout [--rounds 3]
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import os
import random
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "fleet"))

from sreops_fleet import Fleet, FleetConfig, on_test_net  # noqa: E402 pylint: disable=wrong-import-position
from sreops_fleet.releases import APP_DIR  # noqa: E402 pylint: disable=wrong-import-position

VARS = os.path.join(ROOT, "playbooks", "vars", "demo-fleet.yml")
FILES = 2000
TOTAL_BYTES = 22_000_000


def build_release(version: str, out_dir: str) -> str:
    """The demo app plus FILES incompressible assets, TOTAL_BYTES in all, as <out_dir>/app-<version>.tar.gz."""
    rng = random.Random(f"sre.ops benchmark {version}")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), mode, 1700000000
            tar.addfile(info, io.BytesIO(data))
        with open(os.path.join(APP_DIR, "app.py"), "rb") as handle:
            add("app.py", handle.read())
        with open(os.path.join(APP_DIR, "bin", "appctl"), "rb") as handle:
            add("bin/appctl", handle.read(), 0o755)
        add("release.json", json.dumps({"version": version}).encode())
        size = TOTAL_BYTES // FILES
        for i in range(FILES):
            add(f"assets/{i // 100:02d}/asset-{i:04d}.bin", rng.randbytes(size))
    path = os.path.join(out_dir, f"app-{version}.tar.gz")
    with gzip.GzipFile(path, "wb", compresslevel=1, mtime=0) as handle:
        handle.write(raw.getvalue())
    return path


def ansistrano_playbook(role: str, artifact: str, version: str) -> list:
    return [{
        "name": "deploy with ansistrano", "hosts": "app", "gather_facts": False,
        "vars": {"ansistrano_deploy_via": "copy_unarchive", "ansistrano_deploy_from": artifact, "ansistrano_deploy_to": "/srv/ansistrano",
                 "ansistrano_release_version": version, "ansistrano_keep_releases": 5, "ansistrano_allow_anonymous_stats": False},
        "roles": [{"role": role}],
    }]


def timed(fleet: Fleet, args: list[str], cwd: str) -> float:
    started = time.perf_counter()
    proc = subprocess.run(["ansible-playbook", *args], env=fleet.env(), cwd=cwd, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"ansible-playbook {' '.join(args[:1])} failed:\n" + proc.stdout[-4000:] + proc.stderr[-2000:])
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ansistrano", required=True, help="path of a checkout of github.com/ansistrano/deploy (never committed here)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    role = os.path.abspath(args.ansistrano)
    if not os.path.exists(os.path.join(role, "tasks", "update-code", "copy_unarchive.yml")):
        sys.exit(f"{role} is not an ansistrano/deploy checkout (no tasks/update-code/copy_unarchive.yml)")
    labels = ["ansistrano (copy_unarchive, all hosts at once, file work only)", "sre.ops.deploy, one wave (ramp 100%, min_ready 0)",
              "sre.ops.deploy, 4 waves (min_ready 75%)"]
    results: dict[str, list[float]] = {label: [] for label in labels}
    with tempfile.TemporaryDirectory(prefix="sreops-bench-") as tmp:
        fleet = Fleet(FleetConfig(run_dir=os.path.join(tmp, "fleet"), address_base=on_test_net("127.0.9.10"), http_port=8000))
        fleet.up()
        try:
            # where the demo app listens: provisioning, as docs/deploy.md's fleet example does it
            subprocess.run(["ansible", "app", "-m", "ansible.builtin.file", "-a", "path=/etc/app state=directory mode=0755"],
                           env=fleet.env(), capture_output=True, check=True)
            subprocess.run(["ansible", "app", "-m", "ansible.builtin.copy", "-a", json.dumps(
                {"content": "{{ {'listen': app_listen_address, 'port': app_port} | to_json }}", "dest": "/etc/app/app.json", "mode": "0644"})],
                env=fleet.env(), capture_output=True, check=True)
            reports = os.path.join(tmp, "reports")
            probes = json.dumps({"deploy_health_probes": [{"name": "healthz", "url": "http://{{ app_listen_address }}:{{ app_port }}/healthz"}]})
            for i in range(args.rounds + 1):  # round 0 warms up: the first install on both sides
                artifacts = [build_release(f"b{i}{side}", tmp) for side in "abc"]
                playbook = os.path.join(tmp, "ansistrano.json")
                with open(playbook, "w", encoding="utf-8") as handle:
                    json.dump(ansistrano_playbook(role, artifacts[0], f"b{i}a"), handle)
                times = [timed(fleet, [playbook], tmp)]
                for artifact, settings in zip(artifacts[1:], ({"deploy_batches": ["100%"], "deploy_min_ready": "0"}, {})):
                    version = os.path.basename(artifact)[len("app-"):-len(".tar.gz")]
                    times.append(timed(fleet, ["sre.ops.deploy", "-e", f"@{VARS}", "-e", f"deploy_artifact={artifact}", "-e", f"deploy_release={version}",
                                               "-e", f"deploy_report_dir={reports}", "-e", probes, "-e", json.dumps(settings)], ROOT))
                if i:
                    for label, value in zip(labels, times):
                        results[label].append(value)
                print(f"round {i}{' (warm-up)' if not i else ''}: " + ", ".join(f"{t:.1f}s" for t in times) + f" (load {os.getloadavg()[0]:.1f})", flush=True)
        finally:
            fleet.down()
    version = subprocess.run(["ansible", "--version"], capture_output=True, text=True, check=False).stdout.split("\n")[0]
    print(f"\n{FILES} files, {TOTAL_BYTES / 1e6:.0f} MB release to 4 hosts, median of {args.rounds} rounds ({version}, load {os.getloadavg()[0]:.1f})")
    # Each round's sides run back to back, so a round's ratio shares its load; the median of those ratios is the
    # steadier figure on a machine whose load drifts between rounds.
    print("| approach | wall s | / ansistrano | median of the rounds' ratios |\n|---|---|---|---|")
    base = statistics.median(results[labels[0]])
    for label in labels:
        median = statistics.median(results[label])
        paired = statistics.median(ours / theirs for ours, theirs in zip(results[label], results[labels[0]]))
        print(f"| {label} | {median:.2f} | {median / base:.2f}x | {paired:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
