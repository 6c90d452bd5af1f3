# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import grp
import os
import pwd
import re
import socket
import threading

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _haproxy as hx
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError, SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._lock import LockTimeout, PathLock

from ...utils.haproxy import api as raw_api, running_haproxy, weights

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


STAT = fixture("haproxy-2.6-show-stat.csv")
STATE = fixture("haproxy-2.6-show-servers-state.txt")


class FakeAPI:
    """Answers show commands from the real 2.6 fixtures, edited by what set commands did."""

    endpoint = "/fake.sock"  # moved into each test's tmp_path by the autouse fixture below

    def __init__(self, stat=STAT, state=STATE, maps=None, refuse=None):
        self.stat, self.state = stat, state
        self.maps = maps or {}
        self.refuse = refuse or {}
        self.sent = []

    def show(self, command):
        if command == "show stat":
            return self.stat
        if command == "show servers state":
            return self.state
        if command.startswith("show map "):
            name = command.split(" ", 2)[2]
            return "".join(f"0x{i:x} {k} {v}\n" for i, (k, v) in enumerate(self.maps[name]))
        raise AssertionError(command)

    def set(self, command):
        self.sent.append(command)
        for pattern, answer in self.refuse.items():
            if re.search(pattern, command):
                raise hx.HAProxyError(f"HAProxy at {self.endpoint} refused {command!r}: {answer}")
        if command.startswith("prepare map"):
            return "New version created: 7"
        return ""


@pytest.fixture(autouse=True)
def fake_endpoint_in_tmp(tmp_path, monkeypatch):
    """Changes lock the endpoint's lock file: keep it in the test's own directory."""
    monkeypatch.setattr(FakeAPI, "endpoint", str(tmp_path / "fake.sock"))


def edit_state(text, server, backend="be_app", admin=None, weight=None, op=None):
    lines = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) > 8 and parts[1] == backend and parts[3] == server:
            if admin is not None:
                parts[6] = str(admin)
            if weight is not None:
                parts[7] = str(weight)
            if op is not None:
                parts[5] = str(op)
            line = " ".join(parts)
        lines.append(line)
    return "\n".join(lines) + "\n"


def edit_stat(text, server, backend="be_app", **fields):
    lines = text.splitlines()
    header = lines[0][2:].split(",")
    out = [lines[0]]
    for line in lines[1:]:
        cells = line.split(",")
        if len(cells) > 2 and cells[0] == backend and cells[1] == server:
            for key, value in fields.items():
                cells[header.index(key)] = str(value)
        out.append(",".join(cells))
    return "\n".join(out) + "\n"


# ----- parsers on real HAProxy 2.6 output -----------------------------------------------------------
def test_parse_show_stat_fixture():
    rows = hx.parse_stat_csv(STAT)
    assert len(rows[0]) >= 100, "HAProxy 2.6 has over 100 columns"
    web1 = next(r for r in rows if r["pxname"] == "be_app" and r["svname"] == "web1")
    assert web1["status"] == "UP" and web1["weight"] == 100 and isinstance(web1["stot"], int)
    assert web1["hrsp_2xx"] == web1["stot"], "every request in the capture was answered 2xx"
    backend = next(r for r in rows if r["pxname"] == "be_static" and r["svname"] == "BACKEND")
    assert backend["algo"] == "source"
    assert web1["qlimit"] is None, "empty cells become None"


def test_parse_servers_state_fixture():
    rows = hx.parse_servers_state(STATE)
    web1 = next(r for r in rows if r["be_name"] == "be_app" and r["srv_name"] == "web1")
    assert (web1["srv_op_state"], web1["srv_admin_state"], web1["srv_uweight"], web1["srv_iweight"]) == (2, 0, 100, 100)
    assert web1["srv_addr"] == "127.0.0.11"


@pytest.mark.parametrize("bad", ["", "hello\n", "Unknown command\n"])
def test_parsers_reject_answers_without_header(bad):
    with pytest.raises(hx.HAProxyError):
        hx.parse_stat_csv(bad)
    with pytest.raises(hx.HAProxyError):
        hx.parse_servers_state(bad)


def test_collect_info_merges_both_views():
    info = hx.collect_info(FakeAPI(), ["be_app"])
    assert list(info["backends"]) == ["be_app"]
    web = info["backends"]["be_app"]["servers"]
    assert sorted(web) == ["web1", "web2", "web3", "web4"]
    assert all(s["serving"] and s["admin_state"] == "ready" for s in web.values())
    assert all(s["requests"] == s["responses"]["2xx"] > 0 for s in web.values())
    assert info["backends"]["be_app"]["algorithm"] == "roundrobin"
    assert "fe_http" in info["frontends"]


def test_collect_info_unknown_backend_lists_known_ones():
    with pytest.raises(hx.HAProxyError, match=r"no such backend at .*fake.sock: be_nope \(known: be_app, be_blue"):
        hx.collect_info(FakeAPI(), ["be_nope"])


@pytest.mark.parametrize("bits, state", [(0, "ready"), (0x08, "drain"), (0x10, "drain"), (0x01, "maint"), (0x09, "maint"), (0x20, "maint")])
def test_admin_state_bits(bits, state):
    assert hx.admin_state(bits) == state


@pytest.mark.parametrize("spec, initial, weight", [("0", 100, 0), ("256", 1, 256), ("50%", 100, 50), ("10%", 3, 0), ("100%", 7, 7)])
def test_parse_weight(spec, initial, weight):
    assert hx.parse_weight(spec, initial, "web1") == weight


@pytest.mark.parametrize("spec", ["257", "101%", "-1", "half", "5.5"])
def test_parse_weight_rejects(spec):
    with pytest.raises(InvalidInputError, match="weight"):
        hx.parse_weight(spec, 100, "web1")


@pytest.mark.parametrize("spec, total, needed", [(None, 4, 0), ("3", 4, 3), ("50%", 4, 2), ("51%", 4, 3), ("100%", 5, 5)])
def test_parse_min_ready(spec, total, needed):
    assert hx.parse_min_ready(spec, total) == needed


@pytest.mark.parametrize("endpoint, family", [("/run/h.sock", socket.AF_UNIX), ("127.0.0.1:9999", socket.AF_INET), ("[::1]:9999", socket.AF_INET6)])
def test_parse_endpoint(endpoint, family):
    assert hx.parse_endpoint(endpoint)[0] == family


def test_parse_endpoint_rejects_garbage():
    with pytest.raises(InvalidInputError, match="neither a path"):
        hx.parse_endpoint("haproxy")


# ----- server changes ------------------------------------------------------------------------------
def manager(api, servers=("web1",), state=None, weight=None, **kwargs):
    return hx.ServerManager(api, "be_app", list(servers), state, weight, **kwargs)


def test_drain_in_check_mode_predicts_and_sends_nothing():
    api = FakeAPI()
    result = manager(api, state="drain", check_mode=True).run()
    assert result["changed"] and api.sent == []
    assert result["diff"] == {"before": {"web1": {"state": "ready", "weight": 100}}, "after": {"web1": {"state": "drain", "weight": 100}}}
    assert (result["ready_before"], result["ready_after"]) == (4, 3)


def test_no_op_is_not_changed_whatever_the_sessions():
    stat = edit_stat(STAT, "web1", scur=7)
    api = FakeAPI(stat=edit_state(STATE, "web1", admin=8), state=None)
    api.stat, api.state = stat, edit_state(STATE, "web1", admin=8)
    result = manager(api, state="drain").run()
    assert not result["changed"] and api.sent == []


def test_bringing_back_sets_weight_before_state_and_taking_out_state_first():
    api = FakeAPI(state=edit_state(STATE, "web1", admin=1, weight=0))
    manager(api, state="ready", weight="100%").run()
    assert api.sent == ["set server be_app/web1 weight 100", "set server be_app/web1 state ready"]
    api = FakeAPI()
    manager(api, state="maint", weight="0").run()
    assert api.sent == ["set server be_app/web1 state maint", "set server be_app/web1 weight 0"]


def test_min_ready_refuses_and_changes_nothing():
    api = FakeAPI()
    with pytest.raises(hx.HAProxyError, match=r"refusing: web1, web2 out of service would leave 2 of 4 servers .* min_ready 75% \(3\)"):
        manager(api, servers=["web1", "web2"], state="drain", min_ready="75%").run()
    assert api.sent == []


def test_min_ready_allows_changes_that_do_not_reduce_readiness():
    # two servers already out, min_ready 3: bringing one back is allowed although still below the guard
    state = edit_state(edit_state(STATE, "web1", admin=1), "web2", admin=1)
    api = FakeAPI(state=state)
    result = manager(api, servers=["web1"], state="ready", min_ready="3").run()
    assert result["ready_after"] == 3 and api.sent == ["set server be_app/web1 state ready"]


def test_put_back_goes_back_first_and_counts_for_min_ready():
    # the rolling handover: web1 (drained by the wave before) back in, then web2 out, in one locked step
    api = FakeAPI(state=edit_state(STATE, "web1", admin=8))
    result = manager(api, servers=["web2"], state="drain", min_ready="3", put_back=["web1"]).run()
    assert api.sent == ["set server be_app/web1 state ready", "set server be_app/web2 state drain"]
    assert (result["ready_before"], result["ready_after"]) == (3, 3) and result["changed"]
    assert result["put_back"] == [{"server": "web1", "before": {"state": "drain", "weight": 100}, "after": {"state": "ready", "weight": 100},
                                   "changed": True}]
    assert result["diff"]["after"] == {"web1": {"state": "ready", "weight": 100}, "web2": {"state": "drain", "weight": 100}}
    assert [c["server"] for c in result["servers"]] == ["web2"], "only the changed servers are waited for"


def test_put_back_restores_the_initial_weight_and_predicts_the_same_in_check_mode():
    state = edit_state(STATE, "web1", admin=1, weight=0)
    api = FakeAPI(state=state)
    predicted = manager(api, servers=["web2"], state="drain", min_ready="3", put_back=["web1"], check_mode=True).run()
    assert api.sent == []
    applied = manager(FakeAPI(state=state), servers=["web2"], state="drain", min_ready="3", put_back=["web1"]).run()
    assert predicted["diff"] == applied["diff"] and predicted["ready_after"] == applied["ready_after"] == 3
    assert applied["put_back"][0]["after"] == {"state": "ready", "weight": 100}


def test_put_back_of_servers_already_in_changes_nothing_for_them():
    api = FakeAPI(state=edit_state(STATE, "web2", admin=8))
    result = manager(api, servers=["web2"], state="drain", put_back=["web1"]).run()
    assert not result["changed"] and api.sent == [] and result["put_back"][0]["changed"] is False


def test_refused_change_still_puts_back_and_says_so():
    # web1 and web2 out; putting web1 back and taking web3 and web4 out would leave 2 of 4 for min_ready 3
    state = edit_state(edit_state(STATE, "web1", admin=8), "web2", admin=8)
    api = FakeAPI(state=state)
    with pytest.raises(hx.HAProxyError, match=r"refusing: web3, web4 out of service .* nothing else was changed \(put back: web1\)") as failure:
        manager(api, servers=["web3", "web4"], state="drain", min_ready="3", put_back=["web1"]).run()
    assert api.sent == ["set server be_app/web1 state ready"]
    assert failure.value.details["changed"] is True
    check = FakeAPI(state=state)
    with pytest.raises(hx.HAProxyError, match="; nothing was changed$"):
        manager(check, servers=["web3", "web4"], state="drain", min_ready="3", put_back=["web1"], check_mode=True).run()
    assert check.sent == []


@pytest.mark.parametrize("servers, put_back, message", [
    (["web1"], ["web1"], r"put_back and servers both name web1: a server is either put back or changed$"),
    (None, ["web1"], r"both name web1: .*servers omitted means every server"),
    (["web2"], ["web9"], r"put_back: backend be_app has no server web9 \(it has web1, web2, web3, web4\)"),
])
def test_put_back_refuses_unknown_or_overlapping_servers_before_sending_anything(servers, put_back, message):
    api = FakeAPI()
    with pytest.raises(SreOpsError, match=message):
        hx.ServerManager(api, "be_app", servers, "drain", None, put_back=put_back).run()
    assert api.sent == []


def test_down_servers_do_not_count_as_ready():
    stat = edit_stat(STAT, "web2", status="DOWN")
    api = FakeAPI(stat=stat)
    with pytest.raises(hx.HAProxyError, match="leave 2 of 4"):
        manager(api, servers=["web1"], state="maint", min_ready="3").run()


def test_unknown_server_lists_the_backend_servers():
    with pytest.raises(hx.HAProxyError, match=r"backend be_app has no server web9 \(it has web1, web2, web3, web4\)"):
        manager(FakeAPI(), servers=["web9"], state="drain").run()


def test_weight_change_on_a_map_based_backend_is_asked_first_and_a_refusal_changes_nothing():
    # be_static balances with 'source' (map-based in the fixture's HAProxy): the runtime API cannot tell
    api = FakeAPI(refuse={"weight 50": "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'."})
    with pytest.raises(hx.HAProxyError, match="balances with 'source', a static algorithm here.*refused 'set server be_static/web1 weight 50'"):
        hx.ServerManager(api, "be_static", ["web1", "web2"], "drain", "50").run()
    assert api.sent == ["set server be_static/web1 weight 50"], "the weight change goes first, so a refusal leaves everything as it was"


def test_half_applied_change_is_reported_with_what_was_sent():
    api = FakeAPI(refuse={"web2 state": "Server is going away."})
    with pytest.raises(hx.HAProxyError, match="half applied") as failure:
        manager(api, servers=["web1", "web2"], state="maint").run()
    assert failure.value.details["changed"] is True
    assert failure.value.details["commands"] == ["set server be_app/web1 state maint"]
    assert failure.value.details["commands_not_sent"] == ["set server be_app/web2 state maint"]
    api = FakeAPI(refuse={"web1 state": "Server is going away."})
    with pytest.raises(hx.HAProxyError, match="nothing was changed") as failure:
        manager(api, servers=["web1", "web2"], state="maint").run()
    assert not failure.value.details


def test_zero_and_full_weight_need_no_question():
    api = FakeAPI()
    assert hx.ServerManager(api, "be_static", ["web1"], None, "0%", check_mode=True).run()["changed"]
    result = hx.ServerManager(api, "be_static", ["web1"], None, "50%", check_mode=True).run()
    assert result["changed"] and "hash-type consistent" in result["warnings"][0], "check mode cannot ask HAProxy, so it says so"
    assert api.sent == []


@pytest.mark.parametrize("backend, accepted", [
    ("be_app", True), ("be_source_consistent", True), ("be_uri_consistent", True),
    ("be_source", False), ("be_hash", False), ("be_static_rr", False),
])
def test_weights_follow_what_a_real_haproxy_accepts(tmp_path, backend, accepted):
    with running_haproxy(str(tmp_path)) as lb:
        api = hx.RuntimeAPI(lb["socket"])
        before = weights(lb["socket"], backend)
        if accepted:
            result = hx.ServerManager(api, backend, ["web1", "web2"], "drain", "50").run()
            assert result["changed"] and weights(lb["socket"], backend)["web1"] == (8, 50) == weights(lb["socket"], backend)["web2"]
            return
        with pytest.raises(hx.HAProxyError, match="a static algorithm here") as failure:
            hx.ServerManager(api, backend, ["web1", "web2"], "drain", "50").run()
        assert weights(lb["socket"], backend) == before, "nothing may be half applied"
        assert not failure.value.details.get("changed")
        if backend == "be_static_rr":
            assert api.log == ["show stat", "show servers state"], "static-rr is refused before anything is sent"
            with pytest.raises(hx.HAProxyError, match="a static algorithm here"):
                hx.ServerManager(api, backend, ["web1"], None, "50", check_mode=True).run()
        # 0% and 100% are always accepted
        assert hx.ServerManager(api, backend, ["web1", "web2"], "drain", "0").run()["changed"]
        assert weights(lb["socket"], backend)["web2"] == (8, 0)


@pytest.mark.parametrize("share, count, others, weight, effective", [
    (10, 1, 300, 33, 9.91), (10, 2, 200, 11, 9.91), (50, 1, 100, 100, 50.0), (25, 2, 300, 50, 25.0), (0, 1, 300, 0, 0.0),
    (0.5, 1, 300, 2, 0.66),
])
def test_share_weight(share, count, others, weight, effective):
    result = hx.share_weight(share, count, others, "be_app")
    assert (result["weight"], result["effective"]) == (weight, effective)


@pytest.mark.parametrize("share, others, message", [
    (10, 0, "no other server of backend be_app takes traffic"),
    (99, 300, r"would need weight 29700.00 .* shares from 0.33% to 46.04% are possible here"),
    (0.1, 300, r"would need weight 0.30"),
    (100, 300, "share must be at least 0 and below 100"),
    (-1, 300, "share must be at least 0 and below 100"),
])
def test_share_weight_refuses_what_weights_cannot_do(share, others, message):
    with pytest.raises((hx.HAProxyError, InvalidInputError), match=message):
        hx.share_weight(share, 1, others, "be_app")


def test_share_is_computed_from_the_other_serving_servers_and_is_idempotent():
    api = FakeAPI()
    check = manager(api, servers=["web4"], share=10, check_mode=True).run()
    assert check["changed"] and check["share"] == {"requested": 10, "effective": 9.91, "weight": 33, "others_weight": 300}
    assert check["diff"]["after"] == {"web4": {"state": "ready", "weight": 33}}
    applied = manager(api, servers=["web4"], share=10).run()
    assert applied["commands"] == ["set server be_app/web4 weight 33"] and applied["share"] == check["share"]
    api = FakeAPI(state=edit_state(STATE, "web4", weight=33))
    again = manager(api, servers=["web4"], share=10).run()
    assert not again["changed"] and api.sent == []
    # a drained server does not count among the others
    api = FakeAPI(state=edit_state(STATE, "web1", admin=8), stat=edit_stat(STAT, "web1", status="DRAIN"))
    assert manager(api, servers=["web4"], share=10, check_mode=True).run()["share"]["weight"] == 22
    # ... unless it is put back in the same step: then it counts, at its initial weight
    api = FakeAPI(state=edit_state(STATE, "web1", admin=8, weight=0), stat=edit_stat(STAT, "web1", status="DRAIN"))
    result = manager(api, servers=["web4"], share=10, put_back=["web1"]).run()
    assert result["share"]["others_weight"] == 300 and result["share"]["weight"] == 33
    assert api.sent[:2] == ["set server be_app/web1 weight 100", "set server be_app/web1 state ready"]


def test_servers_back_from_maint_and_drain_count_as_ready_after():
    # web1 in maint (HAProxy stops it and its checks), web2 draining (healthy): both come back at once
    state = edit_state(edit_state(STATE, "web1", admin=1, op=0), "web2", admin=8)
    stat = edit_stat(edit_stat(STAT, "web1", status="MAINT"), "web2", status="DRAIN")
    result = manager(FakeAPI(state=state, stat=stat), servers=["web1", "web2"], state="ready", check_mode=True).run()
    assert (result["ready_before"], result["ready_after"]) == (2, 4)
    # a drained server that is DOWN stays out
    stat = edit_stat(edit_stat(STAT, "web1", status="MAINT"), "web2", status="DOWN")
    result = manager(FakeAPI(state=state, stat=stat), servers=["web1", "web2"], state="ready", check_mode=True).run()
    assert result["ready_after"] == 3


@pytest.mark.parametrize("kwargs, message", [
    ({"wait_interval": -1}, "wait_interval must be positive, got -1"),
    ({"wait_interval": 0}, "wait_interval must be positive, got 0"),
    ({"wait_timeout": -5}, "wait_timeout must be zero or positive, got -5"),
    ({"lock_timeout": -1}, "lock_timeout must be zero or positive"),
    ({"share": 10, "weight": "5"}, "mutually exclusive"),
])
def test_bad_numbers_fail_before_anything_is_sent(kwargs, message):
    api = FakeAPI()
    weight = kwargs.pop("weight", None)
    with pytest.raises(InvalidInputError, match=message):
        manager(api, state="drain", weight=weight, wait=True, **kwargs).run()
    assert api.sent == []


@pytest.mark.parametrize("timeout", [0, -1])
def test_runtime_api_timeout_must_be_positive(timeout):
    with pytest.raises(InvalidInputError, match="timeout must be positive"):
        hx.RuntimeAPI("/x.sock", timeout)


def test_a_held_lock_makes_the_change_wait_and_then_fail_naming_the_holder():
    api = FakeAPI()
    with PathLock(hx.lock_path(api.endpoint), timeout=5, purpose="a test holding it"):
        expected = (rf".*fake.sock.lock is locked by pid {os.getpid()} on {re.escape(socket.gethostname())} "
                    r"since .*Z \(a test holding it\); gave up after waiting 0.2 s")
        with pytest.raises(LockTimeout, match=expected):
            manager(api, state="drain", lock_timeout=0.2).run()
        assert api.sent == []
        assert manager(api, state="drain", check_mode=True).run()["changed"], "check mode reads without the lock"
    assert manager(api, state="drain").run()["commands"] == ["set server be_app/web1 state drain"]


@pytest.mark.parametrize("endpoint, expected", [
    ("/run/haproxy/admin.sock", "/run/haproxy/admin.sock.lock"),
    ("127.0.0.1:9999", "sre.ops-haproxy-127.0.0.1_9999.lock"),
    ("[::1]:9999", "sre.ops-haproxy-__1_9999.lock"),
])
def test_lock_path(endpoint, expected):
    path = hx.lock_path(endpoint)
    assert path == expected if path.startswith("/run/haproxy") else os.path.basename(path) == expected
    if not endpoint.startswith("/"):
        assert os.path.dirname(path) in hx.TCP_LOCK_DIRS


@pytest.mark.parametrize("text, escaped", [("be_green", "be_green"), ("two words", "two\\ words"), ("a\tb", "a\\\tb"),
                                           ("x;y", "x\\;y"), ("back\\slash", "back\\\\slash")])
def test_cli_arg_escapes_what_the_runtime_api_splits_on(text, escaped):
    assert hx.cli_arg(text) == escaped


def test_runtime_api_allows_escaped_semicolons_only():
    with pytest.raises(InvalidInputError, match="unescaped ';'"):
        hx.RuntimeAPI("/x.sock").set("set map m k v;shutdown sessions")
    with pytest.raises(hx.HAProxyError, match="cannot reach"):
        hx.RuntimeAPI("/nonexistent/x.sock").set("set map m k v\\;w")


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def test_drain_wait_polls_until_sessions_end():
    api = FakeAPI()
    sessions = iter([5, 5, 2, 0])  # the first answers the planning read

    def show(command, original=api.show):
        if command == "show stat":
            return edit_stat(STAT, "web1", scur=next(sessions))
        return original(command)

    api.show = show
    clock = Clock()
    result = manager(api, state="drain", wait=True, wait_interval=0.5, sleep=clock.sleep, clock=clock).run()
    assert result["sessions_remaining"] == {} and result["waited_s"] == 1.0


def test_drain_wait_never_hangs_on_a_down_server_and_times_out_with_counts():
    clock = Clock()
    down = FakeAPI(stat=edit_stat(STAT, "web1", scur=3, status="DOWN"))
    result = manager(down, state="drain", wait=True, sleep=clock.sleep, clock=clock).run()
    assert result["sessions_remaining"] == {"web1": 3} and result["waited_s"] == 0, "a DOWN server is not waited for, but reported"
    assert "wait_timed_out" not in result
    stuck = FakeAPI(stat=edit_stat(STAT, "web1", scur=3))
    result = manager(stuck, state="drain", wait=True, wait_timeout=2, sleep=clock.sleep, clock=clock).run()
    assert result["wait_timed_out"] and result["sessions_remaining"] == {"web1": 3} and result["waited_s"] == 2


# ----- maps ------------------------------------------------------------------------------------------
MAP = "/etc/haproxy/hosts.map"


def test_single_key_change_is_one_command_and_second_run_is_a_no_op():
    api = FakeAPI(maps={MAP: [("app.test", "be_app"), ("www.test", "be_blue")]})
    result = hx.MapManager(api, MAP, {"www.test": "be_green"}).run()
    assert result["changed"] and api.sent == [f"set map {MAP} www.test be_green"]
    assert result["diff"]["after"] == "app.test be_app\nwww.test be_green\n"
    api.maps[MAP] = [("app.test", "be_app"), ("www.test", "be_green")]
    api.sent.clear()
    assert not hx.MapManager(api, MAP, {"www.test": "be_green"}).run()["changed"] and api.sent == []


def test_add_and_delete_single_keys():
    api = FakeAPI(maps={MAP: [("app.test", "be_app")]})
    hx.MapManager(api, MAP, {"new.test": "be_x"}).run()
    hx.MapManager(api, MAP, {"app.test": None}, state="absent").run()
    assert api.sent == [f"add map {MAP} new.test be_x", f"del map {MAP} app.test"]


def test_a_held_lock_makes_a_map_update_wait_and_then_fail_naming_the_holder():
    api = FakeAPI(maps={MAP: [("app.test", "be_app")]})
    with PathLock(hx.lock_path(api.endpoint), timeout=5, purpose="a drain holding it"):
        with pytest.raises(LockTimeout, match=r".*fake.sock.lock is locked by pid \d+ .*\(a drain holding it\); gave up after waiting 0.2 s"):
            hx.MapManager(api, MAP, {"www.test": "be_blue"}, lock_timeout=0.2).run()
        assert api.sent == []
        assert hx.MapManager(api, MAP, {"www.test": "be_blue"}, check_mode=True).run()["changed"], "check mode reads without the lock"
    assert hx.MapManager(api, MAP, {"www.test": "be_blue"}).run()["commands"] == [f"add map {MAP} www.test be_blue"]


def test_a_socket_in_a_missing_directory_is_a_clear_error_not_a_traceback(tmp_path):
    api = hx.RuntimeAPI(str(tmp_path / "missing" / "admin.sock"))
    expected = r"cannot create the lock file .*/missing/admin.sock.lock of the runtime API at .*/missing/admin.sock: No such file"
    for change in (hx.ServerManager(api, "be_app", None, "drain", None), hx.MapManager(api, MAP, {"www.test": "be_blue"})):
        with pytest.raises(hx.HAProxyError, match=expected):
            change.run()


def test_several_keys_are_committed_atomically():
    api = FakeAPI(maps={MAP: [("app.test", "be_app"), ("www.test", "be_blue")]})
    result = hx.MapManager(api, MAP, {"www.test": "be_green", "api.test": "be_api"}).run()
    assert api.sent == [f"prepare map {MAP}", f"add map @7 {MAP} app.test be_app", f"add map @7 {MAP} www.test be_green",
                        f"add map @7 {MAP} api.test be_api", f"commit map @7 {MAP}"]
    assert result["entries"] == {"app.test": "be_app", "www.test": "be_green", "api.test": "be_api"}


def test_exclusive_and_duplicates():
    api = FakeAPI(maps={MAP: [("a", "1"), ("a", "1"), ("b", "2")]})
    result = hx.MapManager(api, MAP, {"a": "1"}, exclusive=True, check_mode=True).run()
    assert result["changed"] and result["entries"] == {"a": "1"} and api.sent == []


@pytest.mark.parametrize("entries, persist, message", [
    ({"a b": "x"}, False, "no whitespace"), ({"a": "x\ny"}, False, "single line"), ({"a": None}, False, "single line"),
    ({"a": ""}, False, "not empty"), ({"a": " x"}, False, "must not start or end with whitespace"),
    ({"a": "x\t"}, False, "must not start or end with whitespace"),
])
def test_map_rejects_bad_entries(entries, persist, message):
    with pytest.raises(InvalidInputError, match=message):
        hx.MapManager(FakeAPI(), MAP, entries, persist=persist)


def test_map_values_with_spaces_and_hash_keys_converge_on_a_real_haproxy(tmp_path):
    with running_haproxy(str(tmp_path), map_text="app.test be_app\n") as lb:
        api = hx.RuntimeAPI(lb["socket"])
        entries = {"sp.test": "two  words\there", "semi.test": "a;b\\c", "#hash": "v1"}
        first = hx.MapManager(api, lb["map"], entries).run()
        assert first["changed"]
        shown = hx.parse_map(raw_api(lb["socket"], f"show map {lb['map']}"))
        assert dict(shown) == {"app.test": "be_app", **entries}
        assert not hx.MapManager(api, lb["map"], entries).run()["changed"], "a second run changes nothing"
        assert hx.MapManager(api, lb["map"], {"#hash": "v2"}).run()["changed"]
        assert dict(hx.parse_map(raw_api(lb["socket"], f"show map {lb['map']}")))["#hash"] == "v2"
        assert not hx.MapManager(api, lb["map"], {"#hash": "v2"}).run()["changed"]
        assert hx.MapManager(api, lb["map"], {"#hash": None}, state="absent").run()["changed"]
        assert "#hash" not in dict(hx.parse_map(raw_api(lb["socket"], f"show map {lb['map']}")))
        single = hx.MapManager(api, lb["map"], {"sp.test": "three little words"}).run()
        assert single["commands"] == [f"set map {lb['map']} sp.test three\\ little\\ words"]
        assert dict(hx.parse_map(raw_api(lb["socket"], f"show map {lb['map']}")))["sp.test"] == "three little words"


def test_persist_writes_through_a_symlink_and_keeps_owner_and_mode(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("giving a file to another owner needs root")
    real_dir = tmp_path / "real"
    real_dir.mkdir()
    real = real_dir / "hosts.map"
    real.write_text("app.test be_app\nwww.test be_blue\n")
    real.chmod(0o640)
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    os.chown(real, nobody, nogroup)
    link = tmp_path / "hosts.map"
    link.symlink_to(real)
    api = FakeAPI(maps={str(link): [("app.test", "be_app"), ("www.test", "be_blue")]})
    result = hx.MapManager(api, str(link), {"www.test": "be green"}, persist=True).run()
    assert result["file_changed"] and api.sent == [f"set map {link} www.test be\\ green"]
    assert link.is_symlink() and os.readlink(link) == str(real), "the link stays a link"
    assert real.read_text() == "app.test be_app\nwww.test be green\n", "the file it points to gets the change"
    status = real.stat()
    assert (status.st_uid, status.st_gid, status.st_mode & 0o7777) == (nobody, nogroup, 0o640)
    assert sorted(os.listdir(real_dir)) == ["hosts.map"] and sorted(os.listdir(tmp_path)) == ["fake.sock.lock", "hosts.map", "real"]
    # and it converges: the file and the runtime map agree on the value with a space
    api.maps[str(link)] = [("app.test", "be_app"), ("www.test", "be green")]
    assert not hx.MapManager(api, str(link), {"www.test": "be green"}, persist=True).run()["changed"]


def test_map_file_comments_are_lines_starting_with_hash_as_haproxy_reads_them():
    existing = "# routing\n  # not a comment: key '#'\napp.test be_app\n\n"
    wanted = [("#", "not a comment: key '#'"), ("app.test", "be_x"), ("#new", "v")]
    assert hx.render_map_file(existing, wanted) == "# routing\n # not a comment: key '#'\napp.test be_x\n\n #new v\n"


def test_persisted_hash_keys_and_spaced_values_survive_a_real_reload(tmp_path):
    """What the module writes, HAProxy reads back the same way: the entries converge."""
    with running_haproxy(str(tmp_path), map_text="# comment\napp.test be_app\n") as lb:
        entries = {"#hash": "v 1", "sp.test": "two words"}
        assert hx.MapManager(hx.RuntimeAPI(lb["socket"]), lb["map"], entries, persist=True).run()["file_changed"]
        with open(lb["map"], encoding="utf-8") as handle:
            written = handle.read()
    (tmp_path / "again").mkdir()
    with running_haproxy(str(tmp_path / "again"), map_text=written) as lb:
        assert dict(hx.parse_map(raw_api(lb["socket"], f"show map {lb['map']}"))) == {"app.test": "be_app", **entries}
        again = hx.MapManager(hx.RuntimeAPI(lb["socket"]), lb["map"], entries, persist=True).run()
        assert not again["changed"], "neither the runtime map nor the file changes on a second run"


def test_persist_keeps_comments_and_order_and_writes_atomically(tmp_path):
    path = tmp_path / "hosts.map"
    path.write_text("# routing\napp.test be_app\nwww.test be_blue\n")
    path.chmod(0o640)
    api = FakeAPI(maps={str(path): [("app.test", "be_app"), ("www.test", "be_blue")]})
    check = hx.MapManager(api, str(path), {"www.test": "be_green"}, persist=True, check_mode=True).run()
    assert check["changed"] and check["file_changed"] and path.read_text().endswith("www.test be_blue\n")
    hx.MapManager(api, str(path), {"www.test": "be_green", "x.test": "be_x"}, persist=True).run()
    assert path.read_text() == "# routing\napp.test be_app\nwww.test be_green\nx.test be_x\n"
    assert (path.stat().st_mode & 0o777) == 0o640
    assert sorted(os.listdir(tmp_path)) == ["fake.sock.lock", "hosts.map"]


def test_persist_previews_the_file_it_writes_even_when_the_runtime_map_is_already_right(tmp_path):
    """A key set at run time without persist is written to the file by the next persisting task: the diff shows it."""
    path = tmp_path / "hosts.map"
    path.write_text("app.test be_app\n")
    api = FakeAPI(maps={str(path): [("app.test", "be_app"), ("runtime-only.test", "be_blue")]})
    check = hx.MapManager(api, str(path), {"app.test": "be_app"}, persist=True, check_mode=True).run()
    assert isinstance(check["diff"], list) and len(check["diff"]) == 2, "the runtime map, then the file"
    runtime, file_diff = check["diff"][0], check["diff"][1]
    assert check["changed"] and runtime["before"] == runtime["after"]
    assert file_diff == {"before": "app.test be_app\n", "after": "app.test be_app\nruntime-only.test be_blue\n",
                         "before_header": f"{path} (file)", "after_header": f"{path} (file)"}
    hx.MapManager(api, str(path), {"app.test": "be_app"}, persist=True).run()
    assert path.read_text() == file_diff["after"], "the preview is what the real run writes"


# ----- the runtime API over a real socket ----------------------------------------------------------
@pytest.fixture
def unix_server(tmp_path):
    path = str(tmp_path / "api.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(4)
    answers = {}

    def serve():
        while True:
            try:
                conn, _addr = server.accept()
            except OSError:
                return
            with conn:
                command = conn.recv(4096).decode().strip()
                answer = answers.get(command, "")
                if answer is None:  # hang
                    conn.recv(1)
                    continue
                conn.sendall(answer.encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield path, answers
    # Stop the thread before the descriptor is closed: a thread still calling accept() on a closed descriptor
    # accepts on whatever socket reuses that number next (it once took a later test's TLS connection).
    server.shutdown(socket.SHUT_RDWR)  # wakes an accept() blocked in the thread
    thread.join(10)
    assert not thread.is_alive(), "the fake runtime API did not stop"
    server.close()


def test_runtime_api_reads_answers_and_reports_refusals(unix_server):
    path, answers = unix_server
    answers["show stat"] = STAT
    answers["set server be_app/web9 state drain"] = "No such server.\n"
    api = hx.RuntimeAPI(path, timeout=2)
    assert api.show("show stat") == STAT
    with pytest.raises(hx.HAProxyError, match=r"refused 'set server be_app/web9 state drain': No such server."):
        api.set("set server be_app/web9 state drain")
    assert api.set("set server be_app/web1 state drain") == ""


def test_runtime_api_names_socket_and_command_when_unreachable(tmp_path):
    with pytest.raises(hx.HAProxyError, match=r"cannot reach the HAProxy runtime API at .*missing.sock to send 'show stat': No such file"):
        hx.RuntimeAPI(str(tmp_path / "missing.sock")).show("show stat")
    with pytest.raises(hx.HAProxyError, match=r"at 127.0.0.1:1 to send 'show stat': Connection refused"):
        hx.RuntimeAPI("127.0.0.1:1").show("show stat")


def test_runtime_api_times_out(unix_server):
    path, answers = unix_server
    answers["show stat"] = None
    with pytest.raises(hx.HAProxyError, match=r"did not answer 'show stat' within 0.3s"):
        hx.RuntimeAPI(path, timeout=0.3).show("show stat")


def test_runtime_api_refuses_command_injection():
    with pytest.raises(InvalidInputError, match="newline or an unescaped ';'"):
        hx.RuntimeAPI("/x.sock").set("set map m k v; shutdown sessions")
