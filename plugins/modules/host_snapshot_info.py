#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: host_snapshot_info
short_description: Read a stored host snapshot, or the parts of it a fleet comparison asks for
version_added: 0.1.0
description:
  - Reads the snapshot M(sre.ops.host_snapshot) stored at O(path) and returns its summary (per-facet digests and counts,
    per file path the Merkle digest) and, when asked, a facet's items (O(facets)), the directory digests of file paths
    (O(roots)) or the entries of directories (O(dirs)), with portable attributes only (no inode numbers or times).
  - M(sre.ops.drift_compare) plans these requests so that each distinct content crosses the network once.
  - Read-only; it runs in full in check mode. A missing snapshot gives RV(exists=false).
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Read-only. It reads the stored snapshot in check mode too.
  diff_mode:
    support: none
    details:
      - Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
options:
  path:
    description: The stored snapshot.
    type: path
    default: /var/lib/sre-ops/drift/baseline.json.gz
  facets:
    description: Facets whose items to return in RV(items) (not V(files); use O(roots) and O(dirs) for files).
    type: list
    elements: str
    default: []
  facet_buckets:
    description: Facets whose 64 bucket digests (items grouped by a hash of their key) to return in RV(buckets).
    type: list
    elements: str
    default: []
  buckets:
    description: Per facet, the buckets whose items to return in RV(bucket_items).
    type: dict
    default: {}
  roots:
    description: File paths (as in the snapshot's C(files) rules) whose directory digests to return in RV(trees).
    type: list
    elements: str
    default: []
  dirs:
    description: Directories whose entries to return in RV(entries).
    type: list
    elements: str
    default: []
  full:
    description: Return the whole snapshot in RV(snapshot).
    type: bool
    default: false
seealso:
  - module: sre.ops.host_snapshot
  - module: sre.ops.drift_compare
"""

EXAMPLES = r"""
---
- name: When was the baseline taken, and what does it hold
  sre.ops.host_snapshot_info:
  register: baseline

- name: The packages of the stored snapshot
  sre.ops.host_snapshot_info:
    facets: [packages]
  register: stored
"""

RETURN = r"""
exists:
  description: Whether a snapshot is stored at O(path).
  returned: always
  type: bool
  sample: true
path:
  description: The snapshot read.
  returned: always
  type: str
  sample: /var/lib/sre-ops/drift/baseline.json.gz
summary:
  description: Per-facet digests, counts and statuses, and per file path the Merkle digest.
  returned: RV(exists)
  type: dict
  sample: {"taken_at": "2026-12-03T08:00:00Z", "host": "web1", "facets": {"users": {"digest": "99fd...", "count": 27, "status": "ok"}},
           "roots": {"/etc": "9c00d940..."}}
acceptances:
  description: Who accepted drift into this baseline, when and why (newest last).
  returned: RV(exists)
  type: list
  elements: dict
  sample: [{"at": "2026-12-04T09:00:00Z", "by": "alice", "reason": "CHG-1234 sshd hardening", "counts": {"total": 3}}]
items:
  description: The items of each facet in O(facets).
  returned: RV(exists) and O(facets) is not empty
  type: dict
  sample: {"users": {"root": {"uid": 0, "gid": 0, "gecos": "root", "home": "/root", "shell": "/bin/bash"}}}
buckets:
  description: For each facet in O(facet_buckets), bucket -> digest of its items (first 16 hex digits).
  returned: RV(exists) and O(facet_buckets) is not empty
  type: dict
  sample: {"sysctl": {"00": "5b1e0c77a9d3f214", "01": "c2aa10e4f7b86d35"}}
bucket_items:
  description: For each facet in O(buckets), the items of the buckets asked for.
  returned: RV(exists) and O(buckets) is not empty
  type: dict
  sample: {"sysctl": {"vm.swappiness": {"value": "60"}}}
trees:
  description:
    - For each path in O(roots) - its own entry (portable attribute values), the names of those attributes, and each directory's
      digest (first 16 hex digits) over its entries.
  returned: RV(exists) and O(roots) is not empty
  type: dict
  sample: {"/etc": {"entry": ["d", 493, 0, 0, 0, null, null], "attributes": ["type", "mode", "uid", "gid", "size", "target", "sha256"],
                    "dirs": {"/etc": "4f1c9a0b7d2e8a11"}}}
entries:
  description: For each directory in O(dirs), its entries as lists - the name, then the values of the attributes of RV(trees).
  returned: RV(exists) and O(dirs) is not empty
  type: dict
  sample: {"/etc/ssh": [["sshd_config", "f", 420, 0, 0, 3301, null, "1a2b..."]]}
snapshot:
  description: The whole snapshot document.
  returned: RV(exists) and O(full=true)
  type: dict
  sample: {"format": "sre.ops.snapshot", "format_version": 1, "facets": {}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._drift import snapshot_info
from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._snapshot import DEFAULT_PATH


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": DEFAULT_PATH},
            "facets": {"type": "list", "elements": "str", "default": []},
            "facet_buckets": {"type": "list", "elements": "str", "default": []},
            "buckets": {"type": "dict", "default": {}},
            "roots": {"type": "list", "elements": "str", "default": []},
            "dirs": {"type": "list", "elements": "str", "default": []},
            "full": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    p = module.params
    try:
        buckets = p["buckets"]
        if not all(isinstance(v, list) and all(isinstance(b, str) for b in v) for v in buckets.values()):
            module.fail_json(msg="buckets must map facet names to lists of bucket names, e.g. {sysctl: ['00', '3f']}")
        result = snapshot_info(p["path"], p["facets"], p["facet_buckets"], buckets, p["roots"], p["dirs"], full=p["full"])
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
