# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The rollout's decisions: plan (hosts, canaries, waves, min_ready, order, colours) and report."""

from __future__ import annotations

import copy
import json

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _rollout as r
from ansible_collections.sre.ops.plugins.module_utils._canary import power_statement

SHA = "ab" * 32
APP = ["web1", "web2", "web3", "web4"]


# ----- builders ------------------------------------------------------------------------------------------
def record(rid, outcome="good", activated=1, outcome_seq=2, checksum=None, by="activate"):
    return {"id": rid, "outcome": outcome, "last_activated_seq": activated, "outcome_seq": outcome_seq,
            "source_checksum": checksum, "activated_by": by, "on_disk": True}


def host(name, current="v1", records=None, previous_good=None, server="", probe_url=""):
    records = records if records is not None else ([record(current)] if current else [])
    return {"name": name, "server": server, "probe_url": probe_url,
            "releases": {"current": current, "previous_good": previous_good, "releases": records}}


def server(status="UP", admin="ready", weight=100, initial=100):
    serving = admin == "ready" and status.startswith("UP") and weight > 0
    return {"status": status, "admin_state": admin, "weight": weight, "initial_weight": initial, "serving": serving,
            "operational_state": "running" if status.startswith("UP") else "stopped"}


def lb(servers=None, backend="be_app", **overrides):
    servers = servers or {n: server() for n in APP}
    servers.update(overrides)
    return {"backends": {backend: {"servers": servers}}, "maps": {}}


def settings(**overrides):
    base = {"mode": "deploy", "strategy": "rolling", "release": "v2", "backend": "be_app", "min_ready": "75%",
            "batches": [1, "25%", "100%"], "restart_command": "appctl restart", "restart_unit": "",
            "health_probes": [{"name": "h", "url": "http://x/"}], "canary_hosts": "1", "canary_steps": [], "canary_analysis": {},
            "canary_promote": False, "canary_group": "deploy_canary", "bg_groups": {"blue": "blue", "green": "green"},
            "bg_backends": {"blue": "be_blue", "green": "be_green"}, "bg_map": "", "bg_map_key": "", "bg_retire": False,
            "stop_command": "", "stop_unit": ""}
    base.update(overrides)
    return base


def plan(hosts=None, balancer=None, sha=SHA, members=None, **overrides):
    hosts = hosts if hosts is not None else [host(n) for n in APP]
    return r.RolloutPlanner(settings(**overrides), hosts, balancer if balancer is not None else lb(), artifact_sha256=sha,
                            bg_members=members).plan()


def problems(**kwargs):
    with pytest.raises(r.PlanError) as info:
        plan(**kwargs)
    return info.value.msg


def waves(result):
    return [w["hosts"] for w in result["waves"]]


# ----- parsers -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, total, expected", [("3", 4, 3), (3, 4, 3), ("25%", 4, 1), ("75%", 4, 3), ("75%", 5, 4), ("0%", 4, 0), ("100%", 3, 3)])
def test_count_or_percent(value, total, expected):
    found = []
    assert r.count_or_percent(value, total, "x", found) == expected and not found


@pytest.mark.parametrize("value, minimum, message", [
    ("200%", 0, "deploy_canary_hosts '200%' is more than 100%"),
    ("abc", 0, "is not a count or a percentage"),
    ("0", 1, "deploy_canary_hosts '0' means 0; it must be at least 1"),
    ("-1", 0, "is not a count or a percentage"),
])
def test_count_or_percent_refuses_bad_values_naming_the_option(value, minimum, message):
    found = []
    assert r.count_or_percent(value, 4, "deploy_canary_hosts", found, minimum=minimum) is None
    assert message in found[0]


def test_ramp_sizes_and_refusals():
    found = []
    assert r.ramp([1, "25%", "100%"], 3, found) == [1, 1, 3] and not found
    assert r.ramp(["10%"], 3, found) == [1]
    for bad, text in (([0], "is zero"), (["0%"], "is zero"), (["150%"], "more than 100%"), ([1.5], "not a count"), ([True], "not a count"),
                      ([], "is empty")):
        found = []
        r.ramp(bad, 4, found)
        assert found and text in found[0] and "deploy_batches" in found[0], (bad, found)


def test_gated_means_marked_good_after_the_latest_activation():
    assert r.gated(record("v2", activated=5, outcome_seq=6))
    assert not r.gated(record("v2", activated=6, outcome_seq=5)), "a good mark from an earlier activation is stale"
    assert not r.gated(record("v2", outcome="unknown"))
    assert not r.gated(None)


# ----- rolling ---------------------------------------------------------------------------------------------
def test_rolling_waves_are_capped_by_min_ready_and_in_inventory_order():
    result = plan()
    assert waves(result) == [["web1"], ["web2"], ["web3"], ["web4"]]
    assert result["batches"] == [1, 1, 1, 1]
    assert result["release"] == "v2" and result["lb"]["min_ready"] == 3
    assert all(result["hosts"][n]["action"] == "update" and result["hosts"][n]["rollback_to"] == "v1" for n in APP)
    assert all(result["hosts"][n]["gate"] == r.NOT_KNOWN for n in APP), "never 'would fail' for a release not yet there"


def test_a_looser_min_ready_lets_the_ramp_grow():
    result = plan(min_ready="50%")
    assert waves(result) == [["web1"], ["web2"], ["web3", "web4"]]


def test_release_id_defaults_to_the_checksum_prefix():
    assert plan(release="")["release"] == "r-" + SHA[:12]


def test_hosts_a_killed_run_left_out_of_service_go_first():
    balancer = lb(web3=server(admin="drain"))
    result = plan(balancer=balancer, batches=["100%"])
    # only web3 can go first: 3 serve and 3 are needed; once it is back, one serving host at a time
    assert waves(result) == [["web3"], ["web1"], ["web2"], ["web4"]]


def test_plan_in_the_states_a_kill_leaves():
    hosts = [
        host("web1", "v2", [record("v1"), record("v2", activated=3, outcome_seq=4)], previous_good="v1"),  # done
        host("web2", "v2", [record("v1"), record("v2", outcome="unknown", activated=3, outcome_seq=None)], previous_good="v1"),
        host("web3", "v2", [record("v1"), record("v2", activated=3, outcome_seq=4)], previous_good="v1"),  # good but its app stopped
        host("web4", "v1"),
    ]
    balancer = lb(web2=server(admin="drain"), web3=server(status="DOWN"))
    result = plan(hosts=hosts, balancer=balancer)
    actions = {n: result["hosts"][n]["action"] for n in APP}
    assert actions == {"web1": "none", "web2": "restart", "web3": "restart", "web4": "update"}
    assert result["order"] == ["web2", "web3", "web1", "web4"] and result["todo"] == ["web2", "web3", "web4"]
    # web2 and web3 are out of service (no room needed); web4 waits until they are back
    assert waves(result) == [["web2"], ["web3"], ["web4"]]
    assert result["hosts"]["web2"]["rollback_to"] == "v1", "a failed wave goes back to what the host ran before the killed rollout"
    assert not result["nothing_to_do"]


def test_out_of_service_hosts_come_back_before_a_serving_host_on_the_release_goes_out():
    hosts = [host("web1"), host("web2", "v2", [record("v1"), record("v2", outcome="unknown", outcome_seq=None)], previous_good="v1"),
             host("web3"), host("web4")]
    balancer = lb(web1=server(admin="drain"), web4=server(status="DOWN"))
    result = plan(hosts=hosts, balancer=balancer)
    # two serve, three are needed: web1 and web4 first (no room needed), then one serving host at a time
    assert waves(result) == [["web1"], ["web4"], ["web2"], ["web3"]]
    assert [result["hosts"][n]["action"] for n in APP] == ["update", "restart", "update", "update"]


def test_a_good_release_activated_again_is_not_done_until_gated_again():
    hosts = [host(n, "v2", [record("v1"), record("v2", activated=9, outcome_seq=4)], previous_good="v1") for n in APP]
    assert {result["action"] for result in plan(hosts=hosts)["hosts"].values()} == {"restart"}


def test_second_run_has_nothing_to_do():
    hosts = [host(n, "v2", [record("v2", activated=3, outcome_seq=4)]) for n in APP]
    result = plan(hosts=hosts)
    assert result["nothing_to_do"] and result["waves"] == [] and "nothing to do" in result["summary"][-2]
    assert result["summary"][-1] == result["closing_line"] == "Rollout plan: 4 hosts, 0 to change (0 create, 0 update, 0 delete)."
    assert {tuple(h["actions"]) for h in result["hosts"].values()} == {("noop",)}


def test_the_plan_speaks_the_plan_callbacks_classes_and_groups_the_same_change():
    """One plan concept: sre.ops.plan's classes, its closing line, and the same change on several hosts listed once."""
    hosts = [host("web1", None, []), host("web2"), host("web3"), host("web4", "v2", [record("v2", activated=3, outcome_seq=4)])]
    result = plan(hosts=hosts, batches=[1, "100%"], min_ready="1", balancer=lb(web4=server(admin="drain")))
    assert {n: h["actions"] for n, h in result["hosts"].items()} == {
        "web1": ["create", "restart"], "web2": ["update", "restart"], "web3": ["update", "restart"], "web4": ["update"]}
    assert "wave 1 (rolling): web4: update (readmit on v2, LB drain/UP/w100); health gate checked when readmitted" in result["summary"]
    assert ("wave 2 (rolling): web1: create + restart (v2); health gate not known until deployed; "
            "web2, web3: update + restart (v1 -> v2); health gate not known until deployed") in result["summary"]
    assert result["summary"][-1] == result["closing_line"] == "Rollout plan: 4 hosts, 4 to change (1 create, 3 update, 0 delete, 3 restart)."
    many = plan(hosts=[host(f"web{i}") for i in range(1, 6)], balancer=lb({f"web{i}": server() for i in range(1, 6)}), batches=[1, "100%"],
                min_ready="1")
    assert "wave 2 (rolling): web2..web5: update + restart (v1 -> v2); health gate not known until deployed" in many["summary"]
    report = r.assemble_report(result, [], [], run_id="x", started=1.0, ended=2.0, check_mode=True)
    assert [row["actions"] for w in report["waves"] for row in w["records"]] == [["update"], ["create", "restart"], ["update", "restart"],
                                                                                 ["update", "restart"]]


def test_readmit_a_gated_host_left_drained_without_restarting_it():
    hosts = [host(n, "v2", [record("v2", activated=3, outcome_seq=4)]) for n in APP]
    result = plan(hosts=hosts, balancer=lb(web2=server(admin="drain")))
    assert result["hosts"]["web2"]["action"] == "readmit" and not result["hosts"]["web2"]["restart"]
    assert waves(result) == [["web2"]]


def test_fresh_fleet_first_install():
    hosts = [host(n, None, []) for n in APP]
    down = lb(servers={n: server(status="DOWN") for n in APP})
    result = plan(hosts=hosts, balancer=down, min_ready="0", batches=["100%"])
    assert waves(result) == [APP] and result["batches"] == [4], "nothing serves yet: every host may go in one wave"
    assert {h["action"] for h in result["hosts"].values()} == {"create"}
    assert all(h["rollback_to"] is None for h in result["hosts"].values())
    assert waves(plan(hosts=hosts, balancer=down)) == [["web1"], ["web2"], ["web3", "web4"]]
    canary = plan(hosts=hosts, balancer=down, strategy="canary", canary_steps=STEPS)
    assert canary["canary"]["hosts"] == ["web1"], "a canary that takes no serving server out needs no room"
    assert canary["canary"]["steps"][0]["share"] is None and canary["canary"]["steps"][0]["effective"] == 100.0, "nothing to share: full weight"


def test_min_ready_that_leaves_no_room_fails_before_anything_changes():
    msg = problems(min_ready="100%")
    assert "deploy_min_ready '100%'" in msg and "no server can be taken out" in msg and msg.endswith("nothing was changed")
    assert "needs 5 servers but the backend has 4" in problems(min_ready="5")


def test_every_bad_input_is_named_and_reported_together():
    msg = problems(batches=[0], restart_command="", health_probes=[], release="bad/id")
    assert "deploy_restart_command" in msg and "deploy_health_probes is empty" in msg and "deploy_release 'bad/id'" in msg
    assert "deploy_batches[0] 0 is zero" in problems(batches=[0])
    assert "deploy_batches is empty" in problems(batches=[])
    msg = problems(strategy="canary", canary_hosts="0", canary_steps=[{"set_weight": 300}], batches=["0%"], min_ready="x")
    for name in ("deploy_canary_hosts '0'", "deploy_batches[0]", "deploy_min_ready 'x'"):
        assert name in msg, name


def test_a_release_id_that_exists_from_another_artifact_is_refused():
    hosts = [host("web1", "v1", [record("v1"), record("v2", checksum="sha256:" + "cd" * 32)])] + [host(n) for n in APP[1:]]
    msg = problems(hosts=hosts)
    assert "deploy_release v2 already exists on web1 from another artifact" in msg and "give a new deploy_release" in msg


def test_servers_missing_from_the_backend_name_deploy_lb_server():
    msg = problems(hosts=[host("web1", server="srv-a")] + [host(n) for n in APP[1:]])
    assert "web1's server 'srv-a' is not in deploy_lb_backend be_app" in msg and "deploy_lb_server" in msg
    assert "deploy_lb_backend 'be_x' is not a backend" in problems(backend="be_x")


def test_server_names_map_to_hosts():
    hosts = [host(n, server=f"s{i}") for i, n in enumerate(APP, 1)]
    result = plan(hosts=hosts, balancer=lb(servers={f"s{i}": server() for i in range(1, 5)}))
    assert [w["servers"] for w in result["waves"]] == [["s1"], ["s2"], ["s3"], ["s4"]]


def test_plan_is_deterministic():
    one = plan(balancer=lb(web4=server(admin="maint")))
    shuffled = lb(servers={n: server() for n in reversed(APP)}, web4=server(admin="maint"))
    two = plan(balancer=shuffled)
    assert json.dumps(one, sort_keys=True) == json.dumps(two, sort_keys=True)


# ----- canary ----------------------------------------------------------------------------------------------
STEPS = [{"set_weight": 25}, {"pause": 1}, {"analysis": {"window": 6}}]


def test_canary_first_then_waves_with_weights_and_analysis_options():
    result = plan(strategy="canary", canary_steps=STEPS, canary_analysis={"min_requests": 40, "window": 30})
    canary = result["canary"]
    assert canary["hosts"] == ["web1"] and canary["phase"] == "canary" and canary["index"] == 1
    assert [s["kind"] for s in canary["steps"]] == ["set_weight", "pause", "analysis"]
    assert canary["steps"][0]["weight"] == 100  # 1 canary vs 3 baseline servers of weight 100: 25%
    assert canary["steps"][2]["analysis"] == {"window": 6, "min_requests": 40, "canary": ["web1"]}
    assert waves(result) == [["web2"], ["web3"], ["web4"]] and result["waves"][0]["index"] == 2


def test_canary_probes_are_spread_evenly():
    hosts = [host(n, probe_url=f"http://{n}/") for n in APP]
    result = plan(hosts=hosts, strategy="canary", canary_steps=STEPS, canary_hosts="2", min_ready="50%")
    options = result["canary"]["steps"][2]["analysis"]
    assert options["canary_urls"] == ["http://web1/", "http://web2/"]
    assert options["baseline_urls"] == ["http://web3/", "http://web4/"], "as many baseline hosts as canaries: equal load per host"


def test_the_plan_states_what_each_analysis_step_would_detect_at_the_expected_traffic():
    result = plan(strategy="canary", canary_steps=STEPS, canary_analysis={"log_path": "/var/log/haproxy.log"}, canary_expected_rps=40,
                  canary_expected_latency_ms={"p50": 20, "p90": 40})
    step = result["canary"]["steps"][2]
    # the canary's share is the set_weight step's effective share; the same power functions as sre.ops.canary_analysis
    expected = power_statement(dict(step["analysis"], socket="deploy_lb_socket"), expected_rate=40, canary_share=0.25,
                               baseline_p50_ms=20, baseline_p90_ms=40)
    assert step["power"] == expected
    assert step["power"]["metrics"][0]["expected"]["canary_requests"] == 60  # 40/s for 6 s, a quarter on the canary
    assert [m["metric"] for m in step["power"]["metrics"]] == ["error_ratio", "latency"]
    assert all(m["power"] is not None for m in step["power"]["metrics"]), "latency power is known from p50/p90"
    summary = "\n".join(result["summary"])
    assert "analysis step 2 would detect" in summary
    for sentence in expected["detectable"]:
        assert f"    {sentence}" in summary


def test_without_a_request_log_the_plan_says_errors_come_from_counters_and_latency_is_not_judged():
    step = plan(strategy="canary", canary_steps=STEPS, canary_expected_rps=40)["canary"]["steps"][2]
    assert [m["source"] for m in step["power"]["metrics"]] == ["haproxy counters"]
    assert any("latency would not be judged" in n for n in step["power"]["notes"])


def test_the_plan_states_no_power_without_expected_traffic_or_a_share():
    result = plan(strategy="canary", canary_steps=STEPS)
    assert result["canary"]["steps"][2]["power"] is None and "would detect" not in "\n".join(result["summary"])
    result = plan(strategy="canary", canary_steps=[{"analysis": {}}], canary_expected_rps=40)
    assert result["canary"]["steps"][0]["power"] is None
    assert any("deploy_canary_steps[0].analysis: no set_weight step before it" in n for n in result["notes"])


def test_analysis_options_the_power_computation_refuses_are_named_in_the_plan():
    msg = problems(strategy="canary", canary_steps=STEPS, canary_analysis={"alpha": 2}, canary_expected_rps=40)
    assert "deploy_canary_steps[2].analysis: alpha" in msg, msg


@pytest.mark.parametrize("latency, message", [
    ({"p50": 20}, "deploy_canary_expected_latency_ms needs both p50 and p90"),
    ({"p90": 20}, "deploy_canary_expected_latency_ms needs both p50 and p90"),
    ({"p50": 20, "p90": 10}, "deploy_canary_steps[2].analysis: need 0 < deploy_canary_expected_latency_ms.p50 <= deploy_canary_expected_latency_ms.p90"),
])
def test_expected_latency_the_power_computation_refuses_is_named_as_the_role_variable(latency, message):
    msg = problems(strategy="canary", canary_steps=STEPS + [{"analysis": {}}], canary_analysis={"log_path": "/var/log/haproxy.log"},
                   canary_expected_rps=40, canary_expected_latency_ms=latency)
    assert message in msg, msg
    assert msg.count("deploy_canary_expected_latency_ms needs") <= 1, "said once, not for every analysis step"


def test_without_expected_latency_the_plan_says_which_variable_states_the_latency_power():
    result = plan(strategy="canary", canary_steps=STEPS + [{"analysis": {}}], canary_analysis={"log_path": "/var/log/haproxy.log"},
                  canary_expected_rps=40)
    hints = [n for n in result["notes"] if "deploy_canary_expected_latency_ms" in n]
    assert len(hints) == 1, result["notes"]
    with_latency = plan(strategy="canary", canary_steps=STEPS, canary_analysis={"log_path": "/var/log/haproxy.log"},
                        canary_expected_rps=40, canary_expected_latency_ms={"p50": 20, "p90": 40})
    assert not [n for n in with_latency["notes"] if "deploy_canary_expected_latency_ms" in n]


@pytest.mark.parametrize("canary_hosts, message", [
    ("0", "deploy_canary_hosts '0' means 0; it must be at least 1"),
    ("200%", "deploy_canary_hosts '200%' is more than 100%"),
    ("4", "no baseline would be left"),
    ("2", "deploy_canary_hosts '2' takes 2 serving servers out but deploy_min_ready '75%' leaves room for 1"),
])
def test_bad_canary_counts_fail_early(canary_hosts, message):
    assert message in problems(strategy="canary", canary_hosts=canary_hosts, canary_steps=STEPS)


@pytest.mark.parametrize("steps, message", [
    ([{"set_weight": 300}], "deploy_canary_steps[0].set_weight 300 must be a percentage from 0 to 99"),
    ([{"set_weight": 100}], "must be a percentage from 0 to 99"),
    ([{"set_weight": 25, "pause": 1}], "deploy_canary_steps[0] must have exactly one of set_weight, pause, analysis"),
    ([{"pause": -1}], "deploy_canary_steps[0].pause -1"),
    ([{}], "it has none"),
])
def test_bad_canary_steps_fail_early(steps, message):
    assert message in problems(strategy="canary", canary_steps=steps)


def test_a_weight_above_haproxys_maximum_is_refused_not_capped():
    msg = problems(strategy="canary", canary_steps=[{"set_weight": 90}])
    assert "deploy_canary_steps[0].set_weight 90: share 90: each of the 1 selected servers would need weight 2700.00" in msg
    assert "shares from 0.33% to 46.04% are possible here" in msg


def test_the_canary_weight_is_predicted_from_every_other_serving_server_of_the_backend():
    # web3 at half weight, a server outside the inventory, a backup (takes no traffic while others serve): as the
    # share option of sre.ops.haproxy_server counts them when the step runs
    balancer = lb(web3=server(weight=50), other=server(weight=100), spare=dict(server(weight=100), backup=True))
    canary = plan(balancer=balancer, strategy="canary", canary_steps=[{"set_weight": 10}])["canary"]
    assert canary["hosts"] == ["web1"]
    assert canary["steps"][0]["weight"] == 39 and canary["steps"][0]["effective"] == 10.03, canary  # 10 * 350 / 90 = 38.9


def test_a_rerun_after_a_kill_during_analysis_analyses_again():
    hosts = [host("web1", "v2", [record("v1"), record("v2", outcome="good", activated=7, outcome_seq=3)], previous_good="v1")]
    hosts += [host(n) for n in APP[1:]]
    result = plan(hosts=hosts, balancer=lb(web1=server(weight=33)), strategy="canary", canary_steps=STEPS)
    assert result["canary"]["hosts"] == ["web1"] and result["canary"]["phase"] == "canary"
    assert [s["kind"] for s in result["canary"]["steps"]] == ["set_weight", "pause", "analysis"]


def test_a_passed_canary_phase_is_not_repeated():
    hosts = [host("web1", "v2", [record("v2", activated=3, outcome_seq=4)])] + [host(n) for n in APP[1:]]
    result = plan(hosts=hosts, strategy="canary", canary_steps=STEPS)
    assert result["canary"]["hosts"] == [] and waves(result) == [["web2"], ["web3"], ["web4"]]
    assert any("canary phase already passed" in n for n in result["notes"])


def test_promote_a_held_canary_without_another_analysis():
    hosts = [host("web1", "v2", [record("v1"), record("v2", outcome="unknown", outcome_seq=None)], previous_good="v1")]
    hosts += [host(n) for n in APP[1:]]
    result = plan(hosts=hosts, balancer=lb(web1=server(weight=100)), strategy="canary", canary_steps=STEPS, canary_promote=True)
    assert result["canary"]["phase"] == "promote" and result["canary"]["steps"] == []
    assert result["hosts"]["web1"]["action"] == "readmit" and not result["hosts"]["web1"]["restart"], "a held canary serves: never restart it"
    fresh = plan(strategy="canary", canary_steps=STEPS, canary_promote=True)
    assert fresh["canary"]["phase"] == "canary" and any("no canary is held" in n for n in fresh["notes"])


# ----- blue-green ------------------------------------------------------------------------------------------
MEMBERS = {"blue": ["web1", "web2"], "green": ["web3", "web4"]}


def bg_lb(routed="be_blue", blue=None, green=None):
    return {"backends": {"be_blue": {"servers": blue or {"web1": server(), "web2": server()}},
                         "be_green": {"servers": green or {"web3": server(), "web4": server()}}},
            "maps": {"/m.map": {"www.test": routed}}}


def bg(**kwargs):
    kwargs.setdefault("balancer", bg_lb())
    return plan(members=MEMBERS, strategy="blue_green", bg_map="/m.map", bg_map_key="www.test", **kwargs)


def test_blue_green_deploys_the_idle_colour_then_switches():
    result = bg()
    b = result["blue_green"]
    assert (b["live"], b["idle"], b["switch"], b["switch_backend"]) == ("blue", "green", True, "be_green")
    assert waves(result) == [["web3", "web4"]] and result["hosts"]["web3"]["action"] == "update"
    assert "switch www.test in /m.map: be_blue (blue) -> be_green (green)" in result["summary"]


def test_blue_green_with_nothing_to_do_and_after_a_kill_between_switch_and_mark():
    done = [host(n, "v2", [record("v2", activated=3, outcome_seq=4)]) for n in APP]
    result = bg(hosts=done, balancer=bg_lb("be_green"))
    assert result["nothing_to_do"] and result["waves"] == [] and not result["blue_green"]["switch"]
    switched = [host(n, "v1") for n in APP[:2]] + [host(n, "v2", [record("v2", outcome="unknown", outcome_seq=None)]) for n in APP[2:]]
    result = bg(hosts=switched, balancer=bg_lb("be_green"))
    assert not result["blue_green"]["switch"] and waves(result) == [["web3", "web4"]], "gate and mark the live colour, switch nothing"


def test_blue_green_refusals():
    assert "deploy_bg_retire needs deploy_stop_command or deploy_stop_unit" in problems(
        members=MEMBERS, strategy="blue_green", bg_map="/m.map", bg_map_key="www.test", bg_retire=True, balancer=bg_lb())
    assert "points at be_other, which is neither" in problems(members=MEMBERS, strategy="blue_green", bg_map="/m.map", bg_map_key="www.test",
                                                              balancer=bg_lb("be_other"))
    msg = problems(members=MEMBERS, strategy="blue_green", balancer=bg_lb())
    assert "deploy_bg_map is not set" in msg and "deploy_bg_map_key is not set" in msg


def test_blue_green_rollback_gates_a_retired_colour_and_converges():
    hosts = [host(n, "v1") for n in APP[:2]] + [host(n, "v2", [record("v1"), record("v2")]) for n in APP[2:]]
    retired = bg_lb("be_green", blue={"web1": server(status="DOWN"), "web2": server(status="DOWN")})
    result = bg(hosts=hosts, balancer=retired, mode="rollback", release="")
    assert result["blue_green"]["switch_backend"] == "be_blue" and result["blue_green"]["switch"]
    assert [result["hosts"][n]["action"] for n in ("web1", "web2")] == ["restart", "restart"], "a retired colour is started first"
    after = [host(n, "v1") for n in APP[:2]] + [host(n, "v2", [record("v2", outcome="failed")]) for n in APP[2:]]
    again = bg(hosts=after, balancer=bg_lb("be_blue"), mode="rollback", release="")
    assert again["nothing_to_do"] and not again["blue_green"]["switch"] and any("already rolled back" in n for n in again["notes"])
    never = [host(n, "v1") for n in APP[:2]] + [host(n, "v2", [record("v2", outcome="unknown")]) for n in APP[2:]]
    msg = problems(hosts=never, members=MEMBERS, strategy="blue_green", bg_map="/m.map", bg_map_key="www.test", balancer=bg_lb("be_blue"),
                   mode="rollback", release="")
    assert "cannot roll back to green" in msg


# ----- rolling rollback ------------------------------------------------------------------------------------
def test_rollback_goes_to_each_hosts_last_good_release_and_a_second_run_changes_nothing():
    hosts = [host(n, "v2", [record("v1"), record("v2")], previous_good="v1") for n in APP]
    result = plan(hosts=hosts, mode="rollback", release="")
    assert {h["target"] for h in result["hosts"].values()} == {"v1"} and waves(result) == [["web1"], ["web2"], ["web3"], ["web4"]]
    assert {h["release_state"] for h in result["hosts"].values()} == {"rolled_back"}
    back = [host(n, "v1", [record("v1", by="rollback", activated=5, outcome_seq=6), record("v2", outcome="rolled_back")], previous_good="v0")
            for n in APP]
    assert plan(hosts=back, mode="rollback", release="")["nothing_to_do"]


def test_rollback_of_a_held_canary_moves_only_the_canary_and_converges():
    # web1 holds the canary v2 (not gated); web2 finished on v1 long ago and has an older good v0 and a good v2 from before
    web1 = host("web1", "v2", [record("v1"), record("v2", outcome="unknown", activated=9, outcome_seq=None)], previous_good="v1")
    web2 = host("web2", "v1", [record("v0"), record("v2", activated=3, outcome_seq=4), record("v1", activated=5, outcome_seq=6)],
                previous_good="v2")
    result = plan(hosts=[web1, web2], balancer=lb(servers={"web1": server(), "web2": server()}), mode="rollback", release="", min_ready="1")
    assert result["hosts"]["web1"]["target"] == "v1" and result["hosts"]["web2"]["target"] == "v1", "web2 was not part of the rollout"
    assert waves(result) == [["web1"]]
    again = [host("web1", "v1", [record("v1", by="rollback", activated=10, outcome_seq=11), record("v2", outcome="rolled_back")],
                  previous_good="v0"), web2]
    assert plan(hosts=again, balancer=lb(servers={"web1": server(), "web2": server()}), mode="rollback", release="", min_ready="1")["nothing_to_do"]


def test_a_killed_rollback_rerun_takes_the_rest_of_the_fleet_back_too():
    back = host("web1", "v1", [record("v1", by="rollback", activated=5, outcome_seq=6), record("v2", outcome="rolled_back")], previous_good="v0")
    rest = [host(n, "v2", [record("v1"), record("v2", activated=3, outcome_seq=4)], previous_good="v1") for n in APP[1:]]
    result = plan(hosts=[back] + rest, mode="rollback", release="")
    assert {n: h["target"] for n, h in result["hosts"].items()} == {n: "v1" for n in APP} and waves(result) == [["web2"], ["web3"], ["web4"]]


def test_rollback_to_a_release_that_is_not_there_is_refused():
    assert "web1 cannot roll back to v0: it is not on the host" in problems(mode="rollback", release="v0")
    assert "web1 has no release marked good to roll back to" in problems(mode="rollback", release="")


# ----- report ----------------------------------------------------------------------------------------------
def test_report_of_a_check_run_is_the_plan():
    result = plan(strategy="canary", canary_steps=STEPS)
    report = r.assemble_report(result, [], [], run_id="x", started=10, ended=12.5, check_mode=True)
    assert report["verdict"] == "planned" and report["duration_s"] == 2.5 and isinstance(report["started"], float)
    rows = [(w["wave"], w["phase"], row["host"], row["action"], row["release_before"], row["release_after"]) for w in report["waves"] for row in w["records"]]
    assert rows == [(1, "canary", "web1", "update", "v1", "v2"), (2, "rolling", "web2", "update", "v1", "v2"),
                    (3, "rolling", "web3", "update", "v1", "v2"), (4, "rolling", "web4", "update", "v1", "v2")]
    assert all(row["health"] == r.NOT_KNOWN for w in report["waves"] for row in w["records"])


def _record(name, outcome="deployed", failure="", before="v1", after="v2"):
    return {"host": name, "outcome": outcome, "failure": failure, "restarted": True, "at": "12.5",
            "switch": {"current": after, "switched": before != after, "diff": {"before": {"current": before}}, "pruned": []},
            "health": {"healthy": not failure, "msg": "all 2 probes healthy"}, "rollback": {}}


def test_report_of_a_real_run_has_numbers_as_numbers():
    result = plan(min_ready="50%")
    report = r.assemble_report(result, [_record(n) for n in APP], [], run_id="x", started=1, ended=3, check_mode=False)
    assert report["verdict"] == "completed" and not report["rollback_taken"]
    row = report["waves"][0]["records"][0]
    assert row["finished_at"] == 12.5 and row["restarted"] is True and row["release_after"] == "v2"
    assert report["batches"] == [1, 1, 2] and all(isinstance(b, int) for b in report["batches"])
    assert isinstance(report["waves"][0]["wave"], int)
    json.dumps(report)


def test_report_of_an_aborted_run_names_the_failure_and_the_hosts_not_started():
    result = plan()
    failed = _record("web1", outcome="rolled_back", failure="Health gate: 1 of 2 probes unhealthy", after="v2")
    failed["rollback"] = {"current": "v1", "switched": True}
    analysis = {"step": 2, "verdict": "fail", "reasons": ["x"], "metrics": [], "canary_urls": ["http://a/"]}
    report = r.assemble_report(result, [failed], [analysis],
                               run_id="x", started=1, ended=3, check_mode=False)
    assert report["verdict"] == "aborted" and report["rollback_taken"]
    assert report["abort_reason"] == "wave 1 (rolling) web1: Health gate: 1 of 2 probes unhealthy"
    assert report["waves"][0]["records"][0]["release_after"] == "v1"
    assert report["waves"][1]["records"][0]["outcome"] == "not started"
    assert report["analyses"] == [{"step": 2, "verdict": "fail", "reasons": ["x"], "metrics": [], "measurements": {},
                                   "canary_urls": ["http://a/"], "baseline_urls": []}]
    lines = r.report_lines(report, "/tmp/r.json")
    assert lines[0].startswith("rolling deploy of v2: aborted in 2.0 s") and lines[-1] == "report: /tmp/r.json"


def test_report_of_a_held_canary():
    result = plan(strategy="canary", canary_steps=STEPS)
    report = r.assemble_report(result, [_record("web1", outcome="held")], [], run_id="x", started=1, ended=3, check_mode=False, held=True)
    assert report["verdict"] == "held" and "deploy_canary_promote=true" in report["abort_reason"]


def test_planner_does_not_change_its_inputs():
    hosts = [host(n) for n in APP]
    balancer = lb()
    before = copy.deepcopy((hosts, balancer))
    plan(hosts=hosts, balancer=balancer, strategy="canary", canary_steps=STEPS)
    assert (hosts, balancer) == before
