#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: restore
short_description: Restore a restic snapshot with a preview, never leaving a half-restored target; databases and restore drills too
version_added: 0.1.0
description:
  - Restores O(path) of a snapshot (V(latest) or an id; narrowed by O(host) and O(tags)) to O(target) on the managed host.
  - B(Preview.) It compares the snapshot's listing with the target tree and returns RV(preview) - files to create, to
    overwrite (content differs), whose metadata only differs, unchanged, newer in the target than in the snapshot, and
    present only in the target (what a restore would lose with O(delete=true), or leave). Files of equal size and mtime
    count as unchanged (as for restic and rsync); files of equal size and another mtime are compared by content. With
    C(--check) this is the preview restic 0.14 lacks; C(--diff) prints it.
  - B(Never half-restored.) The snapshot is restored into a directory beside the target, checked against the listing
    (and, with O(verify), by restic against the snapshot's content hashes), given what the policy keeps from the
    target (hard links), and swapped with the target by rename - atomically where the kernel has C(RENAME_EXCHANGE).
    A run killed at any point leaves the old target or the complete new one; the next run removes the leftovers.
  - B(Newer files.) A file in the target newer than the snapshot's copy is not overwritten unless O(overwrite=always);
    with the default O(overwrite=if-changed) the task refuses and changes nothing; O(overwrite=if-newer) keeps them.
  - B(Databases.) O(database) restores a dump taken by M(sre.ops.backup) - PostgreSQL with C(pg_restore) into a new
    database that is renamed into place (C(ALTER DATABASE RENAME)); MariaDB/MySQL into a new database, marked in progress
    until complete; SQLite by checking a restored copy with C(PRAGMA integrity_check) and renaming it over the file.
  - B(Drills.) O(expect_checksums), O(probe_sql)/O(probe_expect) and O(probe_command) check what was restored;
    RV(rto_seconds) is the measured recovery time (restore, verify, probes) and RV(data_age_seconds) the age of the data
    (the recovery point met). O(metrics_dir) writes them for node_exporter; O(remove_after) cleans a scratch restore up.
  - A restore into the source of a backup running on the host is refused.
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
  - sre.ops._restic
attributes:
  check_mode:
    support: full
    details:
      - Returns the preview and changes nothing on the target; files of equal size but another mtime are restored into a
        temporary directory to compare their content, and that directory is removed.
  diff_mode:
    support: full
    details:
      - One line per path to create, overwrite, delete, keep or refuse.
  idempotent:
    support: partial
    details:
      - File and SQLite restores are idempotent; a PostgreSQL or MariaDB/MySQL restore replaces the database each run.
options:
  snapshot:
    description: The snapshot - an id, an id prefix, or V(latest).
    type: str
    default: latest
  host:
    description: For V(latest), only snapshots of this host (restore another host's data by naming it).
    type: str
  tags:
    description: For V(latest), only snapshots with all these tags.
    type: list
    elements: str
    default: []
  path:
    description:
      - The path inside the snapshot to restore (a directory or a file). Defaults to the snapshot's path when it has one.
      - For a database, the dump's file in the snapshot (default the snapshot's only path).
    type: str
  target:
    description:
      - Where O(path) goes. Defaults to O(path) itself (restore in place). Its parent directory is created if missing.
      - For SQLite, the database file (default O(database.path)). Not used for PostgreSQL and MariaDB/MySQL.
    type: path
  include:
    description:
      - Only restore paths (relative to O(path)) matching one of these glob patterns; a pattern without C(/) matches any one
        name, and a matching directory brings its content. Paths the patterns leave out are left as they are in the target.
    type: list
    elements: str
    default: []
  exclude:
    description: Do not restore paths matching these glob patterns (same rules as O(include)).
    type: list
    elements: str
    default: []
  delete:
    description: Remove files in the target that are not in the snapshot (within O(include)/O(exclude)).
    type: bool
    default: false
  overwrite:
    description:
      - V(if-changed) replaces files whose content or metadata differs, and refuses (changing nothing) when a differing file
        in the target is newer than the snapshot's copy.
      - V(always) replaces every differing file, newer ones too.
      - V(if-newer) replaces a differing file only when the snapshot's copy is newer, keeping newer target files.
      - V(never) only creates what is missing.
      - For PostgreSQL and MariaDB/MySQL, an existing database is replaced only with V(always).
    type: str
    choices: [always, if-changed, if-newer, never]
    default: if-changed
  verify:
    description: Have restic verify the restored files' content against the snapshot (C(restic restore --verify)).
    type: bool
    default: true
  database:
    description: Restore a database dump instead of files.
    type: dict
    suboptions:
      type:
        description: The database engine.
        type: str
        required: true
        choices: [postgresql, mysql, sqlite]
      name:
        description: The database the dump came from; the default for O(database.target_name).
        type: str
      target_name:
        description: The database to restore into (PostgreSQL, MariaDB/MySQL), for example a scratch name for a drill.
        type: str
      path:
        description: The SQLite file (default for O(target)).
        type: path
      host:
        description: Server host, socket directory (PostgreSQL) or socket file (MariaDB/MySQL).
        type: str
      port:
        description: Server port.
        type: int
      user:
        description: Database user.
        type: str
      password:
        description: Database password (given through the environment or a mode-0600 option file).
        type: str
      os_user:
        description: Run the client tools as this operating-system user, for example V(postgres).
        type: str
      stdin_filename:
        description: Unused for restores; accepted so the same dictionary serves M(sre.ops.backup).
        type: str
      client_command:
        description: C(psql), or C(mariadb)/C(mysql).
        type: path
      restore_command:
        description: C(pg_restore).
        type: path
      maintenance_db:
        description: PostgreSQL database to connect to for C(CREATE)/C(ALTER DATABASE) (default V(postgres)).
        type: str
  expect_checksums:
    description: Restored files (relative to the target) and the sha256 each must have; a drill probe.
    type: dict
    default: {}
  probe_sql:
    description: A query to run on the restored database (or SQLite file); its output is returned in RV(probe).
    type: str
  probe_expect:
    description: The output O(probe_sql) must give (rows separated by newlines, columns by C(|)).
    type: str
  probe_command:
    description:
      - A command (argv list) run after the restore, in the restored directory, with C(SREOPS_RESTORED) set to the target;
        exit status 0 passes. For example a start-up check of the application on the restored data.
    type: list
    elements: str
  remove_after:
    description: Remove what was restored after the probes - for drills into a scratch target.
    type: bool
    default: false
  name:
    description: A name for this restore or drill, the C(backup) label of the metrics.
    type: str
  metrics_dir:
    description:
      - Write C(sreops_restore_drill_NAME.prom) into this directory for node_exporter's textfile collector, with
        C(sreops_restore_drill_rto_seconds), C(sreops_restore_drill_data_age_seconds) and more. Needs O(name).
    type: path
  preview_limit:
    description: At most this many paths per kind in RV(preview) and the diff (the counts are always complete).
    type: int
    default: 100
seealso:
  - module: sre.ops.backup
  - module: sre.ops.backup_verify
"""

EXAMPLES = r"""
---
- name: Preview restoring yesterday's snapshot of /srv/app/shared in place (run with --check --diff)
  sre.ops.restore:
    repository: /var/backups/restic
    password_file: /etc/sre-ops/backup/app.pass
    snapshot: 5934771a
    path: /srv/app/shared
  check_mode: true
  register: preview

- name: Restore it, keeping files that changed since
  sre.ops.restore:
    repository: /var/backups/restic
    password_file: /etc/sre-ops/backup/app.pass
    snapshot: 5934771a
    path: /srv/app/shared
    overwrite: if-newer

- name: Drill - restore the latest orders dump into a scratch database, query it, drop it, record the RTO
  sre.ops.restore:
    repository: /var/backups/restic
    password_file: /etc/sre-ops/backup/app.pass
    tags: [orders]
    database:
      type: postgresql
      name: orders
      target_name: orders_drill
      os_user: postgres
    probe_sql: SELECT count(*) > 0 FROM orders
    probe_expect: "t"
    remove_after: true
    name: orders
    metrics_dir: /var/lib/prometheus/node-exporter
"""

RETURN = r"""
snapshot_id:
  description: The snapshot restored (full id).
  returned: success
  type: str
  sample: "5934771ac9d9ae8213a93ab7c5c37c0ca298ce80beeb319b5298b3f2bc4ee5ac"
snapshot_time:
  description: When the snapshot was taken.
  returned: success
  type: str
  sample: "2026-12-03T07:46:23.117909062Z"
data_age_seconds:
  description: Age of the snapshot's data at restore time - the recovery point a restore now would meet.
  returned: success
  type: float
  sample: 3600.4
path:
  description: The path inside the snapshot that was restored.
  returned: success
  type: str
  sample: /srv/app/shared
target:
  description: Where it was restored.
  returned: for file and SQLite restores
  type: str
  sample: /srv/app/shared
database:
  description: The database restored into.
  returned: for PostgreSQL and MariaDB/MySQL restores
  type: str
  sample: orders_drill
preview:
  description:
    - What the restore does (did) to the target - paths to create, overwrite, metadata-only, newer in the target, only in
      the target (extra), kept from the target; the counts of each; bytes; and what happens to newer and extra files.
  returned: for file restores
  type: dict
  sample: {"create": ["new.txt"], "overwrite": ["config.json"], "metadata": [], "newer": ["notes.md"], "extra": ["local.tmp"],
           "kept": ["notes.md"], "counts": {"create": 1, "overwrite": 1, "metadata": 0, "unchanged": 99997, "newer": 1, "extra": 1},
           "bytes": {"create": 812, "overwrite": 4096}, "newer_files": "kept", "extra_files": "left in place", "limit": 100}
switched:
  description: Whether the restored tree was switched in.
  returned: for file restores
  type: bool
  sample: true
restored_files:
  description: Regular files the restore covers.
  returned: success
  type: int
  sample: 100000
restored_bytes:
  description: Bytes of those files.
  returned: success
  type: int
  sample: 875707523
probe:
  description: Results of O(expect_checksums), O(probe_sql) and O(probe_command).
  returned: when a probe ran
  type: dict
  sample: {"sql": {"query": "SELECT count(*) FROM orders", "output": "1200"}}
rto_seconds:
  description: Measured recovery time - from the start of the task to the end of the probes.
  returned: when not in check mode
  type: float
  sample: 12.4
stale_locks_removed:
  description: Locks left by killed runs on this host and removed by this one.
  returned: success
  type: list
  elements: dict
  sample: []
notes:
  description: Remarks, such as leftovers of an interrupted restore that were removed.
  returned: success
  type: list
  elements: str
  sample: []
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._backup import database_argument_spec
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError, SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._restic import (
    REPOSITORY_MUTUALLY_EXCLUSIVE, REPOSITORY_REQUIRED_ONE_OF, freeze_for_exit, repository_argument_spec, repository_from_params,
)
from ansible_collections.sre.ops.plugins.module_utils._restore import OVERWRITE, RestoreManager


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **repository_argument_spec(),
            "snapshot": {"type": "str", "default": "latest"},
            "host": {"type": "str"},
            "tags": {"type": "list", "elements": "str", "default": []},
            "path": {"type": "str"},
            "target": {"type": "path"},
            "include": {"type": "list", "elements": "str", "default": []},
            "exclude": {"type": "list", "elements": "str", "default": []},
            "delete": {"type": "bool", "default": False},
            "overwrite": {"type": "str", "choices": list(OVERWRITE), "default": "if-changed"},
            "verify": {"type": "bool", "default": True},
            "database": {"type": "dict", "options": database_argument_spec(restore=True)},
            "expect_checksums": {"type": "dict", "default": {}},
            "probe_sql": {"type": "str"},
            "probe_expect": {"type": "str"},
            "probe_command": {"type": "list", "elements": "str"},
            "remove_after": {"type": "bool", "default": False},
            "name": {"type": "str"},
            "metrics_dir": {"type": "path"},
            "preview_limit": {"type": "int", "default": 100},
        },
        mutually_exclusive=REPOSITORY_MUTUALLY_EXCLUSIVE,
        required_one_of=REPOSITORY_REQUIRED_ONE_OF,
        required_by={"metrics_dir": ("name",), "probe_expect": ("probe_sql",), "probe_sql": ("database",)},
        supports_check_mode=True,
    )
    p = module.params
    manager = None
    try:
        manager = RestoreManager(
            repository_from_params(p), snapshot=p["snapshot"], host=p["host"], tags=p["tags"], path=p["path"], target=p["target"],
            include=p["include"], exclude=p["exclude"], delete=p["delete"], overwrite=p["overwrite"], verify=p["verify"],
            database=p["database"], probe_command=p["probe_command"], probe_sql=p["probe_sql"], probe_expect=p["probe_expect"],
            expect_checksums=p["expect_checksums"], remove_after=p["remove_after"], metrics_dir=p["metrics_dir"], name=p["name"],
            preview_limit=p["preview_limit"], check_mode=module.check_mode,
        )
        result = manager.run()
    except SreOpsError as exc:
        if manager is not None and not isinstance(exc, InvalidInputError):
            manager.record_failure()
        module.fail_json(msg=exc.msg, **exc.details.get("result", {}))
    freeze_for_exit()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
