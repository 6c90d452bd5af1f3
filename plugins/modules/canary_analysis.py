#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: canary_analysis
short_description: Judge canary servers against the baseline from HAProxy's request log, counters and active probes
version_added: 0.1.0
description:
  - Observes canary and baseline servers for O(window) seconds and returns a verdict, V(pass), V(fail) or
    V(inconclusive), with every measurement, the reasons, and what the window could detect.
  - Only requests of the window are judged. With O(log_path) or O(log_socket) it reads HAProxy's own per-request log
    lines (C(option httplog)) written during the window - the server, status and response time (C(Tr)) of every
    request - and judges errors and latency from them. With only O(socket) it judges errors from HAProxy's response
    counters differenced over the window; HAProxy's response-time figures are averages over each server's last 1024
    requests (earlier releases included), so latency is then judged only from probes.
  - With O(canary_urls) and O(baseline_urls) it also sends probe requests during the window, O(probe_rate) per second
    to every URL, so the canary hosts carry the same probe load as each baseline host.
  - Error ratios are compared with Fisher's exact test (or a two-proportion z-test), latencies with the Mann-Whitney U
    test, both one-sided (is the canary worse?). A metric fails on a significant rise (p below O(alpha)) that reaches
    its tolerance - O(error_tolerance) in points of error ratio, O(latency_tolerance) relative to the baseline median and
    at least O(latency_min_increase_ms).
  - A metric that did not fail passes only if the window could have caught the rise you want caught - O(error_detect),
    O(latency_detect_ms) - with probability O(required_power); otherwise it is V(inconclusive). Fewer than
    O(min_requests) requests or O(min_samples) latency samples per group are V(inconclusive) too, never V(pass).
  - Every judged metric reports its minimum detectable effect (RV(detectable)). With O(mode=plan) nothing is judged - it
    measures the current traffic for O(plan_sample) seconds (or takes O(expected_rate)) and states what a window with
    these settings would detect - run it before a canary, in a C(--check) preview for instance. The filter
    P(sre.ops.canary_power#filter) states the same for the traffic you expect, measuring nothing (for a rollout plan).
  - Read-only - it runs in full in check mode, so a C(--check) preview shows whether the canary would pass right now.
  - "What HAProxy needs: C(option httplog) (or C(httpslog)) and C(log global) in the backend's C(defaults) or proxy, and a
    C(log) target the analysis can read on the load balancer: a syslog daemon's file (Debian's haproxy package with
    rsyslog writes C(/var/log/haproxy.log); use O(log_path)), or a C(log) line to a UNIX datagram socket or a local UDP
    port that the analysis binds for its window (O(log_socket)). See the collection's C(docs/canary.md)."
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
  mode:
    description:
      - V(judge) observes the window and judges the canary.
      - V(plan) judges nothing and states what a window would detect (RV(detectable)) at the traffic measured for
        O(plan_sample) seconds (or O(expected_rate)), with the canary taking O(canary_share) of it.
    type: str
    choices: [judge, plan]
    default: judge
  socket:
    description:
      - HAProxy runtime API, a UNIX socket path or V(host:port).
      - Gives the baseline servers (every serving server that is not a canary), and the counters when there is no request log.
    type: str
  timeout:
    description: Seconds to wait for HAProxy to answer one command.
    type: float
    default: 5
  backend:
    description: The backend holding the canary and baseline servers. Required with O(socket), O(log_path) or O(log_socket).
    type: str
  canary:
    description: Canary server names in O(backend) (HAProxy's names).
    type: list
    elements: str
  baseline:
    description:
      - Baseline server names. Defaults to every serving server of O(backend) that is not a canary (with O(socket)), or
        every other server of O(backend) in the request log.
    type: list
    elements: str
  log_path:
    description:
      - A file HAProxy's request log lines are written to on this host, e.g. V(/var/log/haproxy.log) written by rsyslog.
      - The lines written during the window are judged; a rotation during the window is followed.
    type: path
  log_socket:
    description:
      - Where HAProxy sends its request log lines, for the analysis to receive during the window - an absolute path (a UNIX
        datagram socket, e.g. HAProxy C(log /run/haproxy/canary.sock local0)) or V(host:port) (UDP, e.g. C(log 127.0.0.1:5140 local0)).
      - It is bound only while the analysis runs (HAProxy drops lines while nobody listens) and never by two analyses at once
        (a lock file next to a socket path). A stale socket file left by a killed run is replaced.
      - A chrooted HAProxy resolves a socket path inside its chroot; give the full path here.
    type: str
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
    description:
      - Not used any more - the analysis no longer samples HAProxy's response-time averages. Accepted so existing playbooks
        run; it will be removed.
    type: float
  probe_rate:
    description: Probe requests per second to each URL in O(canary_urls) and O(baseline_urls).
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
  required_power:
    description: The probability with which the window must be able to catch an O(error_detect) or O(latency_detect_ms) rise before a metric can pass.
    type: float
    default: 0.8
  min_requests:
    description: Requests each group needs before errors are judged; fewer gives V(inconclusive).
    type: int
    default: 100
  min_samples:
    description: Latency samples each group needs before latency is judged; fewer gives V(inconclusive).
    type: int
    default: 30
  error_tolerance:
    description:
      - Absolute, in points of error ratio (V(0.005) = half a percentage point) - a significant rise of the canary's error ratio
        over the baseline's fails the canary once it reaches this; smaller significant rises pass (and the reason says so).
    type: float
    default: 0.005
  error_detect:
    description:
      - Absolute, in points of error ratio (V(0.05) = 5 points over the baseline) - the rise the window must be able to catch
        with probability O(required_power); with less traffic a canary that did not fail is V(inconclusive). V(0) turns this off.
      - When not set, V(0.05), or twice O(error_tolerance) when that is larger (a rise within the tolerance passes, so it cannot be the
        rise that must be caught).
    type: float
  max_error_ratio:
    description: Fail when the canary's error ratio is above this, whatever the baseline does.
    type: float
  latency_tolerance:
    description:
      - Relative to the baseline median (V(0.2) = 20%) - a significant rise of the canary's median latency fails the canary once it
        reaches this and O(latency_min_increase_ms).
    type: float
    default: 0.2
  latency_min_increase_ms:
    description: Absolute, in milliseconds - how much higher the canary's median must also be before it fails (1 ms against 0 ms is not a regression).
    type: float
    default: 10
  latency_detect_ms:
    description:
      - The rise of the median (ms) the window must be able to catch with probability O(required_power); with fewer samples a canary
        that did not fail is V(inconclusive). V(0) turns this off.
      - When not set, V(50), or O(latency_min_increase_ms) when that is larger.
    type: float
  error_test:
    description: The test for error ratios.
    type: str
    choices: [fisher, ztest]
    default: fisher
  expected_rate:
    description: With O(mode=plan), requests per second the canary and baseline servers get together; measured over O(plan_sample) when not given.
    type: float
  canary_share:
    description:
      - With O(mode=plan), the share of those requests the canary servers will get during the window (V(0.25) = 25%).
      - Defaults to their share of the current HAProxy weights (with O(socket)), else of the sampled requests.
    type: float
  plan_sample:
    description: With O(mode=plan), seconds to measure the current traffic (request rate, error ratio and latency spread).
    type: float
    default: 3
  fail_on:
    description:
      - Verdicts that fail the task. With V([]) the task only reports, and the caller branches on RV(verdict).
    type: list
    elements: str
    choices: [fail, inconclusive]
    default: [fail, inconclusive]
seealso:
  - plugin: sre.ops.canary_power
    plugin_type: filter
  - module: sre.ops.haproxy_info
  - module: sre.ops.health_check
"""

EXAMPLES = r"""
---
- name: Judge web4 (new release) against the rest of be_app for a minute, from HAProxy's request log
  sre.ops.canary_analysis:
    socket: /run/haproxy/admin.sock
    backend: be_app
    canary: [web4]
    log_path: /var/log/haproxy.log
    window: 60
    max_error_ratio: 0.05
    fail_on: []
  delegate_to: "{{ groups['lb'][0] }}"
  register: analysis

- name: Stop the rollout unless the canary passed
  ansible.builtin.fail:
    msg: "canary {{ analysis.verdict }}: {{ analysis.reasons | join('; ') }}"
  when: analysis.verdict != 'pass'

- name: Before the canary - what would a 60 s window with 25% of the traffic on web4 detect?
  sre.ops.canary_analysis:
    mode: plan
    socket: /run/haproxy/admin.sock
    backend: be_app
    canary: [web4]
    log_path: /var/log/haproxy.log
    window: 60
    canary_share: 0.25
    fail_on: []
  delegate_to: "{{ groups['lb'][0] }}"
  register: plan

- name: Show it
  ansible.builtin.debug:
    msg: "{{ plan.detectable }}"

- name: No syslog daemon - HAProxy has `log 127.0.0.1:5140 local0`; probes too, equal load on every host
  sre.ops.canary_analysis:
    socket: 10.0.0.5:9999
    backend: be_app
    canary: [web4]
    log_socket: 127.0.0.1:5140
    canary_urls: [http://10.0.0.14:8080/]
    baseline_urls: [http://10.0.0.11:8080/, http://10.0.0.12:8080/]
    window: 60
"""

RETURN = r"""
verdict:
  description: V(pass), V(fail) or V(inconclusive); V(planned) with O(mode=plan).
  returned: always
  type: str
  sample: fail
passed:
  description: Whether the verdict is V(pass).
  returned: always
  type: bool
  sample: false
reasons:
  description: One line per metric, failing (then inconclusive) metrics first. With O(mode=plan), the RV(detectable) lines.
  returned: always
  type: list
  elements: str
  sample: ["error_ratio: canary error ratio 6.33% is higher than baseline 0.00% (19/300 vs 0/900, fisher p=1.1e-11 < 0.05; ...) [haproxy log]"]
detectable:
  description:
    - What the window could detect (with O(mode=plan) - would detect), one line per metric - the minimum detectable rise at
      O(required_power), and the probability of catching the O(error_detect) / O(latency_detect_ms) rise.
  returned: always
  type: list
  elements: str
  sample: ["error_ratio (haproxy log): with 300 canary and 900 baseline requests, a rise from 0.00% to 1.38% errors was caught with
            80% probability; to 5.00%: 100%"]
sufficient:
  description:
    - With O(mode=plan), whether every metric would have the power O(required_power) for O(error_detect) and O(latency_detect_ms).
    - A metric whose power is unknown (too few latencies in the sample to know their spread) is not sufficient.
  returned: when mode is plan
  type: bool
metrics:
  description:
    - Each judged metric with its verdict, source, both groups' figures, the test, statistic, p-value, and C(power) - the minimum detectable
      effect at O(required_power), the power at the O(error_detect) / O(latency_detect_ms) rise, and whether that was sufficient.
    - With O(mode=plan), the expected request and sample counts and C(power).
  returned: always
  type: list
  elements: dict
  sample: [{"metric": "error_ratio", "source": "haproxy log", "verdict": "fail", "p_value": 1.1e-11, "test": "fisher",
            "canary": {"requests": 300, "errors": 19, "ratio": 0.0633}, "baseline": {"requests": 900, "errors": 0, "ratio": 0.0},
            "power": {"minimum_detectable_rise": 0.0138, "power_at_detect": 1.0, "required_power": 0.8, "sufficient": true}}]
notes:
  description: What was not judged and why (for example latency, without a request log or probes).
  returned: always
  type: list
  elements: str
measurements:
  description:
    - The raw measurements - the window's start and end (epoch seconds), per group requests, errors and aborted requests from the
      request log (or counter deltas), probe counts.
  returned: always
  type: dict
  sample: {"window_s": 60, "haproxy": {"source": "request log /var/log/haproxy.log", "canary_servers": ["web4"],
           "baseline_servers": ["web1", "web2", "web3"], "canary": {"requests": 600, "errors": 36}, "baseline": {"requests": 1800, "errors": 0}}}
elapsed_s:
  description: Seconds spent observing.
  returned: always
  type: float
  sample: 60.01
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._canary import CanaryAnalysis, Rules
from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._haproxy import RuntimeAPI


RULES = ("alpha", "min_requests", "min_samples", "error_test", "error_tolerance", "max_error_ratio", "error_detect", "latency_tolerance",
         "latency_min_increase_ms", "latency_detect_ms", "required_power")


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "mode": {"type": "str", "choices": ["judge", "plan"], "default": "judge"},
            "socket": {"type": "str"},
            "timeout": {"type": "float", "default": 5},
            "backend": {"type": "str"},
            "canary": {"type": "list", "elements": "str"},
            "baseline": {"type": "list", "elements": "str"},
            "log_path": {"type": "path"},
            "log_socket": {"type": "str"},
            "canary_urls": {"type": "list", "elements": "str"},
            "baseline_urls": {"type": "list", "elements": "str"},
            "window": {"type": "float", "default": 60},
            "interval": {"type": "float", "removed_in_version": "1.0.0", "removed_from_collection": "sre.ops"},
            "probe_rate": {"type": "float", "default": 10},
            "probe_timeout": {"type": "float", "default": 2},
            "alpha": {"type": "float", "default": 0.05},
            "required_power": {"type": "float", "default": 0.8},
            "min_requests": {"type": "int", "default": 100},
            "min_samples": {"type": "int", "default": 30},
            "error_tolerance": {"type": "float", "default": 0.005},
            "error_detect": {"type": "float"},
            "max_error_ratio": {"type": "float"},
            "latency_tolerance": {"type": "float", "default": 0.2},
            "latency_min_increase_ms": {"type": "float", "default": 10},
            "latency_detect_ms": {"type": "float"},
            "error_test": {"type": "str", "choices": ["fisher", "ztest"], "default": "fisher"},
            "expected_rate": {"type": "float"},
            "canary_share": {"type": "float"},
            "plan_sample": {"type": "float", "default": 3},
            "fail_on": {"type": "list", "elements": "str", "choices": ["fail", "inconclusive"], "default": ["fail", "inconclusive"]},
        },
        required_together=[["canary_urls", "baseline_urls"]],
        required_by={"socket": ["backend", "canary"], "log_path": ["backend", "canary"], "log_socket": ["backend", "canary"]},
        required_one_of=[["socket", "log_path", "log_socket", "canary_urls"]],
        mutually_exclusive=[["log_path", "log_socket"]],
        supports_check_mode=True,
    )
    p = module.params
    try:
        analysis = CanaryAnalysis(
            api=RuntimeAPI(p["socket"], p["timeout"]) if p["socket"] else None, backend=p["backend"], canary=p["canary"] or [],
            baseline=p["baseline"], canary_urls=p["canary_urls"] or [], baseline_urls=p["baseline_urls"] or [], window=p["window"],
            probe_rate=p["probe_rate"], probe_timeout=p["probe_timeout"], log_path=p["log_path"], log_socket=p["log_socket"],
            rules=Rules(**{name: p[name] for name in RULES}),
        )
        if p["mode"] == "plan":
            result = analysis.plan(expected_rate=p["expected_rate"], canary_share=p["canary_share"], sample=p["plan_sample"])
        else:
            result = analysis.run()
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg)
    for note in result.get("notes", []):
        module.warn(note)
    if result["verdict"] in p["fail_on"]:
        module.fail_json(msg=f"canary analysis: {result['verdict']}: " + "; ".join(result["reasons"]), changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
