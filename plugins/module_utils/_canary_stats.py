# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: the tests canary analysis uses, and their power.

Tests, all one-sided (is the canary worse?):
- error ratio: Fisher's exact test, or the pooled two-proportion z-test;
- latency: Mann-Whitney U (normal approximation with tie and continuity correction).

Power is computed for the whole decision rule the analysis applies (the test at ``alpha`` AND the tolerance,
AND for latency the absolute floor), so "caught with 80% probability" means the verdict would be ``fail``:
- errors: exactly, by summing the binomial probabilities of every (canary errors, baseline errors) outcome the
  rule fails, for up to EXACT_LIMIT requests; above that with the normal approximation of the same test;
- latency: for a shift of the baseline's own latency distribution (the canary is the baseline plus ``shift``
  ms), from the mean and variance of U under that alternative (Lehmann's formulas, estimated from the
  baseline sample), times the probability that the observed median rise clears the floors.
The unit tests check the tests against scipy and the power against scipy, statsmodels and simulation.
Stdlib only: this runs on the load balancer.
"""

from __future__ import annotations

import bisect
import math
import statistics
import typing as t

NORMAL = statistics.NormalDist()
EXACT_LIMIT = 20000  # total requests up to which error power is summed exactly
_MASS = 1e-12  # binomial outcomes less likely than this are left out of exact sums
_SHAPE_POINTS = 2000  # a latency sample larger than this is reduced to this many quantiles for power
_EPS = 1e-9


# ----- tests -----------------------------------------------------------------------------------------
def _log_comb(n: int, k: int) -> float:
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)


def fisher_greater(canary_errors: int, canary_total: int, baseline_errors: int, baseline_total: int) -> float:
    """One-sided Fisher exact p-value that the canary's error proportion is greater than the baseline's.

    The 2x2 table [[canary_errors, canary_ok], [baseline_errors, baseline_ok]]: P(X >= canary_errors) for X
    hypergeometric with the margins fixed (as scipy.stats.fisher_exact(alternative='greater')).
    """
    errors = canary_errors + baseline_errors
    total = canary_total + baseline_total
    if total == 0 or errors == 0:
        return 1.0
    low = max(0, errors - baseline_total)
    high = min(errors, canary_total)
    start = max(canary_errors, low)
    if start > high:
        return 0.0
    denominator = _log_comb(total, errors)
    logs = []
    for x in range(start, high + 1):
        value = _log_comb(canary_total, x) + _log_comb(baseline_total, errors - x) - denominator
        logs.append(value)
        # past the mode the terms only shrink: stop once they no longer change the sum
        if len(logs) > 1 and value < logs[-2] and value < max(logs) - 40:
            break
    peak = max(logs)
    return min(1.0, math.exp(peak) * sum(math.exp(v - peak) for v in logs))


def normal_sf(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def two_proportion_z(canary_errors: int, canary_total: int, baseline_errors: int, baseline_total: int) -> tuple[float, float]:
    """Pooled two-proportion z statistic and its one-sided p-value (canary greater)."""
    if canary_total == 0 or baseline_total == 0:
        return 0.0, 1.0
    p1, p2 = canary_errors / canary_total, baseline_errors / baseline_total
    pooled = (canary_errors + baseline_errors) / (canary_total + baseline_total)
    variance = pooled * (1 - pooled) * (1 / canary_total + 1 / baseline_total)
    if variance == 0:
        return 0.0, 1.0 if p1 <= p2 else 0.0
    z = (p1 - p2) / math.sqrt(variance)
    return z, normal_sf(z)


def error_p_value(test: str, canary_errors: int, canary_total: int, baseline_errors: int, baseline_total: int) -> float:
    if test == "fisher":
        return fisher_greater(canary_errors, canary_total, baseline_errors, baseline_total)
    return two_proportion_z(canary_errors, canary_total, baseline_errors, baseline_total)[1]


def _ranks(values: list[float]) -> tuple[list[float], list[int]]:
    """Average ranks (1-based) and the sizes of tied groups."""
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    ties = []
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        average = (i + j) / 2.0 + 1.0
        for k in range(i, j + 1):
            ranks[order[k]] = average
        ties.append(j - i + 1)
        i = j + 1
    return ranks, ties


def _null_sigma(n1: int, n2: int, tie_term: float) -> float:
    n = n1 + n2
    if n < 2:
        return 0.0
    return math.sqrt(max(0.0, n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)))))


def mann_whitney_greater(canary: list[float], baseline: list[float]) -> tuple[float, float]:
    """U statistic of the canary sample and the one-sided p-value that canary values tend to be larger.

    Normal approximation with tie and continuity correction, as
    scipy.stats.mannwhitneyu(canary, baseline, alternative='greater', method='asymptotic').
    """
    n1, n2 = len(canary), len(baseline)
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    ranks, ties = _ranks(list(canary) + list(baseline))
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2.0
    sigma = _null_sigma(n1, n2, sum(size ** 3 - size for size in ties))
    if sigma == 0:
        return u1, 1.0
    z = (u1 - n1 * n2 / 2.0 - 0.5) / sigma
    return u1, normal_sf(z)


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (pct in 0..100); None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100.0 * len(ordered))) - 1]


# ----- decision rules (shared by the judgement and the power) ---------------------------------------
def errors_fail(test: str, canary_errors: int, canary_total: int, baseline_errors: int, baseline_total: int, *,
                alpha: float, tolerance: float, max_ratio: float | None) -> bool:
    """The error rule: above max_ratio, or a significant rise at least as large as the tolerance."""
    canary_ratio = canary_errors / canary_total
    if max_ratio is not None and canary_ratio > max_ratio:
        return True
    if canary_ratio - baseline_errors / baseline_total < tolerance - _EPS:
        return False
    return error_p_value(test, canary_errors, canary_total, baseline_errors, baseline_total) < alpha


def latency_floor(baseline_median: float, tolerance: float, min_increase_ms: float) -> float:
    """How much higher the canary's median must be (ms) before a significant difference fails it."""
    return max(min_increase_ms, tolerance * max(baseline_median, 0.0))


# ----- power of the error rule -----------------------------------------------------------------------
def _binom_log_pmf(k: int, n: int, p: float) -> float:
    if p <= 0.0:
        return 0.0 if k == 0 else -math.inf
    if p >= 1.0:
        return 0.0 if k == n else -math.inf
    return _log_comb(n, k) + k * math.log(p) + (n - k) * math.log1p(-p)


def _binom_support(n: int, p: float) -> range:
    """The outcomes of Binomial(n, p) that carry all but a negligible share of the probability."""
    if p <= 0.0:
        return range(0, 1)
    if p >= 1.0:
        return range(n, n + 1)
    mean, sd = n * p, math.sqrt(n * p * (1 - p))
    return range(max(0, int(mean - 9 * sd - 2)), min(n, int(mean + 9 * sd + 2)) + 1)


def _binom_sf(k: int, n: int, p: float) -> float:
    """P(X >= k) for X ~ Binomial(n, p), summed over the support."""
    support = _binom_support(n, p)
    if k <= support.start:
        return 1.0
    return min(1.0, sum(math.exp(_binom_log_pmf(x, n, p)) for x in range(k, support.stop)))


def error_power(test: str, canary_total: int, baseline_total: int, baseline_ratio: float, canary_ratio: float, *,
                alpha: float, tolerance: float, max_ratio: float | None = None, exact_limit: int = EXACT_LIMIT) -> float:
    """Probability that the error rule fails a canary whose true error ratio is canary_ratio (baseline: baseline_ratio)."""
    if canary_total <= 0 or baseline_total <= 0:
        return 0.0
    if canary_total + baseline_total > exact_limit:
        return _error_power_normal(test, canary_total, baseline_total, baseline_ratio, canary_ratio, alpha=alpha,
                                   tolerance=tolerance, max_ratio=max_ratio)
    power = 0.0
    critical = 0
    # The rule is monotone: for a fixed baseline count, more canary errors never turn a fail into a pass, and
    # the least failing canary count never drops as baseline errors grow. Walk both upwards once.
    for y in _binom_support(baseline_total, baseline_ratio):
        weight = math.exp(_binom_log_pmf(y, baseline_total, baseline_ratio))
        while critical <= canary_total and not errors_fail(test, critical, canary_total, y, baseline_total, alpha=alpha,
                                                           tolerance=tolerance, max_ratio=max_ratio):
            critical += 1
        if critical > canary_total:
            break
        if weight > _MASS:
            power += weight * _binom_sf(critical, canary_total, canary_ratio)
    return min(1.0, power)


def _error_power_normal(test: str, canary_total: int, baseline_total: int, baseline_ratio: float, canary_ratio: float, *,
                        alpha: float, tolerance: float, max_ratio: float | None) -> float:
    """Normal approximation of the rule's power: the pooled z-test (Fisher: with a continuity correction)."""
    n1, n2, p1, p2 = canary_total, baseline_total, canary_ratio, baseline_ratio
    pooled = (n1 * p1 + n2 * p2) / (n1 + n2)
    sd_null = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    sd_alt = math.sqrt(p1 * (1 - p1) / n1 + p2 * (1 - p2) / n2)
    threshold = NORMAL.inv_cdf(1 - alpha) * sd_null + (0.5 * (1 / n1 + 1 / n2) if test == "fisher" else 0.0)
    threshold = max(threshold, tolerance)
    diff = p1 - p2
    if sd_alt == 0:
        power = 1.0 if diff >= threshold and diff > 0 else 0.0
    else:
        power = NORMAL.cdf((diff - threshold) / sd_alt)
    if max_ratio is not None:
        sd1 = math.sqrt(p1 * (1 - p1) / n1)
        above = (1.0 if p1 > max_ratio else 0.0) if sd1 == 0 else 1 - NORMAL.cdf((max_ratio + 1 / n1 - p1) / sd1)
        power = max(power, above)
    return power


def error_mde(test: str, canary_total: int, baseline_total: int, baseline_ratio: float, *, alpha: float, tolerance: float,
              power: float, max_ratio: float | None = None) -> float | None:
    """The smallest rise of the error ratio (absolute) the rule catches with probability `power`; None if none can be."""
    top = 1.0 - baseline_ratio

    def caught(rise: float) -> bool:
        return error_power(test, canary_total, baseline_total, baseline_ratio, baseline_ratio + rise, alpha=alpha,
                           tolerance=tolerance, max_ratio=max_ratio) >= power

    if top <= 0 or not caught(top):
        return None
    return _smallest(caught, 0.0, top, resolution=1e-4)


def _smallest(caught: t.Callable[[float], bool], low: float, high: float, resolution: float) -> float:
    """The smallest effect in (low, high] that `caught` accepts (high does), to resolution or 0.5%."""
    while high - low > max(resolution, high * 0.005):
        middle = (low + high) / 2
        if caught(middle):
            high = middle
        else:
            low = middle
    return high


# ----- power of the latency rule ---------------------------------------------------------------------
class LatencyShape:
    """A baseline latency distribution (from a sample), for the power of detecting a shift of it."""

    def __init__(self, sample: list[float]) -> None:
        if not sample:
            raise ValueError("a latency shape needs samples")
        ordered = sorted(sample)
        if len(ordered) > _SHAPE_POINTS:
            # evenly spaced order statistics keep the distribution (ties included) at a bounded cost
            step = (len(ordered) - 1) / (_SHAPE_POINTS - 1)
            ordered = [ordered[round(i * step)] for i in range(_SHAPE_POINTS)]
        self.values = ordered
        self.n = len(ordered)
        self.median = statistics.median(ordered)
        counts: dict[float, int] = {}
        for value in ordered:
            counts[value] = counts.get(value, 0) + 1
        self.frequencies = {v: c / self.n for v, c in counts.items()}

    def below_equal(self, value: float) -> tuple[float, float]:
        """P(B < value) and P(B = value)."""
        below = bisect.bisect_left(self.values, value)
        equal = bisect.bisect_right(self.values, value) - below
        return below / self.n, equal / self.n

    def mid_cdf(self, value: float) -> float:
        """P(B < value) + P(B = value) / 2."""
        below, equal = self.below_equal(value)
        return below + equal / 2.0

    def quantile(self, q: float) -> float:
        position = min(max(q, 0.0), 1.0) * (self.n - 1)
        low = int(math.floor(position))
        high = min(low + 1, self.n - 1)
        return self.values[low] + (self.values[high] - self.values[low]) * (position - low)

    def median_se(self, n: int) -> float:
        """Standard error of the median of n draws, from the distribution-free order-statistic interval."""
        half = 0.5 / math.sqrt(max(n, 1))
        return (self.quantile(0.5 + half) - self.quantile(0.5 - half)) / 2.0


def lognormal_latencies(p50_ms: float, p90_ms: float, *, points: int = 400, whole_ms: bool = False) -> list[float]:
    """Evenly spaced quantiles of the log-normal latency distribution with this median and 90th percentile.

    For stating power before any latency was measured: a user knows their service's p50 and p90. With whole_ms the
    values are rounded as HAProxy's timers are, so the ties the test will meet are in the shape too.
    """
    if not 0 < p50_ms <= p90_ms:
        raise ValueError(f"need 0 < p50 <= p90, got p50 {p50_ms} and p90 {p90_ms}")
    sigma = (math.log(p90_ms) - math.log(p50_ms)) / NORMAL.inv_cdf(0.9)
    values = [math.exp(math.log(p50_ms) + sigma * NORMAL.inv_cdf((i + 0.5) / points)) for i in range(points)]
    return [float(round(v)) for v in values] if whole_ms else values


def mann_whitney_power(shape: LatencyShape, canary_samples: int, baseline_samples: int, shift_ms: float, *, alpha: float) -> float:
    """Probability that the one-sided Mann-Whitney test is significant for a canary that is the baseline shifted by shift_ms."""
    n1, n2 = canary_samples, baseline_samples
    if n1 <= 0 or n2 <= 0:
        return 0.0
    values = shape.values
    # U counts pairs: 1 when the canary request X = B + shift is slower than a baseline one Y = B, 1/2 on a tie.
    # Its mean and variance under this alternative (Lehmann), with the probabilities taken from the baseline.
    above = [shape.below_equal(b + shift_ms) for b in values]
    p1 = statistics.fmean(lt + eq / 2.0 for lt, eq in above)
    square = statistics.fmean(lt + eq / 4.0 for lt, eq in above)
    p2 = statistics.fmean((lt + eq / 2.0) ** 2 for lt, eq in above)
    p3 = statistics.fmean((1.0 - shape.mid_cdf(b - shift_ms)) ** 2 for b in values)
    mean_u = n1 * n2 * p1
    var_u = n1 * n2 * (square - p1 * p1 + (n2 - 1) * (p2 - p1 * p1) + (n1 - 1) * (p3 - p1 * p1))
    # Ties in the pooled sample shrink the null variance the test uses: the expected tie term, each value's
    # count being the sum of two binomials (canary and baseline requests landing on it).
    pooled: dict[float, list[float]] = {}
    for value, freq in shape.frequencies.items():
        pooled.setdefault(value, [0.0, 0.0])[0] += freq
        pooled.setdefault(value + shift_ms, [0.0, 0.0])[1] += freq
    tie_term = sum(_cube_moment(n2, q2) + _cube_moment(n1, q1) + 3 * _square_moment(n2, q2) * n1 * q1
                   + 3 * n2 * q2 * _square_moment(n1, q1) - n2 * q2 - n1 * q1 for q2, q1 in pooled.values())
    sigma0 = _null_sigma(n1, n2, tie_term)
    if sigma0 == 0:
        return 0.0
    critical = n1 * n2 / 2.0 + 0.5 + NORMAL.inv_cdf(1 - alpha) * sigma0
    if var_u <= 1e-12:
        return 1.0 if mean_u > critical else 0.0
    return NORMAL.cdf((mean_u - critical) / math.sqrt(var_u))


def latency_power(shape: LatencyShape, canary_samples: int, baseline_samples: int, shift_ms: float, *, alpha: float,
                  tolerance: float, min_increase_ms: float) -> float:
    """Probability that the latency rule fails a canary that is the baseline shifted by shift_ms.

    The test must be significant and the observed median rise must reach the floor; the second is taken from a
    normal approximation of the two sample medians (their spread from the baseline's order statistics), and the
    two are multiplied as if independent - they are positively related, so this errs on the low side.
    """
    significant = mann_whitney_power(shape, canary_samples, baseline_samples, shift_ms, alpha=alpha)
    floor = latency_floor(shape.median, tolerance, min_increase_ms)
    se = math.hypot(shape.median_se(canary_samples), shape.median_se(baseline_samples))
    if se <= 1e-12:
        clears = 1.0 if shift_ms >= floor - _EPS else 0.0
    else:
        clears = NORMAL.cdf((shift_ms - floor) / se)
    return max(0.0, min(1.0, significant * clears))


def _square_moment(n: int, p: float) -> float:
    """E[C^2] for C ~ Binomial(n, p)."""
    return n * p * (1 - p) + (n * p) ** 2


def _cube_moment(n: int, p: float) -> float:
    """E[C^3] for C ~ Binomial(n, p)."""
    return n * p + 3 * n * (n - 1) * p ** 2 + n * (n - 1) * (n - 2) * p ** 3


def latency_mde(shape: LatencyShape, canary_samples: int, baseline_samples: int, *, alpha: float, tolerance: float,
                min_increase_ms: float, power: float) -> float | None:
    """The smallest shift (ms) of the median the rule catches with probability `power`; None if none can be."""
    def caught(shift: float) -> bool:
        return latency_power(shape, canary_samples, baseline_samples, shift, alpha=alpha, tolerance=tolerance,
                             min_increase_ms=min_increase_ms) >= power

    spread = max(shape.values[-1] - shape.values[0], 1.0)
    high = max(latency_floor(shape.median, tolerance, min_increase_ms), 1.0)
    while not caught(high):
        high *= 2
        if high > 1000 * spread + 1e6:
            return None
    return _smallest(caught, 0.0, high, resolution=0.05)
