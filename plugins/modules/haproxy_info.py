#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_info
short_description: Read HAProxy backends and servers from the runtime API
version_added: 0.1.0
description:
  - Reads C(show stat) and C(show servers state) from HAProxy's runtime API and returns every backend with its servers
    (status, admin state, weights, sessions, responses by class, response and connect times) and every frontend.
  - Read-only; it runs in full in check mode.
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
  - sre.ops._attributes.actiongroup_haproxy
  - sre.ops._haproxy
attributes:
  check_mode:
    support: full
    details:
      - Read-only. It reads the real state in check mode too.
  diff_mode:
    support: none
    details:
      - Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
options:
  backends:
    description: Only these backends. All backends when omitted. A backend that does not exist is an error.
    type: list
    elements: str
  maps:
    description: Also read these runtime maps (file paths as in the configuration, or V(#<id>)); see RV(maps).
    type: list
    elements: str
    default: []
seealso:
  - module: sre.ops.haproxy_server
  - module: sre.ops.haproxy_map
"""

EXAMPLES = r"""
---
- name: Read the app backend
  sre.ops.haproxy_info:
    socket: /run/haproxy/admin.sock
    backends: [be_app]
  delegate_to: "{{ groups['lb'][0] }}"
  register: lb

- name: Show which servers take traffic
  ansible.builtin.debug:
    msg: "{{ lb.backends.be_app.servers | dict2items | selectattr('value.serving') | map(attribute='key') | list }}"

- name: Read everything over the TCP runtime API
  sre.ops.haproxy_info:
    socket: 10.0.0.5:9999
"""

RETURN = r"""
backends:
  description: Backends by name.
  returned: always
  type: dict
  sample:
    be_app:
      status: UP
      algorithm: roundrobin
      weight: 400
      sessions: 3
      total_sessions: 1522
      queue: 0
      responses: {"1xx": 0, "2xx": 1520, "3xx": 0, "4xx": 2, "5xx": 0, "other": 0}
      response_time_ms: 2
      connect_time_ms: 0
      active_servers: 4
      backup_servers: 0
      servers:
        web1:
          backend: be_app
          name: web1
          status: UP
          admin_state: ready
          operational_state: running
          serving: true
          weight: 100
          effective_weight: 100
          initial_weight: 100
          address: 10.0.0.11:8080
          sessions: 1
          total_sessions: 380
          requests: 380
          queue: 0
          responses: {"1xx": 0, "2xx": 380, "3xx": 0, "4xx": 0, "5xx": 0, "other": 0}
          response_time_ms: 2
          connect_time_ms: 0
          check_status: L7OK
          last_change_s: 3600
          backup: false
  contains:
    status:
      description: The backend's status (V(UP) while any server is up, else V(DOWN)).
      type: str
      returned: always
    algorithm:
      description: The load-balancing algorithm (C(balance)), like V(roundrobin) or V(source).
      type: str
      returned: always
    weight:
      description: The summed effective weight of the backend's servers.
      type: int
      returned: always
    sessions:
      description: Sessions open now.
      type: int
      returned: always
    total_sessions:
      description: Sessions since HAProxy started (cumulative).
      type: int
      returned: always
    queue:
      description: Requests waiting in the backend's queue now.
      type: int
      returned: always
    responses:
      description: HTTP responses by class (cumulative).
      type: dict
      returned: always
    response_time_ms:
      description: Average response time over the last 1024 requests, in milliseconds.
      type: int
      returned: always
    connect_time_ms:
      description: Average connect time over the last 1024 requests, in milliseconds.
      type: int
      returned: always
    active_servers:
      description: Active (not backup) servers that are up.
      type: int
      returned: always
    backup_servers:
      description: Backup servers that are up.
      type: int
      returned: always
    servers:
      description: Servers by name.
      type: dict
      returned: always
      contains:
        backend:
          description: The backend the server belongs to.
          type: str
          sample: be_app
        name:
          description: The server's name.
          type: str
          sample: web1
        status:
          description: HAProxy's status for the server, like V(UP), V(DOWN), V(DRAIN), V(MAINT), V(no check), or V(UP 1/2) while a check goes on.
          type: str
          sample: UP
        admin_state:
          description: V(ready), V(drain) or V(maint) (forced, inherited from a tracked server, or from the configuration).
          type: str
          sample: ready
        operational_state:
          description: V(stopped), V(starting), V(running) or V(stopping) (C(srv_op_state) of C(show servers state)).
          type: str
          sample: running
        serving:
          description: Whether the server takes new traffic now (admin state ready, health not down, weight above 0).
          type: bool
          sample: true
        weight:
          description: The weight set at run time (C(srv_uweight)), what O(sre.ops.haproxy_server#module:weight) changes.
          type: int
          sample: 100
        effective_weight:
          description: The weight HAProxy balances with now (C(weight) of C(show stat)); 0 while draining or down.
          type: int
          sample: 100
        initial_weight:
          description: The weight from the configuration (C(srv_iweight)); percentages of O(sre.ops.haproxy_server#module:weight) refer to it.
          type: int
          sample: 100
        address:
          description: The server's C(address:port).
          type: str
          sample: 10.0.0.11:8080
        sessions:
          description: Sessions open now.
          type: int
          sample: 1
        total_sessions:
          description: Sessions since HAProxy started (cumulative).
          type: int
          sample: 380
        requests:
          description: HTTP responses the server gave (cumulative); HAProxy 2.6 does not count server requests otherwise.
          type: int
          sample: 380
        queue:
          description: Requests waiting in the server's queue now.
          type: int
          sample: 0
        responses:
          description: HTTP responses by class (cumulative).
          type: dict
          sample: {"1xx": 0, "2xx": 380, "3xx": 0, "4xx": 0, "5xx": 0, "other": 0}
        response_time_ms:
          description: Average response time over the last 1024 requests, in milliseconds.
          type: int
          sample: 2
        connect_time_ms:
          description: Average connect time over the last 1024 requests, in milliseconds.
          type: int
          sample: 0
        check_status:
          description: The last health check's result, like V(L7OK) or V(L4CON); null without checks.
          type: str
          sample: L7OK
        last_change_s:
          description: Seconds since the server's status last changed.
          type: int
          sample: 3600
        backup:
          description: Whether it is a backup server (used only when every active server is down).
          type: bool
          sample: false
frontends:
  description: Frontends by name.
  returned: always
  type: dict
  sample: {"fe_http": {"status": "OPEN", "sessions": 2, "total_sessions": 1600, "requests": 1600,
           "responses": {"1xx": 0, "2xx": 1598, "3xx": 0, "4xx": 2, "5xx": 0, "other": 0}}}
  contains:
    status:
      description: V(OPEN), or V(STOP) when the frontend is disabled.
      type: str
      returned: always
    sessions:
      description: Sessions open now.
      type: int
      returned: always
    total_sessions:
      description: Sessions since HAProxy started (cumulative).
      type: int
      returned: always
    requests:
      description: HTTP requests received (cumulative).
      type: int
      returned: always
    responses:
      description: HTTP responses by class (cumulative).
      type: dict
      returned: always
maps:
  description: The entries of each map named in O(maps).
  returned: always
  type: dict
  sample: {"/etc/haproxy/hosts.map": {"www.example.com": "be_blue"}}
servers:
  description: Every server of the returned backends as a flat list, with the same fields as in RV(backends).
  returned: always
  type: list
  elements: dict
  sample: [{"backend": "be_app", "name": "web1", "status": "UP", "admin_state": "ready", "weight": 100, "sessions": 1}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._haproxy import RuntimeAPI, collect_info, parse_map
from ansible_collections.sre.ops.plugins.module_utils._haproxy_argspec import haproxy_argument_spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=haproxy_argument_spec(
            backends={"type": "list", "elements": "str"},
            maps={"type": "list", "elements": "str", "default": []},
        ),
        supports_check_mode=True,
    )
    try:
        api = RuntimeAPI(module.params["socket"], module.params["timeout"])
        info = collect_info(api, module.params["backends"])
        info["maps"] = {name: dict(parse_map(api.show(f"show map {name}"))) for name in module.params["maps"]}
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg)
    servers = [server for backend in info["backends"].values() for server in backend["servers"].values()]
    module.exit_json(changed=False, servers=servers, **info)


if __name__ == "__main__":
    main()
