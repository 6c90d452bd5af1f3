#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_info
short_description: Snapshots, repository statistics and the age of the newest snapshot per host and tags in a restic repository
version_added: 0.1.0
description:
  - Lists the snapshots (optionally of one host, with some tags, of some paths), groups them by host, tags and paths, and
    returns each group's newest snapshot and its age - the data a recovery point objective is checked against.
  - With O(max_age), RV(stale_groups) lists the groups whose newest snapshot is older, and RV(fresh) says whether none is.
  - O(stats) adds C(restic stats) figures; O(locks) lists the repository's locks and whether each is stale on this host.
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
  - sre.ops._restic
attributes:
  check_mode:
    support: full
    details:
      - Read-only; it runs in full in check mode.
  diff_mode:
    support: none
    details:
      - Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
options:
  host:
    description: Only snapshots of this host.
    type: str
  tags:
    description: Only snapshots with all these tags.
    type: list
    elements: str
    default: []
  paths:
    description: Only snapshots of these paths.
    type: list
    elements: str
    default: []
  stats:
    description: C(restic stats) modes to report (one restic process each); V(raw-data) is the repository's stored size.
    type: list
    elements: str
    choices: [raw-data, restore-size, files-by-contents, blobs-per-file]
    default: [raw-data]
  max_age:
    description: The recovery point objective - seconds, or V(26h), V(2d). Sets RV(stale_groups) and RV(fresh).
    type: raw
  locks:
    description: Also list the repository's locks.
    type: bool
    default: false
seealso:
  - module: sre.ops.backup
  - module: sre.ops.backup_verify
"""

EXAMPLES = r"""
---
- name: Is every host's newest backup younger than 26 hours?
  sre.ops.backup_info:
    repository: "sftp:backup@backup1:/srv/restic/shared"
    password_file: /etc/sre-ops/backup/app.pass
    max_age: 26h
  register: backups
  run_once: true

- name: Fail on a stale group
  ansible.builtin.assert:
    that: backups.fresh
    fail_msg: "stale: {{ backups.stale_groups | map(attribute='host') | list }}"
"""

RETURN = r"""
snapshots:
  description: The snapshots, oldest first, with their age.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "5934771a...", "short_id": "5934771a", "time": "2026-12-03T07:46:23Z", "host": "web1", "tags": ["app"],
            "paths": ["/srv/data"], "age_seconds": 3600.2}]
groups:
  description: Per host, tags and paths - the number of snapshots and the newest one with its age.
  returned: always
  type: list
  elements: dict
  sample: [{"host": "web1", "tags": ["app"], "paths": ["/srv/data"], "count": 12, "newest_id": "5934771a...",
            "newest_time": "2026-12-03T07:46:23Z", "newest_age_seconds": 3600.2}]
newest_age_seconds:
  description: Age of the newest snapshot of all, or null when there is none.
  returned: always
  type: float
  sample: 3600.2
stale_groups:
  description: Groups whose newest snapshot is older than O(max_age).
  returned: when O(max_age) is set
  type: list
  elements: dict
  sample: []
fresh:
  description: Whether there are snapshots and no group is stale.
  returned: when O(max_age) is set
  type: bool
  sample: true
stats:
  description: C(restic stats --json) output per mode.
  returned: always
  type: dict
  sample: {"raw-data": {"total_size": 101220, "total_blob_count": 6, "snapshots_count": 1}}
stale_locks_removed:
  description: Locks left by killed runs on this host and removed by this one (only when a lock was in the way).
  returned: always
  type: list
  elements: dict
  sample: []
locks:
  description: The repository's locks; C(stale_here) is true for a lock of this host whose process is gone.
  returned: when O(locks=true)
  type: list
  elements: dict
  sample: [{"id": "f6bd8375...", "hostname": "web1", "pid": 15190, "exclusive": false, "time": "2026-12-03T07:49:47Z", "stale_here": true}]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._restic import (
    REPOSITORY_MUTUALLY_EXCLUSIVE, REPOSITORY_REQUIRED_ONE_OF, parse_duration, repository_argument_spec, repository_from_params,
)
from ansible_collections.sre.ops.plugins.module_utils._verify import InfoManager


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **repository_argument_spec(),
            "host": {"type": "str"},
            "tags": {"type": "list", "elements": "str", "default": []},
            "paths": {"type": "list", "elements": "str", "default": []},
            "stats": {"type": "list", "elements": "str", "choices": ["raw-data", "restore-size", "files-by-contents", "blobs-per-file"],
                      "default": ["raw-data"]},
            "max_age": {"type": "raw"},
            "locks": {"type": "bool", "default": False},
        },
        mutually_exclusive=REPOSITORY_MUTUALLY_EXCLUSIVE,
        required_one_of=REPOSITORY_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    p = module.params
    try:
        max_age = parse_duration(p["max_age"], "max_age") if p["max_age"] is not None else None
        result = InfoManager(repository_from_params(p), host=p["host"], tags=p["tags"], paths=p["paths"], stats=p["stats"],
                             max_age=max_age, locks=p["locks"]).run()
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg, **exc.details.get("result", {}))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
