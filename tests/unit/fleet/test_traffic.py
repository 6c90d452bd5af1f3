# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import http.server
import threading

import pytest

from sreops_fleet.traffic import Sample, TrafficGenerator, percentile, summarize


@pytest.mark.parametrize(
    "values, pct, expected",
    [([], 50, None), ([5.0], 99, 5.0), ([1, 2, 3, 4], 50, 2), ([1, 2, 3, 4], 75, 3), (list(range(1, 101)), 95, 95)],
)
def test_percentile_nearest_rank(values, pct, expected):
    assert percentile(values, pct) == expected


def test_summarize_counts_statuses_servers_and_errors():
    samples = [
        Sample(0.0, 200, "web1", "v1", 0.010, None),
        Sample(0.1, 500, "web2", "v3", 0.020, None),
        Sample(0.2, None, None, None, 1.000, "ConnectionRefusedError"),
        Sample(0.3, 200, "web2", "v3", 0.030, None),
    ]
    report = summarize(samples)
    assert report["requests"] == 4
    assert report["ok"] == 2
    assert report["errors"] == 2
    assert report["by_status"] == {"200": 2, "500": 1, "error:ConnectionRefusedError": 1}
    assert report["by_server"] == {"web1": 1, "web2": 2}
    assert report["errors_by_server"] == {"web2": 1, "-": 1}
    assert report["latency_ms"]["max"] == pytest.approx(1000.0)
    assert report["error_ratio"] == pytest.approx(0.5)


@pytest.mark.parametrize("kwargs", [{"rate": 0}, {"duration": -1}, {"rate": 100000, "duration": 100}])
def test_generator_rejects_unbounded_or_invalid_settings(kwargs):
    with pytest.raises(ValueError):
        TrafficGenerator("http://127.0.0.1:1/", **kwargs)


def test_generator_keeps_its_rate_against_a_real_server():
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's naming
            self.send_response(200)
            self.send_header("X-Served-By", "local")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        report = TrafficGenerator(f"http://127.0.0.1:{server.server_address[1]}/", rate=100, duration=1.0).run()
    finally:
        server.shutdown()
        server.server_close()
    assert report["requests"] == 100
    assert report["by_status"] == {"200": 100}
    assert report["by_server"] == {"local": 100}
    assert 0.95 <= report["elapsed_s"] <= 2.0
