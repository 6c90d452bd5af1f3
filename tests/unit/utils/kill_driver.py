# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run one backup, retention or restore the way the module does, in its own process group, so a test can SIGKILL it.

Usage: python kill_driver.py '<json: {"op": ..., "repo": ..., "password": ..., "marker_dir": ..., "args": {...}}>'
Prints the result as JSON on success.
"""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.environ["SREOPS_COLLECTIONS_ROOT"])

from ansible_collections.sre.ops.plugins.module_utils._backup import BackupManager  # noqa: E402 pylint: disable=wrong-import-position
from ansible_collections.sre.ops.plugins.module_utils._restic import Repository, Runner  # noqa: E402 pylint: disable=wrong-import-position
from ansible_collections.sre.ops.plugins.module_utils._restore import RestoreManager  # noqa: E402 pylint: disable=wrong-import-position
from ansible_collections.sre.ops.plugins.module_utils._retention import RetentionManager  # noqa: E402 pylint: disable=wrong-import-position


def main() -> None:
    job = json.loads(sys.argv[1])
    repo = Repository(job["repo"], runner=Runner(), password=job["password"], lock_wait=job.get("lock_wait", 0))
    args = job.get("args", {})
    if job["op"] == "backup":
        result = BackupManager(repo, marker_dir=job["marker_dir"], **args).run()
    elif job["op"] == "retention":
        result = RetentionManager(repo, **args).run()
    else:
        result = RestoreManager(repo, marker_dir=job["marker_dir"], **args).run()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
