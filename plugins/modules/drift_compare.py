#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# This module is implemented as an action plugin (plugins/action/drift_compare.py) and runs on the controller.

from __future__ import annotations

DOCUMENTATION = r"""
module: drift_compare
short_description: Compare hosts with a golden host or with the majority of their group, exchanging digests first
version_added: 0.1.0
description:
  - Finds the hosts that differ from their peers - from a O(golden) host, or from the majority of each of O(groups) (more
    than half of the hosts hold the reference value; keys where no value has a majority are listed as undecided).
  - Works from snapshots M(sre.ops.host_snapshot) stored on the hosts, in rounds, so that a large fleet does not ship its
    file lists to the controller. Round one, every host sends per-facet digests and per file path a Merkle digest (about 1 KB).
    For what differs, one host per distinct digest sends that facet's 64 bucket digests (items grouped by a hash of their
    key) or that path's directory digests (round two); then one host per distinct bucket or directory digest sends that
    bucket's items or that directory's entries (round three). Identical hosts send only their digests.
  - Each O(phase) is one task run once on the controller; the tasks in between run M(sre.ops.host_snapshot_info) with the
    RV(requests) for each host. The role C(sre.ops.drift) (C(tasks_from=compare)) and C(playbooks/drift.yml) with
    C(drift_mode=compare) contain the whole sequence.
  - Only attributes that mean the same on two hosts take part - type, mode, owner, size, link target and sha256; inode numbers
    and times do not.
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Reads registered results only; it runs in check mode too.
  diff_mode:
    support: none
    details:
      - Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
options:
  phase:
    description:
      - V(details) plans round two from the summaries, V(entries) plans round three from the summaries and details,
        V(report) compares.
    type: str
    choices: [details, entries, report]
    required: true
  against:
    description: V(majority) compares each host with the majority of its group, V(golden) with the O(golden) host.
    type: str
    choices: [majority, golden]
    default: majority
  golden:
    description: The inventory name of the reference host. Required with O(against=golden).
    type: str
  groups:
    description: Inventory groups to compare within (a host may be in several). Without it, all O(hosts) form one group.
    type: list
    elements: str
    default: []
  hosts:
    description: The hosts compared. Defaults to C(ansible_play_hosts).
    type: list
    elements: str
  summary_var:
    description: The variable holding each host's round-one result (of M(sre.ops.host_snapshot)).
    type: str
    default: drift_fleet_summary
  details_var:
    description: The variable holding each host's round-two result (of M(sre.ops.host_snapshot_info)).
    type: str
    default: drift_fleet_details
  entries_var:
    description: The variable holding each host's round-three result (of M(sre.ops.host_snapshot_info)).
    type: str
    default: drift_fleet_entries
  ignore:
    description:
      - "Items to leave out of the comparison, each a mapping with C(facet) and C(key) globs (default C(*)); for example
        C({facet: sysctl, key: kernel.hostname}) or C({facet: listening}). Host names and addresses differ on every host by design."
      - Applied when comparing (O(phase=report)).
    type: list
    elements: dict
    default: []
  max_items:
    description: At most this many differences per host, facet and change in RV(fleet).
    type: int
    default: 200
notes:
  - Run each phase with C(run_once=true), with the same O(against), O(golden), O(groups) and O(hosts).
seealso:
  - module: sre.ops.host_snapshot
  - module: sre.ops.host_snapshot_info
  - module: sre.ops.drift_report
"""

EXAMPLES = r"""
---
- name: Round one - a fresh snapshot per host, digests only
  sre.ops.host_snapshot:
    path: /var/lib/sre-ops/drift/fleet.json.gz
    files: [{path: /etc}]
    facets: [files, packages, users, groups, sysctl]
  register: drift_fleet_summary

- name: Plan round two
  sre.ops.drift_compare:
    phase: details
  run_once: true
  register: drift_plan

- name: Round two - items and directory digests where hosts differ
  sre.ops.host_snapshot_info:
    path: /var/lib/sre-ops/drift/fleet.json.gz
    facet_buckets: "{{ drift_plan.requests[inventory_hostname].facet_buckets }}"
    roots: "{{ drift_plan.requests[inventory_hostname].roots }}"
  when: inventory_hostname in drift_plan.requests
  register: drift_fleet_details

- name: Plan round three
  sre.ops.drift_compare:
    phase: entries
  run_once: true
  register: drift_plan

- name: Round three - entries of the directories that differ
  sre.ops.host_snapshot_info:
    path: /var/lib/sre-ops/drift/fleet.json.gz
    buckets: "{{ drift_plan.requests[inventory_hostname].buckets }}"
    dirs: "{{ drift_plan.requests[inventory_hostname].dirs }}"
  when: inventory_hostname in drift_plan.requests
  register: drift_fleet_entries

- name: Who is the odd one out (host names differ by design)
  sre.ops.drift_compare:
    phase: report
    ignore: [{facet: sysctl, key: kernel.hostname}, {facet: files, key: /etc/hostname}]
  run_once: true
  register: drift_fleet
"""

RETURN = r"""
requests:
  description:
    - Per host, what it must send next - C(facet_buckets), C(roots), C(buckets) and C(dirs), the options of
      M(sre.ops.host_snapshot_info) of the same names.
  returned: O(phase) is V(details) or V(entries)
  type: dict
  sample: {"web1": {"facet_buckets": ["users"], "roots": ["/etc"], "buckets": {}, "dirs": []}}
missing:
  description: Hosts without a usable round-one result (failed, unreachable or skipped); they are left out.
  returned: always
  type: list
  elements: str
  sample: []
outliers:
  description: Hosts that differ from the reference, most differences first.
  returned: O(phase=report)
  type: list
  elements: str
  sample: [web3]
fleet:
  description:
    - C(hosts) - per host its differences (C(count), C(facets) with C(added), C(removed), C(changed) relative to the reference,
      each item as in M(sre.ops.drift)); C(outliers); C(undecided) - keys without a majority, with the hosts holding each value;
      C(bytes) - per host the bytes of arguments sent to it (C(sent)) and of results it returned (C(received)) over the rounds.
  returned: O(phase=report)
  type: dict
  sample: {"against": "majority", "outliers": ["web3"], "hosts": {"web3": {"count": 1, "facets": {"users": {"added": [{"key": "mallory"}]}}}},
           "undecided": [], "bytes": {"web1": {"sent": 412, "received": 1630}}}
"""
