#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_retention
short_description: Apply a restic retention policy (forget, optionally prune) that shows what goes and why, and refuses to empty a group
version_added: 0.1.0
description:
  - Decides with restic itself - C(restic forget --dry-run --json) with the policy - and returns, per group, the snapshots
    kept (with restic's reasons, such as V(daily snapshot)) and those removed.
  - A real run then removes exactly the snapshots that decision named (C(restic forget ID...)), so what check mode showed is
    what happens, even if a backup lands in between; then C(restic prune) if O(prune=true).
  - A policy that would remove every snapshot of a group, or a group's newest snapshot, is refused (nothing removed)
    unless O(allow_remove_all) or O(allow_remove_newest) is set. A policy with no keep option at all is an error.
  - A prune killed at any moment leaves a repository C(restic check) accepts; the next run removes the stale lock it left
    when that process is gone from this host, and says so.
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
  - sre.ops._restic
attributes:
  check_mode:
    support: full
    details:
      - Returns the decision of C(restic forget --dry-run) - the same snapshots a real run removes - and removes nothing.
  diff_mode:
    support: full
    details:
      - The snapshot ids before and after.
  idempotent:
    support: full
options:
  keep_last:
    description: Keep the last N snapshots.
    type: int
  keep_hourly:
    description: Keep the last N hourly snapshots.
    type: int
  keep_daily:
    description: Keep the last N daily snapshots.
    type: int
  keep_weekly:
    description: Keep the last N weekly snapshots.
    type: int
  keep_monthly:
    description: Keep the last N monthly snapshots.
    type: int
  keep_yearly:
    description: Keep the last N yearly snapshots.
    type: int
  keep_within:
    description: Keep snapshots newer than this duration before the newest snapshot (restic format, such as V(1y6m), V(30d), V(36h)).
    type: str
  keep_within_hourly:
    description: Keep hourly snapshots within this duration of the newest.
    type: str
  keep_within_daily:
    description: Keep daily snapshots within this duration of the newest.
    type: str
  keep_within_weekly:
    description: Keep weekly snapshots within this duration of the newest.
    type: str
  keep_within_monthly:
    description: Keep monthly snapshots within this duration of the newest.
    type: str
  keep_within_yearly:
    description: Keep yearly snapshots within this duration of the newest.
    type: str
  keep_tag:
    description: Keep snapshots carrying this tag list (each item like restic's C(--keep-tag), V(a,b) meaning both).
    type: list
    elements: str
    default: []
  host:
    description: Only consider snapshots of this host.
    type: str
  tags:
    description: Only consider snapshots carrying all these tags.
    type: list
    elements: str
    default: []
  paths:
    description: Only consider snapshots of these paths.
    type: list
    elements: str
    default: []
  group_by:
    description: How snapshots are grouped before the policy applies to each group (restic's default is host and paths).
    type: list
    elements: str
    choices: [host, paths, tags]
    default: [host, paths]
  prune:
    description: Run C(restic prune) after removing snapshots, to free the space their data used.
    type: bool
    default: false
  max_unused:
    description: restic prune C(--max-unused) (for example V(5%), V(unlimited)).
    type: str
  allow_remove_all:
    description: Allow a policy that removes every snapshot of a group.
    type: bool
    default: false
  allow_remove_newest:
    description: Allow a policy that removes a group's newest snapshot.
    type: bool
    default: false
seealso:
  - module: sre.ops.backup
  - module: sre.ops.backup_info
"""

EXAMPLES = r"""
---
- name: Preview the retention (run with --check)
  sre.ops.backup_retention:
    repository: /var/backups/restic
    password_file: /etc/sre-ops/backup/app.pass
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 12
  check_mode: true
  register: retention

- name: Show what would go
  ansible.builtin.debug:
    msg: "{{ retention.removed | length }} snapshots would be removed"

- name: Apply it and free the space
  sre.ops.backup_retention:
    repository: /var/backups/restic
    password_file: /etc/sre-ops/backup/app.pass
    keep_daily: 7
    keep_weekly: 4
    keep_monthly: 12
    host: "{{ inventory_hostname }}"
    prune: true
"""

RETURN = r"""
groups:
  description: Per group, the snapshots kept (newest first, each with restic's reasons) and removed.
  returned: always
  type: list
  elements: dict
  sample: [{"host": "web1", "paths": ["/srv/data"], "tags": [],
            "keep": [{"id": "5934771a...", "short_id": "5934771a", "time": "2026-12-03T07:46:23Z", "reasons": ["last snapshot", "daily snapshot"]}],
            "remove": [{"id": "b0adaa4c...", "short_id": "b0adaa4c", "time": "2026-11-01T10:00:00Z"}]}]
removed:
  description: Ids of the snapshots removed (would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: ["b0adaa4cc2e476588d1c80e71ac59be9a93fd9a7654b80a38f67f2cfba1936f8"]
kept:
  description: Ids of the snapshots kept.
  returned: always
  type: list
  elements: str
  sample: ["5934771ac9d9ae8213a93ab7c5c37c0ca298ce80beeb319b5298b3f2bc4ee5ac"]
pruned:
  description: Whether C(restic prune) ran.
  returned: always
  type: bool
  sample: false
policy:
  description: The restic forget options the policy became.
  returned: always
  type: list
  elements: str
  sample: ["--keep-daily", "7", "--keep-weekly", "4"]
stale_locks_removed:
  description: Locks left by killed runs on this host and removed by this one.
  returned: success
  type: list
  elements: dict
  sample: []
notes:
  description: Remarks, such as a removed stale lock.
  returned: success
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._restic import (
    REPOSITORY_MUTUALLY_EXCLUSIVE, REPOSITORY_REQUIRED_ONE_OF, repository_argument_spec, repository_from_params,
)
from ansible_collections.sre.ops.plugins.module_utils._retention import KEEP_COUNTS, KEEP_WITHIN, RetentionManager


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **repository_argument_spec(),
            **{key: {"type": "int"} for key in KEEP_COUNTS},
            **{key: {"type": "str"} for key in KEEP_WITHIN},
            "keep_tag": {"type": "list", "elements": "str", "default": []},
            "host": {"type": "str"},
            "tags": {"type": "list", "elements": "str", "default": []},
            "paths": {"type": "list", "elements": "str", "default": []},
            "group_by": {"type": "list", "elements": "str", "choices": ["host", "paths", "tags"], "default": ["host", "paths"]},
            "prune": {"type": "bool", "default": False},
            "max_unused": {"type": "str"},
            "allow_remove_all": {"type": "bool", "default": False},
            "allow_remove_newest": {"type": "bool", "default": False},
        },
        mutually_exclusive=REPOSITORY_MUTUALLY_EXCLUSIVE,
        required_one_of=REPOSITORY_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    p = module.params
    try:
        policy = {key: p[key] for key in (*KEEP_COUNTS, *KEEP_WITHIN, "keep_tag")}
        result = RetentionManager(
            repository_from_params(p), policy=policy, host=p["host"], tags=p["tags"], paths=p["paths"], group_by=p["group_by"],
            prune=p["prune"], max_unused=p["max_unused"], allow_remove_all=p["allow_remove_all"],
            allow_remove_newest=p["allow_remove_newest"], check_mode=module.check_mode,
        ).run()
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg, **exc.details.get("result", {}))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
