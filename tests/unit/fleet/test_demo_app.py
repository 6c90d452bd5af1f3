# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The demo app's release behaviours, exercised in-process on a free loopback port."""

from __future__ import annotations

import http.client
import json
import threading
import time
from http.server import ThreadingHTTPServer

import pytest

from sreops_fleet.demo_app import app as demo


@pytest.fixture
def serve():
    servers = []

    def start(**config):
        application = demo.App({"listen": "127.0.0.1", "port": 0, "version": "vX", **config})
        server = ThreadingHTTPServer(("127.0.0.1", 0), demo.make_handler(application))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def get(port, path):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path)
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response.status, json.loads(body), response


def test_healthy_release_answers_every_endpoint(serve):
    port = serve()
    assert get(port, "/healthz")[0] == 200
    status, body, response = get(port, "/version")
    assert status == 200 and body["version"] == "vX"
    assert response.getheader("X-App-Version") == "vX"
    assert all(get(port, "/")[0] == 200 for _i in range(20))
    assert get(port, "/nope")[0] == 404


def test_error_release_fails_one_in_five_main_requests_but_stays_healthy(serve):
    port = serve(error_every=5)
    statuses = [get(port, "/")[0] for _i in range(50)]
    assert statuses.count(500) == 10
    assert all(get(port, "/healthz")[0] == 200 for _i in range(10))


def test_error_ratio_release_fails_that_share_of_main_requests_at_random(serve):
    port = serve(error_ratio=0.5)
    statuses = [get(port, "/")[0] for _i in range(200)]
    # 200 fair coin flips: fewer than 60 or more than 140 failures has a probability below 1e-8
    assert 60 <= statuses.count(500) <= 140 and set(statuses) == {200, 500}
    assert all(get(port, "/healthz")[0] == 200 for _i in range(10))
    assert [get(serve(error_ratio=0.0), "/")[0] for _i in range(20)] == [200] * 20


def test_slow_release_adds_latency_to_main_endpoint_only(serve):
    port = serve(extra_latency_ms=300)
    started = time.monotonic()
    get(port, "/healthz")
    fast = time.monotonic() - started
    started = time.monotonic()
    assert get(port, "/")[0] == 200
    slow = time.monotonic() - started
    assert fast < 0.2
    assert slow >= 0.3


def test_unhealthy_release_fails_its_health_check(serve):
    port = serve(healthz_status=503)
    assert get(port, "/healthz")[0] == 503
    assert get(port, "/")[0] == 200


def test_config_merges_release_and_host_files(tmp_path):
    (tmp_path / "release.json").write_text(json.dumps({"version": "v3", "error_every": 5}))
    host = tmp_path / "app.json"
    host.write_text(json.dumps({"listen": "127.0.0.42", "port": 9000}))
    config = demo.load_config(str(tmp_path), str(host))
    assert config["version"] == "v3" and config["error_every"] == 5
    assert (config["listen"], config["port"]) == ("127.0.0.42", 9000)


def test_stop_waits_for_inflight_requests_but_not_for_idle_keepalive(tmp_path):
    """SIGTERM with an idle keep-alive connection open and one slow request in flight: the slow request
    completes, and the process exits promptly instead of waiting on the idle connection."""
    import os
    import signal
    import socket
    import subprocess
    import sys

    release = tmp_path / "release"
    release.mkdir()
    (release / "app.py").write_text(open(demo.__file__, encoding="utf-8").read())
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (release / "release.json").write_text(json.dumps({"version": "v4", "extra_latency_ms": 500}))
    (tmp_path / "app.json").write_text(json.dumps({"listen": "127.0.0.1", "port": port}))
    pidfile = tmp_path / "app.pid"
    proc = subprocess.Popen([sys.executable, str(release / "app.py"), "--host-config", str(tmp_path / "app.json"), "--pidfile", str(pidfile)])
    try:
        deadline = time.monotonic() + 10
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        idle.request("GET", "/healthz")
        idle.getresponse().read()  # the connection stays open, idle
        slow = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        slow.request("GET", "/")
        time.sleep(0.1)
        started = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        response = slow.getresponse()
        assert response.status == 200 and response.getheader("Connection") == "close"
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 2.0
        assert not pidfile.exists()
    finally:
        if proc.poll() is None:
            proc.kill()
