#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: rollout_plan
short_description: Plan a rollout or rollback - hosts, canaries, waves capped by min_ready, release id, live and idle colour
version_added: 0.1.0
description:
  - The decisions of the M(sre.ops.release) based C(sre.ops.deploy) role, made once, on the controller, in tested Python
    (C(plugins/module_utils/_rollout.py)). The role runs it with C(run_once) and C(delegate_to) the load balancer host.
  - Checksums O(artifact) on the controller (once per rollout) and checks O(artifact_sha256) against it; the release id is
    O(release), or V(r-) and the first 12 hex digits of the checksum.
  - Reads the load balancer with M(sre.ops.haproxy_info) on the host the task runs on (the backend O(backend), or for
    blue-green the two colour backends and O(bg_map)).
  - For every host of O(hosts) decides what it needs - V(create) (nothing deployed yet), V(update) (another release is
    current), V(restart) (the release is current but has not passed its gates since it became current, or the app is
    down), V(readmit) (the release passed its gates but the host is out of service, for example drained by a killed
    run), or V(none) - and what a failed wave rolls it back to (what it ran before this rollout, never further).
  - Speaks the plan classes of the P(sre.ops.plan#callback) callback too, so the collection has one plan concept - each host's
    RV(hosts) entry has C(actions) (V(create) or V(update) with V(restart) for a new release, V(restart), V(update) for a
    readmission, V(noop)), the RV(summary) lists the same change on several hosts once (C(web2..web4)), and RV(closing_line)
    counts the hosts in the callback's words. The result declares itself V(noop) with that line to the callback, which shows it
    among the notes of its Markdown plan.
  - Orders the hosts deterministically (hosts a killed run left on the release first, then hosts out of service, then
    inventory order), picks the canaries, and cuts the rest into waves following O(batches), each capped so that at
    least O(min_ready) servers of the backend stay in service (hosts already out of service cost no room).
  - Every problem with the settings or the fleet is reported at once, naming the variable, before anything changes.
  - Runs the same in check mode, so a C(--check) preview plans exactly what the real run then does.
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Read-only. It reads the load balancer and plans in check mode too.
  diff_mode:
    support: none
    details:
      - Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
options:
  mode:
    description: V(deploy) a release, or V(rollback) to each host's last good release (or O(release)).
    type: str
    choices: [deploy, rollback]
    default: deploy
  strategy:
    description: V(rolling), V(canary) (canaries first, then waves) or V(blue_green) (the idle colour, then one map switch).
    type: str
    choices: [rolling, canary, blue_green]
    default: rolling
  hosts:
    description:
      - The hosts, in inventory order, each a dict with C(name) (inventory name), C(server) (its server name in the
        backends, empty for the inventory name), C(probe_url) (for canary probes, may be empty) and C(releases) (the
        result of M(sre.ops.release_info) on it).
    type: list
    elements: dict
    required: true
  release:
    description:
      - With O(mode=deploy), the release id (empty for V(r-) and the artifact's checksum prefix).
      - With O(mode=rollback), the release every host goes back to (empty for each host's last good release).
    type: str
    default: ""
  artifact:
    description: The release archive on the controller. Required with O(mode=deploy).
    type: str
    default: ""
  artifact_sha256:
    description: The archive's expected sha256 (hex, or V(sha256:<hex>)); a mismatch fails the plan.
    type: str
    default: ""
  socket:
    description: HAProxy's runtime API on the host the task runs on (a UNIX socket path, or V(host:port)).
    type: str
    required: true
  timeout:
    description: Seconds to wait for HAProxy to answer one command.
    type: float
    default: 5
  backend:
    description: The backend holding the app servers (V(rolling) and V(canary)).
    type: str
    default: ""
  min_ready:
    description: Servers of O(backend) that must stay in service, a count or a percentage (rounded up).
    type: str
    default: "75%"
  batches:
    description: The ramp of wave sizes, counts (V(1) or more) or percentages (V(1%) to V(100%)) of the hosts left to do; the last repeats.
    type: list
    elements: raw
    default: [1, "25%", "100%"]
  restart_command:
    description: How the app restarts; exactly one of this and O(restart_unit) must be given.
    type: str
    default: ""
  restart_unit:
    description: The systemd unit that restarts the app.
    type: str
    default: ""
  stop_command:
    description: How the old colour's app stops when O(bg_retire=true).
    type: str
    default: ""
  stop_unit:
    description: The systemd unit stopped when O(bg_retire=true).
    type: str
    default: ""
  health_probes:
    description: The health probes, checked to be not empty.
    type: list
    elements: dict
  canary_hosts:
    description: How many hosts are canaries, a count or a percentage of O(hosts); at least one, and at least one host must stay baseline.
    type: str
    default: "1"
  canary_steps:
    description: Steps, each exactly one of C(set_weight) (0-99), C(pause) (seconds) or C(analysis) (options of M(sre.ops.canary_analysis)).
    type: list
    elements: dict
    default: []
  canary_analysis:
    description: Options of M(sre.ops.canary_analysis) every analysis step starts from.
    type: dict
    default: {}
  canary_on_inconclusive:
    description: Passed through to the plan for the role (V(fail), V(hold) or V(pause)).
    type: str
    choices: [fail, hold, pause]
    default: fail
  canary_promote:
    description: Promote canaries held on the release after an inconclusive analysis, without analysing again.
    type: bool
    default: false
  canary_group:
    description: The inventory group the role puts the canaries in (returned in the plan).
    type: str
    default: deploy_canary
  canary_expected_rps:
    description:
      - Requests a second the backend is expected to take during the canary. When set, every analysis step of O(canary_steps)
        carries C(power) - what it would detect at that traffic and the canaries' effective share from the C(set_weight) step
        before it, computed by the same power functions as M(sre.ops.canary_analysis) - and the summary states it.
      - V(0) states nothing.
    type: float
    default: 0
  canary_expected_latency_ms:
    description:
      - The baseline's expected median (C(p50)) and 90th percentile (C(p90)) response time in ms, both or neither, so the
        power statement includes the latency rise each analysis step would detect; without them latency power is unknown.
    type: dict
    default: {}
    suboptions:
      p50:
        description: Median response time in ms.
        type: float
      p90:
        description: 90th percentile response time in ms.
        type: float
  bg_groups:
    description: Inventory groups of the two colours, C(blue) and C(green).
    type: dict
    default: {blue: blue, green: green}
  bg_backends:
    description: Backend of each colour, C(blue) and C(green).
    type: dict
    default: {blue: be_blue, green: be_green}
  bg_map:
    description: The map that routes O(bg_map_key) to a colour's backend.
    type: str
    default: ""
  bg_map_key:
    description: The map key switched between the colours.
    type: str
    default: ""
  bg_retire:
    description: Whether the old colour is stopped after the switch (needs O(stop_command) or O(stop_unit)).
    type: bool
    default: false
notes:
  - An action plugin; it runs on the controller and executes M(sre.ops.haproxy_info) on the host the task runs on.
seealso:
  - module: sre.ops.rollout_report
  - module: sre.ops.release_info
  - module: sre.ops.haproxy_info
"""

EXAMPLES = r"""
---
- name: Read what each host runs
  sre.ops.release_info:
    path: /srv/app
  register: releases

- name: Plan a canary rollout of app-1.4
  sre.ops.rollout_plan:
    strategy: canary
    artifact: files/app-1.4.tar.gz
    hosts: "{{ ansible_play_hosts_all | map('extract', hostvars, 'deploy_host') | list }}"
    socket: /run/haproxy/admin.sock
    backend: be_app
    min_ready: "75%"
    restart_unit: app.service
    canary_steps:
      - set_weight: 10
      - pause: 60
      - analysis: {window: 300}
  delegate_to: lb1
  run_once: true
  register: plan

- name: Show it
  ansible.builtin.debug:
    msg: "{{ plan.summary }}"
  run_once: true
"""

RETURN = r"""
release:
  description: The release id every host ends on (empty for a rollback to each host's own last good release).
  returned: always
  type: str
  sample: v2
checksum:
  description: V(sha256:<hex>) of the artifact, computed once on the controller.
  returned: always
  type: str
  sample: "sha256:1e7e8f..."
hosts:
  description:
    - Per host - C(server), C(current), C(target), C(action) (V(create), V(update), V(restart), V(readmit), V(none)),
      C(actions) (the same need in P(sre.ops.plan#callback)'s classes), C(restart), C(release_state), C(rollback_to), C(protect),
      C(wave), C(phase), C(lb) and C(gate) (what the plan knows about its health gate).
  returned: always
  type: dict
  sample: {"web1": {"server": "web1", "current": "v1", "target": "v2", "action": "update", "actions": ["update", "restart"], "restart": true,
                    "rollback_to": "v1", "wave": 1}}
order:
  description: Every host in the order the rollout takes them.
  returned: always
  type: list
  elements: str
  sample: [web1, web2, web3, web4]
todo:
  description: Hosts that need anything, in order.
  returned: always
  type: list
  elements: str
  sample: [web1, web2]
canary:
  description:
    - The canary wave - C(hosts), C(servers), C(phase) (V(canary) or V(promote)), C(baseline), C(index) and C(steps).
    - A C(set_weight) step carries the C(share) to give M(sre.ops.haproxy_server) (null when no other server takes traffic,
      as on a first install, when the canaries go in at full weight) and the C(weight) and C(effective) share it predicts from
      the backend's current weights; a share no whole weight can give is refused before anything changes.
    - An C(analysis) step carries the merged C(analysis) options and C(power) - null without O(canary_expected_rps), else the
      result of the C(sre.ops.canary_power) filter (C(sufficient), C(metrics), C(detectable) sentences, C(notes)).
  returned: always
  type: dict
  sample: {"hosts": ["web1"], "phase": "canary", "steps": [{"kind": "set_weight", "set_weight": 25, "share": 25, "weight": 100, "effective": 25.0}]}
waves:
  description: The waves after the canaries, each with C(index), C(phase), C(hosts) and C(servers).
  returned: always
  type: list
  elements: dict
  sample: [{"index": 2, "phase": "rolling", "hosts": ["web2"], "servers": ["web2"]}]
batches:
  description: The size of every wave, after capping for O(min_ready).
  returned: always
  type: list
  elements: int
  sample: [1, 1, 1]
lb:
  description: The backend, its servers and serving servers at planning time, and O(min_ready) as a count.
  returned: always
  type: dict
  sample: {"backend": "be_app", "servers": 4, "serving": 4, "min_ready": 3, "room": 1}
blue_green:
  description: For V(blue_green) - the C(live) and C(idle) colour, their backends and hosts, whether to C(switch), and to which colour.
  returned: always
  type: dict
  sample: {"live": "blue", "idle": "green", "switch": true, "switch_backend": "be_green"}
nothing_to_do:
  description: Every host already runs the release, passed its gates and is in service.
  returned: always
  type: bool
  sample: false
summary:
  description: The plan in lines, for the play's output; the same change on several hosts of a wave is one entry; the last line is RV(closing_line).
  returned: always
  type: list
  elements: str
  sample: ["deploy (rolling) to v2", "wave 1 (rolling): web1: update + restart (v1 -> v2); health gate not known until deployed",
           "wave 2 (rolling): web2..web4: update + restart (v1 -> v2); health gate not known until deployed",
           "Rollout plan: 4 hosts, 4 to change (0 create, 4 update, 0 delete, 4 restart)."]
closing_line:
  description: The hosts by what they need, in the classes and the words of the P(sre.ops.plan#callback) callback's closing line.
  returned: always
  type: str
  sample: "Rollout plan: 4 hosts, 4 to change (0 create, 4 update, 0 delete, 4 restart)."
run_id:
  description: When the plan was made (UTC), naming the report.
  returned: always
  type: str
  sample: "20261127T170000Z"
"""
