# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.ops.plugins.filter.canary_power import FilterModule
from ansible_collections.sre.ops.plugins.module_utils._canary import power_statement


def test_the_filter_states_the_power_and_turns_errors_into_filter_errors():
    canary_power = FilterModule().filters()["canary_power"]
    options = {"window": 60, "socket": "/run/haproxy/admin.sock", "log_path": "/var/log/haproxy.log", "fail_on": []}
    stated = canary_power(options, expected_rate=40, canary_share=0.1, baseline_p50_ms=20, baseline_p90_ms=60)
    assert stated == power_statement(options, expected_rate=40, canary_share=0.1, baseline_p50_ms=20, baseline_p90_ms=60)
    assert stated["detectable"][0].startswith("error_ratio (haproxy log): with 240 canary and 2160 baseline requests")
    with pytest.raises(AnsibleFilterError, match=r"sre.ops.canary_power: canary_share must be between 0 and 1 \(exclusive\), got 10"):
        canary_power(options, expected_rate=40, canary_share=10)
    with pytest.raises(AnsibleFilterError, match="sre.ops.canary_power: unknown option share "):
        canary_power(options, expected_rate=40, share=0.1)
    with pytest.raises(AnsibleFilterError, match="its input is a dict of sre.ops.canary_analysis options, got list"):
        canary_power([options], canary_requests=1, baseline_requests=1)
