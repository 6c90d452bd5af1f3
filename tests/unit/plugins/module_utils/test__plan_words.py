# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The words every plan of the collection speaks: the sre.ops.plan callback's and the deploy role's rollout plan."""

from __future__ import annotations

from ansible_collections.sre.ops.plugins.module_utils import _plan_words as w


def test_host_ranges():
    assert w.host_ranges([f"web{i}" for i in range(1, 38)]) == "web1..web37"
    assert w.host_ranges(["web1", "web2", "web3", "web5", "db1", "web6", "web7"]) == "web1..web3, web5..web7, db1"
    assert w.host_ranges(["web01", "web02", "web03", "lb"]) == "web01..web03, lb"
    assert w.host_ranges(["a1", "a2"]) == "a1, a2"
    assert w.host_ranges(["web8", "web9", "web10", "web011"]) == "web8..web10, web011"


def test_order_actions_puts_the_most_significant_first_and_drops_noop_beside_others():
    assert w.order_actions(["noop", "restart", "update", "delete"]) == ["delete", "update", "restart"]
    assert w.order_actions(["noop"]) == ["noop"]
    assert w.order_actions(["failed", "noop"]) == ["failed"]


def test_closing_line():
    assert w.closing_line("Plan", 4, 7, {"create": 2, "update": 5}, tail=["1 unknown", "0 failed"]) == \
        "Plan: 4 hosts, 7 to change (2 create, 5 update, 0 delete), 1 unknown, 0 failed."
    assert w.closing_line("Run", 1, 2, {"update": 1, "restart": 1, "exec": 1}, "changed") == \
        "Run: 1 host, 2 changed (0 create, 1 update, 0 delete, 1 restart, 1 exec)."
