#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: haproxy_map
short_description: Ensure entries in an HAProxy runtime map, optionally persisted to the map file
version_added: 0.1.0
description:
  - Adds, updates or removes entries of a map in a running HAProxy through its runtime API, for example the
    C(Host) header to backend map that switches blue/green traffic.
  - A change to one key is one C(set map), C(add map) or C(del map). A change to several keys builds a new version of
    the map and commits it in one step (C(prepare map) / C(commit map)), so traffic never sees half of the change.
  - With O(persist=true) the map file is rewritten too (temporary file and rename), so a reload keeps the entries;
    comments and the order of existing keys are kept. The module then has to run where the file is. When the map file
    is a symlink, the file it points to is rewritten (the link stays); the file keeps its owner, group, mode, SELinux
    context and ACL.
  - Reading the map, deciding and writing happen under a lock on the host the module runs on (see O(lock_timeout)), so
    concurrent tasks that each set their own keys all keep them.
  - Keys and values are sent escaped, so values may contain spaces, tabs, backslashes and semicolons.
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
      - Reads the runtime map (and the file with O(persist=true)) and reports what would change; it does not lock.
  diff_mode:
    support: full
    details:
      - The runtime map's entries before and after; with O(persist=true), also the map file's content before and after.
  idempotent:
    support: full
options:
  map:
    description:
      - The map as HAProxy knows it, normally the path of its file (as in the configuration), or V(#<id>).
    type: str
    required: true
  entries:
    description:
      - Keys and values. With O(state=absent) only the keys matter.
      - A key is one word (no whitespace). A value is one line of text, not empty, that neither starts nor ends with
        whitespace (HAProxy drops it when it reads a map file). With O(persist=true), a key starting with C(#) is written
        after a space, because HAProxy reads a line starting with C(#) as a comment.
    type: dict
    required: true
  state:
    description: Whether the entries must be present (with these values) or absent.
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description: With O(state=present), remove every key not in O(entries); the map then holds exactly O(entries).
    type: bool
    default: false
  persist:
    description: Also write the result to the map file O(map), atomically, so a reload or restart keeps it.
    type: bool
    default: false
seealso:
  - module: sre.ops.haproxy_server
  - module: sre.ops.haproxy_info
"""

EXAMPLES = r"""
---
- name: Switch www.example.com to the green backend, and keep it across reloads
  sre.ops.haproxy_map:
    socket: /run/haproxy/admin.sock
    map: /etc/haproxy/hosts.map
    entries:
      www.example.com: be_green
    persist: true
  delegate_to: "{{ groups['lb'][0] }}"

- name: Remove a retired host name
  sre.ops.haproxy_map:
    socket: 10.0.0.5:9999
    map: /etc/haproxy/hosts.map
    entries:
      old.example.com:
    state: absent
"""

RETURN = r"""
map:
  description: The map, as given in O(map).
  returned: always
  type: str
  sample: /etc/haproxy/hosts.map
entries:
  description: The map's entries after the change (predicted in check mode).
  returned: always
  type: dict
  sample: {"www.example.com": "be_green", "api.example.com": "be_api"}
commands:
  description: Runtime API commands sent (none in check mode).
  returned: always
  type: list
  elements: str
  sample: ["set map /etc/haproxy/hosts.map www.example.com be_green"]
file_changed:
  description: Whether the map file was (or in check mode would be) rewritten.
  returned: when O(persist=true)
  type: bool
  sample: true
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._haproxy import MapManager, RuntimeAPI
from ansible_collections.sre.ops.plugins.module_utils._haproxy_argspec import haproxy_argument_spec


def main() -> None:
    module = AnsibleModule(
        argument_spec=haproxy_argument_spec(
            locking=True,
            map={"type": "str", "required": True},
            entries={"type": "dict", "required": True},
            state={"type": "str", "choices": ["present", "absent"], "default": "present"},
            exclusive={"type": "bool", "default": False},
            persist={"type": "bool", "default": False},
        ),
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = MapManager(
            RuntimeAPI(p["socket"], p["timeout"]), p["map"], p["entries"], state=p["state"],
            exclusive=p["exclusive"], persist=p["persist"], check_mode=module.check_mode, lock_timeout=p["lock_timeout"],
        ).run()
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg, **exc.details)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
