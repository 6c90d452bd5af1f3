#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: release
short_description: Stage, activate, mark, roll back and remove application releases atomically, with a ledger
version_added: 0.1.0
description:
  - Manages an application root O(path) laid out as C(releases/<release>/), C(shared/) and a C(current) symlink,
    plus a ledger (C(ledger.json), written atomically) that records for each release its source checksum, when it was
    staged, activated and deactivated, and its outcome (V(good), V(failed), V(rolled_back) or V(unknown)).
  - A release is unpacked into a temporary directory and renamed into place, so a half-unpacked release is never
    visible; C(current) is switched by renaming a temporary symlink over it, so it always points at a complete release.
  - Archives are checked before anything is written - the O(checksum) first, then every member; members with
    absolute paths, C(..), links leading outside the release, device files or fifos refuse the whole archive.
  - Rollback reads the ledger and C(readlink current), never directory times. Without O(release) it goes to the good
    release that was most recently current; run again, it changes nothing.
  - Retention (O(keep_releases)) never removes the current release, the newest good release, or one listed in O(protect);
    unfinished stagings and interrupted removals are cleaned up first.
  - Killed at any point, the host keeps serving a complete release and the ledger stays readable; the next run
    completes or cleans up.
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports exactly what a real run would stage, switch and prune (archives are vetted too) and writes nothing.
  diff_mode:
    support: full
    details:
      - C(current) and the list of releases before and after.
  idempotent:
    support: full
options:
  path:
    description: The application root. Created if missing.
    type: path
    required: true
  release:
    description:
      - The release id, the same on every host of a rollout (letters, digits, C(.), C(_), C(+), C(-)).
      - Required for O(state=staged), O(state=active) and O(state=absent). For O(state=good) and O(state=failed)
        it defaults to the current release; for O(state=rolled_back) it names the release to go back to.
    type: str
  state:
    description:
      - V(staged) puts the release on the host without switching to it.
      - V(active) stages it if needed and makes it current, then applies O(keep_releases).
      - V(good) and V(failed) record the outcome of a release (the deploy role does this after its health gates).
      - V(rolled_back) makes O(release), or else the good release most recently current, current again; the release
        it moves off is recorded V(rolled_back) (unless already V(failed)).
      - V(absent) removes the release; refused for the current release, the newest good release and protected ones.
    type: str
    choices: [staged, active, good, failed, rolled_back, absent]
    default: active
  src:
    description:
      - The release's content on the managed host - a tar archive (plain, gzip, bzip2 or xz), a zip archive, or a directory.
      - Needed only when the release is not staged yet.
    type: path
  checksum:
    description: V(sha256:<hex>) of the O(src) archive, verified before anything is written.
    type: str
  shared_paths:
    description:
      - Paths inside the release that become links to the same path under C(shared/) (logs, uploads, local config).
        The first release to name a path seeds C(shared/) with its content.
    type: list
    elements: str
    default: []
  keep_releases:
    description: After activation, remove the oldest releases beyond this many. V(0) keeps every release.
    type: int
    default: 5
  protect:
    description: Releases that retention and O(state=absent) must never remove.
    type: list
    elements: str
    default: []
seealso:
  - module: sre.ops.release_info
"""

EXAMPLES = r"""
---
- name: Activate release 2026.11.27-1 on every host (the same id everywhere, also under serial)
  sre.ops.release:
    path: /srv/app
    release: "2026.11.27-1"
    src: /srv/app-artifacts/app-2026.11.27-1.tar.gz
    checksum: "sha256:{{ artifact_sha256 }}"
    shared_paths: [log, config/local.json]
    keep_releases: 5

- name: Record that it passed its health gate
  sre.ops.release:
    path: /srv/app
    state: good

- name: Roll back to the last good release
  sre.ops.release:
    path: /srv/app
    state: rolled_back
"""

RETURN = r"""
current:
  description: The release C(current) points at after the task (predicted in check mode).
  returned: always
  type: str
  sample: "2026.11.27-1"
previous:
  description: The release C(current) pointed at before, when the task switched it.
  returned: always
  type: str
  sample: "2026.11.26-3"
previous_good:
  description: The good release most recently current other than C(current), the target of the next rollback.
  returned: always
  type: str
  sample: "2026.11.26-3"
release:
  description: The release the task acted on.
  returned: always
  type: str
  sample: "2026.11.27-1"
releases:
  description: Releases on the host afterwards, oldest first.
  returned: always
  type: list
  elements: str
  sample: ["2026.11.26-3", "2026.11.27-1"]
staged:
  description: Whether the release was (or would be) unpacked by this task.
  returned: always
  type: bool
  sample: true
switched:
  description: Whether C(current) was (or would be) switched.
  returned: always
  type: bool
  sample: true
pruned:
  description: Releases removed (or that would be) by retention or O(state=absent).
  returned: always
  type: list
  elements: str
  sample: ["2026.11.20-1"]
leftovers_removed:
  description: Unfinished stagings and interrupted removals cleaned up.
  returned: when O(state) is V(staged) or V(active)
  type: list
  elements: str
  sample: [".staging-2026.11.27-1-x8a2"]
notes:
  description: Remarks on the prediction, for example that O(src) was not on the host yet in check mode.
  returned: always
  type: list
  elements: str
  sample: []
rolled_back_from:
  description: The release rolled back from.
  returned: when O(state=rolled_back) and the task switched
  type: str
  sample: "2026.11.27-1"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._release import ReleaseManager, check_release_id


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "release": {"type": "str"},
            "state": {"type": "str", "choices": ["staged", "active", "good", "failed", "rolled_back", "absent"], "default": "active"},
            "src": {"type": "path"},
            "checksum": {"type": "str"},
            "shared_paths": {"type": "list", "elements": "str", "default": []},
            "keep_releases": {"type": "int", "default": 5},
            "protect": {"type": "list", "elements": "str", "default": []},
        },
        required_if=[("state", "staged", ["release"]), ("state", "active", ["release"]), ("state", "absent", ["release"])],
        supports_check_mode=True,
    )
    p = module.params
    try:
        release = check_release_id(p["release"]) if p["release"] is not None else None
        if p["keep_releases"] < 0:
            module.fail_json(msg=f"keep_releases must be 0 (keep all) or more, got {p['keep_releases']}")
        manager = ReleaseManager(p["path"], check_mode=module.check_mode)
        if p["state"] == "staged":
            result = manager.stage(release, p["src"], p["checksum"], p["shared_paths"])
        elif p["state"] == "active":
            result = manager.activate(release, p["src"], p["checksum"], p["shared_paths"], p["keep_releases"], p["protect"])
        elif p["state"] in ("good", "failed"):
            result = manager.mark(release, p["state"])
        elif p["state"] == "rolled_back":
            result = manager.rollback(release)
        else:
            result = manager.remove(release, p["protect"])
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
