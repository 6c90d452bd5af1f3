# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Command line: tests/fleet/fleet up|down|status|traffic|releases."""

from __future__ import annotations

import argparse
import json
import sys
import time

from .core import DEFAULT_RUN_DIR, Fleet, FleetConfig, FleetError


def _config(args: argparse.Namespace) -> FleetConfig:
    return FleetConfig(
        run_dir=args.run_dir,
        hosts=args.hosts,
        address_base=args.address_base,
        ssh_port=args.ssh_port,
        http_port=args.http_port,
    )


def _usage_hint(fleet: Fleet) -> str:
    return (
        f"fleet is up in {fleet.run_dir}\n"
        f"  inventory:   {fleet.inventory}\n"
        f"  ansible.cfg: {fleet.ansible_cfg}\n"
        f"  try:         ANSIBLE_CONFIG={fleet.ansible_cfg} ansible all -m ping\n"
        f"  traffic:     curl -s -H 'Host: app.test' {fleet.lb_url}\n"
        f"  LB stats:    {fleet.stats_url}/stats   metrics: {fleet.stats_url}/metrics\n"
        f"  runtime API: echo 'show stat' | socat - UNIX:{fleet.haproxy_socket}\n"
        f"  stop:        tests/fleet/fleet down --run-dir {fleet.run_dir}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleet", description="sre.ops test fleet")
    parser.add_argument("--run-dir", default=DEFAULT_RUN_DIR, help="where state, keys, inventory and logs live")
    parser.add_argument("--hosts", type=int, default=4, help="number of app hosts (web1..webN)")
    parser.add_argument("--address-base", default="127.0.0.10", help="LB address; hosts take the next addresses")
    parser.add_argument("--ssh-port", type=int, default=22)
    parser.add_argument("--http-port", type=int, default=80, help="load balancer HTTP port")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the hosts and the load balancer")
    sub.add_parser("down", help="end every recorded process and remove the run directory")
    sub.add_parser("status", help="print the fleet state as JSON")
    traffic = sub.add_parser("traffic", help="send steady traffic through the load balancer and report")
    traffic.add_argument("--rate", type=float, default=50.0, help="requests per second")
    traffic.add_argument("--duration", type=float, default=5.0, help="seconds")
    traffic.add_argument("--host-header", default="app.test")
    releases = sub.add_parser("releases", help="build the demo application's release artifacts")
    releases.add_argument("--output", required=True)
    args = parser.parse_args(argv)

    try:
        if args.command == "releases":
            from .releases import build_all  # pylint: disable=import-outside-toplevel

            for artifact in build_all(args.output):
                print(f"{artifact['path']}  sha256:{artifact['sha256']}")
            return 0
        fleet = Fleet(_config(args))
        if args.command == "up":
            started = time.monotonic()
            fleet.up()
            print(_usage_hint(fleet))
            print(f"  started in {time.monotonic() - started:.2f}s")
        elif args.command == "down":
            started = time.monotonic()
            ended = fleet.down()
            print(f"ended {len(ended)} processes ({', '.join(ended) or 'none running'}) in {time.monotonic() - started:.2f}s")
        elif args.command == "status":
            status = fleet.status()
            print(json.dumps(status, indent=2, sort_keys=True))
            return 0 if status["state"] == "up" else 3
        elif args.command == "traffic":
            from .traffic import TrafficGenerator  # pylint: disable=import-outside-toplevel

            report = TrafficGenerator(fleet.lb_url, rate=args.rate, duration=args.duration, host_header=args.host_header).run()
            print(json.dumps(report, indent=2, sort_keys=True))
    except FleetError as exc:
        print(f"fleet: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
