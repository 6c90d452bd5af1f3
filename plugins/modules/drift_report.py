#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module is implemented as an action plugin (plugins/action/drift_report.py) and runs on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: drift_report
short_description: One drift report for the play's hosts, in JSON and Markdown, grouped by change
version_added: 0.1.0
description:
  - Collects each host's M(sre.ops.drift) result (the variable O(results_var)) and builds one report - counts of unexpected,
    intentional and waived changes, and the changes themselves grouped, so the same change on 37 hosts reads once, with
    its 37 hosts. Inode numbers, times and link counts differ per host and are left out of what makes two changes the same.
  - Lists expired waivers with the hosts where they no longer hide drift, hosts that could not be checked, and, given
    O(fleet), the fleet comparison of M(sre.ops.drift_compare).
  - With O(dest), writes C(<name>.json) and C(<name>.md) on the controller atomically (also in check mode - the report is what
    a check run is for; nothing is written on the managed hosts).
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Builds and writes the report in check mode too; it never changes a managed host.
  diff_mode:
    support: none
    details:
      - Nothing on the hosts changes, so there is nothing to diff.
  idempotent:
    support: full
options:
  results_var:
    description: The variable holding each host's M(sre.ops.drift) result. Empty for a report of O(fleet) only.
    type: str
    default: drift_result
  hosts:
    description: The hosts to report on. Defaults to C(ansible_play_hosts_all), so failed hosts are listed as not checked.
    type: list
    elements: str
  mode:
    description: What the run did (shown in the report), for example V(check) or V(accept).
    type: str
    default: check
  fleet:
    description: The registered result of M(sre.ops.drift_compare) with O(sre.ops.drift_compare#module:phase=report), to include.
    type: dict
  dest:
    description: A directory on the controller for the report files. Without it, nothing is written.
    type: path
  name:
    description: The report files' base name.
    type: str
    default: drift-report
  markdown_limit:
    description: At most this many characters of Markdown in RV(markdown) (the file holds all of it).
    type: int
    default: 65536
notes:
  - Run it with C(run_once=true) after the M(sre.ops.drift) task.
seealso:
  - module: sre.ops.drift
  - module: sre.ops.drift_compare
"""

EXAMPLES = r"""
---
- name: Drift of each host
  sre.ops.drift:
  register: drift_result

- name: One report for the run
  sre.ops.drift_report:
    dest: "{{ playbook_dir }}/reports"
  run_once: true
  register: drift_report

- name: Fail when anything unexpected changed
  ansible.builtin.fail:
    msg: "{{ drift_result.counts.unexpected }} unexpected changes on {{ inventory_hostname }}"
  when: drift_result.counts.unexpected | default(0) > 0
"""

RETURN = r"""
counts:
  description: Changes over all hosts by class, their total, and the number of distinct (grouped) changes.
  returned: always
  type: dict
  sample: {"unexpected": 5, "intentional": 12, "waived": 1, "total": 18, "changes": 7}
hosts:
  description: Hosts C(checked), C(drifted), with C(unexpected) drift, C(clean), C(failed) (host -> message), C(truncated), and C(counts) per host.
  returned: always
  type: dict
  sample: {"checked": ["web1", "web2"], "drifted": ["web1"], "unexpected": ["web1"], "clean": ["web2"], "failed": {}, "truncated": [],
           "counts": {"web1": {"unexpected": 2, "intentional": 0, "waived": 0}}}
expired_waivers:
  description: Expired waivers that match drift, with the hosts and the number of items.
  returned: always
  type: list
  elements: dict
  sample: []
json_path:
  description: The JSON report written.
  returned: O(dest) is set
  type: str
  sample: /srv/reports/drift-report.json
markdown_path:
  description: The Markdown report written.
  returned: O(dest) is set
  type: str
  sample: /srv/reports/drift-report.md
markdown:
  description: The Markdown report (cut at O(markdown_limit) characters).
  returned: always
  type: str
  sample: "# Drift report\n..."
report:
  description: The whole report (what the JSON file holds) - C(format), C(format_version), C(counts), C(hosts), C(changes), C(expired_waivers), C(fleet).
  returned: always
  type: dict
  sample: {"format": "sre.ops.drift_report", "format_version": 1, "changes": []}
"""
