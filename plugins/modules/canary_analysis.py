#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: canary_analysis
short_description: Judge canary servers against the baseline from HAProxy stats and active probes
version_added: 0.1.0
description:
  - Observes canary and baseline servers for O(window) seconds and returns a verdict, V(pass), V(fail) or
    V(inconclusive), with every measurement and the reasons.
  - From HAProxy (O(socket), O(backend)) it takes each group's requests and 5xx responses over the window (from
    C(show stat) counters), and each server's response time every O(interval).
  - With O(canary_urls) and O(baseline_urls) it also sends steady probe requests to both groups and uses their
    per-request latencies (and, without HAProxy, their errors).
  - Error rates are compared with Fisher's exact test (or a two-proportion z-test), latencies with the Mann-Whitney U
    test, both one-sided (is the canary worse?). A metric fails when the difference is significant (p below O(alpha))
    and larger than its tolerance. Fewer than O(min_requests) requests or O(min_samples) latency samples per group give
    V(inconclusive), never V(pass).
  - Read-only - it runs in full in check mode, so a C(--check) preview shows whether the canary would pass right now.
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Read-only. It observes and judges in check mode too.
  diff_mode:
    support: none
    details:
      - Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
options:
  socket:
    description: HAProxy runtime API, a UNIX socket path or V(host:port). Needed for HAProxy stats.
    type: str
  timeout:
    description: Seconds to wait for HAProxy to answer one command.
    type: float
    default: 5
  backend:
    description: The backend holding the canary and baseline servers. Required with O(socket).
    type: str
  canary:
    description: Canary server names in O(backend).
    type: list
    elements: str
  baseline:
    description: Baseline server names. Defaults to every serving server of O(backend) that is not a canary.
    type: list
    elements: str
  canary_urls:
    description: URLs answered by the canary hosts, for active probes.
    type: list
    elements: str
  baseline_urls:
    description: URLs answered by the baseline hosts, for active probes.
    type: list
    elements: str
  window:
    description: Seconds to observe.
    type: float
    default: 60
  interval:
    description: Seconds between HAProxy response-time samples.
    type: float
    default: 5
  probe_rate:
    description: Probe requests per second, per group.
    type: float
    default: 10
  probe_timeout:
    description: Seconds one probe request may take; a probe without an answer counts as an error.
    type: float
    default: 2
  alpha:
    description: Significance level of the one-sided tests.
    type: float
    default: 0.05
  min_requests:
    description: Requests each group needs before errors are judged; fewer gives V(inconclusive).
    type: int
    default: 100
  min_samples:
    description: Latency samples each group needs before latency is judged; fewer gives V(inconclusive).
    type: int
    default: 30
  error_tolerance:
    description: How much higher (absolute, V(0.01) = one percentage point) the canary's error ratio may be before a significant difference fails it.
    type: float
    default: 0.01
  max_error_ratio:
    description: Fail when the canary's error ratio is above this, whatever the baseline does.
    type: float
  latency_tolerance:
    description: How much higher (relative, V(0.2) = 20%) the canary's median latency may be before a significant difference fails it.
    type: float
    default: 0.2
  latency_min_increase_ms:
    description: How many milliseconds higher the canary's median latency must also be before it fails (an absolute floor next to O(latency_tolerance)).
    type: float
    default: 10
  error_test:
    description: The test for error rates.
    type: str
    choices: [fisher, ztest]
    default: fisher
  fail_on:
    description:
      - Verdicts that fail the task. With V([]) the task only reports, and the caller branches on RV(verdict).
    type: list
    elements: str
    choices: [fail, inconclusive]
    default: [fail, inconclusive]
seealso:
  - module: sre.ops.haproxy_info
  - module: sre.ops.health_check
"""

EXAMPLES = r"""
---
- name: Judge web4 (new release) against the rest of be_app for two minutes
  sre.ops.canary_analysis:
    socket: /run/haproxy/admin.sock
    backend: be_app
    canary: [web4]
    window: 120
    max_error_ratio: 0.05
    fail_on: []
  delegate_to: "{{ groups['lb'][0] }}"
  register: analysis

- name: Stop the rollout unless the canary passed
  ansible.builtin.fail:
    msg: "canary {{ analysis.verdict }}: {{ analysis.reasons | join('; ') }}"
  when: analysis.verdict != 'pass'

- name: Latency from active probes as well
  sre.ops.canary_analysis:
    socket: 10.0.0.5:9999
    backend: be_app
    canary: [web4]
    canary_urls: [http://10.0.0.14:8080/]
    baseline_urls: [http://10.0.0.11:8080/, http://10.0.0.12:8080/]
    window: 60
"""

RETURN = r"""
verdict:
  description: V(pass), V(fail) or V(inconclusive).
  returned: always
  type: str
  sample: fail
passed:
  description: Whether the verdict is V(pass).
  returned: always
  type: bool
  sample: false
reasons:
  description: One line per metric, failing metrics first.
  returned: always
  type: list
  elements: str
  sample: ["error_ratio: canary error ratio 20.00% is higher than baseline 0.00% (20/100 vs 0/300, fisher p=1.2e-12 < 0.05)"]
metrics:
  description: Each judged metric with its verdict, both groups' figures, the test, statistic and p-value.
  returned: always
  type: list
  elements: dict
  sample: [{"metric": "error_ratio", "verdict": "fail", "p_value": 1.2e-12, "test": "fisher",
            "canary": {"requests": 100, "errors": 20, "ratio": 0.2}, "baseline": {"requests": 300, "errors": 0, "ratio": 0.0}}]
measurements:
  description: The raw measurements - HAProxy counter deltas and response-time samples per group, probe counts.
  returned: always
  type: dict
  sample: {"window_s": 60, "haproxy": {"canary_servers": ["web4"], "baseline_servers": ["web1", "web2", "web3"],
           "canary": {"requests": 100, "errors": 20}, "baseline": {"requests": 300, "errors": 0}}}
elapsed_s:
  description: Seconds spent observing.
  returned: always
  type: float
  sample: 60.01
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._canary import CanaryAnalysis
from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._haproxy import RuntimeAPI


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "socket": {"type": "str"},
            "timeout": {"type": "float", "default": 5},
            "backend": {"type": "str"},
            "canary": {"type": "list", "elements": "str"},
            "baseline": {"type": "list", "elements": "str"},
            "canary_urls": {"type": "list", "elements": "str"},
            "baseline_urls": {"type": "list", "elements": "str"},
            "window": {"type": "float", "default": 60},
            "interval": {"type": "float", "default": 5},
            "probe_rate": {"type": "float", "default": 10},
            "probe_timeout": {"type": "float", "default": 2},
            "alpha": {"type": "float", "default": 0.05},
            "min_requests": {"type": "int", "default": 100},
            "min_samples": {"type": "int", "default": 30},
            "error_tolerance": {"type": "float", "default": 0.01},
            "max_error_ratio": {"type": "float"},
            "latency_tolerance": {"type": "float", "default": 0.2},
            "latency_min_increase_ms": {"type": "float", "default": 10},
            "error_test": {"type": "str", "choices": ["fisher", "ztest"], "default": "fisher"},
            "fail_on": {"type": "list", "elements": "str", "choices": ["fail", "inconclusive"], "default": ["fail", "inconclusive"]},
        },
        required_together=[["socket", "backend"], ["canary_urls", "baseline_urls"]],
        required_by={"socket": ["canary"]},
        required_one_of=[["socket", "canary_urls"]],
        supports_check_mode=True,
    )
    p = module.params
    try:
        result = CanaryAnalysis(
            api=RuntimeAPI(p["socket"], p["timeout"]) if p["socket"] else None, backend=p["backend"], canary=p["canary"] or [],
            baseline=p["baseline"], canary_urls=p["canary_urls"] or [], baseline_urls=p["baseline_urls"] or [], window=p["window"],
            interval=p["interval"], probe_rate=p["probe_rate"], probe_timeout=p["probe_timeout"], alpha=p["alpha"],
            min_requests=p["min_requests"], min_samples=p["min_samples"], error_tolerance=p["error_tolerance"],
            max_error_ratio=p["max_error_ratio"], latency_tolerance=p["latency_tolerance"], error_test=p["error_test"],
            latency_min_increase_ms=p["latency_min_increase_ms"],
        ).run()
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg)
    if result["verdict"] in p["fail_on"]:
        module.fail_json(msg=f"canary analysis: {result['verdict']}: " + "; ".join(result["reasons"]), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
