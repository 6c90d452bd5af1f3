# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""How fast the test fleet starts and stops, and what a first SSH round trip to every host costs.

Usage (as root, from an installed collection or a checkout): python benchmarks/fleet_startup.py [runs]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "fleet"))

from sreops_fleet import Fleet, FleetConfig, on_test_net  # noqa: E402 pylint: disable=wrong-import-position


def main() -> int:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    ups, downs, pings = [], [], []
    with tempfile.TemporaryDirectory(prefix="sreops-bench-") as tmp:
        for _run in range(runs):
            fleet = Fleet(FleetConfig(run_dir=os.path.join(tmp, "fleet"), address_base=on_test_net("127.0.6.10"), http_port=8000))
            started = time.perf_counter()
            fleet.up()
            ups.append(time.perf_counter() - started)
            started = time.perf_counter()
            proc = subprocess.run(["ansible", "all", "-m", "ansible.builtin.ping"], env=fleet.env(), capture_output=True, check=False)
            pings.append(time.perf_counter() - started)
            started = time.perf_counter()
            fleet.down()
            downs.append(time.perf_counter() - started)
            if proc.returncode != 0:
                print(proc.stdout.decode(), proc.stderr.decode())
                return 1
    print(f"{'step':<28}{'median s':>10}{'max s':>10}   ({runs} runs, 4 hosts + lb)")
    for name, values in (("fleet up", ups), ("ansible all -m ping (5)", pings), ("fleet down", downs)):
        print(f"{name:<28}{statistics.median(values):>10.3f}{max(values):>10.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
