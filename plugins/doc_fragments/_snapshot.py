# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private doc fragment: how the modules that take a host snapshot scan files. Paired with SCAN_SPEC in
# plugins/module_utils/_snapshot.py.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  workers:
    description:
      - Processes that scan directories and hash files (the module's own and forked workers). V(0) uses one per core, at most 8;
        V(1) scans in the module's process alone.
    type: int
    default: 0
  trust_stat:
    description:
      - Reuse the stored sha256 of files whose inode, size, mtime and ctime have not changed. V(false) re-hashes every file
        (for example in an occasional run, where someone able to reset ctime is part of the threat model).
    type: bool
    default: true
"""
