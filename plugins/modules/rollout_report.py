#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_report
short_description: Assemble the report of a rollout from its plan and what each host recorded, and write it as JSON
version_added: 0.1.0
description:
  - Turns a M(sre.ops.rollout_plan) result and each host's record into the rollout report, in Python, so every field
    has the same type on every ansible-core version (numbers are numbers).
  - The verdict is V(planned) (check mode), V(aborted) (a host failed and was rolled back), V(held) (an inconclusive
    canary waits for a human at its weight) or V(completed).
  - Writes it to O(report_dir) on the controller (written beside its final name and renamed into place), in check mode too.
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Writes the report of the preview (its name ends in C(-plan.json)); the managed hosts are not touched.
  diff_mode:
    support: none
    details:
      - The report is the run's record on the controller, not a change to a managed host.
  idempotent:
    support: full
options:
  plan:
    description: The registered result of M(sre.ops.rollout_plan).
    type: dict
    required: true
  records:
    description:
      - One record per host that took part, with C(host), C(outcome), C(at) (a timestamp), and the registered results
        C(switch) (M(sre.ops.release)), C(health) (M(sre.ops.health_check)), C(rollback), C(restarted) and C(failure).
    type: list
    elements: dict
    default: []
  analyses:
    description: Results of M(sre.ops.canary_analysis), each with C(step).
    type: list
    elements: dict
    default: []
  held:
    description: The canary is held after an inconclusive analysis.
    type: bool
    default: false
  report_dir:
    description: Directory on the controller for C(<run id>-<strategy>[-rollback][-plan].json). Empty writes no file.
    type: path
    default: ""
notes:
  - An action plugin; it runs on the controller only.
seealso:
  - module: sre.ops.rollout_plan
"""

EXAMPLES = r"""
---
- name: Write the rollout report
  sre.ops.rollout_report:
    plan: "{{ plan }}"
    records: "{{ ansible_play_hosts_all | map('extract', hostvars) | selectattr('deploy_record', 'defined') | map(attribute='deploy_record') | list }}"
    report_dir: /var/log/rollouts
  run_once: true
  register: rollout

- name: Hand it to AWX
  ansible.builtin.set_stats:
    data:
      sre_ops_rollout: "{{ rollout.report }}"
"""

RETURN = r"""
report:
  description:
    - The report - C(run_id), C(mode), C(strategy), C(release), C(artifact_sha256), C(check_mode), C(started), C(ended),
      C(duration_s), C(verdict), C(abort_reason), C(rollback_taken), C(nothing_to_do), C(batches), C(min_ready),
      C(canary), C(blue_green), C(analyses), C(waves) (each with C(wave), C(phase), C(hosts), C(outcome) and
      C(records) per host - C(action), C(release_before), C(release_after), C(switched), C(restarted), C(pruned),
      C(healthy), C(health), C(outcome), C(failure), C(finished_at)) and C(summary).
  returned: always
  type: dict
  sample: {"verdict": "completed", "duration_s": 21.4, "waves": [{"wave": 1, "phase": "rolling", "hosts": ["web1"]}]}
path:
  description: The file written, or empty.
  returned: always
  type: str
  sample: /var/log/rollouts/20261127T170000Z-canary.json
"""
