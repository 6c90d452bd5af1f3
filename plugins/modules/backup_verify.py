#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_verify
short_description: Prove a restic repository restores - restic check plus a sample restore compared by sha256
version_added: 0.1.0
description:
  - Runs C(restic check), optionally reading back O(read_data_subset) of the data packs (or all of them with O(read_data)).
  - Then restores O(sample_files) random files of a snapshot into a scratch directory with C(restic restore --verify),
    and compares each restored file's sha256 with the sha256 of the bytes C(restic dump) streams for the same path; where
    the original file is still on the host unchanged (same size and mtime as in the snapshot), with that file's sha256 too.
  - The task fails, with every finding in the result, when the check fails or a sampled file does not match.
  - The scratch directory is removed afterwards; the repository is only read (restic takes and releases a lock).
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
  - sre.ops._restic
attributes:
  check_mode:
    support: full
    details:
      - Verification only reads, so it runs in full in check mode.
  diff_mode:
    support: none
    details:
      - Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
options:
  check:
    description: Run C(restic check).
    type: bool
    default: true
  read_data:
    description: Read and verify every data pack (C(restic check --read-data)); slow on big repositories.
    type: bool
    default: false
  read_data_subset:
    description: Read and verify a subset of the data packs - V(n/t) (part n of t), V(x%), or a size such as V(500M).
    type: str
  sample_files:
    description: How many random files of the snapshot to restore and compare; V(0) skips the sample restore.
    type: int
    default: 5
  sample_max_bytes:
    description: Only files up to this size are sampled.
    type: int
    default: 268435456
  snapshot:
    description: The snapshot to sample - an id, an id prefix, or V(latest) (narrowed by O(host) and O(tags)).
    type: str
    default: latest
  host:
    description: For V(latest), only snapshots of this host.
    type: str
  tags:
    description: For V(latest), only snapshots with all these tags.
    type: list
    elements: str
    default: []
  scratch_dir:
    description: Where the scratch directory is created (default the system temporary directory).
    type: path
  seed:
    description: Seed for the random sample, to repeat a verification exactly.
    type: int
seealso:
  - module: sre.ops.backup
  - module: sre.ops.restore
"""

EXAMPLES = r"""
---
- name: Weekly proof - check 10% of the data and restore 10 sampled files
  sre.ops.backup_verify:
    repository: /var/backups/restic
    password_file: /etc/sre-ops/backup/app.pass
    read_data_subset: 10%
    sample_files: 10
    host: "{{ inventory_hostname }}"
"""

RETURN = r"""
check:
  description: The outcome of C(restic check).
  returned: when O(check=true)
  type: dict
  sample: {"passed": true, "read_data": false, "read_data_subset": "10%", "seconds": 4.2, "output": ["no errors were found"]}
sample:
  description: The sample restore - the snapshot, how many files could be sampled, and per file the sha256 values compared.
  returned: when O(sample_files) > 0
  type: dict
  sample: {"snapshot_id": "5934771a...", "candidates": 100000, "restore_seconds": 1.1,
           "files": [{"path": "/srv/data/a.txt", "size": 6, "sha256": "5891b5b5...", "snapshot_sha256": "5891b5b5...",
                      "source_sha256": "5891b5b5...", "match": true}]}
seconds:
  description: Wall time of the verification.
  returned: always
  type: float
  sample: 6.3
stale_locks_removed:
  description: Locks left by killed runs on this host and removed by this one.
  returned: success
  type: list
  elements: dict
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._restic import (
    REPOSITORY_MUTUALLY_EXCLUSIVE, REPOSITORY_REQUIRED_ONE_OF, repository_argument_spec, repository_from_params,
)
from ansible_collections.sre.ops.plugins.module_utils._verify import VerifyManager


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **repository_argument_spec(),
            "check": {"type": "bool", "default": True},
            "read_data": {"type": "bool", "default": False},
            "read_data_subset": {"type": "str"},
            "sample_files": {"type": "int", "default": 5},
            "sample_max_bytes": {"type": "int", "default": 256 << 20},
            "snapshot": {"type": "str", "default": "latest"},
            "host": {"type": "str"},
            "tags": {"type": "list", "elements": "str", "default": []},
            "scratch_dir": {"type": "path"},
            "seed": {"type": "int"},
        },
        mutually_exclusive=[("read_data", "read_data_subset"), *REPOSITORY_MUTUALLY_EXCLUSIVE],
        required_one_of=REPOSITORY_REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    p = module.params
    try:
        if p["sample_files"] < 0:
            module.fail_json(msg=f"sample_files must be 0 or more, got {p['sample_files']}")
        result = VerifyManager(
            repository_from_params(p), check=p["check"], read_data=p["read_data"], read_data_subset=p["read_data_subset"],
            sample_files=p["sample_files"], sample_max_bytes=p["sample_max_bytes"], snapshot=p["snapshot"], host=p["host"],
            tags=p["tags"], scratch_dir=p["scratch_dir"], seed=p["seed"],
        ).run()
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg, **exc.details.get("result", {}))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
