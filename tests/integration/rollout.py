# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the runner, EE and compatibility tests share: a two-host fleet with v1 installed, the versions it serves,
and a canary setting that judges a good release on it (no ansible-runner here: the compatibility venvs lack it)."""

from __future__ import annotations

import contextlib
import http.client
import json
import typing as t

from sreops_fleet import Fleet

from .conftest import deploy_demo, make_fleet


# Half the traffic to the canary, and an analysis that judges errors on a sample a loaded CI machine still
# produces and ignores latency differences below 100 ms. No power requirement (error_detect/latency_detect_ms 0):
# a 6 s window cannot rule out a 5-point rise, and these tests prove the role runs under another ansible-core or
# in the EE; what an analysis can detect is tested in test_canary_analysis and test_deploy.
GOOD_CANARY = {
    "deploy_canary_steps": [{"set_weight": 50}, {"analysis": {}}],
    "deploy_canary_analysis": {"window": 6, "interval": 1, "min_requests": 20, "min_samples": 5, "latency_min_increase_ms": 100,
                               "error_detect": 0, "latency_detect_ms": 0},
}


def versions(fleet, hosts=("web1", "web2")):
    """The demo app version each host serves on its own address (None when it does not answer)."""
    out = {}
    for i, host in enumerate(hosts, 1):
        conn = http.client.HTTPConnection(fleet.config.host_address(i), fleet.config.app_port, timeout=3)
        try:
            conn.request("GET", "/version")
            out[host] = json.loads(conn.getresponse().read())["version"]
        except OSError:
            out[host] = None
        finally:
            conn.close()
    return out


@contextlib.contextmanager
def two_host_fleet(name: str, address_base: str, releases_dir: str, reports_dir: str) -> t.Iterator[Fleet]:
    """web1 and web2 behind HAProxy, both serving v1; rollout reports go to ``reports_dir`` (fleet.reports)."""
    fleet = make_fleet(name, address_base, hosts=2)
    fleet.up()
    try:
        deploy_demo(fleet, releases_dir, "v1")
        fleet.reports = reports_dir
        yield fleet
    finally:
        fleet.down()
