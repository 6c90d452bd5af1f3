# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The canary tests and their power, against scipy and statsmodels.

- the tests themselves: scipy's fisher_exact, mannwhitneyu and the normal distribution on fixed data;
- error power: summed exactly over every outcome with scipy's fisher_exact and binomial pmf (brute force), and
  the normal approximation against statsmodels' power_proportions_2indep;
- Mann-Whitney power: against scipy.stats.power (scipy's own simulation of the same test);
- the whole latency rule (test and floors): against a simulation of what the analysis does.
"""

from __future__ import annotations

import math
import random

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _canary_stats as cs

np = pytest.importorskip("numpy")
scipy_stats = pytest.importorskip("scipy.stats")
sm_proportion = pytest.importorskip("statsmodels.stats.proportion")

TABLES = [(20, 100, 0, 300), (1, 100, 0, 100), (5, 1000, 3, 1000), (0, 50, 4, 200), (30, 150, 28, 140), (12, 5000, 30, 15000),
          (3, 10, 0, 10), (100, 100, 0, 100), (700, 3000, 40, 3000), (2, 60000, 0, 180000)]


@pytest.mark.parametrize("c_err, c_total, b_err, b_total", TABLES)
def test_fisher_matches_scipy(c_err, c_total, b_err, b_total):
    expected = scipy_stats.fisher_exact([[c_err, c_total - c_err], [b_err, b_total - b_err]], alternative="greater").pvalue
    assert cs.fisher_greater(c_err, c_total, b_err, b_total) == pytest.approx(expected, rel=1e-9, abs=1e-15)


def test_fisher_matches_scipy_on_random_tables():
    rng = random.Random(11)
    for _i in range(200):
        n1, n2 = rng.randint(1, 4000), rng.randint(1, 4000)
        a = rng.randint(0, min(n1, 300))
        b = rng.randint(0, min(n2, a + 60))
        expected = scipy_stats.fisher_exact([[a, n1 - a], [b, n2 - b]], alternative="greater").pvalue
        assert cs.fisher_greater(a, n1, b, n2) == pytest.approx(expected, rel=1e-8, abs=1e-300), (a, n1, b, n2)


@pytest.mark.parametrize("c_err, c_total, b_err, b_total", [t for t in TABLES if 0 < t[0] + t[2] < t[1] + t[3]])
def test_two_proportion_z_matches_the_normal_distribution(c_err, c_total, b_err, b_total):
    z, p_value = cs.two_proportion_z(c_err, c_total, b_err, b_total)
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
    u, p_value = cs.mann_whitney_greater(a, b)
    assert u == pytest.approx(expected.statistic)
    if expected.pvalue == expected.pvalue:  # scipy gives nan when every value ties
        assert p_value == pytest.approx(expected.pvalue, rel=1e-9, abs=1e-15)
    else:
        assert p_value == 1.0


# ----- error power -----------------------------------------------------------------------------------
def brute_force_error_power(test, n1, n2, pb, pc, alpha, tolerance, max_ratio=None):
    """Sum P(x) P(y) over every outcome the rule fails, the rule written out with scipy's tests."""
    power = 0.0
    for x in range(n1 + 1):
        px = scipy_stats.binom.pmf(x, n1, pc)
        if px < 1e-16:
            continue
        for y in range(n2 + 1):
            py = scipy_stats.binom.pmf(y, n2, pb)
            if py < 1e-16:
                continue
            c, b = x / n1, y / n2
            if max_ratio is not None and c > max_ratio:
                fails = True
            elif c - b < tolerance - 1e-12:
                fails = False
            elif test == "fisher":
                fails = scipy_stats.fisher_exact([[x, n1 - x], [y, n2 - y]], alternative="greater").pvalue < alpha
            else:
                pooled = (x + y) / (n1 + n2)
                variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
                p_value = (1.0 if c <= b else 0.0) if variance == 0 else scipy_stats.norm.sf((c - b) / math.sqrt(variance))
                fails = p_value < alpha
            if fails:
                power += px * py
    return power


@pytest.mark.parametrize("test, n1, n2, pb, pc, alpha, tolerance, max_ratio", [
    ("fisher", 60, 180, 0.0, 0.06, 0.05, 0.005, None),  # the issue's demo settings: about 71%
    ("fisher", 60, 180, 0.01, 0.06, 0.05, 0.0, None),
    ("fisher", 150, 450, 0.002, 0.02, 0.01, 0.005, None),
    ("ztest", 50, 150, 0.02, 0.08, 0.05, 0.01, None),
    ("fisher", 40, 40, 0.05, 0.2, 0.01, 0.0, 0.15),
    ("ztest", 80, 80, 0.1, 0.1, 0.05, 0.0, None),  # no rise: the false alarm rate, at most alpha
])
def test_error_power_is_exactly_the_rule_summed_over_every_outcome(test, n1, n2, pb, pc, alpha, tolerance, max_ratio):
    expected = brute_force_error_power(test, n1, n2, pb, pc, alpha, tolerance, max_ratio)
    got = cs.error_power(test, n1, n2, pb, pc, alpha=alpha, tolerance=tolerance, max_ratio=max_ratio)
    assert got == pytest.approx(expected, abs=1e-9)


def test_the_issue_demo_settings_catch_a_6_percent_release_71_percent_of_the_time():
    assert cs.error_power("fisher", 60, 180, 0.0, 0.06, alpha=0.05, tolerance=0.005) == pytest.approx(0.706, abs=0.001)


@pytest.mark.parametrize("n1, n2, pb, pc", [(300, 900, 0.01, 0.03), (5000, 15000, 0.001, 0.003), (1000, 1000, 0.05, 0.07),
                                            (20000, 60000, 0.002, 0.0032)])
def test_normal_power_of_the_z_test_matches_statsmodels(n1, n2, pb, pc):
    expected = sm_proportion.power_proportions_2indep(pc - pb, pb, n1, ratio=n2 / n1, alpha=0.05, alternative="larger", return_results=False)
    # above EXACT_LIMIT requests error_power switches to this approximation
    got = cs.error_power("ztest", n1, n2, pb, pc, alpha=0.05, tolerance=0.0, exact_limit=0)
    assert got == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("n1, n2, pb, pc", [(5000, 15000, 0.001, 0.003), (20000, 60000, 0.002, 0.0032)])
def test_normal_power_of_fisher_is_close_to_the_exact_sum_where_it_takes_over(n1, n2, pb, pc):
    exact = cs.error_power("fisher", n1, n2, pb, pc, alpha=0.05, tolerance=0.0, exact_limit=10 ** 6)
    assert cs.error_power("fisher", n1, n2, pb, pc, alpha=0.05, tolerance=0.0, exact_limit=0) == pytest.approx(exact, abs=0.01)


def test_error_mde_is_the_smallest_rise_caught_with_the_required_power():
    options = {"alpha": 0.05, "tolerance": 0.005}
    mde = cs.error_mde("fisher", 300, 900, 0.0, power=0.8, **options)
    assert cs.error_power("fisher", 300, 900, 0.0, mde, **options) >= 0.8
    assert cs.error_power("fisher", 300, 900, 0.0, mde * 0.97, **options) < 0.8
    # more traffic, smaller detectable rise; a stricter power, a larger one
    assert cs.error_mde("fisher", 3000, 9000, 0.0, power=0.8, **options) < mde < cs.error_mde("fisher", 300, 900, 0.0, power=0.95, **options)
    assert cs.error_mde("fisher", 1, 1, 0.0, power=0.8, **options) is None


# ----- latency power ---------------------------------------------------------------------------------
RNG = np.random.default_rng(5)
SHAPES = {
    "lognormal p50 20 ms": np.exp(RNG.normal(math.log(20), 0.67, 3000)),
    "haproxy Tr, whole ms": np.round(RNG.gamma(1.5, 1.2, 3000)),
    "normal 100 +- 15 ms": RNG.normal(100, 15, 3000),
    "haproxy Tr at 0-3 ms, mostly ties": RNG.choice([0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 2.0, 3.0], 3000),
}


@pytest.mark.parametrize("name, n1, n2, shift, tolerance", [
    ("lognormal p50 20 ms", 40, 120, 8.0, 0.04), ("lognormal p50 20 ms", 15, 45, 10.0, 0.04), ("haproxy Tr, whole ms", 30, 90, 1.0, 0.04),
    ("haproxy Tr, whole ms", 60, 180, 0.5, 0.04), ("normal 100 +- 15 ms", 25, 25, 10.0, 0.04), ("normal 100 +- 15 ms", 25, 75, 0.0, 0.04),
    # with most values tied, the tie-corrected null variance matters: the false alarm rate is alpha, not 0.038
    ("haproxy Tr at 0-3 ms, mostly ties", 100, 300, 0.0, 0.007), ("haproxy Tr at 0-3 ms, mostly ties", 15, 45, 0.5, 0.025),
])
def test_mann_whitney_power_matches_scipy_power(name, n1, n2, shift, tolerance):
    base = SHAPES[name]
    rng = np.random.default_rng(7)

    def test(canary, baseline, axis=-1):
        return scipy_stats.mannwhitneyu(canary, baseline, alternative="greater", method="asymptotic", axis=axis).pvalue

    simulated = scipy_stats.power(test, (lambda size: rng.choice(base, size) + shift, lambda size: rng.choice(base, size)),
                                  (n1, n2), significance=0.05, n_resamples=10000).power
    got = cs.mann_whitney_power(cs.LatencyShape(list(base)), n1, n2, shift, alpha=0.05)
    # the simulation's own error is at most 0.005 (one sd); the approximation adds a little
    assert got == pytest.approx(float(simulated), abs=tolerance)


def simulate_latency_rule(base, n1, n2, shift, tolerance, min_increase_ms, runs=2000):
    rng = np.random.default_rng(9)
    canary = rng.choice(base, (runs, n1)) + shift
    baseline = rng.choice(base, (runs, n2))
    p_values = scipy_stats.mannwhitneyu(canary, baseline, alternative="greater", method="asymptotic", axis=1).pvalue
    c_med, b_med = np.median(canary, axis=1), np.median(baseline, axis=1)
    floors = np.maximum(min_increase_ms, tolerance * b_med)
    return float(np.mean((p_values < 0.05) & (c_med - b_med >= floors - 1e-9)))


@pytest.mark.parametrize("name, n1, n2, shift, tolerance, floor", [
    ("lognormal p50 20 ms", 40, 120, 12.0, 0.2, 10.0), ("lognormal p50 20 ms", 100, 300, 11.0, 0.2, 10.0),
    ("normal 100 +- 15 ms", 50, 150, 25.0, 0.2, 10.0),
])
def test_latency_rule_power_matches_a_simulation_of_the_rule(name, n1, n2, shift, tolerance, floor):
    base = SHAPES[name]
    got = cs.latency_power(cs.LatencyShape(list(base)), n1, n2, shift, alpha=0.05, tolerance=tolerance, min_increase_ms=floor)
    assert got == pytest.approx(simulate_latency_rule(base, n1, n2, shift, tolerance, floor), abs=0.06)


@pytest.mark.parametrize("shift", [9.0, 10.0, 11.0, 14.0])
def test_latency_rule_power_errs_low_on_whole_millisecond_data(shift):
    """With HAProxy's whole-ms timers, medians move in steps: the normal approximation may only understate power."""
    base = SHAPES["haproxy Tr, whole ms"]
    got = cs.latency_power(cs.LatencyShape(list(base)), 30, 90, shift, alpha=0.05, tolerance=0.2, min_increase_ms=10.0)
    simulated = simulate_latency_rule(base, 30, 90, shift, 0.2, 10.0)
    assert simulated - 0.25 <= got <= simulated + 0.03


def test_latency_mde_is_the_smallest_shift_caught_with_the_required_power():
    shape = cs.LatencyShape(list(SHAPES["lognormal p50 20 ms"]))
    options = {"alpha": 0.05, "tolerance": 0.2, "min_increase_ms": 0.0}
    mde = cs.latency_mde(shape, 40, 120, power=0.8, **options)
    assert cs.latency_power(shape, 40, 120, mde, **options) >= 0.8 > cs.latency_power(shape, 40, 120, mde * 0.95, **options)
    # the floor bounds it from below, however much data
    assert cs.latency_mde(shape, 4000, 12000, power=0.8, alpha=0.05, tolerance=0.2, min_increase_ms=10.0) >= 10.0
    assert cs.latency_mde(shape, 1, 1, power=0.8, **options) is None


def test_big_samples_are_reduced_to_their_shape():
    values = [float(v) for v in range(100000)]
    shape = cs.LatencyShape(values)
    assert shape.n == 2000 and shape.values[0] == 0 and shape.values[-1] == 99999 and abs(shape.median - 49999.5) < 50


@pytest.mark.parametrize("p50, p90", [(2, 5), (20, 60), (100, 101), (7, 7)])
def test_lognormal_latencies_are_scipys_quantiles(p50, p90):
    sigma = (math.log(p90) - math.log(p50)) / scipy_stats.norm.ppf(0.9)
    expected = scipy_stats.lognorm.ppf((np.arange(400) + 0.5) / 400, s=sigma, scale=p50) if sigma else np.full(400, float(p50))
    assert cs.lognormal_latencies(p50, p90) == pytest.approx(list(expected), rel=1e-9)
    assert cs.lognormal_latencies(p50, p90, whole_ms=True) == [float(round(v)) for v in expected], "HAProxy logs whole ms"
    shape = cs.LatencyShape(cs.lognormal_latencies(p50, p90))
    assert shape.median == pytest.approx(p50, rel=0.01) and shape.quantile(0.9) == pytest.approx(p90, rel=0.01)
