#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_server
short_description: Put HAProxy servers in ready, drain or maint, and set their weights or share of traffic, with a min_ready guard
version_added: 0.1.0
description:
  - Sets the admin state and/or weight of one, several or all servers of a backend through HAProxy's runtime API.
  - C(changed) depends only on admin state and weight, never on live session counts, so a no-op reports no change.
  - O(min_ready) refuses any change that would leave fewer servers of the backend taking traffic than that, the
    availability invariant a rolling deploy needs; a refused change changes nothing. Reading the state, deciding and
    applying happen under a lock on the host the module runs on (see O(lock_timeout)), so the usual pattern, a play
    on the app hosts with this task delegated to the load balancer, never takes more servers out than O(min_ready) allows.
  - With O(wait=true), draining waits until the servers have no sessions left, polling C(show stat), after the lock is
    released. A server that is DOWN is not waited for (its sessions are still reported in RV(sessions_remaining)), and
    one already at zero sessions ends the wait at once; on O(wait_timeout) the task fails (or warns, see O(on_timeout))
    with the sessions still open.
  - Weights are changed at run time only where HAProxy allows it. With C(balance static-rr) HAProxy accepts only 0% and
    100% of a server's initial weight, so other weights are refused before anything is sent, in check mode too. The
    hashing algorithms (C(source), C(uri), C(url_param), C(hdr), C(rdp-cookie), C(hash)) accept any weight with
    C(hash-type consistent) and only 0% and 100% with the default C(map-based), which the runtime API does not report,
    so the module asks HAProxy by sending such a weight change before any other command, and a refusal then fails the task
    with nothing changed. Check mode cannot ask, and warns instead.
  - If HAProxy refuses a command or stops answering in the middle of a change of several servers, the task fails with
    C(changed=true), the commands that were applied (RV(commands)) and those that were not (C(commands_not_sent)).
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
  - sre.ops._attributes.actiongroup_haproxy
  - sre.ops._haproxy
  - sre.ops._haproxy.lock
attributes:
  check_mode:
    support: full
    details:
      - Reads the current state and reports exactly what would change, applying the O(min_ready) guard and computing
        O(share) weights as a real run would; it does not lock and does not wait.
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
      - A server leaving V(maint) is UP at once (HAProxy's health checks then confirm it or take it down), so it counts
        as ready for O(min_ready) and RV(ready_after).
    type: str
    choices: [ready, drain, maint]
  weight:
    description:
      - An absolute weight (V(0) to V(256)) or a percentage of each server's initial weight from the configuration, like V(50%).
      - This is each server's own weight, not its share of the traffic; for a share, use O(share).
    type: str
  share:
    description:
      - The percentage of the backend's traffic the O(servers) get together, from V(0) to below V(100); it sets their
        weight (all the same), computed from the other servers that take traffic now (ready, not DOWN, weight above 0,
        not backups) or go back in the same step (O(put_back), at their initial weight). With O(share=S), N selected
        servers and the other serving servers weighing W together, each selected server gets weight
        S * W / (N * (100 - S)), rounded half up to a whole number from 1 to 256.
      - "Worked example: C(be_app) has web1..web4 at weight 100. O(share=10) for O(servers=[web4]): W = 300, N = 1, weight =
        10 * 300 / (1 * 90) = 33.33, so 33, and web4 gets 33 / 333 = 9.91% of the traffic (RV(share.effective)). Run
        again, it computes 33 again and changes nothing; check mode computes the same."
      - When the share cannot be reached with whole weights of 1 to 256, or no other server takes traffic, the task
        fails and says which shares are possible. V(0) sets weight 0.
      - Mutually exclusive with O(weight).
    type: float
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
    description: Seconds to wait for sessions to end. V(0) or more.
    type: float
    default: 60
  wait_interval:
    description: Seconds between polls while waiting. Must be positive.
    type: float
    default: 0.5
  on_timeout:
    description: What to do when sessions remain at O(wait_timeout).
    type: str
    choices: [fail, warn]
    default: fail
  put_back:
    description:
      - Servers of O(backend) to put back in service (V(ready) at their initial weight) in the same step, before the change
        to O(servers) - the handover from one wave of a rolling update to the next, under one lock and one round trip.
      - O(min_ready) counts them as back in service. When O(min_ready) refuses the change to O(servers), these servers
        still go back and the task fails saying so.
      - A server cannot be both in O(put_back) and changed (with O(servers) omitted, every server of O(backend) is changed).
    type: list
    elements: str
    version_added: 0.1.0
seealso:
  - module: sre.ops.haproxy_info
  - module: sre.ops.haproxy_map
"""

EXAMPLES = r"""
---
- name: Drain each app host in turn and wait for its sessions to end, never fewer than 3 servers in service
  sre.ops.haproxy_server:
    socket: /run/haproxy/admin.sock
    backend: be_app
    servers: ["{{ inventory_hostname }}"]
    state: drain
    wait: true
    wait_timeout: 120
    min_ready: 3
  delegate_to: "{{ groups['lb'][0] }}"

- name: Send 10% of the backend's traffic to the canary (with web1..web4 at weight 100, web4 gets weight 33)
  sre.ops.haproxy_server:
    socket: 10.0.0.5:9999
    backend: be_app
    servers: [web4]
    share: 10

- name: Back in service with full weight
  sre.ops.haproxy_server:
    socket: /run/haproxy/admin.sock
    backend: be_app
    servers: [web1]
    state: ready
    weight: 100%
  delegate_to: "{{ groups['lb'][0] }}"

- name: Rolling handover - web1 back in service, then web2 drained, in one locked step (min_ready counts web1 as back)
  sre.ops.haproxy_server:
    socket: /run/haproxy/admin.sock
    backend: be_app
    put_back: [web1]
    servers: [web2]
    state: drain
    wait: true
    min_ready: 3
  delegate_to: "{{ groups['lb'][0] }}"

- name: Name the runtime API once for every HAProxy task of a play
  module_defaults:
    group/sre.ops.haproxy:
      socket: /run/haproxy/admin.sock
  block:
    - name: Drain web1
      sre.ops.haproxy_server:
        backend: be_app
        servers: [web1]
        state: drain
      delegate_to: "{{ groups['lb'][0] }}"
"""

RETURN = r"""
backend:
  description: The backend.
  returned: always
  type: str
  sample: be_app
algorithm:
  description: The backend's load-balancing algorithm as HAProxy reports it.
  returned: always
  type: str
  sample: roundrobin
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
share:
  description: How O(share) became a weight.
  returned: when O(share) is set
  type: dict
  contains:
    requested:
      description: O(share) as given.
      type: float
      sample: 10
    effective:
      description: The percentage of the traffic the selected servers get with the whole weight chosen.
      type: float
      sample: 9.91
    weight:
      description: The weight set on each selected server.
      type: int
      sample: 33
    others_weight:
      description: The summed weight of the other servers that take traffic.
      type: int
      sample: 300
put_back:
  description: Each server of O(put_back) with its admin state and weight before and after, and whether it changed.
  returned: when O(put_back) is set
  type: list
  elements: dict
  sample: [{"server": "web1", "before": {"state": "drain", "weight": 100}, "after": {"state": "ready", "weight": 100}, "changed": true}]
commands:
  description: Runtime API commands sent, in order (none in check mode).
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
  description:
    - Sessions still open per server when the wait ended (empty when all drained). Servers that are DOWN appear here
      with their sessions but are not waited for.
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
            locking=True,
            backend={"type": "str", "required": True},
            servers={"type": "list", "elements": "str"},
            state={"type": "str", "choices": ["ready", "drain", "maint"]},
            weight={"type": "str"},
            share={"type": "float"},
            min_ready={"type": "str"},
            wait={"type": "bool", "default": False},
            wait_timeout={"type": "float", "default": 60},
            wait_interval={"type": "float", "default": 0.5},
            on_timeout={"type": "str", "choices": ["fail", "warn"], "default": "fail"},
            put_back={"type": "list", "elements": "str"},
        ),
        required_one_of=[["state", "weight", "share"]],
        mutually_exclusive=[["weight", "share"]],
        supports_check_mode=True,
    )
    p = module.params
    try:
        manager = ServerManager(
            RuntimeAPI(p["socket"], p["timeout"]), p["backend"], p["servers"], p["state"], p["weight"],
            min_ready=p["min_ready"], wait=p["wait"], wait_timeout=p["wait_timeout"], wait_interval=p["wait_interval"],
            check_mode=module.check_mode, share=p["share"], lock_timeout=p["lock_timeout"], put_back=p["put_back"],
        )
        result = manager.run()
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    if result.pop("wait_timed_out", False):
        msg = (f"sessions still open after {p['wait_timeout']:g}s on backend {p['backend']}: "
               + ", ".join(f"{n}={c}" for n, c in sorted(result["sessions_remaining"].items())))
        if p["on_timeout"] == "fail":
            module.fail_json(msg=msg, **result)
        module.warn(msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
