# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: canary versus baseline judgement with statistics an SRE can trust.

Error rates: Fisher's exact test (one-sided: is the canary's error rate higher?), or a pooled
two-proportion z-test. Latency: Mann-Whitney U (one-sided, normal approximation with tie and continuity
correction). Too little data gives `inconclusive`, never `pass`. Stdlib only; the unit tests check every
statistic against scipy on fixed data.
"""

from __future__ import annotations

import math
import statistics
import time
import typing as t
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError
from ansible_collections.sre.ops.plugins.module_utils._haproxy import RuntimeAPI, collect_info
from ansible_collections.sre.ops.plugins.module_utils._health import Attempt, http_attempt, prepare_probes

PASS, FAIL, INCONCLUSIVE = "pass", "fail", "inconclusive"


# ----- statistics ------------------------------------------------------------------------------------
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
    denominator = _log_comb(total, errors)
    logs = [_log_comb(canary_total, x) + _log_comb(baseline_total, errors - x) - denominator for x in range(max(canary_errors, low), high + 1)]
    if not logs:
        return 0.0
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


def mann_whitney_greater(canary: list[float], baseline: list[float]) -> tuple[float, float]:
    """U statistic of the canary sample and the one-sided p-value that canary values tend to be larger.

    Normal approximation with tie correction and continuity correction, as
    scipy.stats.mannwhitneyu(canary, baseline, alternative='greater', method='asymptotic').
    """
    n1, n2 = len(canary), len(baseline)
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    ranks, ties = _ranks(list(canary) + list(baseline))
    u1 = sum(ranks[:n1]) - n1 * (n1 + 1) / 2.0
    n = n1 + n2
    tie_term = sum(size ** 3 - size for size in ties)
    sigma = math.sqrt(n1 * n2 / 12.0 * ((n + 1) - tie_term / (n * (n - 1)))) if n > 1 else 0.0
    if sigma == 0:
        return u1, 1.0
    z = (u1 - n1 * n2 / 2.0 - 0.5) / sigma
    return u1, normal_sf(z)


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100.0 * len(ordered))) - 1]


# ----- judgement ------------------------------------------------------------------------------------
def judge_errors(canary: dict[str, int], baseline: dict[str, int], *, alpha: float, min_requests: int,
                 tolerance: float, max_ratio: float | None, test: str) -> dict[str, t.Any]:
    c_total, c_err = canary["requests"], canary["errors"]
    b_total, b_err = baseline["requests"], baseline["errors"]
    c_ratio = c_err / c_total if c_total else None
    b_ratio = b_err / b_total if b_total else None
    result: dict[str, t.Any] = {
        "metric": "error_ratio",
        "canary": {"requests": c_total, "errors": c_err, "ratio": c_ratio},
        "baseline": {"requests": b_total, "errors": b_err, "ratio": b_ratio},
        "test": test,
        "alpha": alpha,
    }
    if c_total < min_requests or b_total < min_requests:
        result.update(verdict=INCONCLUSIVE, p_value=None,
                      reason=f"too few requests to judge errors: canary {c_total}, baseline {b_total}, need {min_requests} each")
        return result
    if test == "fisher":
        p_value = fisher_greater(c_err, c_total, b_err, b_total)
    else:
        z, p_value = two_proportion_z(c_err, c_total, b_err, b_total)
        result["z"] = z
    result["p_value"] = p_value
    c_ratio, b_ratio = c_err / c_total, b_err / b_total
    if max_ratio is not None and c_ratio > max_ratio:
        result.update(verdict=FAIL, reason=f"canary error ratio {c_ratio:.2%} is above the maximum {max_ratio:.2%}")
    elif p_value < alpha and c_ratio - b_ratio > tolerance:
        result.update(verdict=FAIL, reason=(f"canary error ratio {c_ratio:.2%} is higher than baseline {b_ratio:.2%} "
                                            f"({c_err}/{c_total} vs {b_err}/{b_total}, {test} p={p_value:.2g} < {alpha})"))
    else:
        result.update(verdict=PASS, reason=f"canary error ratio {c_ratio:.2%} vs baseline {b_ratio:.2%} (p={p_value:.2g})")
    return result


def judge_latency(canary: list[float], baseline: list[float], *, alpha: float, min_samples: int, tolerance: float,
                  source: str, min_increase_ms: float = 10.0) -> dict[str, t.Any]:
    def describe(values: list[float]) -> dict[str, t.Any]:
        return {"samples": len(values), "p50_ms": _round(percentile(values, 50)), "p95_ms": _round(percentile(values, 95)),
                "mean_ms": _round(statistics.fmean(values)) if values else None}

    result: dict[str, t.Any] = {"metric": "latency", "source": source, "canary": describe(canary), "baseline": describe(baseline),
                                "test": "mann-whitney-u", "alpha": alpha}
    if len(canary) < min_samples or len(baseline) < min_samples:
        result.update(verdict=INCONCLUSIVE, p_value=None,
                      reason=f"too few latency samples to judge: canary {len(canary)}, baseline {len(baseline)}, need {min_samples} each")
        return result
    u, p_value = mann_whitney_greater(canary, baseline)
    c_med, b_med = statistics.median(canary), statistics.median(baseline)
    increase = (c_med - b_med) / b_med if b_med > 0 else (math.inf if c_med > 0 else 0.0)
    result.update(u=u, p_value=p_value, median_increase=None if math.isinf(increase) else round(increase, 4))
    # Both a relative and an absolute floor: 1 ms against 0 ms is "infinitely" slower and means nothing.
    if p_value < alpha and increase > tolerance and c_med - b_med > min_increase_ms:
        result.update(verdict=FAIL, reason=(f"canary latency is higher: median {c_med:.1f} ms vs baseline {b_med:.1f} ms "
                                            f"(+{increase:.0%}, Mann-Whitney p={p_value:.2g} < {alpha})"))
    else:
        result.update(verdict=PASS, reason=f"canary median latency {c_med:.1f} ms vs baseline {b_med:.1f} ms (p={p_value:.2g})")
    return result


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def overall(metrics: list[dict[str, t.Any]]) -> tuple[str, list[str]]:
    """fail if any metric fails; inconclusive if any is inconclusive; pass only when every metric passes."""
    if not metrics:
        return INCONCLUSIVE, ["no metric was measured"]
    verdicts = [m["verdict"] for m in metrics]
    reasons = [f"{m['metric']}: {m['reason']}" for m in metrics]
    if FAIL in verdicts:
        return FAIL, [r for m, r in zip(metrics, reasons) if m["verdict"] == FAIL] + [r for m, r in zip(metrics, reasons) if m["verdict"] != FAIL]
    if INCONCLUSIVE in verdicts:
        return INCONCLUSIVE, reasons
    return PASS, reasons


# ----- measurement ----------------------------------------------------------------------------------
def _counts(servers: dict[str, dict[str, t.Any]], names: list[str]) -> dict[str, int]:
    requests = errors = 0
    for name in names:
        responses = servers[name]["responses"]
        requests += sum(responses.values())
        errors += responses["5xx"]
    return {"requests": requests, "errors": errors}


def _delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    # Counters reset when HAProxy reloads: a negative delta means a reset, count from zero.
    return {k: after[k] - before[k] if after[k] >= before[k] else after[k] for k in after}


class CanaryAnalysis:
    """Observe canary and baseline for a window, then judge."""

    def __init__(
        self,
        *,
        api: RuntimeAPI | None,
        backend: str | None,
        canary: list[str],
        baseline: list[str] | None,
        canary_urls: list[str],
        baseline_urls: list[str],
        window: float,
        interval: float,
        probe_rate: float,
        probe_timeout: float,
        alpha: float,
        min_requests: int,
        min_samples: int,
        error_tolerance: float,
        max_error_ratio: float | None,
        latency_tolerance: float,
        error_test: str,
        latency_min_increase_ms: float = 10.0,
        sleep: t.Callable[[float], t.Any] = time.sleep,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        if api is None and not (canary_urls and baseline_urls):
            raise InvalidInputError("give socket and backend (HAProxy stats) and/or canary_urls and baseline_urls (active probes)")
        if api is not None and not backend:
            raise InvalidInputError("backend is required with socket")
        if bool(canary_urls) != bool(baseline_urls):
            raise InvalidInputError("canary_urls and baseline_urls go together")
        for name, value in (("window", window), ("interval", interval), ("alpha", alpha)):
            if value <= 0:
                raise InvalidInputError(f"{name} must be positive, got {value}")
        if alpha >= 1:
            raise InvalidInputError(f"alpha must be below 1, got {alpha}")
        for url in canary_urls + baseline_urls:
            if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                raise InvalidInputError(f"{url!r} is not an http(s) URL")
        self.api, self.backend = api, backend
        self.canary, self.baseline = canary, baseline
        self.canary_urls, self.baseline_urls = canary_urls, baseline_urls
        self.window, self.interval = window, interval
        self.probe_rate, self.probe_timeout = probe_rate, probe_timeout
        self.alpha, self.min_requests, self.min_samples = alpha, min_requests, min_samples
        self.error_tolerance, self.max_error_ratio = error_tolerance, max_error_ratio
        self.latency_tolerance, self.error_test = latency_tolerance, error_test
        self.latency_min_increase_ms = latency_min_increase_ms
        self.sleep, self.clock = sleep, clock

    def _groups(self) -> tuple[dict[str, t.Any], list[str], list[str]]:
        servers = collect_info(t.cast(RuntimeAPI, self.api), [t.cast(str, self.backend)])["backends"][self.backend]["servers"]
        unknown = [s for s in self.canary + (self.baseline or []) if s not in servers]
        if unknown:
            raise InvalidInputError(f"backend {self.backend} has no server {', '.join(unknown)} (it has {', '.join(sorted(servers))})")
        baseline = self.baseline or [n for n, s in servers.items() if n not in self.canary and s["serving"]]
        if not baseline:
            raise InvalidInputError(f"backend {self.backend} has no serving server outside the canary to compare with")
        return servers, self.canary, baseline

    def _probe(self, urls: list[str], deadline: float) -> tuple[list[float], int, int]:
        """Steady requests to urls until deadline: latencies (ms) of answered requests, total, errors (5xx or no answer)."""
        probes = prepare_probes([{"name": f"u{i}", "type": "http", "url": u, "status_codes": ["1xx", "2xx", "3xx", "4xx"]}
                                 for i, u in enumerate(urls)],
                                {"timeout": self.probe_timeout, "interval": 1.0, "success_threshold": 1, "failure_threshold": 1})
        period = 1.0 / self.probe_rate
        attempts: list[Attempt] = []
        with ThreadPoolExecutor(max_workers=16) as pool:
            futures = []
            i = 0
            start = self.clock()
            while self.clock() < deadline:
                futures.append(pool.submit(http_attempt, probes[i % len(probes)]))
                i += 1
                due = start + i * period
                pause = due - self.clock()
                if pause > 0:
                    self.sleep(min(pause, max(0.0, deadline - self.clock())))
            attempts = [f.result() for f in futures]
        latencies = [a.latency * 1000.0 for a in attempts if a.status is not None]
        errors = sum(1 for a in attempts if not a.ok)
        return latencies, len(attempts), errors

    def run(self) -> dict[str, t.Any]:
        started = self.clock()
        deadline = started + self.window
        metrics: list[dict[str, t.Any]] = []
        measurements: dict[str, t.Any] = {"window_s": self.window}
        rtime: dict[str, list[float]] = {"canary": [], "baseline": []}
        canary_names: list[str] = []
        baseline_names: list[str] = []
        if self.api is not None:
            servers, canary_names, baseline_names = self._groups()
            first = {"canary": _counts(servers, canary_names), "baseline": _counts(servers, baseline_names)}
        probe_results: dict[str, t.Any] = {}
        if self.canary_urls:
            with ThreadPoolExecutor(max_workers=2) as pool:
                c_future = pool.submit(self._probe, self.canary_urls, deadline)
                b_future = pool.submit(self._probe, self.baseline_urls, deadline)
                self._sample_stats(deadline, canary_names, baseline_names, rtime)
                probe_results = {"canary": c_future.result(), "baseline": b_future.result()}
        else:
            self._sample_stats(deadline, canary_names, baseline_names, rtime)
        if self.api is not None:
            servers = collect_info(self.api, [t.cast(str, self.backend)])["backends"][self.backend]["servers"]
            last = {"canary": _counts(servers, canary_names), "baseline": _counts(servers, baseline_names)}
            counts = {g: _delta(last[g], first[g]) for g in first}
            measurements["haproxy"] = {"canary_servers": canary_names, "baseline_servers": baseline_names, **counts,
                                       "response_time_samples_ms": rtime}
            metrics.append(judge_errors(counts["canary"], counts["baseline"], alpha=self.alpha, min_requests=self.min_requests,
                                        tolerance=self.error_tolerance, max_ratio=self.max_error_ratio, test=self.error_test))
        if probe_results:
            (c_lat, c_total, c_err), (b_lat, b_total, b_err) = probe_results["canary"], probe_results["baseline"]
            measurements["probes"] = {"canary": {"requests": c_total, "errors": c_err}, "baseline": {"requests": b_total, "errors": b_err}}
            if self.api is None:
                error_metric = judge_errors({"requests": c_total, "errors": c_err}, {"requests": b_total, "errors": b_err}, alpha=self.alpha,
                                            min_requests=self.min_requests, tolerance=self.error_tolerance, max_ratio=self.max_error_ratio,
                                            test=self.error_test)
                metrics.append(error_metric)
            metrics.append(judge_latency(c_lat, b_lat, alpha=self.alpha, min_samples=self.min_samples,
                                         tolerance=self.latency_tolerance, source="probes", min_increase_ms=self.latency_min_increase_ms))
        elif self.api is not None:
            metrics.append(judge_latency(rtime["canary"], rtime["baseline"], alpha=self.alpha, min_samples=self.min_samples,
                                         tolerance=self.latency_tolerance, source="haproxy response time (averages per interval)",
                                         min_increase_ms=self.latency_min_increase_ms))
        verdict, reasons = overall(metrics)
        return {
            "verdict": verdict,
            "passed": verdict == PASS,
            "reasons": reasons,
            "metrics": metrics,
            "measurements": measurements,
            "elapsed_s": round(self.clock() - started, 3),
        }

    def _sample_stats(self, deadline: float, canary: list[str], baseline: list[str], rtime: dict[str, list[float]]) -> None:
        """Wait out the window; with HAProxy, sample each server's response time every interval."""
        while True:
            remaining = deadline - self.clock()
            if remaining <= 0:
                return
            self.sleep(min(self.interval, remaining))
            if self.api is not None:
                servers = collect_info(self.api, [self.backend])["backends"][self.backend]["servers"]
                for group, names in (("canary", canary), ("baseline", baseline)):
                    rtime[group] += [float(servers[n]["response_time_ms"]) for n in names if servers[n]["response_time_ms"] is not None]
