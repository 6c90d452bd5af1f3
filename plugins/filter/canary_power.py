# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: canary_power
short_description: What a canary analysis with these options would detect at the expected traffic
version_added: 0.1.0
description:
  - States, before a canary runs, what M(sre.ops.canary_analysis) with these options would catch - the smallest rise of
    the error ratio and of the median latency caught with probability C(required_power), and the probability of
    catching the C(error_detect) / C(latency_detect_ms) rise - for the traffic you expect in its window.
  - Computed by the same rules and power functions the analysis uses when it judges; it measures nothing. To measure the
    current traffic on the load balancer instead, run M(sre.ops.canary_analysis) with O(sre.ops.canary_analysis#module:mode=plan).
  - The traffic is O(expected_rate) requests a second to canary and baseline servers together, O(canary_share) of it on the
    canary, over C(window) seconds (default 60); or O(canary_requests) and O(baseline_requests).
  - Which metrics are stated follows the options, as in the analysis - errors and latency from HAProxy's request log
    (C(log_path), C(log_socket)), errors only from its counters (C(socket) alone), latency from probes
    (C(canary_urls), C(baseline_urls), C(probe_rate) a second to each URL). With none of them the
    request log is assumed (RV(_value.notes) says so).
  - Latency power depends on the baseline's latency spread - give O(baseline_p50_ms) and O(baseline_p90_ms) (a log-normal
    distribution through them) or a sample O(baseline_latencies_ms); without them latency power is unknown and
    RV(_value.sufficient) is false.
  - Fails with a clear message on options the analysis would refuse (for example C(error_detect) not above
    C(error_tolerance)).
positional: _input
options:
  _input:
    description:
      - The options of M(sre.ops.canary_analysis) - those of a deploy role's C(analysis) step, for instance. The rules
        (O(sre.ops.canary_analysis#module:alpha), O(sre.ops.canary_analysis#module:error_tolerance),
        O(sre.ops.canary_analysis#module:error_detect), O(sre.ops.canary_analysis#module:latency_detect_ms),
        O(sre.ops.canary_analysis#module:required_power), ...), C(window), the sources and C(probe_rate) are read; other
        options are ignored.
    type: dict
    required: true
  expected_rate:
    description: Requests a second the canary and baseline servers get together. Goes with O(canary_share).
    type: float
  canary_share:
    description: The share of those requests on the canary servers (V(0.1) = 10%, a C(set_weight) of 10).
    type: float
  canary_requests:
    description: Requests the canary servers get in the window, instead of O(expected_rate) and O(canary_share).
    type: int
  baseline_requests:
    description: Requests the baseline servers get in the window. Goes with O(canary_requests).
    type: int
  baseline_error_ratio:
    description: The baseline's usual error ratio (V(0.002) = 0.2% 5xx). Power is lower when it is higher.
    type: float
    default: 0
  baseline_p50_ms:
    description: The baseline's usual median latency in milliseconds. Goes with O(baseline_p90_ms).
    type: float
  baseline_p90_ms:
    description: The baseline's usual 90th percentile latency in milliseconds.
    type: float
  baseline_latencies_ms:
    description: A sample of the baseline's latencies in milliseconds (20 or more), instead of O(baseline_p50_ms) and O(baseline_p90_ms).
    type: list
    elements: float
seealso:
  - module: sre.ops.canary_analysis
"""

EXAMPLES = r"""
---
- name: What would a 60 s analysis with 10% of 40 requests a second on the canary catch?
  ansible.builtin.debug:
    msg: >-
      {{ {'window': 60, 'socket': '/run/haproxy/admin.sock', 'log_path': '/var/log/haproxy.log'}
         | sre.ops.canary_power(expected_rate=40, canary_share=0.1, baseline_p50_ms=20, baseline_p90_ms=60) }}

- name: Refuse to start a canary that could not catch what we care about
  ansible.builtin.assert:
    that: power.sufficient
    fail_msg: "{{ power.detectable | join('; ') }}"
  vars:
    power: "{{ deploy_canary_analysis | sre.ops.canary_power(canary_requests=600, baseline_requests=1800, baseline_error_ratio=0.005,
               baseline_p50_ms=20, baseline_p90_ms=60) }}"
"""

RETURN = r"""
_value:
  description: The power statement.
  type: dict
  contains:
    detectable:
      description:
        - One sentence per metric, as the analysis states it (its RV(sre.ops.canary_analysis#module:detectable)).
      sample:
        - >-
          error_ratio (haproxy log): with 300 canary and 900 baseline requests, a rise from 0.00% to 1.42% errors would be
          caught with 80% probability; to 5.00%: 100%
      type: list
      elements: str
    sufficient:
      description: Whether every metric would catch the C(error_detect) / C(latency_detect_ms) rise with C(required_power).
      type: bool
    metrics:
      description: Per metric, its source, the expected request or sample counts and C(power) (as in the analysis's RV(sre.ops.canary_analysis#module:metrics)).
      type: list
      elements: dict
    window_s:
      description: The window the statement is for.
      type: float
    notes:
      description: What was assumed or will not be judged (latency from counters, for instance).
      type: list
      elements: str
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.ops.plugins.module_utils._canary import power_statement
from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError


TRAFFIC = ("expected_rate", "canary_share", "canary_requests", "baseline_requests", "baseline_error_ratio", "baseline_p50_ms",
           "baseline_p90_ms", "baseline_latencies_ms")


def canary_power(options: t.Any, **traffic: t.Any) -> dict[str, t.Any]:
    if not isinstance(options, t.Mapping):
        raise AnsibleFilterError(f"sre.ops.canary_power: its input is a dict of sre.ops.canary_analysis options, got {type(options).__name__}")
    unknown = sorted(set(traffic) - set(TRAFFIC))
    if unknown:
        raise AnsibleFilterError(f"sre.ops.canary_power: unknown option {', '.join(unknown)} (it takes {', '.join(TRAFFIC)})")
    try:
        return power_statement(options, **traffic)
    except SreOpsError as exc:
        raise AnsibleFilterError(f"sre.ops.canary_power: {exc.msg}") from exc


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"canary_power": canary_power}
