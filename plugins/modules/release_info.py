#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: release_info
short_description: Read the releases, the current release and the release ledger of an application root
version_added: 0.1.0
description:
  - Returns what M(sre.ops.release) manages under O(path) - the ledger, the release C(current) points at (from
    C(readlink), not from the ledger), the rollback target, and the releases on disk with their ledger records.
  - Read-only; it runs in full in check mode and never waits for, or takes, the lock of O(path). An application root
    that does not exist yet gives empty results.
  - A C(current) that points at no release (dangling, or outside C(releases/)) is reported as such (RV(current_status)),
    never as a release.
  - An action plugin reads O(path) with one POSIX shell command over the connection (C(readlink), C(flock), C(cat),
    C(dd)) and works out the result on the controller with this module's own code, so a read starts no Python on the
    host (a rollout reads every host before it plans). Where that command cannot read O(path) as this module would
    (it is not a directory, a file cannot be read, the lock file is a symlink, the host has no C(readlink) or
    C(flock)), for a O(path) the host must expand (C(~), variables), and with C(async), the module runs on the host.
    Only a module run adds the attributes of O(path) itself (C(owner), C(mode), ...) that every module result with a
    C(path) gets; they are not part of what this module returns.
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
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
  path:
    description: The application root.
    type: path
    required: true
seealso:
  - module: sre.ops.release
"""

EXAMPLES = r"""
---
- name: What runs where
  sre.ops.release_info:
    path: /srv/app
  register: app

- name: Show the rollback target
  ansible.builtin.debug:
    msg: "{{ inventory_hostname }} runs {{ app.current }}, would roll back to {{ app.previous_good }}"
"""

RETURN = r"""
current:
  description: The release C(current) points at, or null when it points at no release on the host (see RV(current_status)).
  returned: always
  type: str
  sample: "v2"
current_status:
  description:
    - V(release) when C(current) points at a release directory under C(releases/); V(absent) when there is no C(current);
      V(dangling) when it points at C(releases/<id>) but that release is not there; V(outside) when it points anywhere
      else; V(not_a_symlink) when C(current) is a real file or directory (M(sre.ops.release) refuses to manage that).
  returned: always
  type: str
  sample: release
current_target:
  description: What C(current) points at, as stored in the link (C(readlink)), or null.
  returned: always
  type: str
  sample: releases/v2
current_path:
  description: The directory of the current release; null unless RV(current_status=release).
  returned: always
  type: str
  sample: /srv/app/releases/v2
previous_good:
  description: The good release most recently current other than the current one (the rollback target), or null.
  returned: always
  type: str
  sample: "v1"
last_good:
  description: The good release most recently current, possibly the current one.
  returned: always
  type: str
  sample: "v2"
releases:
  description: Releases on disk, oldest first, each with its ledger record.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "v1", "outcome": "good", "source_checksum": "sha256:1e7e...", "staged_at": "2026-11-27T17:00:00Z",
            "activated_at": "2026-11-27T17:00:01Z", "deactivated_at": "2026-11-27T17:05:00Z", "on_disk": true}]
leftovers:
  description: Unfinished stagings or interrupted removals the next M(sre.ops.release) run will clean up.
  returned: always
  type: list
  elements: str
  sample: []
to_reconcile:
  description:
    - What the ledger does not match on disk yet, which the next M(sre.ops.release) run will record (for example the
      step of a killed run, or a C(current) switched by hand). The other values already take it into account.
  returned: always
  type: list
  elements: str
  sample: []
locked_by:
  description:
    - Null when no M(sre.ops.release) run holds the lock of O(path) right now; else what the holder recorded
      (C(host), C(pid), C(since), C(purpose)), empty when it recorded nothing.
  returned: always
  type: dict
  sample: {"host": "web1", "pid": 4242, "since": "2026-11-27T17:00:00Z", "purpose": "sre.ops.release state=active release=v3"}
ledger:
  description: The ledger, with C(current) reconciled from C(readlink) and its recent C(history).
  returned: always
  type: dict
  sample: {"version": 1, "current": "v2", "history": [{"at": "2026-11-27T17:05:00Z", "event": "activated", "release": "v2"}]}
path:
  description: The application root, normalised.
  returned: always
  type: str
  sample: /srv/app
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._release import ReleaseManager


def main() -> None:
    module = AnsibleModule(argument_spec={"path": {"type": "path", "required": True}}, supports_check_mode=True)
    try:
        info = ReleaseManager(module.params["path"], check_mode=True).info()
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg)
    module.exit_json(changed=False, **info)


if __name__ == "__main__":
    main()
