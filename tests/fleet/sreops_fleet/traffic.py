# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Steady traffic through the load balancer, with a report clients would recognise.

Requests are sent on a fixed schedule (an open-loop generator: a slow server does not slow the sending,
so latency spikes and errors are measured instead of hidden). Each request opens a fresh connection so
the balancer picks a server per request. Bounded by duration and by a hard cap on request count.
"""

from __future__ import annotations

import http.client
import math
import threading
import time
import typing as t
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

MAX_REQUESTS = 200_000


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile (pct in 0..100) of values; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100.0 * len(ordered)))
    return ordered[rank - 1]


class Sample(t.NamedTuple):
    started: float  # seconds since the generator started
    status: int | None  # HTTP status, None for a connection-level failure
    server: str | None  # X-Served-By header set by the load balancer
    version: str | None  # X-App-Version header set by the app
    latency: float  # seconds
    error: str | None


class TrafficGenerator:
    """TrafficGenerator(url, rate, duration).run() -> report; or start() ... stop() -> report in the background."""

    def __init__(
        self,
        url: str,
        rate: float = 50.0,
        duration: float = 10.0,
        host_header: str | None = "app.test",
        timeout: float = 5.0,
        workers: int = 32,
    ) -> None:
        if rate <= 0 or duration <= 0:
            raise ValueError("rate and duration must be positive")
        if rate * duration > MAX_REQUESTS:
            raise ValueError(f"rate * duration exceeds the cap of {MAX_REQUESTS} requests")
        parsed = urllib.parse.urlsplit(url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"only http:// URLs are supported, got {url!r}")
        self.host = parsed.hostname
        self.port = parsed.port or 80
        self.path = parsed.path or "/"
        self.rate = rate
        self.duration = duration
        self.host_header = host_header
        self.timeout = timeout
        self.workers = workers
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._t0 = 0.0

    def _one(self, scheduled: float) -> None:
        start = time.monotonic()
        status = server = version = error = None
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            headers = {"Connection": "close"}
            if self.host_header:
                headers["Host"] = self.host_header
            conn.request("GET", self.path, headers=headers)
            response = conn.getresponse()
            response.read()
            status = response.status
            server = response.getheader("X-Served-By")
            version = response.getheader("X-App-Version")
        except (OSError, http.client.HTTPException) as exc:
            error = type(exc).__name__
        finally:
            conn.close()
        sample = Sample(scheduled, status, server, version, time.monotonic() - start, error)
        with self._lock:
            self.samples.append(sample)

    def _loop(self) -> None:
        interval = 1.0 / self.rate
        total = int(round(self.rate * self.duration))
        with ThreadPoolExecutor(max_workers=self.workers) as pool:
            for i in range(total):
                due = self._t0 + i * interval
                while True:
                    now = time.monotonic()
                    if self._stop.is_set() or now >= due:
                        break
                    self._stop.wait(min(due - now, 0.05))
                if self._stop.is_set():
                    break
                pool.submit(self._one, due - self._t0)

    def start(self) -> "TrafficGenerator":
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._loop, name="traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> dict[str, t.Any]:
        """Stop sending (in-flight requests finish) and return the report."""
        self._stop.set()
        return self.join()

    def join(self) -> dict[str, t.Any]:
        if self._thread is not None:
            self._thread.join()
        return self.report()

    def run(self) -> dict[str, t.Any]:
        return self.start().join()

    def report(self) -> dict[str, t.Any]:
        with self._lock:
            samples = sorted(self.samples)
        return summarize(samples, elapsed=time.monotonic() - self._t0 if self._t0 else 0.0)


def summarize(samples: list[Sample], elapsed: float = 0.0) -> dict[str, t.Any]:
    by_status: dict[str, int] = {}
    by_server: dict[str, int] = {}
    by_version: dict[str, int] = {}
    errors_by_server: dict[str, int] = {}
    latencies = []
    for sample in samples:
        key = str(sample.status) if sample.status is not None else f"error:{sample.error}"
        by_status[key] = by_status.get(key, 0) + 1
        if sample.server:
            by_server[sample.server] = by_server.get(sample.server, 0) + 1
        if sample.version:
            by_version[sample.version] = by_version.get(sample.version, 0) + 1
        failed = sample.status is None or sample.status >= 500
        if failed:
            name = sample.server or "-"
            errors_by_server[name] = errors_by_server.get(name, 0) + 1
        latencies.append(sample.latency * 1000.0)
    ok = sum(n for k, n in by_status.items() if k.startswith("2"))
    failed_total = sum(errors_by_server.values())
    return {
        "requests": len(samples),
        "ok": ok,
        "errors": failed_total,
        "error_ratio": (failed_total / len(samples)) if samples else 0.0,
        "by_status": by_status,
        "by_server": by_server,
        "by_version": by_version,
        "errors_by_server": errors_by_server,
        "latency_ms": {
            "p50": percentile(latencies, 50),
            "p95": percentile(latencies, 95),
            "p99": percentile(latencies, 99),
            "max": max(latencies) if latencies else None,
        },
        "elapsed_s": round(elapsed, 3),
    }
