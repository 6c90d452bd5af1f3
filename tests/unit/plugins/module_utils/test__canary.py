# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The canary statistics against scipy on fixed data, and the verdict rules."""

from __future__ import annotations

import random

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _canary as canary

scipy_stats = pytest.importorskip("scipy.stats")

TABLES = [(20, 100, 0, 300), (1, 100, 0, 100), (5, 1000, 3, 1000), (0, 50, 4, 200), (30, 150, 28, 140), (12, 5000, 30, 15000),
          (3, 10, 0, 10), (100, 100, 0, 100)]


@pytest.mark.parametrize("c_err, c_total, b_err, b_total", TABLES)
def test_fisher_matches_scipy(c_err, c_total, b_err, b_total):
    expected = scipy_stats.fisher_exact([[c_err, c_total - c_err], [b_err, b_total - b_err]], alternative="greater").pvalue
    assert canary.fisher_greater(c_err, c_total, b_err, b_total) == pytest.approx(expected, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("c_err, c_total, b_err, b_total", [t for t in TABLES if (t[0] + t[2]) not in (0,) and t[0] + t[2] < t[1] + t[3]])
def test_two_proportion_z_matches_the_normal_distribution(c_err, c_total, b_err, b_total):
    z, p_value = canary.two_proportion_z(c_err, c_total, b_err, b_total)
    p1, p2 = c_err / c_total, b_err / b_total
    pooled = (c_err + b_err) / (c_total + b_total)
    expected_z = (p1 - p2) / (pooled * (1 - pooled) * (1 / c_total + 1 / b_total)) ** 0.5
    assert z == pytest.approx(expected_z)
    assert p_value == pytest.approx(scipy_stats.norm.sf(expected_z))


def samples():
    rng = random.Random(1234)
    fast = [rng.gauss(20, 3) for _i in range(60)]
    slow = [rng.gauss(320, 20) for _i in range(60)]
    similar = [rng.gauss(20.5, 3) for _i in range(80)]
    ties_a = [rng.choice([1, 2, 2, 3, 5]) for _i in range(40)]
    ties_b = [rng.choice([1, 1, 2, 3, 3]) for _i in range(30)]
    return [(slow, fast), (fast, slow), (similar, fast), (ties_a, ties_b), ([1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]), ([5.0] * 10, [5.0] * 12)]


@pytest.mark.parametrize("case", range(len(samples())))
def test_mann_whitney_matches_scipy(case):
    a, b = samples()[case]
    expected = scipy_stats.mannwhitneyu(a, b, alternative="greater", method="asymptotic", use_continuity=True)
    u, p_value = canary.mann_whitney_greater(a, b)
    assert u == pytest.approx(expected.statistic)
    if expected.pvalue == expected.pvalue:  # scipy gives nan when every value ties
        assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-15)
    else:
        assert p_value == 1.0


def judge_errors(c, b, **kwargs):
    options = {"alpha": 0.05, "min_requests": 100, "tolerance": 0.01, "max_ratio": None, "test": "fisher"}
    options.update(kwargs)
    return canary.judge_errors({"requests": c[1], "errors": c[0]}, {"requests": b[1], "errors": b[0]}, **options)


def test_error_judgement():
    v3_like = judge_errors((20, 100), (0, 300))
    assert v3_like["verdict"] == "fail" and "canary error ratio 20.00% is higher than baseline 0.00%" in v3_like["reason"]
    assert judge_errors((1, 200), (0, 600))["verdict"] == "pass", "one error in 200 is noise"
    assert judge_errors((20, 99), (0, 300))["verdict"] == "inconclusive", "below min_requests it must not pass"
    assert judge_errors((3, 1000), (0, 1000), max_ratio=0.002)["verdict"] == "fail"
    tiny = judge_errors((60, 100000), (20, 100000), tolerance=0.001)
    assert tiny["p_value"] < 0.05 and tiny["verdict"] == "pass", "significant but below the tolerance"
    assert judge_errors((20, 100), (0, 300), test="ztest")["verdict"] == "fail"


def test_latency_judgement():
    rng = random.Random(7)
    base = [rng.gauss(2, 0.3) for _i in range(100)]
    slow = [x + 300 for x in base[:50]]
    result = canary.judge_latency(slow, base, alpha=0.05, min_samples=20, tolerance=0.2, source="probes")
    assert result["verdict"] == "fail" and result["reason"].startswith("canary latency is higher: median")
    same = canary.judge_latency(base[:50], base[50:], alpha=0.05, min_samples=20, tolerance=0.2, source="probes")
    assert same["verdict"] == "pass"
    few = canary.judge_latency(slow[:5], base, alpha=0.05, min_samples=20, tolerance=0.2, source="probes")
    assert few["verdict"] == "inconclusive" and "too few latency samples" in few["reason"]
    # 1 ms against 0 ms: significant, "infinitely" higher, and meaningless: the absolute floor passes it
    tiny = canary.judge_latency([1.0] * 30, [0.0] * 30, alpha=0.05, min_samples=20, tolerance=0.2, source="haproxy")
    assert tiny["p_value"] < 0.05 and tiny["verdict"] == "pass"
    # statistically higher but within the tolerance: pass
    nudged = canary.judge_latency([x * 1.05 for x in base], base, alpha=0.05, min_samples=20, tolerance=0.2, source="probes")
    assert nudged["verdict"] == "pass"


@pytest.mark.parametrize(
    "verdicts, expected",
    [(["pass", "pass"], "pass"), (["pass", "inconclusive"], "inconclusive"), (["inconclusive", "fail"], "fail"), ([], "inconclusive")],
)
def test_overall_verdict_is_never_a_silent_pass(verdicts, expected):
    metrics = [{"metric": f"m{i}", "verdict": v, "reason": v} for i, v in enumerate(verdicts)]
    verdict, reasons = canary.overall(metrics)
    assert verdict == expected and reasons
    if expected == "fail":
        assert reasons[0].endswith("fail"), "failing reasons come first"
