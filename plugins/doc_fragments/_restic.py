# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private doc fragment: how sre.ops backup modules reach a restic repository
# (argument spec: module_utils._restic.repository_argument_spec).

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  repository:
    description:
      - The restic repository, as restic's C(-r) takes it - a local path such as V(/var/backups/restic), or
        V(sftp:user@backup-host:/srv/restic) (restic runs C(ssh) with the managed host's SSH configuration), or any other
        restic back end (V(rest:), V(s3:), ...).
      - A password inside a URL is never shown in results or messages.
    type: str
    required: true
  password:
    description:
      - The repository password. It reaches restic through its environment, never a command line.
      - Give this or O(password_file).
    type: str
  password_file:
    description:
      - A file on the managed host holding the repository password (mode V(0600); the M(sre.ops.backup) role writes it).
    type: path
  repository_options:
    description:
      - "Extended options passed as restic C(-o key=value), for example C(sftp.command: ssh -i /root/.ssh/backup backup@host -s sftp)."
    type: dict
    default: {}
  environment:
    description:
      - Extra environment for restic, such as back-end credentials (V(AWS_ACCESS_KEY_ID), V(B2_ACCOUNT_KEY)). Treated as secret.
    type: dict
    default: {}
  restic_binary:
    description: The restic executable.
    type: path
    default: restic
  cache_dir:
    description: restic's cache directory (C(RESTIC_CACHE_DIR)); restic's default is C(~/.cache/restic).
    type: path
  lock_wait:
    description:
      - How long to wait for a lock another process holds on the repository (seconds, or V(30s), V(5m), V(1h)).
      - Before waiting, locks taken on B(this) host by processes that no longer exist (a run that was killed) are removed,
        and the result says so in RV(stale_locks_removed). Locks of other hosts are left to those hosts.
    type: raw
    default: 60
notes:
  - Tested with restic 0.14.0 (Debian 12). restic derives the repository key from the password with scrypt in every
    process, which costs about half a second of CPU; the modules run as few restic processes as they can.
"""
