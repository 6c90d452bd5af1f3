#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: health_check
short_description: Probe many HTTP(S), TCP and command health checks concurrently, with rise/fall thresholds
version_added: 0.1.0
description:
  - Runs a list of probes concurrently in one task, where a C(ansible.builtin.uri) loop would run them one at a time.
  - Each probe is attempted until it has O(probes[].success_threshold) consecutive passes (healthy) or
    O(probes[].failure_threshold) consecutive failures (unhealthy), like Kubernetes probes and HAProxy's rise/fall.
  - In O(mode=wait) a probe is retried until it is healthy or the O(deadline) passes, like a Kubernetes startup probe.
  - Every attempt has a hard O(probes[].timeout) that covers all of it (name resolution, connecting, the TLS handshake,
    sending the request and reading the whole response, or running the command), even against a resolver that never
    answers or an endpoint that sends its response one byte at a time. No attempt outlives O(deadline).
  - Names are resolved with the host's resolver (C(/etc/hosts), C(/etc/resolv.conf)) in a worker thread that the attempt
    stops waiting for at its timeout; probes of the same host share one lookup, and an answer is kept for the rest of
    the task.
  - CA certificates for V(https) probes are loaded once per task, before the first attempt.
  - Redirects are not followed. A V(3xx) answer is judged like any other status by O(probes[].status_codes), so it fails
    the default V(2xx); add V(3xx) (or the code) to accept it, or probe the URL it redirects to.
  - The task fails when any probe is unhealthy, with a message naming each failing probe and why, unless O(report_only=true).
  - The module is read-only, so it runs in full in check mode; a C(--check) preview really checks health. This includes
    V(command) probes, whose commands run in check mode too, so use only commands without side effects.
  - "Runs on the managed host (probing itself or its neighbours) or on the controller with C(delegate_to: localhost);
    it needs only the Python standard library."
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Read-only. Probes really run in check mode and return the same results as a normal run; V(command) probes run
        their command in check mode too.
  diff_mode:
    support: none
    details:
      - Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
options:
  probes:
    description:
      - The probes to run. Names must be unique.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: Name of the probe, used in results and messages.
        type: str
        required: true
      type:
        description:
          - V(http) requests O(probes[].url); V(tcp) connects to O(probes[].host):O(probes[].port);
            V(command) runs O(probes[].command) on the host the module runs on.
        type: str
        choices: [http, tcp, command]
        default: http
      url:
        description: URL to request (V(http://) or V(https://)). Required for V(http). Credentials in it are redacted in results.
        type: str
      method:
        description: HTTP method.
        type: str
        choices: [GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS]
        default: GET
      headers:
        description:
          - Request headers. Their values are treated as secrets and never shown in output or logs.
        type: dict
      body:
        description: Request body.
        type: str
      status_codes:
        description:
          - Status codes that count as a pass, each like V(200), V(2xx) or V(200-299).
          - Redirects are not followed, so a V(3xx) answer passes only when listed here.
        type: list
        elements: str
        default: ['2xx']
      body_regex:
        description:
          - The response body must match this regular expression (Python C(re.search)).
          - O(probes[].body_regex), O(probes[].body_not_regex) and O(probes[].json_conditions) see the first 1 MiB of the
            body; reading stops there, and a longer body is not an error in itself.
        type: str
      body_not_regex:
        description: The response body must not match this regular expression.
        type: str
      json_conditions:
        description:
          - Conditions on the JSON response body; all must hold.
        type: list
        elements: dict
        suboptions:
          path:
            description: Dotted path into the document, with V([n]) for list items, for example V(checks[0].status).
            type: str
            required: true
          op:
            description:
              - Comparison. V(lt), V(le), V(gt), V(ge) compare numbers; V(in) and V(not_in) take a list as O(probes[].json_conditions[].value);
                V(regex) searches the value as text; V(exists) and V(absent) ignore O(probes[].json_conditions[].value).
            type: str
            choices: [eq, ne, lt, le, gt, ge, in, not_in, regex, exists, absent]
            default: eq
          value:
            description: The value to compare with.
            type: raw
      max_latency:
        description: Seconds an attempt may take at most (for V(http), until the whole response is read) to count as a pass.
        type: float
      cert_min_days:
        description: For V(https), the server certificate must remain valid for at least this many days.
        type: int
      validate_certs:
        description: Verify the server certificate and host name for V(https). Days to expiry are checked either way.
        type: bool
        default: true
      ca_path:
        description: CA bundle to verify V(https) servers against, instead of the system's.
        type: path
      host:
        description: Host to connect to. Required for V(tcp).
        type: str
      port:
        description: Port to connect to. Required for V(tcp).
        type: int
      send:
        description: For V(tcp), text to send after connecting.
        type: str
      expect:
        description: For V(tcp), a regular expression the reply must match (read until it matches, the peer closes, or the timeout).
        type: str
      command:
        description:
          - For V(command), the command as a list of arguments or a string split like a shell would (no shell features).
          - It runs in its own session; at the timeout its whole process group is killed.
          - It runs in check mode too, like every probe.
        type: raw
      rc:
        description: For V(command), exit codes that count as a pass.
        type: list
        elements: int
        default: [0]
      timeout:
        description:
          - Seconds one attempt may take, name resolution and TLS handshake included. Defaults to the task-level O(timeout).
          - Must be positive.
        type: float
      interval:
        description: Seconds between attempts. Defaults to the task-level O(interval).
        type: float
      success_threshold:
        description: Consecutive passes needed to count as healthy. Defaults to the task-level O(success_threshold).
        type: int
      failure_threshold:
        description: Consecutive failures that count as unhealthy. Defaults to the task-level O(failure_threshold).
        type: int
  mode:
    description:
      - V(once) decides each probe by its thresholds.
      - V(wait) retries each probe until it is healthy or O(deadline) passes; failures alone never end it.
    type: str
    choices: [once, wait]
    default: once
  deadline:
    description:
      - Seconds the whole task may take; a probe still undecided then is unhealthy, and the last attempt of a probe gets
        only the time left (when that is what ends it, its reason says so instead of blaming the endpoint).
      - The task returns within O(deadline) plus a margin for collecting the results, well under 0.1 s on an idle host
        and at most 1 s on a heavily loaded one. Loading CA certificates counts towards the deadline.
      - Probes that wait for a free slot (see O(concurrency)) until the deadline passes are not run, and a probe whose only
        attempt the deadline cut short before any answer came has not really run either. Both are reported with the reason
        V(not run before the deadline), in RV(not_run_probes), never as failures of their endpoints; the task fails all
        the same.
    type: float
    default: 60
  concurrency:
    description: How many probes run at the same time.
    type: int
    default: 32
  timeout:
    description: Default O(probes[].timeout). Must be positive.
    type: float
    default: 2
  interval:
    description: Default O(probes[].interval).
    type: float
    default: 1
  success_threshold:
    description: Default O(probes[].success_threshold).
    type: int
    default: 1
  failure_threshold:
    description: Default O(probes[].failure_threshold).
    type: int
    default: 1
  report_only:
    description: Return the results without failing the task when a probe is unhealthy.
    type: bool
    default: false
seealso:
  - module: ansible.builtin.uri
  - module: ansible.builtin.wait_for
"""

EXAMPLES = r"""
---
- name: Gate a rollout on every app host, checked from the controller
  sre.ops.health_check:
    probes:
      - name: "{{ item }} healthz"
        url: "http://{{ hostvars[item].ansible_host }}:8080/healthz"
        json_conditions:
          - path: status
            value: ok
  loop: "{{ groups['app'] }}"
  delegate_to: localhost

- name: Wait until the freshly started app is healthy three times in a row (startup probe)
  sre.ops.health_check:
    mode: wait
    deadline: 30
    interval: 0.5
    success_threshold: 3
    probes:
      - name: local app
        url: http://127.0.0.1:8080/healthz
      - name: app port
        type: tcp
        host: 127.0.0.1
        port: 8080
      - name: app process
        type: command
        command: [/srv/app/current/bin/appctl, status]

- name: Public endpoint checks with a latency budget and certificate expiry
  sre.ops.health_check:
    failure_threshold: 3
    probes:
      - name: api
        url: https://api.example.com/v1/health
        headers:
          Authorization: "Bearer {{ api_token }}"
        status_codes: ["200", "204"]
        max_latency: 0.5
        cert_min_days: 14
  register: api_health

- name: Report without failing
  sre.ops.health_check:
    report_only: true
    probes:
      - name: ssh banner
        type: tcp
        host: "{{ ansible_host }}"
        port: 22
        expect: "^SSH-2.0"
"""

RETURN = r"""
healthy:
  description: Whether every probe is healthy.
  returned: always
  type: bool
  sample: false
summary:
  description: Counts of probes (healthy, unhealthy, not run before the deadline) and the seconds the task took.
  returned: always
  type: dict
  sample: {"total": 3, "healthy": 2, "unhealthy": 1, "not_run": 0, "elapsed_s": 0.412}
failed_probes:
  description: Names of the probes that ran and are unhealthy.
  returned: always
  type: list
  elements: str
  sample: ["api"]
not_run_probes:
  description: Names of the probes that did not get to run before the deadline (see RV(probes[].ran)).
  returned: always
  type: list
  elements: str
  sample: []
probes:
  description: One result per probe, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The probe's name.
      type: str
      sample: api
    type:
      description: The probe's type.
      type: str
      sample: http
    target:
      description: What was probed (URL with credentials redacted, C(host:port), or the command).
      type: str
      sample: https://api.example.com/v1/health
    healthy:
      description: Whether the probe reached its success threshold.
      type: bool
      sample: false
    ran:
      description:
        - Whether the probe got to run before the deadline. False (with the reason V(not run before the deadline)) when it
          waited for a free slot until the deadline, or when the deadline cut its only attempt short before an answer came.
      type: bool
      sample: true
    reason:
      description: V(ok), or why the probe is unhealthy, in words.
      type: str
      sample: status 503 not in [200, 204]
    attempts:
      description: Attempts made.
      type: int
      sample: 3
    consecutive_passes:
      description: Passes in a row at the end.
      type: int
      sample: 0
    consecutive_failures:
      description: Failures in a row at the end.
      type: int
      sample: 3
    last_status:
      description: HTTP status, exit code, V(connected), or null when no answer came.
      type: raw
      sample: 503
    last_reason:
      description: The outcome of the last attempt in words.
      type: str
      sample: status 503 not in [200, 204]
    latency_ms:
      description: Attempt latencies in milliseconds (p50, p95, max).
      type: dict
      sample: {"p50": 1.9, "p95": 2.4, "max": 2.4}
msg:
  description: V(all N probes healthy), or which probes are unhealthy and why, and which did not run before the deadline.
  returned: always
  type: str
  sample: "1 of 3 probes unhealthy: api (status 503 not in [200, 204])"
"""

from ansible.module_utils.basic import AnsibleModule

from ansible_collections.sre.ops.plugins.module_utils._errors import SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._health import JSON_OPS, HealthCheck, prepare_probes

PROBE_SPEC = {
    "name": {"type": "str", "required": True},
    "type": {"type": "str", "choices": ["http", "tcp", "command"], "default": "http"},
    "url": {"type": "str"},
    "method": {"type": "str", "choices": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"], "default": "GET"},
    "headers": {"type": "dict", "no_log": True},
    "body": {"type": "str"},
    "status_codes": {"type": "list", "elements": "str", "default": ["2xx"]},
    "body_regex": {"type": "str"},
    "body_not_regex": {"type": "str"},
    "json_conditions": {
        "type": "list",
        "elements": "dict",
        "options": {
            "path": {"type": "str", "required": True},
            "op": {"type": "str", "choices": list(JSON_OPS), "default": "eq"},
            "value": {"type": "raw"},
        },
    },
    "max_latency": {"type": "float"},
    "cert_min_days": {"type": "int"},
    "validate_certs": {"type": "bool", "default": True},
    "ca_path": {"type": "path"},
    "host": {"type": "str"},
    "port": {"type": "int"},
    "send": {"type": "str"},
    "expect": {"type": "str"},
    "command": {"type": "raw"},
    "rc": {"type": "list", "elements": "int", "default": [0]},
    "timeout": {"type": "float"},
    "interval": {"type": "float"},
    "success_threshold": {"type": "int"},
    "failure_threshold": {"type": "int"},
}


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "probes": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": PROBE_SPEC,
                "required_if": [["type", "http", ["url"]], ["type", "tcp", ["host", "port"]], ["type", "command", ["command"]]],
            },
            "mode": {"type": "str", "choices": ["once", "wait"], "default": "once"},
            "deadline": {"type": "float", "default": 60},
            "concurrency": {"type": "int", "default": 32},
            "timeout": {"type": "float", "default": 2},
            "interval": {"type": "float", "default": 1},
            "success_threshold": {"type": "int", "default": 1},
            "failure_threshold": {"type": "int", "default": 1},
            "report_only": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        probes = prepare_probes(params["probes"], params)
        result = HealthCheck(probes, params["mode"], params["deadline"], params["concurrency"]).run()
    except SreOpsError as exc:
        module.fail_json(msg=exc.msg)
    if not result["healthy"] and not params["report_only"]:
        module.fail_json(changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
