# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A rolling deploy of the demo release to 4 fleet hosts: the sre.ops.deploy role versus an
ansistrano-style task list that does only the file work (no load balancer, no health gates, no restart).

The role is timed twice: with the demo's safety settings (min_ready 75% caps the ramp to one host per wave,
each wave drained in HAProxy, restarted and health-gated), and in a single wave (min_ready 0, ramp 100%),
which is the closest like-for-like with the file-only task list. Median of --rounds deploys each.

Usage (root, from the installed collection): python benchmarks/deploy_vs_ansistrano_style.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "fleet"))
sys.path.insert(0, HERE)

from release_vs_ansistrano_style import ansistrano_style  # noqa: E402 pylint: disable=wrong-import-position
from sreops_fleet import Fleet, FleetConfig, on_test_net  # noqa: E402 pylint: disable=wrong-import-position
from sreops_fleet.releases import build  # noqa: E402 pylint: disable=wrong-import-position

VARS = os.path.join(ROOT, "playbooks", "vars", "demo-fleet.yml")


def timed(fleet: Fleet, args: list[str]) -> float:
    started = time.perf_counter()
    proc = subprocess.run(["ansible-playbook", *args], env=fleet.env(), cwd=ROOT, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        sys.exit(proc.stdout[-4000:] + proc.stderr[-2000:])
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    results: dict[str, list[float]] = {"sre.ops.deploy, demo safety settings": [], "sre.ops.deploy, one wave": [],
                                       "ansistrano-style file work only": []}
    with tempfile.TemporaryDirectory(prefix="sreops-bench-") as tmp:
        fleet = Fleet(FleetConfig(run_dir=os.path.join(tmp, "fleet"), address_base=on_test_net("127.0.9.10"), http_port=8000))
        fleet.up()
        try:
            for module, margs in (("ansible.builtin.file", {"path": "/etc/app", "state": "directory", "mode": "0755"}),
                                  ("ansible.builtin.copy", {"content": "{{ {'listen': app_listen_address, 'port': app_port} | to_json }}",
                                                            "dest": "/etc/app/app.json", "mode": "0644"})):
                subprocess.run(["ansible", "app", "-m", module, "-a", json.dumps(margs)], env=fleet.env(), capture_output=True, check=True)
            reports = os.path.join(tmp, "reports")
            for i in range(args.rounds + 1):  # round 0 warms up (first install)
                version = f"b{i}"
                artifact = build("v1", os.path.join(tmp, version))  # same content, its own release id per round
                common = ["sre.ops.deploy", "-e", f"@{VARS}", "-e", f"deploy_artifact={artifact['path']}", "-e", f"deploy_release={version}",
                          "-e", "deploy_strategy=rolling", "-e", f"deploy_report_dir={reports}",
                          "-e", json.dumps({"deploy_health_probes": [{"name": "healthz", "url": "http://{{ app_listen_address }}:{{ app_port }}/healthz"}]})]
                safe = timed(fleet, common)
                one = timed(fleet, common[:5] + ["-e", f"deploy_release={version}w"] + common[7:]
                            + ["-e", json.dumps({"deploy_batches": ["100%"], "deploy_min_ready": "0"})])
                pb = os.path.join(tmp, "ans.json")
                with open(pb, "w", encoding="utf-8") as handle:
                    json.dump(ansistrano_style(artifact["path"], version), handle)
                ans = timed(fleet, [pb])
                if i:
                    for key, value in zip(results, (safe, one, ans)):
                        results[key].append(value)
        finally:
            fleet.down()
    print(f"rolling deploy of the demo release to 4 hosts, median of {args.rounds} rounds")
    print(f"{'approach':<40}{'wall s':>8}")
    for key, values in results.items():
        print(f"{key:<40}{statistics.median(values):>8.2f}")
    base = statistics.median(results["ansistrano-style file work only"])
    for key in list(results)[:2]:
        print(f"{key} / file work only: {statistics.median(results[key]) / base:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
