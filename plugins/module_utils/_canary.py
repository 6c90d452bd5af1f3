# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: canary versus baseline judgement an SRE can trust.

Only samples from the analysis window are judged:
- HAProxy's per-request log lines written during the window (server, status, response time of every request;
  see _canary_log), or, without a log, HAProxy's per-server response counters differenced over the window
  (errors only: HAProxy's response-time figures are averages over each server's last 1024 requests, which
  span earlier releases, so they are never used);
- active probes sent during the window, the same number to every canary and baseline URL.

Errors: Fisher's exact test or the two-proportion z-test; latency: Mann-Whitney U; both one-sided. A metric
fails on a significant rise at least as large as its tolerance. A metric that did not fail passes only if the
window had the power to catch the rise the user wants caught (`error_detect`, `latency_detect_ms`) with
probability `required_power`; otherwise it is inconclusive. Every metric reports the smallest rise it could
catch (its minimum detectable effect). `plan` states the same before a canary runs, for the expected traffic.
"""

from __future__ import annotations

import dataclasses
import statistics
import time
import typing as t
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.sre.ops.plugins.module_utils._canary_log import (
    RequestLogFile,
    RequestLogSocket,
    is_server_error,
    parse_request,
)
from ansible_collections.sre.ops.plugins.module_utils._canary_stats import (
    LatencyShape,
    error_mde,
    error_p_value,
    error_power,
    errors_fail,
    latency_floor,
    latency_mde,
    latency_power,
    lognormal_latencies,
    mann_whitney_greater,
    percentile,
    two_proportion_z,
)
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError
from ansible_collections.sre.ops.plugins.module_utils._haproxy import RuntimeAPI, collect_info
from ansible_collections.sre.ops.plugins.module_utils._health import Attempt, http_attempt, prepare_probes

PASS, FAIL, INCONCLUSIVE, PLANNED = "pass", "fail", "inconclusive", "planned"
MIN_SHAPE_SAMPLES = 20  # latency samples needed to estimate latency power from a distribution


DEFAULT_ERROR_DETECT = 0.05
DEFAULT_LATENCY_DETECT_MS = 50.0


@dataclasses.dataclass
class Rules:
    """How metrics are judged, and what the analysis must be able to catch."""

    alpha: float = 0.05
    min_requests: int = 100
    min_samples: int = 30
    error_test: str = "fisher"
    error_tolerance: float = 0.005
    max_error_ratio: float | None = None
    # None: the default rise, or one the user's tolerance still fails (the tolerance passes smaller rises)
    error_detect: float | None = None
    latency_tolerance: float = 0.2
    latency_min_increase_ms: float = 10.0
    latency_detect_ms: float | None = None
    required_power: float = 0.8

    def __post_init__(self) -> None:
        if self.error_detect is None:
            self.error_detect = min(1.0, max(DEFAULT_ERROR_DETECT, 2 * self.error_tolerance))
        if self.latency_detect_ms is None:
            self.latency_detect_ms = max(DEFAULT_LATENCY_DETECT_MS, self.latency_min_increase_ms)

    def check(self) -> None:
        if not 0 < self.alpha < 1:
            raise InvalidInputError(f"alpha must be between 0 and 1 (exclusive), got {self.alpha}")
        if not 0 < self.required_power < 1:
            raise InvalidInputError(f"required_power must be between 0 and 1 (exclusive), got {self.required_power}")
        for name in ("error_tolerance", "error_detect", "latency_tolerance", "latency_min_increase_ms", "latency_detect_ms"):
            if getattr(self, name) < 0:
                raise InvalidInputError(f"{name} must not be negative, got {getattr(self, name)}")
        if self.error_detect and self.error_detect <= self.error_tolerance:
            raise InvalidInputError(f"error_detect ({self.error_detect}) must be above error_tolerance ({self.error_tolerance}): "
                                    "a rise within the tolerance passes, so it cannot be the rise that must be caught")
        if self.error_detect > 1:
            raise InvalidInputError(f"error_detect is a rise of the error ratio (0.05 = 5 points), got {self.error_detect}")
        if self.latency_detect_ms and self.latency_detect_ms < self.latency_min_increase_ms:
            raise InvalidInputError(f"latency_detect_ms ({self.latency_detect_ms}) must be at least latency_min_increase_ms "
                                    f"({self.latency_min_increase_ms}): smaller rises always pass")


@dataclasses.dataclass
class Sample:
    """What one group (canary or baseline) did in the window."""

    requests: int = 0
    errors: int = 0
    aborted: int = 0  # requests the client gave up on before any answer: neither good nor bad
    latencies: list[float] = dataclasses.field(default_factory=list)

    def describe(self) -> dict[str, t.Any]:
        return {"requests": self.requests, "errors": self.errors, "ratio": self.errors / self.requests if self.requests else None}


def _pct(ratio: float | None) -> str:
    return "n/a" if ratio is None else f"{ratio:.2%}"


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


# ----- judgement ------------------------------------------------------------------------------------
def error_power_report(canary_requests: int, baseline_requests: int, baseline_ratio: float, rules: Rules) -> dict[str, t.Any]:
    """The smallest rise of the error ratio caught with the required power, and the power at error_detect."""
    mde = error_mde(rules.error_test, canary_requests, baseline_requests, baseline_ratio, alpha=rules.alpha,
                    tolerance=rules.error_tolerance, power=rules.required_power, max_ratio=rules.max_error_ratio)
    report: dict[str, t.Any] = {"required_power": rules.required_power, "minimum_detectable_rise": _round(mde, 5),
                                "baseline_ratio": _round(baseline_ratio, 6), "detect": rules.error_detect or None,
                                "power_at_detect": None, "sufficient": True}
    if rules.error_detect:
        target = min(1.0, baseline_ratio + rules.error_detect)
        power = error_power(rules.error_test, canary_requests, baseline_requests, baseline_ratio, target, alpha=rules.alpha,
                            tolerance=rules.error_tolerance, max_ratio=rules.max_error_ratio)
        report.update(power_at_detect=round(power, 4), sufficient=power >= rules.required_power)
    return report


def latency_power_report(shape: LatencyShape, canary_samples: int, baseline_samples: int, rules: Rules) -> dict[str, t.Any]:
    """The smallest shift of the median (ms) caught with the required power, and the power at latency_detect_ms."""
    options = {"alpha": rules.alpha, "tolerance": rules.latency_tolerance, "min_increase_ms": rules.latency_min_increase_ms}
    mde = latency_mde(shape, canary_samples, baseline_samples, power=rules.required_power, **options)
    floor = latency_floor(shape.median, rules.latency_tolerance, rules.latency_min_increase_ms)
    report: dict[str, t.Any] = {"required_power": rules.required_power, "minimum_detectable_shift_ms": _round(mde, 1),
                                "baseline_p50_ms": _round(shape.median), "floor_ms": _round(floor),
                                "detect_ms": rules.latency_detect_ms or None, "power_at_detect": None, "sufficient": True}
    if rules.latency_detect_ms:
        power = latency_power(shape, canary_samples, baseline_samples, rules.latency_detect_ms, **options)
        report.update(power_at_detect=round(power, 4), sufficient=power >= rules.required_power)
    return report


def describe_error_power(report: dict[str, t.Any], canary_requests: int, baseline_requests: int, source: str, tense: str = "was") -> str:
    head = f"error_ratio ({source}): with {canary_requests} canary and {baseline_requests} baseline requests"
    base = report["baseline_ratio"] or 0.0
    mde = report["minimum_detectable_rise"]
    if mde is None:
        text = f"{head}, no rise of the error ratio {tense} likely to be caught"
    else:
        text = (f"{head}, a rise from {_pct(base)} to {_pct(min(1.0, base + mde))} errors {tense} caught with "
                f"{report['required_power']:.0%} probability")
    if report["power_at_detect"] is not None:
        text += f"; to {_pct(min(1.0, base + report['detect']))}: {report['power_at_detect']:.0%}"
    return text


def describe_latency_power(report: dict[str, t.Any], canary_samples: int, baseline_samples: int, source: str, tense: str = "was") -> str:
    head = f"latency ({source}): with {canary_samples} canary and {baseline_samples} baseline samples (baseline p50 {report['baseline_p50_ms']} ms)"
    mde = report["minimum_detectable_shift_ms"]
    if mde is None:
        text = f"{head}, no rise of the median {tense} likely to be caught"
    else:
        text = f"{head}, a +{mde:g} ms rise of the median {tense} caught with {report['required_power']:.0%} probability"
    if report["power_at_detect"] is not None:
        text += f"; +{report['detect_ms']:g} ms: {report['power_at_detect']:.0%}"
    return text


def judge_errors(canary: dict[str, int], baseline: dict[str, int], rules: Rules, source: str = "haproxy") -> dict[str, t.Any]:
    c_total, c_err = canary["requests"], canary["errors"]
    b_total, b_err = baseline["requests"], baseline["errors"]
    result: dict[str, t.Any] = {
        "metric": "error_ratio", "source": source,
        "canary": {"requests": c_total, "errors": c_err, "ratio": c_err / c_total if c_total else None},
        "baseline": {"requests": b_total, "errors": b_err, "ratio": b_err / b_total if b_total else None},
        "test": rules.error_test, "alpha": rules.alpha, "tolerance": rules.error_tolerance,
    }
    if c_total < rules.min_requests or b_total < rules.min_requests:
        result.update(verdict=INCONCLUSIVE, p_value=None, power=None,
                      reason=f"too few requests to judge errors: canary {c_total}, baseline {b_total}, need {rules.min_requests} each")
        return result
    p_value = error_p_value(rules.error_test, c_err, c_total, b_err, b_total)
    if rules.error_test == "ztest":
        result["z"] = two_proportion_z(c_err, c_total, b_err, b_total)[0]
    c_ratio, b_ratio = c_err / c_total, b_err / b_total
    power = error_power_report(c_total, b_total, b_ratio, rules)
    result.update(p_value=p_value, power=power, detectable=describe_error_power(power, c_total, b_total, source))
    rise = c_ratio - b_ratio
    counts = f"{c_err}/{c_total} vs {b_err}/{b_total}, {rules.error_test} p={p_value:.2g}"
    if errors_fail(rules.error_test, c_err, c_total, b_err, b_total, alpha=rules.alpha, tolerance=rules.error_tolerance,
                   max_ratio=rules.max_error_ratio):
        if rules.max_error_ratio is not None and c_ratio > rules.max_error_ratio:
            reason = f"canary error ratio {c_ratio:.2%} is above the maximum {rules.max_error_ratio:.2%} ({counts})"
        else:
            reason = (f"canary error ratio {c_ratio:.2%} is higher than baseline {b_ratio:.2%} ({counts} < {rules.alpha}; "
                      f"the rise of {rise * 100:.2f} points reaches the tolerance of {rules.error_tolerance * 100:g})")
        result.update(verdict=FAIL, reason=reason)
    elif not power["sufficient"]:
        result.update(verdict=INCONCLUSIVE, reason=(
            f"too little traffic to rule out a rise of {rules.error_detect * 100:g} points: it would have been caught with "
            f"{power['power_at_detect']:.0%} probability, {rules.required_power:.0%} required (canary {c_ratio:.2%} vs baseline "
            f"{b_ratio:.2%}, {counts})"))
    elif p_value < rules.alpha:
        # significant but below the tolerance: passes, and says so
        result.update(verdict=PASS, reason=(f"canary error ratio {c_ratio:.2%} vs baseline {b_ratio:.2%}: a significant rise of "
                                            f"{rise * 100:.2f} points, within the tolerance of {rules.error_tolerance * 100:g} ({counts})"))
    else:
        result.update(verdict=PASS, reason=f"canary error ratio {c_ratio:.2%} vs baseline {b_ratio:.2%} ({counts})")
    return result


def _describe_latencies(values: list[float]) -> dict[str, t.Any]:
    return {"samples": len(values), "p50_ms": _round(percentile(values, 50)), "p95_ms": _round(percentile(values, 95)),
            "mean_ms": _round(statistics.fmean(values)) if values else None}


def judge_latency(canary: list[float], baseline: list[float], rules: Rules, source: str = "haproxy") -> dict[str, t.Any]:
    result: dict[str, t.Any] = {"metric": "latency", "source": source, "canary": _describe_latencies(canary),
                                "baseline": _describe_latencies(baseline), "test": "mann-whitney-u", "alpha": rules.alpha,
                                "tolerance": rules.latency_tolerance, "min_increase_ms": rules.latency_min_increase_ms}
    if len(canary) < rules.min_samples or len(baseline) < rules.min_samples:
        result.update(verdict=INCONCLUSIVE, p_value=None, power=None,
                      reason=f"too few latency samples to judge: canary {len(canary)}, baseline {len(baseline)}, need {rules.min_samples} each")
        return result
    u, p_value = mann_whitney_greater(canary, baseline)
    c_med, b_med = statistics.median(canary), statistics.median(baseline)
    floor = latency_floor(b_med, rules.latency_tolerance, rules.latency_min_increase_ms)
    power = latency_power_report(LatencyShape(baseline), len(canary), len(baseline), rules)
    result.update(u=u, p_value=p_value, median_increase_ms=round(c_med - b_med, 3),
                  median_increase=round((c_med - b_med) / b_med, 4) if b_med > 0 else None, floor_ms=round(floor, 3),
                  power=power, detectable=describe_latency_power(power, len(canary), len(baseline), source))
    medians = f"median {c_med:.1f} ms vs baseline {b_med:.1f} ms"
    if p_value < rules.alpha and c_med - b_med >= floor - 1e-9:
        result.update(verdict=FAIL, reason=(f"canary latency is higher: {medians} (+{c_med - b_med:.1f} ms reaches the floor of "
                                            f"{floor:.1f} ms, Mann-Whitney p={p_value:.2g} < {rules.alpha})"))
    elif not power["sufficient"]:
        result.update(verdict=INCONCLUSIVE, reason=(
            f"too few samples to rule out +{rules.latency_detect_ms:g} ms: it would have been caught with {power['power_at_detect']:.0%} "
            f"probability, {rules.required_power:.0%} required ({medians}, p={p_value:.2g})"))
    elif p_value < rules.alpha:
        result.update(verdict=PASS, reason=(f"canary {medians}: significantly higher by {c_med - b_med:.1f} ms, below the floor of "
                                            f"{floor:.1f} ms (p={p_value:.2g})"))
    else:
        result.update(verdict=PASS, reason=f"canary {medians} (p={p_value:.2g})")
    return result


def overall(metrics: list[dict[str, t.Any]]) -> tuple[str, list[str]]:
    """fail if any metric fails; inconclusive if any is inconclusive; pass only when every metric passes."""
    if not metrics:
        return INCONCLUSIVE, ["no metric was measured"]
    verdicts = [m["verdict"] for m in metrics]
    reasons = [f"{m['metric']}: {m['reason']}" + (f" [{m['source']}]" if m.get("source") else "") for m in metrics]
    if FAIL in verdicts:
        return FAIL, [r for m, r in zip(metrics, reasons) if m["verdict"] == FAIL] + [r for m, r in zip(metrics, reasons) if m["verdict"] != FAIL]
    if INCONCLUSIVE in verdicts:
        return INCONCLUSIVE, [r for m, r in zip(metrics, reasons) if m["verdict"] == INCONCLUSIVE] + [
            r for m, r in zip(metrics, reasons) if m["verdict"] != INCONCLUSIVE]
    return PASS, reasons


# ----- planning: what a window would detect ------------------------------------------------------------
SAMPLE_HINT = "a longer plan_sample or more traffic helps"
ASSUMED_HINT = ("give baseline_p50_ms and baseline_p90_ms or baseline_latencies_ms, or run sre.ops.canary_analysis "
                "with mode=plan on the load balancer to measure it")
COUNTERS_NOTE = ("latency would not be judged: HAProxy's counters have no per-request timing; give log_path or log_socket "
                 "(HAProxy's request log) or canary_urls and baseline_urls (probes)")


def expected_requests(window: float, rate: float, canary_share: float) -> tuple[int, int]:
    """Requests the canary and the baseline servers get in a window, at `rate` a second with `canary_share` on the canary."""
    return int(rate * canary_share * window), int(rate * (1 - canary_share) * window)


def probe_samples(window: float, probe_rate: float, canary_urls: int, baseline_urls: int) -> tuple[int, int]:
    """Probe latencies each group gets in a window: probe_rate a second to every URL."""
    per_url = int(probe_rate * window)
    return per_url * canary_urls, per_url * baseline_urls


def error_plan(rules: Rules, n_canary: int, n_baseline: int, baseline_ratio: float, label: str, sentences: list[str]) -> dict[str, t.Any]:
    power = error_power_report(n_canary, n_baseline, baseline_ratio, rules)
    sentences.append(describe_error_power(power, n_canary, n_baseline, label, "would be"))
    return {"metric": "error_ratio", "source": label, "power": power,
            "expected": {"canary_requests": n_canary, "baseline_requests": n_baseline, "baseline_error_ratio": round(baseline_ratio, 6)}}


def latency_plan(rules: Rules, values: list[float] | None, n_canary: int, n_baseline: int, label: str, sentences: list[str],
                 hint: str) -> dict[str, t.Any]:
    """The latency power at the expected sample counts, for the baseline latencies `values`; unknown without enough of them."""
    entry: dict[str, t.Any] = {"metric": "latency", "source": label, "expected": {"canary_samples": n_canary, "baseline_samples": n_baseline}}
    if not values:
        entry["power"] = None
        sentences.append(f"latency ({label}): unknown: the baseline's latency spread is not known ({hint})")
    elif len(values) < MIN_SHAPE_SAMPLES:
        entry["power"] = None
        sentences.append(f"latency ({label}): unknown: the sample had {len(values)} latencies, {MIN_SHAPE_SAMPLES} are needed "
                         f"to know their spread ({hint})")
    else:
        entry["power"] = latency_power_report(LatencyShape(values), n_canary, n_baseline, rules)
        sentences.append(describe_latency_power(entry["power"], n_canary, n_baseline, label, "would be"))
    return entry


def all_sufficient(metrics: list[dict[str, t.Any]]) -> bool:
    """Every metric would have the required power; a metric whose power is unknown is not known to be sufficient."""
    return bool(metrics) and all(m["power"] is not None and m["power"]["sufficient"] for m in metrics)


def rules_from_options(options: t.Mapping[str, t.Any]) -> Rules:
    """The Rules in a dict of sre.ops.canary_analysis options (other options, such as window, are not rules and are ignored)."""
    given: dict[str, t.Any] = {}
    for field in dataclasses.fields(Rules):
        value = options.get(field.name)
        if value is None:
            continue
        kind: type = type(field.default) if field.default is not None else float
        if kind is str:
            if value not in ("fisher", "ztest"):
                raise InvalidInputError(f"{field.name} must be fisher or ztest, got {value!r}")
        elif isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise InvalidInputError(f"{field.name} must be a number, got {value!r}")
        try:
            given[field.name] = kind(value)
        except ValueError:
            raise InvalidInputError(f"{field.name} must be a number, got {value!r}") from None
    rules = Rules(**given)
    rules.check()
    return rules


def _number(name: str, value: t.Any, *, positive: bool = False, high: float | None = None) -> float | None:
    """A number given to a power statement (numbers templated as text are taken too), checked against its range."""
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise ValueError()
        number = float(value)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number, got {value!r}") from None
    if number < 0 or (positive and number == 0) or (high is not None and number > high):
        limits = f"from 0 to {high:g}" if high is not None else "above 0" if positive else "0 or more"
        raise InvalidInputError(f"{name} must be {limits}, got {value!r}")
    return number


def _baseline_latencies(p50_ms: t.Any, p90_ms: t.Any, sample: t.Any) -> t.Callable[[bool], list[float] | None]:
    """The baseline latencies a power statement assumes: a log-normal through p50 and p90, a given sample, or none."""
    if (p50_ms is None) != (p90_ms is None):
        raise InvalidInputError("baseline_p50_ms and baseline_p90_ms go together")
    if p50_ms is not None:
        if sample:
            raise InvalidInputError("give baseline_p50_ms and baseline_p90_ms, or baseline_latencies_ms, not both")
        p50, p90 = t.cast(float, _number("baseline_p50_ms", p50_ms)), t.cast(float, _number("baseline_p90_ms", p90_ms))
        if not 0 < p50 <= p90:
            raise InvalidInputError(f"need 0 < baseline_p50_ms <= baseline_p90_ms, got {p50:g} and {p90:g}")
        return lambda whole_ms: lognormal_latencies(p50, p90, whole_ms=whole_ms)
    if sample is not None and not isinstance(sample, (list, tuple)):
        raise InvalidInputError(f"baseline_latencies_ms must be a list of numbers, got {sample!r}")
    values = [t.cast(float, _number("baseline_latencies_ms", v)) for v in sample or []]
    return lambda _whole_ms: values or None


def power_statement(options: t.Mapping[str, t.Any], *, expected_rate: float | None = None, canary_share: float | None = None,
                    canary_requests: int | None = None, baseline_requests: int | None = None, baseline_error_ratio: float = 0.0,
                    baseline_p50_ms: float | None = None, baseline_p90_ms: float | None = None,
                    baseline_latencies_ms: list[float] | None = None) -> dict[str, t.Any]:
    """What an analysis with these sre.ops.canary_analysis `options` would detect at the expected traffic, measuring nothing.

    For a rollout plan, before the canary runs. The traffic is `expected_rate` requests a second to canary and baseline
    together with `canary_share` on the canary, over the options' window; or `canary_requests` and `baseline_requests`.
    Errors are judged from the request log (log_path, log_socket) or the counters (socket); latency from the request log
    and probes (canary_urls, baseline_urls: probe_rate a second to each URL). Options with none of these are taken to
    read the request log. Latency power needs the baseline's spread: its p50 and p90 (a log-normal through them) or a
    sample of its latencies. The same rules and power functions as the analysis itself.
    """
    rules = rules_from_options(options)
    window = _number("window", options.get("window"), positive=True) or 60.0
    baseline_error_ratio = t.cast(float, _number("baseline_error_ratio", baseline_error_ratio, high=1.0))
    counts_given = canary_requests is not None or baseline_requests is not None
    if counts_given == (expected_rate is not None or canary_share is not None):
        raise InvalidInputError("give either expected_rate and canary_share, or canary_requests and baseline_requests")
    if counts_given:
        if canary_requests is None or baseline_requests is None:
            raise InvalidInputError("canary_requests and baseline_requests go together")
        n_canary = int(t.cast(float, _number("canary_requests", canary_requests)))
        n_baseline = int(t.cast(float, _number("baseline_requests", baseline_requests)))
        expected: dict[str, t.Any] = {}
    else:
        if expected_rate is None or canary_share is None:
            raise InvalidInputError("expected_rate and canary_share go together")
        rate = t.cast(float, _number("expected_rate", expected_rate))
        share = t.cast(float, _number("canary_share", canary_share))
        if not 0 < share < 1:
            raise InvalidInputError(f"canary_share must be between 0 and 1 (exclusive), got {share:g}")
        n_canary, n_baseline = expected_requests(window, rate, share)
        expected = {"rate_per_s": round(rate, 3), "canary_share": round(share, 4)}
    latencies = _baseline_latencies(baseline_p50_ms, baseline_p90_ms, baseline_latencies_ms)
    reads_log = bool(options.get("log_path") or options.get("log_socket"))
    probes = bool(options.get("canary_urls") and options.get("baseline_urls"))
    notes = []
    if not (reads_log or options.get("socket") or probes):
        reads_log = True
        notes.append("no log_path, log_socket, socket or probe URLs in the options: the request log is assumed")
    elif not (reads_log or probes):
        notes.append(COUNTERS_NOTE)
    metrics: list[dict[str, t.Any]] = []
    sentences: list[str] = []
    if reads_log or options.get("socket"):
        label = "haproxy log" if reads_log else "haproxy counters"
        metrics.append(error_plan(rules, n_canary, n_baseline, baseline_error_ratio, label, sentences))
        metrics[-1]["expected"].update(expected)
        if reads_log:
            # HAProxy logs whole milliseconds: the ties the test will meet belong in the shape
            metrics.append(latency_plan(rules, latencies(True), n_canary, n_baseline, label, sentences, ASSUMED_HINT))
    if probes:
        probe_rate = _number("probe_rate", options.get("probe_rate"), positive=True) or 10.0
        n_probe_canary, n_probe_baseline = probe_samples(window, probe_rate, len(options["canary_urls"]), len(options["baseline_urls"]))
        if not metrics:
            metrics.append(error_plan(rules, n_probe_canary, n_probe_baseline, baseline_error_ratio, "probes", sentences))
        metrics.append(latency_plan(rules, latencies(False), n_probe_canary, n_probe_baseline, "probes", sentences, ASSUMED_HINT))
    return {"sufficient": all_sufficient(metrics), "detectable": sentences, "metrics": metrics, "window_s": window, "notes": notes}


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


def samples_from_log(lines: list[str], backend: str, canary: list[str], baseline: list[str] | None) -> tuple[dict[str, Sample], list[str]]:
    """Per-group samples from request log lines of `backend`; without an explicit baseline, every other server is one."""
    groups = {"canary": Sample(), "baseline": Sample()}
    canary_set = set(canary)
    baseline_set = set(baseline) if baseline is not None else None
    seen: set[str] = set()
    for line in lines:
        request = parse_request(line)
        if request is None or request.backend != backend or request.server.startswith("<"):
            continue
        if request.server in canary_set:
            group = groups["canary"]
        elif baseline_set is None or request.server in baseline_set:
            group = groups["baseline"]
            seen.add(request.server)
        else:
            continue
        error = is_server_error(request)
        if error is None:
            group.aborted += 1
            continue
        group.requests += 1
        group.errors += int(error)
        if request.response_ms is not None:
            group.latencies.append(float(request.response_ms))
    return groups, sorted(seen) if baseline is None else list(baseline)


class ProbeRunner:
    """Steady probe requests during the window: each tick sends one request to every canary and baseline URL.

    So every host gets the same probe load (a single canary URL is not probed harder than each of several
    baseline URLs), and canary and baseline requests are interleaved in time.
    """

    def __init__(self, canary_urls: list[str], baseline_urls: list[str], rate: float, timeout: float, *,
                 sleep: t.Callable[[float], t.Any] = time.sleep, clock: t.Callable[[], float] = time.monotonic,
                 attempt: t.Callable[[dict[str, t.Any]], Attempt] = http_attempt,
                 executor: t.Callable[..., t.Any] = ThreadPoolExecutor) -> None:
        targets = [("canary", u) for u in canary_urls] + [("baseline", u) for u in baseline_urls]
        probes = prepare_probes([{"name": f"u{i}", "type": "http", "url": u, "status_codes": ["1xx", "2xx", "3xx", "4xx"]}
                                 for i, (_group, u) in enumerate(targets)],
                                {"timeout": timeout, "interval": 1.0, "success_threshold": 1, "failure_threshold": 1})
        self.targets = [(group, probe) for (group, _url), probe in zip(targets, probes)]
        self.rate = rate
        self.sleep, self.clock, self.attempt = sleep, clock, attempt
        self.executor = executor

    def run(self, deadline: float) -> dict[str, Sample]:
        period = 1.0 / self.rate
        futures: list[tuple[str, t.Any]] = []
        with self.executor(max_workers=min(64, 4 * len(self.targets) + 4)) as pool:
            start = self.clock()
            tick = 0
            while self.clock() < deadline:
                # alternate the order so neither group is always first in a tick
                order = self.targets if tick % 2 == 0 else list(reversed(self.targets))
                for group, probe in order:
                    futures.append((group, pool.submit(self.attempt, probe)))
                tick += 1
                pause = start + tick * period - self.clock()
                if pause > 0:
                    self.sleep(min(pause, max(0.0, deadline - self.clock())))
            groups = {"canary": Sample(), "baseline": Sample()}
            for group, future in futures:
                attempt = future.result()
                sample = groups[group]
                sample.requests += 1
                sample.errors += int(not attempt.ok)
                if attempt.status is not None:
                    sample.latencies.append(attempt.latency * 1000.0)
        return groups


def _log_source(log_path: str | None, log_socket: str | None) -> RequestLogFile | RequestLogSocket | None:
    if log_path:
        return RequestLogFile(log_path)
    if log_socket:
        return RequestLogSocket(log_socket)
    return None


class CanaryAnalysis:
    """Observe canary and baseline for a window, then judge; or plan: say what a window would detect."""

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
        probe_rate: float,
        probe_timeout: float,
        rules: Rules,
        log_path: str | None = None,
        log_socket: str | None = None,
        sleep: t.Callable[[float], t.Any] = time.sleep,
        clock: t.Callable[[], float] = time.monotonic,
    ) -> None:
        has_log = bool(log_path or log_socket)
        if bool(canary_urls) != bool(baseline_urls):
            raise InvalidInputError("canary_urls and baseline_urls go together")
        if api is None and not has_log and not (canary_urls and baseline_urls):
            raise InvalidInputError("give socket and backend (HAProxy counters), log_path or log_socket (HAProxy request log), "
                                    "and/or canary_urls and baseline_urls (active probes)")
        if (api is not None or has_log) and not backend:
            raise InvalidInputError("backend is required with socket, log_path or log_socket")
        if (api is not None or has_log) and not canary:
            raise InvalidInputError("canary (server names in the backend) is required with socket, log_path or log_socket")
        if window <= 0:
            raise InvalidInputError(f"window must be positive, got {window}")
        if canary_urls and probe_rate <= 0:
            raise InvalidInputError(f"probe_rate must be positive, got {probe_rate}")
        rules.check()
        for url in canary_urls + baseline_urls:
            if urllib.parse.urlsplit(url).scheme not in ("http", "https"):
                raise InvalidInputError(f"{url!r} is not an http(s) URL")
        overlap = sorted(set(canary) & set(baseline or []))
        if overlap:
            raise InvalidInputError(f"{', '.join(overlap)} cannot be both canary and baseline")
        self.api, self.backend = api, backend
        self.canary, self.baseline = canary, baseline
        self.canary_urls, self.baseline_urls = canary_urls, baseline_urls
        self.window, self.probe_rate, self.probe_timeout = window, probe_rate, probe_timeout
        self.rules = rules
        self.log_path, self.log_socket = log_path, log_socket
        self.sleep, self.clock = sleep, clock

    # ----- judge ---------------------------------------------------------------------------------------
    def _servers(self) -> dict[str, t.Any]:
        return collect_info(t.cast(RuntimeAPI, self.api), [t.cast(str, self.backend)])["backends"][self.backend]["servers"]

    def _groups(self) -> tuple[dict[str, t.Any], list[str]]:
        servers = self._servers()
        unknown = [s for s in self.canary + (self.baseline or []) if s not in servers]
        if unknown:
            raise InvalidInputError(f"backend {self.backend} has no server {', '.join(unknown)} (it has {', '.join(sorted(servers))})")
        baseline = self.baseline or [n for n, s in servers.items() if n not in self.canary and s["serving"]]
        if not baseline:
            raise InvalidInputError(f"backend {self.backend} has no serving server outside the canary to compare with")
        return servers, baseline

    def _observe(self, until: float, probes: ProbeRunner | None) -> dict[str, Sample] | None:
        if probes is None:
            while True:
                remaining = until - self.clock()
                if remaining <= 0:
                    return None
                self.sleep(remaining)
        return probes.run(until)

    def run(self) -> dict[str, t.Any]:
        started = self.clock()
        wall_started = time.time()
        baseline_names = self.baseline
        first = None
        if self.api is not None:
            servers, baseline_names = self._groups()
            first = {"canary": _counts(servers, self.canary), "baseline": _counts(servers, baseline_names)}
        source = _log_source(self.log_path, self.log_socket)
        probes = ProbeRunner(self.canary_urls, self.baseline_urls, self.probe_rate, self.probe_timeout, sleep=self.sleep,
                             clock=self.clock) if self.canary_urls else None
        lines: list[str] = []
        if source is not None:
            source.start()
        try:
            probe_samples = self._observe(started + self.window, probes)
            if source is not None:
                lines = source.read()
        finally:
            if source is not None:
                source.close()
                lines += source.read() if isinstance(source, RequestLogSocket) else []
        ended = self.clock()
        measurements: dict[str, t.Any] = {"window_s": self.window, "window_started": round(wall_started, 3),
                                          "window_ended": round(wall_started + ended - started, 3)}
        metrics: list[dict[str, t.Any]] = []
        if source is not None:
            label = "haproxy log"
            groups, baseline_seen = samples_from_log(lines, t.cast(str, self.backend), self.canary, baseline_names)
            measurements["haproxy"] = {"source": f"request log {self.log_path or self.log_socket}", "log_lines": len(lines),
                                       "canary_servers": self.canary, "baseline_servers": baseline_seen,
                                       **{g: {**s.describe(), "aborted": s.aborted} for g, s in groups.items()}}
            metrics.append(judge_errors(groups["canary"].describe(), groups["baseline"].describe(), self.rules, label))
            metrics.append(judge_latency(groups["canary"].latencies, groups["baseline"].latencies, self.rules, label))
        elif first is not None:
            last = {"canary": _counts(self._servers(), self.canary), "baseline": _counts(self._servers(), t.cast(list, baseline_names))}
            counts = {g: _delta(last[g], first[g]) for g in first}
            measurements["haproxy"] = {"source": "response counters differenced over the window", "canary_servers": self.canary,
                                       "baseline_servers": baseline_names, **counts}
            metrics.append(judge_errors(counts["canary"], counts["baseline"], self.rules, "haproxy counters"))
        if probe_samples is not None:
            c, b = probe_samples["canary"], probe_samples["baseline"]
            measurements["probes"] = {"per_url_rate": self.probe_rate, "canary": {"urls": len(self.canary_urls), **c.describe()},
                                      "baseline": {"urls": len(self.baseline_urls), **b.describe()}}
            if self.api is None and source is None:
                metrics.append(judge_errors(c.describe(), b.describe(), self.rules, "probes"))
            metrics.append(judge_latency(c.latencies, b.latencies, self.rules, "probes"))
        notes = []
        if not any(m["metric"] == "latency" for m in metrics):
            notes.append(COUNTERS_NOTE.replace("would not be", "was not"))
        verdict, reasons = overall(metrics)
        return {
            "verdict": verdict,
            "passed": verdict == PASS,
            "reasons": reasons,
            "metrics": metrics,
            "detectable": [m["detectable"] for m in metrics if m.get("detectable")],
            "notes": notes,
            "measurements": measurements,
            "elapsed_s": round(ended - started, 3),
        }

    # ----- plan ----------------------------------------------------------------------------------------
    def plan(self, *, expected_rate: float | None, canary_share: float | None, sample: float) -> dict[str, t.Any]:
        """What a window with these settings would detect at the expected (or currently measured) traffic."""
        if canary_share is not None and not 0 < canary_share < 1:
            raise InvalidInputError(f"canary_share must be between 0 and 1 (exclusive), got {canary_share}")
        if sample <= 0:
            raise InvalidInputError(f"plan_sample must be positive, got {sample}")
        started = self.clock()
        measured: dict[str, t.Any] = {}
        shape_values: list[float] = []
        error_ratio = 0.0
        rate = expected_rate
        share = canary_share
        baseline_names = self.baseline
        if self.api is not None:
            servers, baseline_names = self._groups()
            if share is None:
                weights = {n: float(servers[n]["effective_weight"] or 0) for n in self.canary + baseline_names}
                total = sum(weights.values())
                share = sum(weights[n] for n in self.canary) / total if total else None
                measured["share_from_weights"] = _round(share, 4)
        needs_traffic = self.api is not None or bool(self.log_path or self.log_socket)
        if needs_traffic:
            counted, errors, baseline_requests, shape_values, seconds, log_share = self._sample_traffic(sample, baseline_names)
            measured.update(sample_s=round(seconds, 3), requests=counted, baseline_requests=baseline_requests, baseline_errors=errors)
            error_ratio = errors / baseline_requests if baseline_requests else 0.0
            if rate is None:
                rate = counted / seconds if seconds > 0 else 0.0
            if share is None:
                share = log_share
        metrics: list[dict[str, t.Any]] = []
        sentences: list[str] = []
        if needs_traffic:
            if rate is None or share is None:
                raise InvalidInputError("cannot tell the canary's share of the traffic: give canary_share")
            n_canary, n_baseline = expected_requests(self.window, rate, share)
            label = "haproxy log" if (self.log_path or self.log_socket) else "haproxy counters"
            metrics.append(error_plan(self.rules, n_canary, n_baseline, error_ratio, label, sentences))
            metrics[-1]["expected"].update(rate_per_s=round(rate, 3), canary_share=round(share, 4))
            if self.log_path or self.log_socket:
                metrics.append(latency_plan(self.rules, shape_values, n_canary, n_baseline, label, sentences, SAMPLE_HINT))
        if self.canary_urls:
            n_canary, n_baseline = probe_samples(self.window, self.probe_rate, len(self.canary_urls), len(self.baseline_urls))
            if not shape_values:
                runner = ProbeRunner([], self.baseline_urls, self.probe_rate, self.probe_timeout, sleep=self.sleep, clock=self.clock)
                probed = runner.run(self.clock() + sample)["baseline"]
                shape_values = probed.latencies
                measured["probe_sample"] = probed.describe()
            metrics.append(latency_plan(self.rules, shape_values, n_canary, n_baseline, "probes", sentences, SAMPLE_HINT))
        notes = [] if any(m["metric"] == "latency" for m in metrics) else [COUNTERS_NOTE]
        return {
            "verdict": PLANNED,
            "passed": False,
            "sufficient": all_sufficient(metrics),
            "reasons": sentences,
            "detectable": sentences,
            "notes": notes,
            "metrics": metrics,
            "measurements": {"window_s": self.window, **measured},
            "elapsed_s": round(self.clock() - started, 3),
        }

    def _sample_traffic(self, seconds: float, baseline: list[str] | None) -> tuple[int, int, int, list[float], float, float | None]:
        """Over `seconds`: requests to canary and baseline servers; the baseline's 5xx, requests and response times;
        the time it took and the canary's share of the requests."""
        source = _log_source(self.log_path, self.log_socket)
        first = None
        if source is None:
            servers = self._servers()
            first = {"total": _counts(servers, self.canary + t.cast(list, baseline)), "baseline": _counts(servers, t.cast(list, baseline))}
        else:
            source.start()
        started = self.clock()
        try:
            self.sleep(seconds)
            lines = source.read() if source is not None else []
        finally:
            if source is not None:
                source.close()
                lines += source.read() if isinstance(source, RequestLogSocket) else []
        elapsed = self.clock() - started
        if source is None:
            total = _delta(_counts(self._servers(), self.canary + t.cast(list, baseline)), t.cast(dict, first)["total"])
            base = _delta(_counts(self._servers(), t.cast(list, baseline)), t.cast(dict, first)["baseline"])
            return total["requests"], base["errors"], base["requests"], [], elapsed, None
        groups, _seen = samples_from_log(lines, t.cast(str, self.backend), self.canary, baseline)
        requests = groups["canary"].requests + groups["baseline"].requests
        share = groups["canary"].requests / requests if requests else None
        # the canary servers may run anything right now: error ratio and latency spread come from the baseline
        return requests, groups["baseline"].errors, groups["baseline"].requests, groups["baseline"].latencies, elapsed, share
