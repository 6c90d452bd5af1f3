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
      sessions: 3
      responses: {"1xx": 0, "2xx": 1520, "3xx": 0, "4xx": 2, "5xx": 0, "other": 0}
      servers:
        web1:
          status: UP
          admin_state: ready
          operational_state: running
          serving: true
          weight: 100
          initial_weight: 100
          sessions: 1
          total_sessions: 380
          requests: 380
          responses: {"1xx": 0, "2xx": 380, "3xx": 0, "4xx": 0, "5xx": 0, "other": 0}
          response_time_ms: 2
          connect_time_ms: 0
  contains:
    servers:
      description:
        - Servers by name. C(admin_state) is V(ready), V(drain) or V(maint); C(serving) tells whether the server takes
          new traffic (ready, health not down, weight above 0); C(requests) counts HTTP responses (cumulative);
          C(response_time_ms) and C(connect_time_ms) are HAProxy's
          averages over the last 1024 requests.
      type: dict
      returned: always
frontends:
  description: Frontends by name, with sessions, requests and responses by class.
  returned: always
  type: dict
  sample: {"fe_http": {"status": "OPEN", "sessions": 2, "total_sessions": 1600, "requests": 1600,
           "responses": {"1xx": 0, "2xx": 1598, "3xx": 0, "4xx": 2, "5xx": 0, "other": 0}}}
maps:
  description: The entries of each map named in O(maps).
  returned: always
  type: dict
  sample: {"/etc/haproxy/hosts.map": {"www.example.com": "be_blue"}}
servers:
  description: Every server of the returned backends as a flat list (each item has C(backend) and C(name)).
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
