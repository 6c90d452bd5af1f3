# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import os
import re
import socket
import threading

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _haproxy as hx
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures")


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


STAT = fixture("haproxy-2.6-show-stat.csv")
STATE = fixture("haproxy-2.6-show-servers-state.txt")


class FakeAPI:
    """Answers show commands from the real 2.6 fixtures, edited by what set commands did."""

    endpoint = "/fake.sock"

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
    with pytest.raises(hx.HAProxyError, match=r"no such backend at /fake.sock: be_nope \(known: be_app, be_blue"):
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


def test_down_servers_do_not_count_as_ready():
    stat = edit_stat(STAT, "web2", status="DOWN")
    api = FakeAPI(stat=stat)
    with pytest.raises(hx.HAProxyError, match="leave 2 of 4"):
        manager(api, servers=["web1"], state="maint", min_ready="3").run()


def test_unknown_server_lists_the_backend_servers():
    with pytest.raises(hx.HAProxyError, match=r"backend be_app has no server web9 \(it has web1, web2, web3, web4\)"):
        manager(FakeAPI(), servers=["web9"], state="drain").run()


def test_static_algorithm_weight_is_refused_in_check_mode_with_an_explanation():
    api = FakeAPI()
    with pytest.raises(hx.HAProxyError, match="balances with 'source', a static algorithm"):
        hx.ServerManager(api, "be_static", ["web1"], None, "50%", check_mode=True).run()
    assert api.sent == []
    # 0% and 100% are allowed
    assert hx.ServerManager(api, "be_static", ["web1"], None, "0%", check_mode=True).run()["changed"]


def test_static_algorithm_error_from_haproxy_is_explained():
    api = FakeAPI(refuse={"weight": "Backend is using a static LB algorithm and only accepts weights '0%' and '100%'."})
    with pytest.raises(hx.HAProxyError, match="uses a static load-balancing algorithm: HAProxy accepts only weights 0% and 100%"):
        manager(api, weight="50").run()


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
    assert result["sessions_remaining"] == {} and result["waited_s"] == 0
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


@pytest.mark.parametrize("entries, message", [({"a b": "x"}, "no whitespace"), ({"a": "x\ny"}, "single line"), ({"a": None}, "single line")])
def test_map_rejects_bad_entries(entries, message):
    with pytest.raises(InvalidInputError, match=message):
        hx.MapManager(FakeAPI(), MAP, entries)


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
    assert sorted(os.listdir(tmp_path)) == ["hosts.map"]


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

    threading.Thread(target=serve, daemon=True).start()
    yield path, answers
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
    with pytest.raises(InvalidInputError, match="newline or ';'"):
        hx.RuntimeAPI("/x.sock").set("set map m k v; shutdown sessions")
