# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What sre.ops.canary_analysis catches on the fleet under steady traffic: N rounds of the subtle releases.

Each round, on the canary web4 (the other three app hosts stay on v1 and are the baseline), under steady
traffic through HAProxy (--rate requests a second, app.test, all the time):
  subtle (6% 5xx and +60 ms) -> rolled back -> clean v2            (clean right after a rolled-back bad release)
  err6   (6% 5xx)            -> rolled back -> clean v2            (clean right after a rolled-back erroring one)
  slow60 (+60 ms)            -> rolled back -> clean v2            (clean right after a rolled-back slow one)
  err1   (1% 5xx)            -> rolled back
and every release on the canary is judged by one sre.ops.canary_analysis task on lb1, with the settings named by
--settings (see SETTINGS). A release gets to web4 the way a canary deploy gets there: drained, `current` switched,
restarted, back in HAProxy once its health checks pass, then judged. The table counts verdicts and the smallest
effects each analysis stated it could catch; --json keeps every result.

This measures the analysis, not the deploy role: releases are switched with a few shell commands, so that the
rounds are quick (see docs/canary.md for the numbers it produced).

Usage (root, from the installed collection, the project's venv on PATH):
    python benchmarks/canary_detection.py [--rounds 10] [--settings demo careful] [--rate 40] [--json out.json]
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
import typing as t

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "fleet"))

from sreops_fleet import Fleet, FleetConfig, on_test_net  # noqa: E402 pylint: disable=wrong-import-position
from sreops_fleet.releases import build  # noqa: E402 pylint: disable=wrong-import-position
from sreops_fleet.traffic import TrafficGenerator  # noqa: E402 pylint: disable=wrong-import-position

CANARY = "web4"
# The demo's canary step: 25% of the traffic on the canary (one host of four) for a 30 s window, judged from
# HAProxy's request log with the module's default rules. Careful: a minute, and probes to every host as well.
SETTINGS: dict[str, dict[str, t.Any]] = {
    "demo": {"window": 30},
    "careful": {"window": 60, "probes": True, "probe_rate": 5},
}
SEQUENCE = [("subtle", "fail"), ("v2", "pass:after-subtle"), ("err6", "fail"), ("v2", "pass:after-err6"), ("slow60", "fail"),
            ("v2", "pass:after-slow60"), ("err1", "measure")]


def run(cmd: list[str], fleet: Fleet, **kwargs: t.Any) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, env=fleet.env(), cwd=ROOT, capture_output=True, text=True, check=False, **kwargs)


def ssh(fleet: Fleet, host: str, command: str) -> str:
    proc = subprocess.run(fleet.ssh_argv(host, command), capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        sys.exit(f"{host}: {command}: {proc.stderr or proc.stdout}")
    return proc.stdout


def haproxy(fleet: Fleet, command: str) -> str:
    import socket  # pylint: disable=import-outside-toplevel

    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(fleet.haproxy_socket)
        sock.sendall(command.encode() + b"\n")
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()


def answers(url: str, version: str) -> bool:
    import urllib.request  # pylint: disable=import-outside-toplevel

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return json.load(response).get("version") == version
    except (OSError, ValueError):
        return False


def canary_status(fleet: Fleet) -> str:
    for row in haproxy(fleet, "show stat").splitlines():
        cells = row.split(",")
        if len(cells) > 17 and cells[0] == "be_app" and cells[1] == CANARY:
            return cells[17]
    return "?"


def switch(fleet: Fleet, version: str) -> None:
    """web4 to `version` as a canary deploy does it: drain, switch `current`, restart, ready once healthy."""
    haproxy(fleet, f"set server be_app/{CANARY} state drain")
    ssh(fleet, CANARY, f"cd /srv/app && ln -sfn releases/{version} current.new && mv -T current.new current && current/bin/appctl restart")
    address = fleet.config.host_address(int(CANARY[3:]))
    deadline = time.monotonic() + 30
    while not answers(f"http://{address}:{fleet.config.app_port}/version", version):
        if time.monotonic() > deadline:
            sys.exit(f"{CANARY} does not answer as {version}")
        time.sleep(0.1)
    haproxy(fleet, f"set server be_app/{CANARY} state ready")
    deadline = time.monotonic() + 30
    while canary_status(fleet) != "UP":
        if time.monotonic() > deadline:
            sys.exit(f"{CANARY} did not come UP on {version}")
        time.sleep(0.1)


def analyse(fleet: Fleet, settings: dict[str, t.Any], workdir: str) -> dict[str, t.Any]:
    args: dict[str, t.Any] = {"socket": "{{ haproxy_socket }}", "backend": "be_app", "canary": [CANARY], "log_path": "{{ haproxy_request_log }}",
                              "window": settings["window"], "fail_on": []}
    if settings.get("probes"):
        urls = {h.name: f"http://{h.address}:{fleet.config.app_port}/" for h in fleet.hosts() if h.name != "lb1"}
        args.update(canary_urls=[urls[CANARY]], baseline_urls=[u for n, u in sorted(urls.items()) if n != CANARY],
                    probe_rate=settings["probe_rate"])
    out = os.path.join(workdir, "result.json")
    playbook = [{"hosts": "lb1", "gather_facts": False, "tasks": [
        {"sre.ops.canary_analysis": args, "register": "analysis"},
        {"ansible.builtin.copy": {"content": "{{ analysis | to_json }}", "dest": out, "mode": "0600"}, "delegate_to": "localhost"}]}]
    path = os.path.join(workdir, "analyse.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(playbook, handle)
    proc = run(["ansible-playbook", path], fleet)
    if proc.returncode != 0:
        sys.exit(proc.stdout[-3000:] + proc.stderr[-2000:])
    with open(out, encoding="utf-8") as handle:
        return json.load(handle)


def power_of(result: dict[str, t.Any], metric: str, key: str) -> float | None:
    for entry in result["metrics"]:
        if entry["metric"] == metric and entry.get("source") == "haproxy log" and entry.get("power"):
            return entry["power"][key]
    return None


def prepare(fleet: Fleet, workdir: str) -> None:
    releases = os.path.join(workdir, "releases")
    for version in ("v1", "v2", "subtle", "err6", "slow60", "err1"):
        build(version, releases)
    for module, margs in (("ansible.builtin.file", {"path": "/etc/app", "state": "directory", "mode": "0755"}),
                          ("ansible.builtin.copy", {"content": "{{ {'listen': app_listen_address, 'port': app_port} | to_json }}",
                                                    "dest": "/etc/app/app.json", "mode": "0644"})):
        run(["ansible", "app", "-m", module, "-a", json.dumps(margs)], fleet)
    # v1 everywhere, then every release unpacked on the canary once (the demo playbook)
    proc = run(["ansible-playbook", "sre.ops.demo", "-e", f"demo_release_dir={releases}", "-e", "demo_version=v1"], fleet)
    if proc.returncode != 0:
        sys.exit(proc.stdout[-3000:])
    for version in ("v2", "subtle", "err6", "slow60", "err1"):
        proc = run(["ansible-playbook", "sre.ops.demo", "--limit", f"{CANARY}:lb", "-e", f"demo_release_dir={releases}",
                    "-e", f"demo_version={version}", "-e", "demo_verify_lb=false"], fleet)
        if proc.returncode != 0:
            sys.exit(proc.stdout[-3000:])
    switch(fleet, "v1")


def save(path: str, args: argparse.Namespace, records: list[dict[str, t.Any]], seen: list[dict[str, t.Any]]) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as handle:
        json.dump({"rate": args.rate, "rounds": args.rounds, "records": records, "traffic": seen}, handle, indent=1)
    os.replace(path + ".tmp", path)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--settings", nargs="+", default=["demo"], choices=sorted(SETTINGS))
    parser.add_argument("--rate", type=float, default=40.0, help="steady traffic through HAProxy, requests a second")
    parser.add_argument("--json", help="write every analysis result here")
    args = parser.parse_args()
    records: list[dict[str, t.Any]] = []
    with tempfile.TemporaryDirectory(prefix="sreops-canary-") as tmp:
        fleet = Fleet(FleetConfig(run_dir=os.path.join(tmp, "fleet"), address_base=on_test_net("127.0.28.10"), http_port=8000))
        fleet.up()
        seen: list[dict[str, t.Any]] = []
        try:
            prepare(fleet, tmp)
            for name in args.settings:
                for round_index in range(1, args.rounds + 1):
                    # steady traffic all round long (a fresh generator a round keeps under its request cap)
                    traffic = TrafficGenerator(fleet.lb_url, rate=args.rate, duration=3600).start()
                    for version, expectation in SEQUENCE:
                        switch(fleet, version)
                        result = analyse(fleet, SETTINGS[name], tmp)
                        records.append({"settings": name, "round": round_index, "release": version, "expect": expectation,
                                        "verdict": result["verdict"], "reasons": result["reasons"], "detectable": result["detectable"],
                                        "metrics": result["metrics"], "measurements": result["measurements"]})
                        print(f"{name} round {round_index}: {version:<7} -> {result['verdict']:<12} {result['reasons'][0][:150]}", flush=True)
                        if args.json:  # kept as it goes: an interrupted run keeps what it measured
                            save(args.json, args, records, seen)
                        if version != "v2":
                            switch(fleet, "v1")  # the rollback
                    switch(fleet, "v1")
                    seen.append(traffic.stop())
        finally:
            fleet.down()
    if args.json:
        save(args.json, args, records, seen)
    print(f"\ncanary analysis on the fleet, {args.rounds} rounds, {args.rate:g} requests/s through HAProxy, canary {CANARY} "
          "(25% of the traffic)")
    header = ["settings", "6% 5xx +60 ms failed", "6% 5xx failed", "+60 ms failed", "1% 5xx failed", "clean passed after 6%+60 ms",
              "clean passed after 6% 5xx", "clean passed after +60 ms", "stated: errors caught (80%)", "stated: latency caught (80%)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for name in args.settings:
        mine = [r for r in records if r["settings"] == name]

        def count(release: str, verdict: str, expect: str | None = None, rows: list[dict[str, t.Any]] = mine) -> str:
            chosen = [r for r in rows if r["release"] == release and (expect is None or r["expect"] == expect)]
            return f"{sum(r['verdict'] == verdict for r in chosen)}/{len(chosen)}"

        rises = [power_of(r, "error_ratio", "minimum_detectable_rise") for r in mine if r["release"] == "v2"]
        shifts = [power_of(r, "latency", "minimum_detectable_shift_ms") for r in mine if r["release"] == "v2"]
        rises = [x for x in rises if x is not None]
        shifts = [x for x in shifts if x is not None]
        window = SETTINGS[name]["window"]
        label = f"{name} ({window} s window{', probes' if SETTINGS[name].get('probes') else ''})"
        print("| " + " | ".join([
            label, count("subtle", "fail"), count("err6", "fail"), count("slow60", "fail"), count("err1", "fail"),
            count("v2", "pass", "pass:after-subtle"), count("v2", "pass", "pass:after-err6"), count("v2", "pass", "pass:after-slow60"),
            f"+{statistics.median(rises) * 100:.1f} points" if rises else "-", f"+{statistics.median(shifts):.1f} ms" if shifts else "-",
        ]) + " |")
    errors_by_server: dict[str, int] = {}
    for report in seen:
        for server, errors in report["errors_by_server"].items():
            errors_by_server[server] = errors_by_server.get(server, 0) + errors
    print(f"\nclients sent {sum(r['requests'] for r in seen)} requests; 5xx or no answer by server: {errors_by_server}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
