#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: backup
short_description: Back up paths or a consistent database dump into a restic repository, with an RPO guard and a dry-run preview
version_added: 0.1.0
description:
  - Runs C(restic backup) on the managed host for O(paths) (with O(exclude), O(exclude_file), O(one_file_system)), or for a
    database (O(database)) - PostgreSQL with C(pg_dump --format=custom) and MariaDB/MySQL with C(--single-transaction),
    both streamed into C(restic backup --stdin) so no dump file is written to disk; SQLite through Python's online backup
    API, with C(PRAGMA integrity_check) on the copy before it is stored.
  - restic's stdin is closed only after the dump tool exited successfully; if the dump fails (for example the database
    refuses the login), restic is interrupted first, so it writes no snapshot, and the task fails naming the dump tool's error.
  - With O(min_interval) (the RPO guard), a run within that interval of the newest matching snapshot (same host, tags and
    paths) takes no new snapshot and reports V(ok), so a playbook rerun is idempotent. Without it every run adds a snapshot.
  - With O(init=true) a missing repository is initialised (repository format 2, which compresses). restic cannot
    initialise one repository from several hosts at the same moment (the loser leaves a key that does not open it), so
    a local repository is initialised in a temporary directory and renamed into place, and a shared remote repository
    should be initialised from one host first - O(init=true) without O(paths) or O(database) does only that.
  - A run killed at any moment (C(SIGKILL), power loss) leaves the repository consistent (restic writes data, then index,
    then snapshot); the next run on the same host notices the killed run and removes its stale lock, saying so in
    RV(stale_locks_removed) and RV(notes).
  - The C(sre.ops.backup) role installs restic, the password file and a schedule that runs this same code.
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
  - sre.ops._restic
attributes:
  check_mode:
    support: full
    details:
      - Runs C(restic backup --dry-run) (for a database, the dump too) and reports the files and bytes that would be added.
      - A repository that does not exist yet is reported as to be initialised; nothing is written.
  diff_mode:
    support: full
    details:
      - The new snapshot's counts of new, changed and unmodified files and the bytes added.
  idempotent:
    support: partial
    details:
      - Idempotent with O(min_interval); without it every run takes a new snapshot.
options:
  paths:
    description:
      - Files and directories to back up (absolute paths on the managed host). Give this or O(database), or neither with
        O(init=true) to only initialise the repository (what the role does, one host at a time, for a shared repository).
    type: list
    elements: path
  exclude:
    description: restic C(--exclude) patterns.
    type: list
    elements: str
    default: []
  exclude_file:
    description: Files of exclude patterns on the managed host (restic C(--exclude-file)).
    type: list
    elements: path
    default: []
  one_file_system:
    description: Do not cross file system boundaries (restic C(--one-file-system)).
    type: bool
    default: false
  tags:
    description: Tags recorded on the snapshot; O(min_interval) looks only at snapshots carrying all of them.
    type: list
    elements: str
    default: []
  host:
    description: The host name recorded in the snapshot. Defaults to the managed host's name.
    type: str
  database:
    description: Back up a database instead of O(paths).
    type: dict
    suboptions:
      type:
        description: The database engine.
        type: str
        required: true
        choices: [postgresql, mysql, sqlite]
      name:
        description: Database to dump (PostgreSQL, MariaDB/MySQL).
        type: str
      path:
        description: The SQLite database file.
        type: path
      host:
        description:
          - Server host name, or the directory of its Unix socket (PostgreSQL), or the socket file (MariaDB/MySQL, a path starting with C(/)).
        type: str
      port:
        description: Server port.
        type: int
      user:
        description: Database user.
        type: str
      password:
        description:
          - Database password, given to the dump tool through C(PGPASSWORD) or a mode-0600 option file, never its command line.
        type: str
      os_user:
        description: Run the dump tool as this operating-system user, for example V(postgres) for peer authentication.
        type: str
      stdin_filename:
        description: The file name the dump gets in the snapshot. Defaults to C(NAME.pgdump), C(NAME.sql) or the SQLite file's name.
        type: str
      dump_command:
        description: The dump tool (default C(pg_dump); C(mariadb-dump) or C(mysqldump)).
        type: path
      dump_extra_args:
        description: Extra arguments for the dump tool.
        type: list
        elements: str
        default: []
  min_interval:
    description:
      - The RPO guard. If the newest snapshot with this host, these tags and these paths is younger than this, no backup is
        taken and the task is V(ok). Seconds, or V(30m), V(6h), V(1d). Costs one extra restic process (the snapshot list).
    type: raw
  init:
    description: Initialise the repository if it does not exist.
    type: bool
    default: false
  compression:
    description:
      - restic's compression mode for the data this run writes. The default, V(auto), was the best trade-off measured on
        both benchmark trees (see C(docs/backup.md)).
    type: str
    choices: [auto, "off", max]
    default: auto
  pack_size:
    description: Target pack size in MiB (restic C(--pack-size)). The default, 16, is restic's; see C(docs/backup.md) for the measurements.
    type: int
    default: 16
  extra_args:
    description: Further arguments for C(restic backup).
    type: list
    elements: str
    default: []
  name:
    description: A name for this backup, the C(backup) label of the metrics O(metrics_dir) receives.
    type: str
  metrics_dir:
    description:
      - Write C(sreops_backup_NAME.prom) into this directory for node_exporter's textfile collector (written atomically),
        with C(sreops_backup_last_success_timestamp_seconds), C(sreops_backup_duration_seconds) and more. A failed run sets
        C(sreops_backup_last_run_success) to 0 and keeps the last success's figures. Needs O(name).
    type: path
seealso:
  - module: sre.ops.backup_retention
  - module: sre.ops.backup_verify
  - module: sre.ops.backup_info
  - module: sre.ops.restore
"""

EXAMPLES = r"""
---
- name: Back up the application data to the backup host over SFTP, at most once an hour
  sre.ops.backup:
    repository: "sftp:backup@backup1.example.com:/srv/restic/{{ inventory_hostname }}"
    password_file: /etc/sre-ops/backup/app.pass
    paths: [/srv/app/shared, /etc/app]
    exclude: ["*.tmp", /srv/app/shared/cache]
    tags: [app]
    min_interval: 1h
    init: true

- name: Dump PostgreSQL database "orders" into the repository, as the postgres user over the local socket
  sre.ops.backup:
    repository: /var/backups/restic
    password: "{{ vault_restic_password }}"
    database:
      type: postgresql
      name: orders
      os_user: postgres
    tags: [db, orders]
    name: orders
    metrics_dir: /var/lib/prometheus/node-exporter
"""

RETURN = r"""
snapshot_id:
  description:
    - The new snapshot's id as restic reports it (restic 0.14 reports the short form); null in check mode.
    - When O(min_interval) holds, the id of the newest matching snapshot.
  returned: always
  type: str
  sample: "5934771a"
short_id:
  description: The first 8 characters of RV(snapshot_id).
  returned: success
  type: str
  sample: "5934771a"
initialised:
  description: Whether the repository was (or in check mode would be) initialised.
  returned: when a backup ran
  type: bool
  sample: false
files_new:
  description: Files new in this snapshot (would be, in check mode).
  returned: when a backup ran
  type: int
  sample: 120
files_changed:
  description: Files changed since the parent snapshot.
  returned: when a backup ran
  type: int
  sample: 3
files_unmodified:
  description: Files unchanged since the parent snapshot.
  returned: when a backup ran
  type: int
  sample: 99877
data_added:
  description: Bytes added to the repository (would be, in check mode).
  returned: when a backup ran
  type: int
  sample: 1048576
total_files_processed:
  description: Files read.
  returned: when a backup ran
  type: int
  sample: 100000
total_bytes_processed:
  description: Bytes read.
  returned: when a backup ran
  type: int
  sample: 875707523
duration:
  description: restic's own duration of the backup, in seconds.
  returned: when a backup ran
  type: float
  sample: 12.8
wall_seconds:
  description: The task's wall time on the host, in seconds.
  returned: when a backup ran
  type: float
  sample: 13.1
skipped_reason:
  description: Why no backup was taken (O(min_interval)).
  returned: when O(min_interval) held
  type: str
  sample: "the newest snapshot 5934771a is 1200s old, younger than min_interval"
age_seconds:
  description: Age of the newest matching snapshot when O(min_interval) held.
  returned: when O(min_interval) held
  type: float
  sample: 1200.5
partial:
  description: restic could not read some files (exit status 3); the snapshot exists but is incomplete, and the task fails.
  returned: when it happened
  type: bool
  sample: true
stale_locks_removed:
  description: Locks left on the repository by killed runs on this host and removed by this one.
  returned: always
  type: list
  elements: dict
  sample: [{"id": "f6bd8375...", "pid": 15190, "hostname": "web1", "exclusive": false, "created": "2026-12-03T07:49:47Z"}]
notes:
  description: Remarks, for example that an earlier run was killed and what was cleaned up.
  returned: always
  type: list
  elements: str
  sample: ["an earlier backup run (PID 4242) on this host was killed before it finished"]
repository:
  description: The repository, with any password in its URL hidden.
  returned: always
  type: str
  sample: "sftp:backup@backup1:/srv/restic/web1"
paths:
  description: The paths recorded in the snapshot (a database dump is recorded as C(/FILE)).
  returned: always
  type: list
  elements: str
  sample: ["/srv/app/shared"]
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._backup import BackupManager, database_argument_spec
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError, SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._restic import (
    REPOSITORY_MUTUALLY_EXCLUSIVE, REPOSITORY_REQUIRED_ONE_OF, freeze_for_exit, repository_argument_spec, repository_from_params,
)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            **repository_argument_spec(),
            "paths": {"type": "list", "elements": "path"},
            "exclude": {"type": "list", "elements": "str", "default": []},
            "exclude_file": {"type": "list", "elements": "path", "default": []},
            "one_file_system": {"type": "bool", "default": False},
            "tags": {"type": "list", "elements": "str", "default": []},
            "host": {"type": "str"},
            "database": {"type": "dict", "options": database_argument_spec(),
                         "required_if": [("type", "sqlite", ["path"]), ("type", "postgresql", ["name"]), ("type", "mysql", ["name"])]},
            "min_interval": {"type": "raw"},
            "init": {"type": "bool", "default": False},
            "compression": {"type": "str", "choices": ["auto", "off", "max"], "default": "auto"},
            "pack_size": {"type": "int", "default": 16},
            "extra_args": {"type": "list", "elements": "str", "default": []},
            "name": {"type": "str"},
            "metrics_dir": {"type": "path"},
        },
        mutually_exclusive=[("paths", "database"), *REPOSITORY_MUTUALLY_EXCLUSIVE],
        required_one_of=REPOSITORY_REQUIRED_ONE_OF,
        required_by={"metrics_dir": ("name",)},
        supports_check_mode=True,
    )
    p = module.params
    manager = None
    try:
        manager = BackupManager(
            repository_from_params(p), paths=p["paths"], database=p["database"], exclude=p["exclude"], exclude_file=p["exclude_file"],
            one_file_system=p["one_file_system"], tags=p["tags"], host=p["host"], min_interval=p["min_interval"], init=p["init"],
            compression=p["compression"], pack_size=p["pack_size"], extra_args=p["extra_args"], check_mode=module.check_mode,
            metrics_dir=p["metrics_dir"], name=p["name"],
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
