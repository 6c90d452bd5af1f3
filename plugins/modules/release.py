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
  - Every option is validated before anything is touched. The O(checksum) is verified before the archive is read.
  - Archives are vetted member by member in the same single pass that unpacks them, by checks that do not depend on
    Python's C(tarfile) extraction filters. The whole archive is refused, and nothing is kept, when a member has an
    absolute path or C(..), passes through a symlink of the archive (or through a file), appears twice, is a device
    file or fifo, is a symlink whose target - resolved through the archive's own symlinks, to any depth - leaves
    the release, or is a hard link to anything but a regular file earlier in the archive. Every file is created
    relative to directory descriptors opened with C(O_NOFOLLOW), one path component at a time, so no link is ever
    followed while unpacking. Symlinks are created last.
  - A truncated or corrupt archive (gzip, bzip2 or xz stream, tar headers, zip CRC), an encrypted zip or a zip
    compression method other than stored, deflate, bzip2 and lzma fails the task with a message naming the file and
    the problem; nothing is left behind. Archives are recognised by their content, not their file name.
  - File modes are kept (also from zip archives made on Unix); setuid, setgid and sticky bits are dropped, and the
    task says so in RV(notes). Files belong to the user the module runs as; archive owners are not applied.
  - Every run that changes something holds an exclusive lock on C(<path>/.release.lock) (C(flock), released by the
    kernel if the run dies). A second run on the same O(path) waits up to O(lock_timeout) seconds and then fails with
    a message naming the holder (host, pid, since when, what it does). Leftovers (C(.staging-*) of killed stagings,
    C(.trash-*) of killed removals) are only removed under that lock, so nothing a live run owns is ever removed.
  - Each step the ledger must follow (staging, switching C(current), removing) is journalled in the ledger before it
    is taken. A run killed at any point leaves C(current) on a complete release and the ledger readable; the next
    run completes or forgets the interrupted step (RV(reconciled)) instead of repeating it, so rollback, mark and
    remove are safe to rerun after a kill.
  - Rollback reads the ledger and C(readlink current), never directory times. Without O(release) it goes to the good
    release that was most recently current; run again, it changes nothing.
  - Retention (O(keep_releases)) never removes the current release, the newest good release, the rollback target
    (the good release most recently current before the current one), the newest staged release, or one listed in
    O(protect).
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports exactly what a real run would stage, switch, prune and reconcile, and writes nothing - not even the lock
        file. Archives are read to their end, so a broken archive fails the preview as it would fail the real run.
      - Waits (shared lock) while a real run on the same O(path) is in progress, so the preview reads settled state.
  diff_mode:
    support: full
    details:
      - C(current), the releases on disk (oldest first) and each release's outcome, before and after.
  idempotent:
    support: full
options:
  path:
    description: The application root. Created if missing (and removed again if the first run fails).
    type: path
    required: true
  release:
    description:
      - The release id, the same on every host of a rollout (letters, digits, C(.), C(_), C(+), C(-); at most 128,
        starting with a letter or digit).
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
      - V(absent) removes the release; refused for the current release, the newest good release, the rollback
        target and protected ones.
    type: str
    choices: [staged, active, good, failed, rolled_back, absent]
    default: active
  src:
    description:
      - The release's content - a tar archive (plain, gzip, bzip2 or xz), a zip archive, or a directory.
      - On the controller, unless O(remote_src=true). An archive on the controller is checksummed there once (unless
        O(checksum) is given) and transferred only to hosts that do not have the release staged yet, into the task's
        temporary directory, which is removed afterwards; nothing is transferred in check mode.
      - Needed only when the release is not staged yet.
    type: path
  remote_src:
    description: O(src) is on the managed host, not on the controller.
    type: bool
    default: false
  checksum:
    description: V(sha256:<hex>) of the O(src) archive, verified before anything is written.
    type: str
  shared_paths:
    description:
      - Paths inside the release that become links to the same path under C(shared/) (logs, uploads, local config).
        The first release to name a path seeds C(shared/) with its content.
      - Relative, without C(..), none inside another; no parent of a path may be a symlink or file in the release.
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
  lock_timeout:
    description:
      - Seconds to wait for another run that holds the lock of O(path) (for example one still unpacking a large
        release), before failing with a message that names it. V(0) fails at once.
    type: float
    default: 300
seealso:
  - module: sre.ops.release_info
"""

EXAMPLES = r"""
---
- name: Activate release 2026.11.27-1 on every host (the archive is on the controller and sent only where needed)
  sre.ops.release:
    path: /srv/app
    release: "2026.11.27-1"
    src: /srv/artifacts/app-2026.11.27-1.tar.gz
    checksum: "sha256:{{ artifact_sha256 }}"
    shared_paths: [log, config/local.json]
    keep_releases: 5

- name: Activate a release from an archive already on the host
  sre.ops.release:
    path: /srv/app
    release: "2026.11.27-2"
    src: /var/tmp/app-2026.11.27-2.tar.gz
    remote_src: true

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
  description: The release C(current) points at after the task (predicted in check mode); null if it points at none.
  returned: always
  type: str
  sample: "2026.11.27-1"
previous:
  description:
    - The release C(current) pointed at before, when the task switched it; null otherwise.
    - Null together with RV(switched=true) means the task made the first release current (or replaced a C(current)
      that pointed at no release, see RV(notes)).
  returned: always
  type: str
  sample: "2026.11.26-3"
previous_good:
  description: The good release most recently current other than RV(current), the target of the next rollback.
  returned: always
  type: str
  sample: "2026.11.26-3"
release:
  description: The release the task acted on (for O(state=rolled_back), the release rolled back to).
  returned: always
  type: str
  sample: "2026.11.27-1"
releases:
  description: Releases on the host afterwards, oldest (first staged) first.
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
  description: Releases removed (or that would be) by retention, or by O(state=absent).
  returned: always
  type: list
  elements: str
  sample: ["2026.11.20-1"]
outcome:
  description: The outcome recorded for RV(release).
  returned: when O(state) is V(good) or V(failed)
  type: str
  sample: good
rolled_back_from:
  description: The release rolled back from.
  returned: when O(state=rolled_back); null unless the task switched
  type: str
  sample: "2026.11.27-1"
leftovers_removed:
  description: Unfinished stagings and interrupted removals of killed runs that were (or would be) cleaned up.
  returned: always
  type: list
  elements: str
  sample: [".staging-2026.11.27-1-x8a2"]
reconciled:
  description:
    - What the ledger did not know yet and was (or would be) brought in line with the disk - the step a killed run
      took after journalling it, a C(current) switched by hand, a release directory the ledger did not list.
      Non-empty makes the task V(changed).
  returned: always
  type: list
  elements: str
  sample: ["completed the interrupted rollback to v2 (current already pointed at it)"]
changes:
  description:
    - Every change the task made (or would make in check mode), in order, one short sentence each - for a plan or
      a report. Empty when nothing changed.
  returned: always
  type: list
  elements: str
  sample: ["stage v3 from /srv/artifacts/app-v3.tar.gz", "switch current from v2 to v3", "prune v1"]
transferred:
  description: Whether the archive was sent from the controller to this host (never in check mode, never for a staged release).
  returned: when O(src) is on the controller and O(state) is V(staged) or V(active)
  type: bool
  sample: true
notes:
  description:
    - Remarks on the result - setuid, setgid or sticky bits dropped while unpacking, a C(current) that pointed at no
      release, or that O(src) was not on the host yet in check mode (so it was not vetted).
  returned: always
  type: list
  elements: str
  sample: ["setuid, setgid and sticky bits are not kept in releases: dropped from bin/helper (4755)"]
diff:
  description: C(current), the releases (oldest first) and each release's outcome, before and after the task.
  returned: always
  type: dict
  sample: {"before": {"current": "v1", "releases": ["v1"], "outcomes": {"v1": "good"}},
           "after": {"current": "v2", "releases": ["v1", "v2"], "outcomes": {"v1": "good", "v2": "unknown"}}}
path:
  description: The application root, normalised.
  returned: always
  type: str
  sample: /srv/app
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._release import argument_spec, run


def main() -> None:
    module = AnsibleModule(**argument_spec(), supports_check_mode=True)
    try:
        result = run(module.params, check_mode=module.check_mode)
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
