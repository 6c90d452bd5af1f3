#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: host_snapshot
short_description: Take a normalized snapshot of a host (files, packages, services, sockets, users, ...) and store it as its baseline
version_added: 0.1.0
description:
  - Records the host in the O(facets) you select and stores the result on the host at O(path), compressed (gzip JSON with a
    format version), written to a temporary file and renamed into place, readable by root only. M(sre.ops.drift) later
    compares the host with it; M(sre.ops.host_snapshot_info) and M(sre.ops.drift_compare) compare hosts with each other.
  - The C(files) facet walks the paths of O(files) with AIDE-like attribute sets (type, mode, inode, link count, uid/gid,
    size, mtime, ctime, link target, sha256, and V(growing) for append-only logs) and include/exclude globs. Each
    directory gets a digest over its entries and a Merkle digest over everything below it.
  - A file is re-hashed only when its inode, size, mtime or ctime differ from the stored snapshot's (ctime cannot be set
    back, so a content change with the mtime restored is still caught). Directories are scanned by as many processes
    as the host has cores (the module's own and forked workers; up to 8, or O(workers)); where worker processes cannot be
    started, the module's process does it alone.
  - Files that vanish during the walk, unreadable files, symlink loops, sockets and FIFOs (never opened) and names that
    are not UTF-8 are listed in RV(issues), never a failure. Pseudo filesystems (proc, sysfs, cgroup, ...) mounted below a
    path are not descended into.
  - Facets the host cannot provide (no systemd, neither dpkg nor rpm, no C(/proc/modules)) are stored with a status
    saying so (V(unavailable) or V(partial)) instead of failing.
  - The module returns per-facet digests and counts; the full snapshot only with O(return_snapshot=true).
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
  - sre.ops._snapshot
attributes:
  check_mode:
    support: full
    details:
      - Takes the snapshot and reports whether the stored one would change, writing nothing (no lock file either).
  diff_mode:
    support: full
    details:
      - Per-facet counts and digests before and after, and the items that differ from the stored snapshot.
  idempotent:
    support: full
    details:
      - The snapshot is rewritten only when something it records differs from the stored one.
options:
  path:
    description:
      - Where the snapshot is stored on the host. Its directory is created (mode V(0700)) if missing.
      - The default lives under C(/var/lib/sre-ops/drift/). Use one path per purpose, for example the baseline and a
        separate one for fleet comparisons.
    type: path
    default: /var/lib/sre-ops/drift/baseline.json.gz
  state:
    description:
      - V(present) takes a snapshot and stores it unless it equals the stored one.
      - V(absent) removes the stored snapshot.
    type: str
    choices: [present, absent]
    default: present
  facets:
    description: What to record.
    type: list
    elements: str
    choices: [files, packages, services, sysctl, listening, users, groups, cron, mounts, kernel_modules]
    default: [files, packages, services, sysctl, listening, users, groups, cron, mounts, kernel_modules]
  files:
    description:
      - The paths the C(files) facet records. When a path lies inside another, the deeper rule governs its subtree.
      - Without this option, C(/etc), C(/usr/local/bin) and C(/usr/local/sbin) with all attributes.
    type: list
    elements: dict
    suboptions:
      path:
        description: An absolute path (a directory is walked recursively).
        type: path
        required: true
      attributes:
        description:
          - Attributes to compare. Presets - V(all) (every attribute), V(content) (type, mode, uid, gid, size, target and sha256,
            what two hosts can share), V(permissions) (type, mode, uid, gid, target), V(growing) (for logs - the file may
            grow as long as its old content is unchanged; inode changes still count).
          - Single attributes - V(type), V(mode), V(uid), V(gid), V(size), V(mtime), V(ctime), V(inode), V(nlink),
            V(target), V(sha256), V(growing). Presets and attributes can be mixed.
        type: list
        elements: str
        default: [all]
      exclude:
        description:
          - Glob patterns of entries to leave out (an excluded directory is not walked). A pattern with a C(/) matches the
            whole path (its C(*) also matches C(/)), any other pattern matches the name.
        type: list
        elements: str
        default: []
      include:
        description: When given, only entries matching one of these patterns are recorded (directories are still walked).
        type: list
        elements: str
        default: []
      one_file_system:
        description: Do not descend into directories on another filesystem than the path's.
        type: bool
        default: false
  sysctl_exclude:
    description:
      - Glob patterns of sysctl keys to leave out, in addition to the keys whose values move by themselves
        (C(kernel.random.*), C(fs.file-nr), C(fs.dentry-state), ...).
    type: list
    elements: str
    default: []
  listening_owned_only:
    description:
      - Record only listening sockets held by a process visible on the host. Useful in containers and network namespaces
        shared between hosts, where sockets of other namespaces are visible without their processes.
    type: bool
    default: false
  overwrite:
    description:
      - When V(false), refuse to replace a stored snapshot the host no longer matches (review and accept drift with
        M(sre.ops.drift) instead); a missing snapshot is still created.
    type: bool
    default: true
  return_snapshot:
    description: Return the whole snapshot in RV(snapshot) (large for big trees).
    type: bool
    default: false
seealso:
  - module: sre.ops.drift
  - module: sre.ops.host_snapshot_info
  - module: sre.ops.drift_compare
"""

EXAMPLES = r"""
---
- name: Baseline of the web hosts
  sre.ops.host_snapshot:
    files:
      - path: /etc
        exclude: ["*.swp", /etc/ld.so.cache]
      - path: /srv/app
        attributes: [content]
      - path: /var/log/app/audit.log
        attributes: [growing]
    facets: [files, packages, services, listening, users, groups, cron]

- name: Only what the baseline would change, without writing it
  sre.ops.host_snapshot:
    overwrite: false
  check_mode: true
"""

RETURN = r"""
path:
  description: Where the snapshot is stored.
  returned: success
  type: str
  sample: /var/lib/sre-ops/drift/baseline.json.gz
taken_at:
  description: When the stored snapshot was taken (UTC). An unchanged snapshot keeps its time.
  returned: O(state=present)
  type: str
  sample: "2026-12-03T08:00:00Z"
format_version:
  description: The snapshot format version.
  returned: O(state=present)
  type: int
  sample: 1
summary:
  description:
    - Per facet its digest, item count, status (V(ok), V(partial), V(unavailable), V(error)) and a note, and per file
      path its Merkle digest. Equal digests mean equal content on two hosts (inode numbers and times are left out).
  returned: O(state=present)
  type: dict
  sample: {"taken_at": "2026-12-03T08:00:00Z", "host": "web1",
           "facets": {"packages": {"digest": "36a2c880...", "count": 758, "status": "ok", "note": "dpkg"}},
           "roots": {"/etc": "9c00d940..."}}
counts:
  description: Items per facet.
  returned: O(state=present)
  type: dict
  sample: {"files": 1520, "packages": 758, "users": 27}
issues:
  description: Files that vanished, could not be read, symlink loops, special files and non-UTF-8 names (counts, first 50).
  returned: O(state=present)
  type: dict
  sample: {"counts": {"special": 1}, "items": [{"path": "/etc/initctl", "kind": "special", "detail": "fifo: metadata only, never opened"}]}
duration_s:
  description: Seconds the snapshot took.
  returned: O(state=present)
  type: float
  sample: 0.82
workers:
  description: Processes that scanned the files (1 when worker processes were not available).
  returned: O(state=present)
  type: int
  sample: 2
bytes:
  description: Size of the compressed snapshot written (0 when nothing was written).
  returned: O(state=present)
  type: int
  sample: 6331685
notes:
  description: Remarks, for example that parallel scanning was not available or a corrupt snapshot was replaced.
  returned: O(state=present)
  type: list
  elements: str
  sample: []
snapshot:
  description: The whole snapshot document.
  returned: O(return_snapshot=true)
  type: dict
  sample: {"format": "sre.ops.snapshot", "format_version": 1, "facets": {}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._drift import SnapshotManager
from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._host_facets import ModuleRunner
from ansible_collections.sre.ops.plugins.module_utils._snapshot import DEFAULT_FILES, DEFAULT_PATH, FACETS, SCAN_SPEC, make_config


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": DEFAULT_PATH},
            "state": {"type": "str", "choices": ["present", "absent"], "default": "present"},
            "facets": {"type": "list", "elements": "str", "choices": list(FACETS), "default": list(FACETS)},
            "files": {"type": "list", "elements": "dict", "options": {
                "path": {"type": "path", "required": True},
                "attributes": {"type": "list", "elements": "str", "default": ["all"]},
                "exclude": {"type": "list", "elements": "str", "default": []},
                "include": {"type": "list", "elements": "str", "default": []},
                "one_file_system": {"type": "bool", "default": False},
            }},
            "sysctl_exclude": {"type": "list", "elements": "str", "default": []},
            "listening_owned_only": {"type": "bool", "default": False},
            "overwrite": {"type": "bool", "default": True},
            "return_snapshot": {"type": "bool", "default": False},
            **SCAN_SPEC,
        },
        supports_check_mode=True,
    )
    p = module.params
    if p["workers"] < 0:
        module.fail_json(msg=f"workers must be 0 (one per core) or more, got {p['workers']}")
    try:
        manager = SnapshotManager(p["path"], ModuleRunner(module), check_mode=module.check_mode, workers=p["workers"], trust_stat=p["trust_stat"],
                                  diff=module._diff)
        if p["state"] == "absent":
            result = manager.absent()
        else:
            config = make_config(p["facets"], p["files"] if p["files"] is not None else DEFAULT_FILES, p["sysctl_exclude"], p["listening_owned_only"])
            result = manager.present(config, overwrite=p["overwrite"], return_snapshot=p["return_snapshot"])
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
