# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the sre.ops.plan callback costs: a 20-task --check --diff playbook on a 50-host fleet, with and without it.

The two variants run alternately in one invocation (round after round, same fleet, same playbook), and the
medians are compared. The plan also reports the time spent in its own hooks (``plan_overhead_s``). Then the
size of the JSON plan for 10, 25 and 50 hosts, to show it grows linearly with hosts x tasks.

Usage: python benchmarks/plan_overhead.py [--hosts 50] [--rounds 3]
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

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fleet"))

from sreops_fleet import Fleet, FleetConfig, on_test_net  # noqa: E402 pylint: disable=wrong-import-position

ROOT = "/srv/bench"
# The ansible-playbook next to this Python (the project's venv), else the one on PATH.
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
if not os.path.exists(ANSIBLE_PLAYBOOK):
    ANSIBLE_PLAYBOOK = "ansible-playbook"


def tasks() -> list[dict]:
    """20 everyday tasks; on fresh hosts most of them would change something, so the plan has diffs to record."""
    out: list[dict] = [{"name": f"Directory {d}", "ansible.builtin.file": {"path": f"{ROOT}/{d}", "state": "directory", "mode": "0755"}}
                       for d in ("etc", "log", "data", "run")]
    out += [{"name": f"Config {n}", "ansible.builtin.copy": {
        "content": f"# {n}\nlisten={{{{ ansible_host }}}}\nname={{{{ inventory_hostname }}}}\nworkers=4\n", "dest": f"{ROOT}/etc/{n}.conf",
        "mode": "0644"}} for n in ("app", "worker", "cache", "proxy")]
    out += [{"name": f"Setting {k}", "ansible.builtin.lineinfile": {
        "path": f"{ROOT}/etc/extra.conf", "line": f"{k}=on", "create": True, "mode": "0644"}} for k in ("gzip", "http2", "tls")]
    out += [{"name": "Read the app config", "ansible.builtin.stat": {"path": f"{ROOT}/etc/app.conf"}, "register": "app_conf"},
            {"name": "Read the data directory", "ansible.builtin.stat": {"path": f"{ROOT}/data"}}]
    out += [{"name": f"Initialise {n}", "ansible.builtin.command": {"cmd": f"touch {ROOT}/data/{n}", "creates": f"{ROOT}/data/{n}"}}
            for n in ("db", "queue")]
    out += [{"name": "Remember the layout", "ansible.builtin.set_fact": {"bench_layout": f"{ROOT}/etc"}},
            {"name": "Check the layout", "ansible.builtin.assert": {"that": ["bench_layout | length > 0"], "quiet": True}},
            {"name": "Link current", "ansible.builtin.file": {"src": f"{ROOT}/etc", "dest": f"{ROOT}/current", "state": "link", "force": True}},
            {"name": "Tune workers", "ansible.builtin.blockinfile": {
                "path": f"{ROOT}/etc/tuning.conf", "block": "workers=8\nbacklog=512", "create": True, "mode": "0644"}},
            {"name": "Reload the app", "ansible.builtin.shell": f"echo reload > {ROOT}/run/reload", "changed_when": True}]
    assert len(out) == 20
    return out


def run(path: str, env: dict[str, str], limit: str | None = None) -> float:
    cmd = [ANSIBLE_PLAYBOOK, path, "--check", "--diff"] + (["--limit", limit] if limit else [])
    started = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        fatal = [line for line in proc.stdout.splitlines() if line.startswith("fatal:")][:3]
        sys.exit(f"{' '.join(cmd)} failed:\n" + "\n".join(fatal) + f"\n{proc.stdout[-1500:]}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    net = os.environ.get("SREOPS_TEST_NET", "0") or "0"
    fleet = Fleet(FleetConfig(run_dir=f"/tmp/sre-ops-bench-plan-{net}", hosts=args.hosts, address_base=on_test_net("127.0.31.10"),
                              http_port=8000))
    if fleet.status()["state"] != "down":
        fleet.down()
    started = time.perf_counter()
    fleet.up(timeout=60)
    print(f"fleet of {args.hosts} hosts + HAProxy up in {time.perf_counter() - started:.2f}s")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "bench.yml")
            with open(path, "w", encoding="utf-8") as handle:
                json.dump([{"name": "20 tasks", "hosts": "app", "gather_facts": False, "tasks": tasks()}], handle)
            plain = fleet.env()
            plain.pop("ANSIBLE_CALLBACKS_ENABLED", None)
            with_plan = dict(plain, ANSIBLE_CALLBACKS_ENABLED="sre.ops.plan", SREOPS_PLAN_DIR=os.path.join(tmp, "plans"))
            run(path, plain)  # warm-up: ssh control masters, caches
            without, within, self_time = [], [], []
            for _round in range(args.rounds):
                without.append(run(path, plain))
                within.append(run(path, with_plan))
                with open(os.path.join(tmp, "plans", "latest.json"), encoding="utf-8") as handle:
                    self_time.append(json.load(handle)["plan_overhead_s"])
            base, ours = statistics.median(without), statistics.median(within)
            print(f"\n{args.hosts} hosts x 20 tasks, --check --diff, forks 10, median of {args.rounds} rounds (alternating)\n")
            print("| run | wall s (median) | all rounds |")
            print("|---|---|---|")
            print(f"| without the plan | {base:.2f} | {', '.join(f'{x:.2f}' for x in without)} |")
            print(f"| with `sre.ops.plan` | {ours:.2f} | {', '.join(f'{x:.2f}' for x in within)} |")
            print(f"| time recording results (`plan_overhead_s`) | {statistics.median(self_time):.2f} | "
                  f"{', '.join(f'{x:.2f}' for x in self_time)} |")
            print(f"| **overhead** | **{100 * (ours - base) / base:+.1f}%** (wall), "
                  f"**{100 * statistics.median(self_time) / base:.1f}%** (in the callback) | |")

            print("\n| hosts | records | JSON bytes | bytes per host x task | Markdown bytes |")
            print("|---|---|---|---|---|")
            for count in (10, 25, args.hosts):
                limit = ",".join(f"web{i}" for i in range(1, count + 1))
                run(path, with_plan, limit)
                size = os.path.getsize(os.path.join(tmp, "plans", "latest.json"))
                markdown = os.path.getsize(os.path.join(tmp, "plans", "latest.md"))
                with open(os.path.join(tmp, "plans", "latest.json"), encoding="utf-8") as handle:
                    records = sum(len(r) for r in json.load(handle)["hosts"].values())
                print(f"| {count} | {records} | {size} | {size / (count * 20):.0f} | {markdown} |")
    finally:
        fleet.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
