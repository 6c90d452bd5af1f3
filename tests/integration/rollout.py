# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""What the runner, EE and compatibility tests share: the versions a small fleet serves, and a canary setting
that judges a good release on a two-host fleet (no ansible-runner here: the compatibility venvs lack it)."""

from __future__ import annotations

import http.client
import json

# Half the traffic to the canary, and an analysis that judges errors on a sample a loaded CI machine still
# produces and ignores latency differences below 100 ms.
GOOD_CANARY = {
    "deploy_canary_steps": [{"set_weight": 50}, {"analysis": {}}],
    "deploy_canary_analysis": {"window": 6, "interval": 1, "min_requests": 20, "min_samples": 5, "latency_min_increase_ms": 100},
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
