# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Canary judgement: the verdict rules, the window (only its own requests), equal probe load, and the plan."""

from __future__ import annotations

import math
import threading
import random
import statistics
from concurrent.futures import Future

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _canary as canary
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError
from ansible_collections.sre.ops.plugins.module_utils._health import Attempt

from .test__haproxy import FakeAPI, edit_stat


def rules(**kwargs):
    return canary.Rules(**{"min_requests": 100, "min_samples": 20, **kwargs})


def judge_errors(c, b, **kwargs):
    return canary.judge_errors({"requests": c[1], "errors": c[0]}, {"requests": b[1], "errors": b[0]}, rules(**kwargs))


def test_error_judgement():
    v3_like = judge_errors((20, 100), (0, 300))
    assert v3_like["verdict"] == "fail" and "canary error ratio 20.00% is higher than baseline 0.00%" in v3_like["reason"]
    assert judge_errors((1, 400), (0, 1200))["verdict"] == "pass", "one error in 400 is noise"
    assert judge_errors((20, 99), (0, 300))["verdict"] == "inconclusive", "below min_requests it must not pass"
    assert judge_errors((3, 1000), (0, 1000), max_error_ratio=0.002)["verdict"] == "fail"
    assert judge_errors((20, 100), (0, 300), error_test="ztest")["verdict"] == "fail"


def test_a_significant_rise_within_the_tolerance_passes_and_says_so():
    tiny = judge_errors((60, 100000), (20, 100000), error_tolerance=0.001)
    assert tiny["p_value"] < 0.05 and tiny["verdict"] == "pass"
    assert "a significant rise of 0.04 points, within the tolerance of 0.1" in tiny["reason"]


def test_a_significant_rise_equal_to_the_tolerance_fails():
    # 5.00% vs 0.00% with a tolerance of 5 points: the rise reaches the tolerance, it is not passed
    exact = judge_errors((50, 1000), (0, 3000), error_tolerance=0.05, error_detect=0.1)
    assert exact["verdict"] == "fail" and "reaches the tolerance of 5" in exact["reason"]
    assert judge_errors((49, 1000), (0, 3000), error_tolerance=0.05, error_detect=0.1)["verdict"] == "pass"


def test_too_little_power_for_the_rise_that_must_be_caught_is_inconclusive():
    # 0 errors in 150 canary requests: a 2-point rise would be caught only ~30% of the time
    weak = judge_errors((0, 150), (0, 450), error_detect=0.02)
    assert weak["verdict"] == "inconclusive" and weak["reason"].startswith("too little traffic to rule out a rise of 2 points")
    assert weak["power"]["power_at_detect"] < 0.8 and not weak["power"]["sufficient"]
    strong = judge_errors((0, 1500), (0, 4500), error_detect=0.02)
    assert strong["verdict"] == "pass" and strong["power"]["sufficient"]
    assert strong["power"]["minimum_detectable_rise"] < 0.02 < weak["power"]["minimum_detectable_rise"]
    assert strong["detectable"].startswith("error_ratio (haproxy): with 1500 canary and 4500 baseline requests, a rise from 0.00% to ")
    # off: the power is still reported, the verdict does not depend on it
    assert judge_errors((0, 150), (0, 450), error_detect=0)["verdict"] == "pass"


def test_latency_judgement():
    rng = random.Random(7)
    base = [rng.gauss(2, 0.3) for _i in range(200)]
    slow = [x + 300 for x in base[:100]]
    result = canary.judge_latency(slow, base, rules())
    assert result["verdict"] == "fail" and result["reason"].startswith("canary latency is higher: median")
    same = canary.judge_latency(base[:100], base[100:], rules())
    assert same["verdict"] == "pass" and same["power"]["sufficient"]
    few = canary.judge_latency(slow[:5], base, rules())
    assert few["verdict"] == "inconclusive" and "too few latency samples" in few["reason"]
    # 1 ms against 0 ms: significant, "infinitely" higher, and meaningless: the absolute floor passes it
    tiny = canary.judge_latency([1.0] * 30, [0.0] * 30, rules(latency_detect_ms=0))
    assert tiny["p_value"] < 0.05 and tiny["verdict"] == "pass" and "below the floor of 10.0 ms" in tiny["reason"]
    # statistically higher but within the relative tolerance: pass
    nudged = canary.judge_latency([x * 1.05 for x in base], base, rules())
    assert nudged["verdict"] == "pass"


def test_a_latency_rise_equal_to_the_floor_fails():
    base = [float(v % 5) for v in range(200)]
    at_floor = canary.judge_latency([v + 10.0 for v in base], base, rules())
    assert at_floor["verdict"] == "fail" and "+10.0 ms reaches the floor of 10.0 ms" in at_floor["reason"]
    assert canary.judge_latency([v + 9.0 for v in base], base, rules())["verdict"] == "pass"


def test_too_few_samples_for_the_latency_rise_that_must_be_caught_is_inconclusive():
    rng = random.Random(3)
    wide = [rng.lognormvariate(4.6, 0.8) for _i in range(60)]  # p50 ~100 ms, widely spread
    result = canary.judge_latency(wide[:20], wide[20:], rules(latency_detect_ms=20))
    assert result["verdict"] == "inconclusive" and result["reason"].startswith("too few samples to rule out +20 ms")
    assert result["power"]["minimum_detectable_shift_ms"] > 20


@pytest.mark.parametrize(
    "verdicts, expected",
    [(["pass", "pass"], "pass"), (["pass", "inconclusive"], "inconclusive"), (["inconclusive", "fail"], "fail"), ([], "inconclusive")],
)
def test_overall_verdict_is_never_a_silent_pass(verdicts, expected):
    metrics = [{"metric": f"m{i}", "verdict": v, "reason": v} for i, v in enumerate(verdicts)]
    verdict, reasons = canary.overall(metrics)
    assert verdict == expected and reasons
    if expected in ("fail", "inconclusive") and verdicts:
        assert reasons[0].endswith(expected), "the deciding reasons come first"


@pytest.mark.parametrize("bad, message", [
    ({"alpha": 1.0}, "alpha must be between 0 and 1"),
    ({"required_power": 0}, "required_power must be between 0 and 1"),
    ({"error_tolerance": -0.1}, "error_tolerance must not be negative"),
    ({"error_detect": 0.004}, "error_detect (0.004) must be above error_tolerance (0.005)"),
    ({"error_detect": 5}, "error_detect is a rise of the error ratio"),
    ({"latency_detect_ms": 5}, "latency_detect_ms (5) must be at least latency_min_increase_ms (10.0)"),
])
def test_rules_are_checked(bad, message):
    with pytest.raises(InvalidInputError) as error:
        rules(**bad).check()
    assert message in error.value.msg


@pytest.mark.parametrize("given, error_detect, latency_detect_ms", [
    ({}, 0.05, 50.0),
    ({"latency_min_increase_ms": 100}, 0.05, 100.0),
    ({"error_tolerance": 0.04}, 0.08, 50.0),
    ({"error_tolerance": 0.7}, 1.0, 50.0),
    ({"error_tolerance": 0.04, "error_detect": 0.06, "latency_min_increase_ms": 100, "latency_detect_ms": 120}, 0.06, 120.0),
])
def test_rises_to_catch_follow_the_tolerances_when_not_given(given, error_detect, latency_detect_ms):
    """A tolerance the user set never collides with a default they did not set: the default rise moves above it."""
    derived = canary.rules_from_options(given)
    assert (derived.error_detect, derived.latency_detect_ms) == (error_detect, latency_detect_ms)


# ----- the window ------------------------------------------------------------------------------------
def line(server, status=200, tr=2, backend="be_app", term="----"):
    return (f"127.0.0.1:40000 [03/Dec/2026:07:48:51.897] fe_http {backend}/{server} 0/0/0/{tr}/{max(tr, 0) + 1} {status} 500 - - "
            f"{term} 4/4/1/1/0 0/0 \"GET / HTTP/1.1\"\n")


def test_samples_from_log_groups_by_server_and_skips_the_rest():
    lines = [line("web4", tr=60), line("web4", 500, 1), line("web1"), line("web2", 503, -1, term="SC--"), line("web3", -1, -1, term="CD--"),
             line("web1", backend="be_other"), line("<NOSRV>", 503, -1), "[WARNING] noise"]
    groups, baseline = canary.samples_from_log([x.rstrip("\n") for x in lines], "be_app", ["web4"], None)
    assert (groups["canary"].requests, groups["canary"].errors, groups["canary"].latencies) == (2, 1, [60.0, 1.0])
    assert (groups["baseline"].requests, groups["baseline"].errors, groups["baseline"].aborted) == (2, 1, 1)
    assert groups["baseline"].latencies == [2.0] and baseline == ["web1", "web2", "web3"]
    only_web1, _names = canary.samples_from_log([x.rstrip("\n") for x in lines], "be_app", ["web4"], ["web1"])
    assert only_web1["baseline"].requests == 1


class FakeTime:
    """A clock that moves only when the analysis sleeps; each sleep lets `traffic` write what happened meanwhile."""

    def __init__(self, traffic=None):
        self.now = 1000.0
        self.traffic = traffic

    def clock(self):
        return self.now

    def sleep(self, seconds):
        if self.traffic:
            self.traffic(self.now, seconds)
        self.now += seconds


def writer(path, per_second):
    def traffic(_now, seconds):
        with open(path, "a", encoding="utf-8") as handle:
            for _i in range(int(round(seconds))):
                handle.writelines(per_second())
    return traffic


def analysis(fake, **kwargs):
    options = {"api": None, "backend": "be_app", "canary": ["web4"], "baseline": None, "canary_urls": [], "baseline_urls": [],
               "window": 30, "probe_rate": 10, "probe_timeout": 2, "rules": rules()}
    options.update(kwargs)
    return canary.CanaryAnalysis(sleep=fake.sleep, clock=fake.clock, **options)


def test_only_the_window_is_judged_never_history(tmp_path):
    """A slow release was rolled back just before: its requests are in the log, but not in the window."""
    path = tmp_path / "haproxy.log"
    path.write_text("".join(line("web4", tr=300) for _i in range(500)) + "".join(line(f"web{i}") for i in (1, 2, 3) for _j in range(500)))
    rng = random.Random(5)
    fake = FakeTime(writer(str(path), lambda: [line(f"web{i}", tr=rng.choice([1, 2, 2, 3])) for i in (1, 2, 3, 4) for _j in range(10)]))
    result = analysis(fake, log_path=str(path)).run()
    assert result["verdict"] == "pass", result["reasons"]
    assert result["measurements"]["haproxy"]["canary"]["requests"] == 300, "30 s x 10 requests a second, none from before"
    assert result["measurements"]["haproxy"]["baseline_servers"] == ["web1", "web2", "web3"]
    latency = next(m for m in result["metrics"] if m["metric"] == "latency")
    assert latency["canary"]["p50_ms"] <= 3 and latency["source"] == "haproxy log"
    assert result["detectable"][0].startswith("error_ratio (haproxy log): with 300 canary and 900 baseline requests")


def test_a_subtle_release_in_the_window_fails_on_both_metrics(tmp_path):
    path = tmp_path / "haproxy.log"
    path.write_text("")
    rng = random.Random(6)

    def second():
        canary_lines = [line("web4", 500 if rng.random() < 0.06 else 200, 60 + rng.choice([1, 2, 3])) for _j in range(10)]
        return canary_lines + [line(f"web{i}", tr=rng.choice([1, 2, 3])) for i in (1, 2, 3) for _j in range(10)]

    result = analysis(FakeTime(writer(str(path), second)), log_path=str(path)).run()
    assert result["verdict"] == "fail"
    assert [m["verdict"] for m in result["metrics"]] == ["fail", "fail"], result["reasons"]


def test_counters_are_differenced_over_the_window_and_latency_is_not_judged_from_them():
    """Without a request log: 5xx from counters at the start and end of the window; no response-time averages."""
    api = FakeAPI()  # every be_app server has answered 12 requests before the window

    def traffic(_now, _seconds):
        api.stat = edit_stat(api.stat, "web4", hrsp_2xx=12 + 280, hrsp_5xx=20, rtime=9999)
        for server in ("web1", "web2", "web3"):
            api.stat = edit_stat(api.stat, server, hrsp_2xx=12 + 300, rtime=1)

    result = analysis(FakeTime(traffic), api=api).run()
    assert result["measurements"]["haproxy"]["canary"] == {"requests": 300, "errors": 20}
    assert result["measurements"]["haproxy"]["baseline"] == {"requests": 900, "errors": 0}
    assert [m["metric"] for m in result["metrics"]] == ["error_ratio"] and result["verdict"] == "fail"
    assert result["metrics"][0]["source"] == "haproxy counters"
    assert result["notes"] and result["notes"][0].startswith("latency was not judged")


def test_probes_give_every_host_the_same_load():
    fake = FakeTime()
    sent = []

    def attempt(probe):
        sent.append(probe["url"])
        return Attempt(True, 200, 0.002 if "canary" in probe["url"] else 0.001, "ok")

    class InlineExecutor:
        """Runs each request as it is submitted, so `sent` is the submission order (threads would reorder it)."""

        def __init__(self, max_workers):
            self.max_workers = max_workers

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def submit(self, fn, *args):
            future = Future()
            future.set_result(fn(*args))
            return future

    runner = canary.ProbeRunner(["http://canary/"], ["http://b1/", "http://b2/", "http://b3/"], 5, 1, sleep=fake.sleep, clock=fake.clock,
                                attempt=attempt, executor=InlineExecutor)
    groups = runner.run(fake.now + 10)
    counts = {url: sent.count(url) for url in set(sent)}
    assert counts == {"http://canary/": 50, "http://b1/": 50, "http://b2/": 50, "http://b3/": 50}, "5 a second to every URL"
    assert groups["canary"].requests == 50 and groups["baseline"].requests == 150
    assert groups["canary"].latencies == [2.0] * 50
    # interleaved: in every tick each URL once, the order alternating
    assert sent[:8] == ["http://canary/", "http://b1/", "http://b2/", "http://b3/", "http://b3/", "http://b2/", "http://b1/", "http://canary/"]


def test_probes_run_concurrently_and_are_all_counted():
    """With the real thread pool: one slow URL does not hold up the others, and every answer is counted."""
    fake = FakeTime()
    lock = threading.Lock()
    sent = []

    def attempt(probe):
        with lock:
            sent.append(probe["url"])
        return Attempt("b2" not in probe["url"], 200 if "b2" not in probe["url"] else None, 0.001, "ok")

    runner = canary.ProbeRunner(["http://canary/"], ["http://b1/", "http://b2/"], 4, 1, sleep=fake.sleep, clock=fake.clock, attempt=attempt)
    groups = runner.run(fake.now + 5)
    assert sorted(set(sent)) == ["http://b1/", "http://b2/", "http://canary/"] and len(sent) == 60
    assert groups["canary"].requests == 20 and groups["canary"].errors == 0
    assert groups["baseline"].requests == 40 and groups["baseline"].errors == 20 and len(groups["baseline"].latencies) == 20


def test_plan_states_what_the_window_would_detect_at_the_measured_traffic(tmp_path):
    path = tmp_path / "haproxy.log"
    path.write_text("")
    rng = random.Random(8)
    # 40 requests a second over four servers, the canary (web4) among them
    fake = FakeTime(writer(str(path), lambda: [line(f"web{i}", tr=rng.choice([1, 1, 2, 3, 8])) for i in (1, 2, 3, 4) for _j in range(10)]))
    plan = analysis(fake, log_path=str(path)).plan(expected_rate=None, canary_share=0.25, sample=3)
    assert plan["verdict"] == "planned" and plan["sufficient"]
    errors, latency = plan["metrics"]
    assert errors["expected"] == {"rate_per_s": 40.0, "canary_share": 0.25, "canary_requests": 300, "baseline_requests": 900,
                                  "baseline_error_ratio": 0.0}
    assert errors["power"]["minimum_detectable_rise"] < 0.02 and errors["power"]["power_at_detect"] > 0.99
    assert latency["power"]["minimum_detectable_shift_ms"] >= 10.0, "the floor bounds what latency can catch"
    assert plan["detectable"][0].startswith("error_ratio (haproxy log): with 300 canary and 900 baseline requests, a rise from 0.00% to")
    assert "would be caught with 80% probability" in plan["detectable"][0] and "would be caught" in plan["detectable"][1]
    # a short window at the same traffic: not enough for a 5-point rise
    short = analysis(fake, log_path=str(path), window=4).plan(expected_rate=40, canary_share=0.25, sample=3)
    assert not short["sufficient"] and short["metrics"][0]["power"]["power_at_detect"] < 0.8


def test_plan_without_share_or_traffic_is_a_clear_error(tmp_path):
    path = tmp_path / "haproxy.log"
    path.write_text("")
    with pytest.raises(InvalidInputError, match="give canary_share"):
        analysis(FakeTime(), log_path=str(path)).plan(expected_rate=None, canary_share=None, sample=1)
    with pytest.raises(InvalidInputError, match="canary_share must be between 0 and 1"):
        analysis(FakeTime(), log_path=str(path)).plan(expected_rate=10, canary_share=1.5, sample=1)


@pytest.mark.parametrize("options, message", [
    ({"backend": None, "log_path": "/x"}, "backend is required with socket, log_path or log_socket"),
    ({"canary": [], "log_path": "/x"}, "canary (server names in the backend) is required"),
    ({"canary_urls": ["http://a/"]}, "canary_urls and baseline_urls go together"),
    ({"canary_urls": ["ftp://a/"], "baseline_urls": ["http://b/"]}, "'ftp://a/' is not an http(s) URL"),
    ({"baseline": ["web4"], "log_path": "/x"}, "web4 cannot be both canary and baseline"),
    ({"window": 0, "log_path": "/x"}, "window must be positive"),
    ({}, "give socket and backend"),
])
def test_bad_options_fail_clearly(options, message):
    with pytest.raises(InvalidInputError) as error:
        analysis(FakeTime(), **options)
    assert message in error.value.msg


# ----- power statement: what a plan can say before the canary runs ---------------------------------------
def test_power_statement_is_what_the_plan_measures_for_the_same_traffic(tmp_path):
    """The statement a rollout plan prints and the analysis's own mode=plan agree, given the same baseline data."""
    path = tmp_path / "haproxy.log"
    path.write_text("")
    rng = random.Random(8)
    fake = FakeTime(writer(str(path), lambda: [line(f"web{i}", tr=rng.choice([1, 1, 2, 3, 8])) for i in (1, 2, 3, 4) for _j in range(10)]))
    measured = analysis(fake, log_path=str(path)).plan(expected_rate=40, canary_share=0.25, sample=3)
    with open(path, encoding="utf-8") as handle:
        groups, _names = canary.samples_from_log(handle.read().splitlines(), "be_app", ["web4"], None)
    stated = canary.power_statement({"window": 30, "log_path": "/var/log/haproxy.log"}, expected_rate=40, canary_share=0.25,
                                    baseline_latencies_ms=groups["baseline"].latencies)
    assert stated["metrics"] == measured["metrics"] and stated["detectable"] == measured["detectable"]
    assert stated["sufficient"] is measured["sufficient"] is True and stated["notes"] == []


def test_power_statement_is_honest_about_what_the_rule_then_catches():
    """Canaries drawn with the stated minimum detectable rise are failed by the analysis's own rule about as often as stated."""
    stated = canary.power_statement({"window": 30}, expected_rate=40, canary_share=0.25, baseline_p50_ms=20, baseline_p90_ms=60)
    errors, latency = stated["metrics"]
    assert errors["expected"] == {"rate_per_s": 40, "canary_share": 0.25, "canary_requests": 300, "baseline_requests": 900,
                                  "baseline_error_ratio": 0.0}
    rise, shift = errors["power"]["minimum_detectable_rise"], latency["power"]["minimum_detectable_shift_ms"]
    rng = random.Random(12)
    trials = 300
    caught = sum(judge_errors((sum(rng.random() < rise for _request in range(300)), 300), (0, 900), min_requests=100)["verdict"] == "fail"
                 for _trial in range(trials))
    assert 0.72 <= caught / trials <= 0.88, f"stated 80%, the rule caught {caught / trials:.0%}"
    shape = latency_shape_sampler(20, 60, rng)
    caught = sum(canary.judge_latency(shape(300, shift), shape(900, 0), rules(latency_detect_ms=0))["verdict"] == "fail" for _trial in range(60))
    assert caught / 60 >= 0.7, f"stated 80% for +{shift} ms, the rule caught {caught / 60:.0%}: the statement must not overstate"
    assert stated["detectable"][1].startswith("latency (haproxy log): with 300 canary and 900 baseline samples (baseline p50 20.0 ms), a +")


def latency_shape_sampler(p50, p90, rng):
    sigma = (math.log(p90) - math.log(p50)) / statistics.NormalDist().inv_cdf(0.9)
    return lambda n, shift: [float(round(math.exp(math.log(p50) + sigma * rng.gauss(0, 1)) + shift)) for _sample in range(n)]


def test_power_statement_follows_the_sources_in_the_options():
    counters = canary.power_statement({"socket": "/run/haproxy/admin.sock", "window": 60}, canary_requests=600, baseline_requests=1800,
                                      baseline_error_ratio=0.005)
    assert [m["metric"] for m in counters["metrics"]] == ["error_ratio"] and counters["metrics"][0]["source"] == "haproxy counters"
    assert counters["notes"][0].startswith("latency would not be judged") and counters["sufficient"]
    assert counters["detectable"][0].startswith("error_ratio (haproxy counters): with 600 canary and 1800 baseline requests, a rise from 0.50% to")
    probes = canary.power_statement({"socket": "/s", "canary_urls": ["http://c1/", "http://c2/"], "baseline_urls": ["http://b1/", "http://b2/", "http://b3/"],
                                     "probe_rate": 5, "window": 60}, expected_rate=40, canary_share=0.1, baseline_p50_ms=20, baseline_p90_ms=60)
    assert [(m["metric"], m["source"]) for m in probes["metrics"]] == [("error_ratio", "haproxy counters"), ("latency", "probes")]
    assert probes["metrics"][0]["expected"]["canary_requests"] == 240
    assert probes["metrics"][1]["expected"] == {"canary_samples": 600, "baseline_samples": 900}, "probe_rate a second to every URL"
    both = canary.power_statement({"log_path": "/l", "canary_urls": ["http://c/"], "baseline_urls": ["http://b/"]}, canary_requests=300,
                                  baseline_requests=900, baseline_p50_ms=2.4, baseline_p90_ms=5)
    assert [(m["source"], m["power"]["baseline_p50_ms"]) for m in both["metrics"][1:]] == [("haproxy log", 2.0), ("probes", 2.4)], \
        "HAProxy logs whole milliseconds; probes time to the microsecond"
    only_probes = canary.power_statement({"canary_urls": ["http://c/"], "baseline_urls": ["http://b/"]}, canary_requests=1, baseline_requests=1)
    assert [(m["metric"], m["source"]) for m in only_probes["metrics"]] == [("error_ratio", "probes"), ("latency", "probes")]
    assert only_probes["metrics"][0]["expected"]["canary_requests"] == 600, "probes at the default 10 a second for the default 60 s"
    assumed = canary.power_statement({}, canary_requests=600, baseline_requests=1800)
    assert assumed["notes"] == ["no log_path, log_socket, socket or probe URLs in the options: the request log is assumed"]
    assert assumed["metrics"][1]["power"] is None and not assumed["sufficient"], "latency power is unknown without the baseline's spread"
    assert "give baseline_p50_ms and baseline_p90_ms" in assumed["detectable"][1]


def test_power_statement_uses_the_users_thresholds():
    """A 1-point tolerance needs more traffic than the default; error_detect below what the window can catch is not sufficient."""
    default = canary.power_statement({}, canary_requests=600, baseline_requests=1800, baseline_error_ratio=0.005, baseline_p50_ms=20,
                                     baseline_p90_ms=60)
    strict = canary.power_statement({"error_tolerance": 0.01, "error_detect": 0.015, "latency_detect_ms": 25, "required_power": 0.9},
                                    canary_requests=600, baseline_requests=1800, baseline_error_ratio=0.005, baseline_p50_ms=20, baseline_p90_ms=60)
    assert strict["metrics"][0]["power"]["minimum_detectable_rise"] > default["metrics"][0]["power"]["minimum_detectable_rise"]
    assert strict["metrics"][0]["power"]["required_power"] == 0.9 and not strict["sufficient"]
    assert "with 90% probability; to 2.00%:" in strict["detectable"][0] and "; +25 ms:" in strict["detectable"][1]
    assert canary.power_statement({"window": "30"}, expected_rate="40", canary_share=0.25)["window_s"] == 30, "templated numbers as text"


@pytest.mark.parametrize("options, traffic, message", [
    ({}, {}, "give either expected_rate and canary_share, or canary_requests and baseline_requests"),
    ({}, {"expected_rate": 10, "canary_requests": 5}, "give either expected_rate and canary_share, or canary_requests"),
    ({}, {"expected_rate": 10}, "expected_rate and canary_share go together"),
    ({}, {"canary_requests": 10}, "canary_requests and baseline_requests go together"),
    ({}, {"expected_rate": 10, "canary_share": 1}, "canary_share must be between 0 and 1 (exclusive), got 1"),
    ({}, {"expected_rate": -1, "canary_share": 0.5}, "expected_rate must be 0 or more, got -1"),
    ({"window": 0}, {"expected_rate": 1, "canary_share": 0.5}, "window must be above 0, got 0"),
    ({}, {"canary_requests": "many", "baseline_requests": 1}, "canary_requests must be a number, got 'many'"),
    ({}, {"canary_requests": 1, "baseline_requests": 1, "baseline_error_ratio": 2}, "baseline_error_ratio must be from 0 to 1, got 2"),
    ({}, {"canary_requests": 1, "baseline_requests": 1, "baseline_p50_ms": 20}, "baseline_p50_ms and baseline_p90_ms go together"),
    ({}, {"canary_requests": 1, "baseline_requests": 1, "baseline_p50_ms": 20, "baseline_p90_ms": 10}, "need 0 < baseline_p50_ms <= baseline_p90_ms"),
    ({}, {"canary_requests": 1, "baseline_requests": 1, "baseline_p50_ms": 2, "baseline_p90_ms": 5, "baseline_latencies_ms": [1]}, "not both"),
    ({}, {"canary_requests": 1, "baseline_requests": 1, "baseline_latencies_ms": "1,2"}, "baseline_latencies_ms must be a list of numbers"),
    ({"error_test": "chi2"}, {"canary_requests": 1, "baseline_requests": 1}, "error_test must be fisher or ztest, got 'chi2'"),
    ({"alpha": True}, {"canary_requests": 1, "baseline_requests": 1}, "alpha must be a number, got True"),
    ({"error_detect": 0.004}, {"canary_requests": 1, "baseline_requests": 1}, "error_detect (0.004) must be above error_tolerance (0.005)"),
])
def test_power_statement_bad_input_fails_clearly(options, traffic, message):
    with pytest.raises(InvalidInputError) as error:
        canary.power_statement(options, **traffic)
    assert message in error.value.msg
