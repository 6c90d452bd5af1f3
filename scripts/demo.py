# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sre.ops demo: progressive delivery on the local test fleet with steady traffic through HAProxy.

install v1 (rolling) -> blue-green to v2 (the idle colour gets it, one switch) -> canary v2 on the rest
(promoted) -> canary v3 (5xx: judged failed, rolled back automatically) -> rollback to v1 (a rollout: host by
host, drained and gated) -> a --check preview of deploying v4. Prints verdicts, client-visible errors and
durations, and where the reports are. Run it with `make demo` (which installs everything first).
"""

from __future__ import annotations

import glob
import http.client
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "fleet"))

from sreops_fleet import Fleet, FleetConfig, on_test_net  # noqa: E402 pylint: disable=wrong-import-position
from sreops_fleet.traffic import TrafficGenerator  # noqa: E402 pylint: disable=wrong-import-position

RELEASES = os.environ.get("SREOPS_RELEASES", "")
OUT = os.path.join(os.environ.get("SREOPS_LOG_DIR", os.path.join(ROOT, ".logs")), "demo")
VARS = os.path.join(ROOT, "playbooks", "vars", "demo-fleet.yml")
# (label, playbook, version, strategy, Host header of the traffic, extra flags, report suffix, expected verdict)
STEPS = [
    ("install v1 (rolling)", "sre.ops.deploy", "v1", "rolling", "app.test", [], "rolling", "completed"),
    ("blue-green to v2", "sre.ops.deploy", "v2", "blue_green", "www.test", [], "blue_green", "completed"),
    ("canary v2 on the rest", "sre.ops.deploy", "v2", "canary", "app.test", [], "canary", "completed"),
    ("canary v3 (5xx)", "sre.ops.deploy", "v3", "canary", "app.test", [], "canary", "aborted"),
    ("rollback to v1 (rolling)", "sre.ops.rollback", None, "rolling", "app.test", [], "rolling-rollback", "completed"),
    ("preview v4 (--check)", "sre.ops.deploy", "v4", "rolling", "app.test", ["--check", "--diff"], "rolling-plan", "planned"),
]


def run(fleet: Fleet, args: list[str], log: str) -> int:
    with open(log, "w", encoding="utf-8") as handle:
        return subprocess.run(["ansible-playbook", *args], env=fleet.env(), cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT,
                              check=False).returncode


def main() -> int:
    if not RELEASES:
        sys.exit("set SREOPS_RELEASES to the demo release artifacts (make demo does)")
    os.makedirs(OUT, exist_ok=True)
    reports = os.path.join(OUT, "reports")
    # $SREOPS_TEST_NET moves the demo's fleet too (127.N.0.10), as it moves the tests' fleets
    fleet = Fleet(FleetConfig(address_base=on_test_net(FleetConfig().address_base)))
    if fleet.status()["state"] != "down":
        fleet.down()
    print("demo: starting the test fleet (4 hosts + HAProxy)")
    fleet.up()
    # 22 and 80 when free; others when the machine's own sshd or web server holds them (they keep running)
    print(f"demo: fleet up: SSH port {fleet.config.ssh_port}, load balancer {fleet.lb_url}")
    rows = []
    notes: list[str] = []
    try:
        # Host configuration (where each app listens) is provisioning, not deployment.
        for module, args in (
            ("ansible.builtin.file", {"path": "/etc/app", "state": "directory", "mode": "0755"}),
            ("ansible.builtin.copy", {"content": "{{ {'listen': app_listen_address, 'port': app_port} | to_json }}\n",
                                      "dest": "/etc/app/app.json", "mode": "0644"}),
        ):
            subprocess.run(["ansible", "app", "-m", module, "-a", json.dumps(args)], env=fleet.env(), capture_output=True, check=True)
        for label, playbook, version, strategy, host_header, flags, suffix, _expected in STEPS:
            log = os.path.join(OUT, f"{len(rows) + 1}-{strategy}-{version or 'rollback'}.log")
            print(f"demo: {label} ... (log: {log})", flush=True)
            traffic = TrafficGenerator(fleet.lb_url, rate=40, duration=600, host_header=host_header).start()
            started = time.monotonic()
            release = ["-e", f"deploy_artifact={RELEASES}/demo-app-{version}.tar.gz", "-e", f"deploy_release={version}"] if version else []
            rc = run(fleet, [playbook, *flags, "-e", f"@{VARS}", *release, "-e", f"deploy_strategy={strategy}", "-e", f"deploy_report_dir={reports}"], log)
            elapsed = time.monotonic() - started
            seen = traffic.stop()
            report_files = sorted(glob.glob(os.path.join(reports, f"*-{suffix}.json")), key=os.path.getmtime)
            verdict = json.load(open(report_files[-1], encoding="utf-8"))["verdict"] if report_files else ("failed" if rc else "?")
            rows.append((label, verdict, rc, seen["requests"], seen["errors"], ", ".join(f"{k}={v}" for k, v in sorted(seen["errors_by_server"].items())),
                         elapsed))
        serving = {}
        for i, name in enumerate(fleet.config.host_names, 1):
            conn = http.client.HTTPConnection(fleet.config.host_address(i), fleet.config.app_port, timeout=3)
            conn.request("GET", "/version")
            serving[name] = json.loads(conn.getresponse().read())["version"]
            conn.close()
    finally:
        print("demo: tearing the fleet down")
        fleet.down()
    print()
    print(f"{'rollout':<26}{'verdict':<12}{'rc':>3}{'requests':>10}{'client errors':>15}  {'errors by server':<18}{'seconds':>8}")
    for label, verdict, rc, requests, errors, by_server, elapsed in rows:
        print(f"{label:<26}{verdict:<12}{rc:>3}{requests:>10}{errors:>15}  {by_server or '-':<18}{elapsed:>8.1f}")
    notes.insert(0, "the first install's client errors are HAProxy's 503s while the fresh fleet had no app running yet")
    notes.append("canary v3's errors are the canary's own 5xx while it was judged (only web1 served them), then it was rolled back")
    for note in notes:
        print(f"note: {note}")
    print(f"\nversions served at the end: {serving}")
    print(f"reports: {reports}\nlogs:    {OUT}")
    expected = [step[-1] for step in STEPS]
    if [r[1] for r in rows] != expected:
        print(f"demo: FAILED - expected verdicts {expected}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
