# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Command line: tests/fleet/fleet up|down|status|traffic|releases."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import typing as t

from .core import DEFAULT_RUN_DIR, STATE_FILE, Fleet, FleetConfig, FleetError


LAYOUT_OPTIONS = ("hosts", "address_base", "ssh_port", "http_port")


def _config(args: argparse.Namespace) -> FleetConfig:
    given = {name: getattr(args, name) for name in LAYOUT_OPTIONS if getattr(args, name) is not None}
    return FleetConfig(run_dir=args.run_dir, **given)


def _fleet(args: argparse.Namespace) -> Fleet:
    """For `up`, the fleet the options describe; for every other command, the fleet recorded in --run-dir
    (its addresses and ports are what they are: an option that disagrees is an error, not a silent switch)."""
    if args.command == "up" or not os.path.exists(os.path.join(args.run_dir, STATE_FILE)):
        return Fleet(_config(args))
    try:
        fleet = Fleet.attach(args.run_dir)
    except FleetError:
        return Fleet(_config(args))  # a state file cut short by a kill: down/status still work on it
    wrong = [f"--{name.replace('_', '-')} {getattr(args, name)} (it uses {getattr(fleet.config, name)})"
             for name in LAYOUT_OPTIONS if getattr(args, name) not in (None, getattr(fleet.config, name))]
    if wrong:
        raise FleetError(f"the fleet in {fleet.run_dir} does not match {', '.join(wrong)}; drop the option")
    return fleet


def _usage_hint(fleet: Fleet) -> str:
    return (
        f"fleet is up in {fleet.run_dir}\n"
        f"  inventory:   {fleet.inventory}\n"
        f"  ansible.cfg: {fleet.ansible_cfg}\n"
        f"  hosts:       lb1 {fleet.config.lb_address}, web1.. from {fleet.config.host_address(1)}; SSH port {fleet.config.ssh_port}\n"
        f"  try:         ANSIBLE_CONFIG={fleet.ansible_cfg} ansible all -m ping\n"
        f"  traffic:     curl -s -H 'Host: app.test' {fleet.lb_url}\n"
        f"  LB stats:    {fleet.stats_url}/stats   metrics: {fleet.stats_url}/metrics\n"
        f"  runtime API: echo 'show stat' | socat - UNIX:{fleet.haproxy_socket}\n"
        f"  stop:        tests/fleet/fleet down --run-dir {fleet.run_dir}"
    )


def _fleet_options(parser: argparse.ArgumentParser, run_dir_default: str, default: t.Any) -> None:
    parser.add_argument("--run-dir", default=run_dir_default, help="where state, keys, inventory and logs live")
    parser.add_argument("--hosts", type=int, default=default, help="number of app hosts (web1..webN; default 4)")
    parser.add_argument("--address-base", default=default, help="LB address; hosts take the next addresses (default 127.0.0.10)")
    parser.add_argument("--ssh-port", type=int, default=default, help="SSH port of every host (default: 22, or 2222.. when 22 is taken)")
    parser.add_argument("--http-port", type=int, default=default, help="load balancer HTTP port (default: 80, or 8000.. when 80 is taken)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleet", description="sre.ops test fleet")
    _fleet_options(parser, DEFAULT_RUN_DIR, None)
    # The same options after the command too (`fleet down --run-dir DIR`, as the hints print it); given there,
    # they win, and not given there, they leave what came before the command alone.
    common = argparse.ArgumentParser(add_help=False)
    _fleet_options(common, argparse.SUPPRESS, argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("up", help="start the hosts and the load balancer", parents=[common])
    sub.add_parser("down", help="end every recorded process and remove the run directory", parents=[common])
    sub.add_parser("status", help="print the fleet state as JSON", parents=[common])
    traffic = sub.add_parser("traffic", help="send steady traffic through the load balancer and report", parents=[common])
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
        fleet = _fleet(args)
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
