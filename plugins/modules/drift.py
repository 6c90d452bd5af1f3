#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: drift
short_description: Compare a host with its stored baseline, class each change, and accept drift with who, when and why
version_added: 0.1.0
description:
  - Takes a snapshot with the facets and file rules stored in the baseline at O(path) (see M(sre.ops.host_snapshot)) and
    compares. RV(facets) lists per facet the C(added), C(removed) and C(changed) items, each change with its attributes
    before and after, and RV(counts) counts them.
  - Each item is classed. V(intentional) means under an application root whose M(sre.ops.release) ledger (C(ledger.json)) records
    an activation after the time the baseline was taken (ledger times are whole seconds; an
    activation in the second the baseline started counts as before it). V(waived) means hidden by a waiver rule with a justification
    that has not expired. V(unexpected) is everything else. Expired waivers hide nothing and are listed in RV(expired_waivers).
  - O(state=accepted) makes the current state the new baseline and records who accepted it, when and why (the last 50
    acceptances are kept in the baseline). A missing or corrupt baseline is an error that says how to create one.
  - C(changed) is V(true) when the host has drifted (O(state=compared)) or when the baseline was, or would be, replaced
    (O(state=accepted)), so C(--diff) shows the drift and AWX counts drifted hosts as changed.
  - The action plugin reads O(waivers_file) on the controller and fills O(host_name), O(host_groups) and O(accepted_by).
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
  - sre.ops._snapshot
attributes:
  check_mode:
    support: full
    details:
      - Compares for real and writes nothing; with O(state=accepted) it reports what would be accepted.
  diff_mode:
    support: full
    details:
      - The drift as a diff - the baseline's values of removed and changed items against the current ones.
  idempotent:
    support: full
    details:
      - After O(state=accepted), another run accepts nothing and reports no drift.
options:
  path:
    description: The baseline, as stored by M(sre.ops.host_snapshot).
    type: path
    default: /var/lib/sre-ops/drift/baseline.json.gz
  state:
    description:
      - V(compared) compares the host with the baseline and changes nothing.
      - V(accepted) compares, then stores the current state as the baseline (when anything differs) with an acceptance record.
    type: str
    choices: [compared, accepted]
    default: compared
  reason:
    description: Why the drift is accepted (a change ticket, an explanation). Required with O(state=accepted).
    type: str
  accepted_by:
    description: Who accepts. The action plugin sets the AWX user (C(awx_user_name)) or the controller's login name.
    type: str
  job:
    description: A job or change identifier recorded with the acceptance. The action plugin sets the AWX job id when there is one.
    type: str
  app_roots:
    description:
      - Application roots managed by M(sre.ops.release) whose ledgers make changes V(intentional).
      - Without this option, directories in the C(files) facet holding a C(ledger.json) and a C(releases/) directory. V([])
        turns the classification off.
    type: list
    elements: path
  waivers:
    description:
      - Waiver rules. Each has C(justification) (required), and optionally C(id), C(hosts) (inventory names, group names or
        globs; default all), C(facet), C(key) (or C(path); a glob over the item key, C(*) also matches C(/)), C(attribute)
        (only changes confined to these attributes are hidden), C(change) (V(added), V(removed), V(changed)),
        C(expires) (a date, YYYY-MM-DD, the last day it applies) and C(owner).
      - Unknown keys are an error, so a typo cannot widen a waiver.
    type: list
    elements: dict
    default: []
  waivers_file:
    description: A YAML file of waiver rules on the controller (a list, or a mapping with a C(waivers) list), added to O(waivers).
    type: path
  host_name:
    description: The host's inventory name, for waiver host patterns. The action plugin sets C(inventory_hostname).
    type: str
  host_groups:
    description: The host's groups, for waiver host patterns. The action plugin sets C(group_names).
    type: list
    elements: str
    default: []
  max_items:
    description: At most this many items per facet in RV(facets) (unexpected first); RV(counts) stays exact.
    type: int
    default: 500
seealso:
  - module: sre.ops.host_snapshot
  - module: sre.ops.drift_report
  - module: sre.ops.drift_compare
"""

EXAMPLES = r"""
---
- name: Drift since the baseline, with the team's waivers
  sre.ops.drift:
    waivers_file: drift-waivers.yml
  register: drift_result

- name: Accept what changed (preview with --check --diff first)
  sre.ops.drift:
    state: accepted
    reason: "CHG-2231: new TLS certificates"
"""

RETURN = r"""
drifted:
  description: Whether anything differs from the baseline.
  returned: success
  type: bool
  sample: true
counts:
  description: Items added, removed and changed, and how many are unexpected, intentional and waived.
  returned: success
  type: dict
  sample: {"added": 2, "removed": 1, "changed": 3, "total": 6, "unexpected": 4, "intentional": 1, "waived": 1}
facets:
  description:
    - Per facet with drift - C(added), C(removed) and C(changed) lists, C(counts) and C(truncated). Each item has C(key),
      C(class), C(attributes) (added and removed) or C(changes) (attribute -> before, after), and where it applies
      C(flags) (V(setuid), V(setgid), V(world-writable)), C(release) (intentional) or C(waiver) (waived).
  returned: success
  type: dict
  sample: {"files": {"changed": [{"key": "/etc/ssh/sshd_config", "class": "unexpected",
                                  "changes": {"sha256": {"before": "1a2b...", "after": "3c4d..."}}}],
                     "added": [], "removed": [], "counts": {"added": 0, "removed": 0, "changed": 1}, "truncated": false}}
expired_waivers:
  description: Expired waivers that match drift, with how many items they would have hidden.
  returned: success
  type: list
  elements: dict
  sample: [{"id": "legacy-cron", "expires": "2026-01-31", "justification": "until the migration", "items": 1, "examples": ["cron /etc/cron.d/legacy"]}]
releases:
  description: Release activations after the baseline, per application root.
  returned: success
  type: list
  elements: dict
  sample: [{"app_root": "/srv/app", "release": "v2", "activated_at": "2026-12-03T09:00:00Z"}]
app_roots:
  description: The application roots considered.
  returned: success
  type: list
  elements: str
  sample: [/srv/app]
baseline:
  description: The baseline compared with - path, when it was taken, on which host, and its last acceptances.
  returned: success
  type: dict
  sample: {"path": "/var/lib/sre-ops/drift/baseline.json.gz", "taken_at": "2026-12-03T08:00:00Z", "host": "web1", "acceptances": []}
accepted:
  description: The acceptance recorded (or that would be, in check mode).
  returned: O(state=accepted) and the host had drifted
  type: dict
  sample: {"at": "2026-12-04T09:00:00Z", "by": "alice", "reason": "CHG-2231", "counts": {"total": 3, "unexpected": 3}}
checked_at:
  description: When the current state was read (UTC).
  returned: success
  type: str
  sample: "2026-12-04T09:00:00Z"
issues:
  description: Files that vanished, could not be read, symlink loops, special files and non-UTF-8 names in the current state.
  returned: success
  type: dict
  sample: {"counts": {}, "items": []}
notes:
  description: Facets that could not be compared, unreadable ledgers, parallel scanning not available.
  returned: success
  type: list
  elements: str
  sample: []
summary:
  description: The current state's per-facet digests (as M(sre.ops.host_snapshot) returns them).
  returned: success
  type: dict
  sample: {"facets": {"users": {"digest": "99fd...", "count": 27, "status": "ok"}}, "roots": {}}
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._drift import DriftManager
from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._host_facets import ModuleRunner
from ansible_collections.sre.ops.plugins.module_utils._snapshot import DEFAULT_PATH, SCAN_SPEC


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "default": DEFAULT_PATH},
            "state": {"type": "str", "choices": ["compared", "accepted"], "default": "compared"},
            "reason": {"type": "str"},
            "accepted_by": {"type": "str"},
            "job": {"type": "str"},
            "app_roots": {"type": "list", "elements": "path"},
            "waivers": {"type": "list", "elements": "dict", "default": []},
            "waivers_file": {"type": "path"},
            "host_name": {"type": "str"},
            "host_groups": {"type": "list", "elements": "str", "default": []},
            "max_items": {"type": "int", "default": 500},
            **SCAN_SPEC,
        },
        required_if=[("state", "accepted", ["reason"])],
        supports_check_mode=True,
    )
    p = module.params
    if p["waivers_file"]:
        module.fail_json(msg="waivers_file is read on the controller by the sre.ops.drift action plugin; call the module as sre.ops.drift")
    if p["max_items"] < 1 or p["workers"] < 0:
        module.fail_json(msg=f"max_items must be 1 or more and workers 0 or more, got max_items={p['max_items']} workers={p['workers']}")
    try:
        manager = DriftManager(
            p["path"], ModuleRunner(module), check_mode=module.check_mode, workers=p["workers"], trust_stat=p["trust_stat"],
            host=p["host_name"], groups=p["host_groups"], waivers=p["waivers"], app_roots=p["app_roots"], max_items=p["max_items"],
            diff=module._diff,
        )
        if p["state"] == "accepted":
            result = manager.accept(p["reason"], p["accepted_by"] or "unknown", p["job"])
        else:
            result = manager.compare()
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
