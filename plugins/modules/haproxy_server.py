#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_server
short_description: Put HAProxy servers in ready, drain or maint, and set their weights, with a min_ready guard
version_added: 0.1.0
description:
  - Sets the admin state and/or weight of one, several or all servers of a backend through HAProxy's runtime API.
  - C(changed) depends only on admin state and weight, never on live session counts, so a no-op reports no change.
  - O(min_ready) refuses any change that would leave fewer servers of the backend taking traffic than that, the
    availability invariant a rolling deploy needs; a refused change changes nothing.
  - With O(wait=true), draining waits until the servers have no sessions left, polling C(show stat). A server that is
    DOWN never holds the wait, and one already at zero sessions ends it at once; on O(wait_timeout) the task fails
    (or warns, see O(on_timeout)) with the sessions still open.
  - Weight changes on a backend with a static algorithm (where HAProxy accepts only 0% and 100% at run time) are
    refused with an explanation, in check mode too.
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
  - sre.ops._haproxy
attributes:
  check_mode:
    support: full
    details:
      - Reads the current state and reports exactly what would change, applying the O(min_ready) guard; it does not wait.
  diff_mode:
    support: full
    details:
      - Before and after admin state and weight per server.
  idempotent:
    support: full
options:
  backend:
    description: The backend the servers belong to.
    type: str
    required: true
  servers:
    description: Servers to change. All servers of O(backend) when omitted.
    type: list
    elements: str
  state:
    description:
      - V(ready) takes traffic; V(drain) takes no new sessions but keeps existing ones (and health checks);
        V(maint) takes no traffic and stops health checks.
    type: str
    choices: [ready, drain, maint]
  weight:
    description:
      - An absolute weight (V(0) to V(256)) or a percentage of each server's initial weight from the configuration, like V(50%).
    type: str
  min_ready:
    description:
      - The least number of servers of O(backend) that must still take traffic after the change, as a count (V(2))
        or a percentage of the backend's servers (V(50%), rounded up). Changes that would go below it are refused.
    type: str
  wait:
    description: After setting V(drain) or V(maint), wait until the servers have no sessions.
    type: bool
    default: false
  wait_timeout:
    description: Seconds to wait for sessions to end.
    type: float
    default: 60
  wait_interval:
    description: Seconds between polls while waiting.
    type: float
    default: 0.5
  on_timeout:
    description: What to do when sessions remain at O(wait_timeout).
    type: str
    choices: [fail, warn]
    default: fail
seealso:
  - module: sre.ops.haproxy_info
  - module: sre.ops.haproxy_map
"""

EXAMPLES = r"""
---
- name: Drain web1 and wait for its sessions to end, keeping at least 3 servers in service
  sre.ops.haproxy_server:
    socket: /run/haproxy/admin.sock
    backend: be_app
    servers: [web1]
    state: drain
    wait: true
    wait_timeout: 120
    min_ready: 3
  delegate_to: "{{ groups['lb'][0] }}"

- name: Send 10% of traffic to the canary
  sre.ops.haproxy_server:
    socket: 10.0.0.5:9999
    backend: be_app
    servers: [web4]
    weight: 10%

- name: Back in service with full weight
  sre.ops.haproxy_server:
    socket: /run/haproxy/admin.sock
    backend: be_app
    servers: [web1]
    state: ready
    weight: 100%
  delegate_to: "{{ groups['lb'][0] }}"
"""

RETURN = r"""
servers:
  description: Each server's admin state and weight before and after, and whether it changed.
  returned: always
  type: list
  elements: dict
  sample: [{"server": "web1", "before": {"state": "ready", "weight": 100}, "after": {"state": "drain", "weight": 100}, "changed": true}]
ready_before:
  description: Servers of the backend taking traffic before the change.
  returned: always
  type: int
  sample: 4
ready_after:
  description: Servers of the backend taking traffic after the change (predicted in check mode).
  returned: always
  type: int
  sample: 3
min_ready:
  description: The O(min_ready) guard as a count of servers (0 without a guard).
  returned: always
  type: int
  sample: 3
commands:
  description: Runtime API commands sent (none in check mode).
  returned: always
  type: list
  elements: str
  sample: ["set server be_app/web1 state drain"]
waited_s:
  description: Seconds spent waiting for sessions to end.
  returned: when O(wait=true), O(state) is V(drain) or V(maint), and not in check mode
  type: float
  sample: 1.52
sessions_remaining:
  description: Sessions still open per server when the wait ended (empty when all drained).
  returned: when O(wait=true), O(state) is V(drain) or V(maint), and not in check mode
  type: dict
  sample: {}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._haproxy import RuntimeAPI, ServerManager
from ansible_collections.sre.ops.plugins.module_utils._haproxy_argspec import haproxy_argument_spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=haproxy_argument_spec(
            backend={"type": "str", "required": True},
            servers={"type": "list", "elements": "str"},
            state={"type": "str", "choices": ["ready", "drain", "maint"]},
            weight={"type": "str"},
            min_ready={"type": "str"},
            wait={"type": "bool", "default": False},
            wait_timeout={"type": "float", "default": 60},
            wait_interval={"type": "float", "default": 0.5},
            on_timeout={"type": "str", "choices": ["fail", "warn"], "default": "fail"},
        ),
        required_one_of=[["state", "weight"]],
        supports_check_mode=True,
    )
    p = module.params
    try:
        manager = ServerManager(
            RuntimeAPI(p["socket"], p["timeout"]), p["backend"], p["servers"], p["state"], p["weight"],
            min_ready=p["min_ready"], wait=p["wait"], wait_timeout=p["wait_timeout"], wait_interval=p["wait_interval"],
            check_mode=module.check_mode,
        )
        result = manager.run()
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg)
    if result.pop("wait_timed_out", False):
        msg = (f"sessions still open after {p['wait_timeout']:g}s on backend {p['backend']}: "
               + ", ".join(f"{n}={c}" for n, c in sorted(result["sessions_remaining"].items())))
        if p["on_timeout"] == "fail":
            module.fail_json(msg=msg, **result)
        module.warn(msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
