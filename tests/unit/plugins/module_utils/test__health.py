# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import http.server
import os
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _health as health
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError

from sreops_fleet import servers
from ...utils.tls import self_signed

DEFAULTS = {"timeout": 2.0, "interval": 0.01, "success_threshold": 1, "failure_threshold": 1}


def probe(**kwargs):
    return health.prepare_probes([{"name": "p", "type": "http", **kwargs}], DEFAULTS)[0]


# ----- inputs --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "specs, status, allowed",
    [(["200"], 200, True), (["200"], 201, False), (["2xx"], 299, True), (["2xx"], 300, False),
     (["200-204", "404"], 204, True), (["200-204", "404"], 404, True), (["200-204", "404"], 500, False)],
)
def test_status_codes(specs, status, allowed):
    assert health.status_allowed(status, health.parse_status_codes(specs, "p")) is allowed


@pytest.mark.parametrize("bad", ["20x", "2000", "abc", "300-200", ""])
def test_bad_status_codes_name_the_probe(bad):
    with pytest.raises(InvalidInputError, match=r"probe 'p'"):
        health.parse_status_codes([bad], "p")


@pytest.mark.parametrize(
    "raw, message",
    [
        ([{"name": "a", "type": "http", "url": "http://x/"}, {"name": "a", "type": "http", "url": "http://y/"}], "names must be unique, repeated: a"),
        ([{"name": "a", "type": "http", "url": "ftp://x/"}], "is not an http\\(s\\) URL"),
        ([{"name": "a", "type": "http", "url": "http://x/", "body_regex": "("}], "body_regex '\\(' is not a valid regex"),
        ([{"name": "a", "type": "http", "url": "http://x/", "timeout": 0}], "timeout must be positive"),
        ([{"name": "a", "type": "http", "url": "http://x/", "success_threshold": 0}], "success_threshold must be at least 1"),
        ([{"name": "a", "type": "command", "command": ""}], "command is empty"),
    ],
)
def test_prepare_rejects_bad_probes(raw, message):
    with pytest.raises(InvalidInputError, match=message):
        health.prepare_probes(raw, DEFAULTS)


def test_prepare_fills_defaults_and_redacts_credentials():
    prepared = probe(url="https://user:secret@example.com:8443/h", timeout=None)
    assert prepared["timeout"] == 2.0 and prepared["status_codes"] == ["2xx"] and prepared["method"] == "GET"
    assert prepared["_target"] == "https://***@example.com:8443/h"


DOC = {"status": "UP", "checks": [{"name": "db", "latency": 12.5}], "version": 3, "empty": None}


@pytest.mark.parametrize(
    "condition, reason",
    [
        ({"path": "status", "value": "UP"}, None),
        ({"path": "status", "value": "DOWN"}, "JSON status = 'UP', wanted eq 'DOWN'"),
        ({"path": "version", "op": "eq", "value": "3"}, None),
        ({"path": "checks[0].latency", "op": "lt", "value": 20}, None),
        ({"path": "checks[0].latency", "op": "gt", "value": 20}, "JSON checks[0].latency = 12.5, wanted gt 20"),
        ({"path": "checks[-1].name", "op": "in", "value": ["db", "cache"]}, None),
        ({"path": "checks[0].name", "op": "not_in", "value": ["db"]}, "JSON checks[0].name = 'db', wanted not_in ['db']"),
        ({"path": "status", "op": "regex", "value": "^U"}, None),
        ({"path": "checks[3].name", "op": "eq", "value": "x"}, "JSON checks[3].name is missing (wanted eq 'x')"),
        ({"path": "empty", "op": "exists"}, None),
        ({"path": "nope", "op": "absent"}, None),
        ({"path": "status", "op": "absent"}, "JSON status is present ('UP')"),
        ({"path": "status", "op": "lt", "value": 3}, "JSON status = 'UP' cannot be compared with lt 3"),
    ],
)
def test_json_conditions(condition, reason):
    assert health.evaluate_json_condition(DOC, condition) == reason


# ----- HTTP parsing --------------------------------------------------------------------------------
def test_body_cut_at_the_size_limit_is_a_prefix_not_an_error():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n100\r\npedia"
    with pytest.raises(ValueError, match="truncated chunked body"):
        health.parse_http_response(chunked)
    assert health.parse_http_response(chunked, complete=False)[2] == b"Wikipedia"


def test_parse_content_length_and_chunked():
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX: y\r\n\r\nhelloEXTRA"
    assert health.parse_http_response(raw) == (200, {"content-length": "5", "x": "y"}, b"hello")
    chunked = b"HTTP/1.1 503 Busy\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n6;ext=1\r\npedia!\r\n0\r\n\r\n"
    assert health.parse_http_response(chunked)[::2] == (503, b"Wikipedia!")


@pytest.mark.parametrize("raw", [b"HTTP/1.1 200 OK\r\nNo-End", b"SSH-2.0-OpenSSH\r\n\r\n"])
def test_parse_rejects_non_http(raw):
    with pytest.raises(ValueError):
        health.parse_http_response(raw)


# ----- thresholds with a fake clock ----------------------------------------------------------------
class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def scripted(outcomes, clock, cost=0.1):
    calls = iter(outcomes)

    def attempt(_probe):
        clock.now += cost
        ok = next(calls)
        return health.Attempt(ok, 200 if ok else 503, cost, "ok" if ok else "status 503 not in [2xx]")

    return attempt


def run(outcomes, wait=False, deadline=100.0, **settings):
    clock = FakeClock()
    p = dict(probe(url="http://x/"), interval=1.0, **settings)
    return health.run_probe(p, wait, clock() + deadline, attempt=scripted(outcomes, clock), sleep=clock.sleep, clock=clock), clock


def test_rise_needs_consecutive_passes_and_a_failure_resets_it():
    result, _clock = run([True, False, True, True, True], success_threshold=3, failure_threshold=5)
    assert result["healthy"] and result["attempts"] == 5 and result["consecutive_passes"] == 3


def test_fall_needs_consecutive_failures():
    result, _clock = run([False, False, True, False, False, False], success_threshold=2, failure_threshold=3)
    assert not result["healthy"]
    assert result["attempts"] == 6
    assert result["reason"] == "status 503 not in [2xx]"


def test_flapping_endpoint_is_not_healthy():
    result, _clock = run([True, False] * 10, success_threshold=2, failure_threshold=99, deadline=15)
    assert not result["healthy"]
    assert result["reason"].startswith("not healthy within the deadline after")


def test_wait_mode_ignores_failures_until_healthy():
    result, clock = run([False] * 7 + [True, True], wait=True, success_threshold=2, failure_threshold=1)
    assert result["healthy"] and result["attempts"] == 9
    assert clock.now == pytest.approx(9 * 0.1 + 8 * 1.0)


def test_probe_whose_turn_comes_after_the_deadline_is_not_run():
    clock = FakeClock()
    clock.now = 10.0
    p = dict(probe(url="http://x/"), interval=1.0)
    result = health.run_probe(p, False, 9.0, attempt=scripted([], clock), sleep=clock.sleep, clock=clock)
    assert (result["healthy"], result["ran"], result["attempts"], result["reason"]) == (False, False, 0, "not run before the deadline")


def test_an_attempt_cut_short_by_the_deadline_does_not_blame_the_endpoint():
    clock = FakeClock()

    def times_out(current):
        started = health.time.monotonic() - current["timeout"]  # timed_out measures the latency on the real clock
        clock.now += current["timeout"]
        return health.timed_out(current, started)

    p = dict(probe(url="http://x/"), interval=1.0, timeout=2.0)
    result = health.run_probe(p, True, 3.5, attempt=times_out, sleep=clock.sleep, clock=clock)
    assert result["attempts"] == 2 and result["last_reason"] == "no answer in the 0.5s left before the deadline (timeout 2s)"
    assert result["reason"] == "not healthy within the deadline after 2 attempts: no answer in the 0.5s left before the deadline (timeout 2s)"
    result = health.run_probe(p, False, clock.now + 2.0, attempt=times_out, sleep=clock.sleep, clock=clock)
    assert result["reason"] == "timeout after 2s" and result["ran"]
    result = health.run_probe(p, False, clock.now + 0.25, attempt=times_out, sleep=clock.sleep, clock=clock)
    assert (result["ran"], result["attempts"]) == (False, 1), "an attempt started too late to get an answer has not really run"
    assert result["reason"] == "not run before the deadline: it started 0.25s before it, with a timeout of 2s"


def test_wait_mode_stops_at_the_deadline():
    result, clock = run([False] * 100, wait=True, deadline=5.0, failure_threshold=1)
    assert not result["healthy"]
    assert clock.now <= 5.0 + 0.1
    assert "within the deadline" in result["reason"] and "status 503" in result["reason"]


# ----- real sockets --------------------------------------------------------------------------------
@pytest.fixture
def slow_loris():
    with servers.slow_loris() as port:
        yield port


def test_slow_loris_is_bounded_by_the_attempt_timeout(slow_loris):
    p = probe(url=f"http://127.0.0.1:{slow_loris}/", timeout=0.5)
    started = time.monotonic()
    attempt = health.http_attempt(p)
    elapsed = time.monotonic() - started
    assert not attempt.ok and attempt.reason == "timeout after 0.5s"
    assert 0.45 <= elapsed <= 0.5 + health.DEADLINE_MARGIN_S, "the trickle goes on for 20 s: only the attempt's own deadline ends it"


def test_whole_check_is_bounded_by_the_deadline(slow_loris):
    probes = health.prepare_probes(
        [{"name": f"loris{i}", "type": "http", "url": f"http://127.0.0.1:{slow_loris}/"} for i in range(3)],
        dict(DEFAULTS, timeout=5.0),
    )
    started = time.monotonic()
    result = health.HealthCheck(probes, "wait", deadline=0.7, concurrency=3).run()
    assert time.monotonic() - started <= 0.7 + health.DEADLINE_MARGIN_S
    # each one's only attempt was cut short by the deadline (0.7s of a 5s timeout): the endpoint is not blamed
    assert result["summary"] == {"total": 3, "healthy": 0, "unhealthy": 0, "not_run": 3, "elapsed_s": result["summary"]["elapsed_s"]}
    assert re.fullmatch(r"not run before the deadline: it started 0\.\d+s before it, with a timeout of 5s", result["probes"][0]["reason"])
    assert not result["healthy"] and result["failed_probes"] == []


@pytest.fixture
def silent_port():
    """A TCP port that accepts connections (the kernel does) and never says a word."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(256)
    yield server.getsockname()[1]
    server.close()


def test_https_to_a_silent_port_loads_the_ca_store_once_and_ends_within_the_deadline(silent_port, monkeypatch):
    monkeypatch.setattr(health, "_SSL_CONTEXTS", {})
    loads = []
    create = ssl.create_default_context

    def counting(*args, **kwargs):
        loads.append(args)
        return create(*args, **kwargs)

    monkeypatch.setattr(health.ssl, "create_default_context", counting)
    probes = health.prepare_probes([{"name": f"tls{i}", "type": "http", "url": f"https://127.0.0.1:{silent_port}/"} for i in range(32)],
                                   dict(DEFAULTS, timeout=0.4, interval=0.05))
    result = health.HealthCheck(probes, "wait", deadline=1.5, concurrency=32).run()
    assert len(loads) == 1, "the CA store is loaded once per task, not per attempt"
    assert result["summary"]["elapsed_s"] <= 1.5 + health.DEADLINE_MARGIN_S
    for result_probe in result["probes"]:
        assert result_probe["attempts"] >= 2 and result_probe["reason"].startswith("not healthy within the deadline after")
        assert result_probe["reason"].endswith(("timeout after 0.4s", "left before the deadline (timeout 0.4s)")), result_probe["reason"]


def test_a_resolver_that_never_answers_is_bounded_by_the_timeout(monkeypatch):
    release = threading.Event()
    lookups = []

    def silent_getaddrinfo(host, *args, **kwargs):
        lookups.append(host)
        release.wait(10)
        raise socket.gaierror(-3, "Temporary failure in name resolution")

    monkeypatch.setattr(health.socket, "getaddrinfo", silent_getaddrinfo)
    monkeypatch.setattr(health, "RESOLVER", health.Resolver())
    probes = health.prepare_probes(
        [{"name": f"dns{i}", "type": "http", "url": "http://never.sreops.test/"} for i in range(8)]
        + [{"name": "tcp", "type": "tcp", "host": "never.sreops.test", "port": 22}],
        dict(DEFAULTS, timeout=0.3, interval=0.05))
    try:
        result = health.HealthCheck(probes, "wait", deadline=1.0, concurrency=9).run()
    finally:
        release.set()
    assert result["summary"]["elapsed_s"] <= 1.0 + health.DEADLINE_MARGIN_S
    assert all("no answer from the resolver for never.sreops.test" in p["reason"] for p in result["probes"]), result["probes"]
    assert lookups == ["never.sreops.test"], "probes of one host share the lookup in flight"


def test_probes_that_never_got_a_slot_say_so_and_are_not_failures(silent_port, http_server):
    """One slot: the first silent probe times out (0.6s), the second starts with 0.4s of the deadline left and is
    cut short, the healthy ones never get the slot. Only the first is the endpoint's failure."""
    port = http_server()
    raw = [{"name": f"silent{i}", "type": "tcp", "host": "127.0.0.1", "port": silent_port, "expect": "never"} for i in (1, 2)]
    raw += [{"name": f"ok{i}", "type": "http", "url": f"http://127.0.0.1:{port}/"} for i in range(3)]
    result = health.HealthCheck(health.prepare_probes(raw, dict(DEFAULTS, timeout=0.6)), "once", deadline=1.0, concurrency=1).run()
    by_name = {p["name"]: p for p in result["probes"]}
    assert by_name["silent1"]["ran"] and by_name["silent1"]["reason"] == "timeout after 0.6s"
    assert not by_name["silent2"]["ran"] and by_name["silent2"]["attempts"] == 1
    assert re.fullmatch(r"not run before the deadline: it started 0\.\d+s before it, with a timeout of 0\.6s", by_name["silent2"]["reason"])
    for name in ("ok0", "ok1", "ok2"):
        assert (by_name[name]["ran"], by_name[name]["attempts"], by_name[name]["reason"]) == (False, 0, "not run before the deadline")
    assert result["failed_probes"] == ["silent1"] and result["not_run_probes"] == ["silent2", "ok0", "ok1", "ok2"]
    assert result["summary"]["not_run"] == 4 and result["summary"]["unhealthy"] == 1 and not result["healthy"]
    assert result["msg"] == ("1 of 5 probes unhealthy: silent1 (timeout after 0.6s); 4 of 5 probes not run before the deadline "
                             "(1s; raise deadline or concurrency): silent2, ok0, ok1, ok2")


def test_bad_ca_path_is_bad_input(tmp_path):
    probes = health.prepare_probes([{"name": "t", "type": "http", "url": "https://127.0.0.1:1/", "ca_path": str(tmp_path / "nope.pem")}], DEFAULTS)
    with pytest.raises(InvalidInputError, match=r"probe 't': cannot load the CA certificates of ca_path .*nope.pem"):
        health.HealthCheck(probes, "once", deadline=1, concurrency=1).run()


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        body = b'{"status": "UP"}'
        if self.path == "/big-chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"6\r\nstatus\r\n")
            chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
            self.wfile.write(chunk * 40)  # 40 x 64 KiB: 2.5 MiB
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"8\r\n{\"status\r\n8\r\n\": \"UP\"}\r\n0\r\n\r\n")
            return
        if self.path == "/host" and self.headers.get_all("Host") != ["app.test"]:
            self.send_response(400)
        else:
            self.send_response(200 if self.headers.get("Authorization") == "Bearer s3cret" or self.path != "/auth" else 401)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def http_server():
    servers = []

    def start(context=None):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        if context:
            server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server.server_address[1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_http_headers_chunked_and_json(http_server):
    port = http_server()
    ok = health.http_attempt(probe(url=f"http://127.0.0.1:{port}/auth", headers={"Authorization": "Bearer s3cret"},
                                   json_conditions=[{"path": "status", "op": "eq", "value": "UP"}]))
    assert ok.ok and ok.status == 200
    denied = health.http_attempt(probe(url=f"http://127.0.0.1:{port}/auth", status_codes=["200"]))
    assert denied.reason == "status 401 not in [200]"
    host = health.http_attempt(probe(url=f"http://127.0.0.1:{port}/host", headers={"host": "app.test"}))
    assert host.ok, "a Host header given by the user must replace the default one, not be sent twice"
    chunked = health.http_attempt(probe(url=f"http://127.0.0.1:{port}/chunked", body_regex='"UP"'))
    assert chunked.ok, chunked.reason
    big = health.http_attempt(probe(url=f"http://127.0.0.1:{port}/big-chunked", body_regex="^statusx+$"))
    assert big.ok, "a healthy response longer than the 1 MiB we read is judged on what we read: " + big.reason


def test_tls_expiry_and_trust(http_server, tmp_path):
    cert, key = self_signed(str(tmp_path), days=3)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    port = http_server(context)
    url = f"https://127.0.0.1:{port}/"
    untrusted = health.http_attempt(probe(url=url))
    assert not untrusted.ok and untrusted.reason.startswith("TLS certificate not trusted")
    expiring = health.http_attempt(probe(url=url, validate_certs=False, cert_min_days=14))
    assert expiring.reason == "cert expires in 2 days (minimum 14)"
    trusted = health.http_attempt(probe(url=url, ca_path=cert, cert_min_days=2))
    assert trusted.ok, trusted.reason


def test_der_not_after_matches_openssl(tmp_path):
    cert, _key = self_signed(str(tmp_path), days=30)
    der = ssl.PEM_cert_to_DER_cert(open(cert, encoding="ascii").read())
    enddate = subprocess.run(["openssl", "x509", "-noout", "-enddate", "-in", cert], capture_output=True, text=True, check=True)
    expected = ssl.cert_time_to_seconds(enddate.stdout.strip().split("=", 1)[1])
    assert health.der_not_after(der) == expected


def test_tcp_expect_and_command_probes():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)

    def banner():
        conn, _addr = server.accept()
        conn.sendall(b"SSH-2.0-test\r\n")
        conn.close()

    threading.Thread(target=banner, daemon=True).start()
    port = server.getsockname()[1]
    tcp = health.prepare_probes([{"name": "t", "type": "tcp", "host": "127.0.0.1", "port": port, "expect": "^SSH-2"}], DEFAULTS)[0]
    assert health.tcp_attempt(tcp).ok
    server.close()
    refused = health.tcp_attempt(tcp)
    assert refused.reason == "connection refused"

    cmd = health.prepare_probes([{"name": "c", "type": "command", "command": ["sh", "-c", "echo broken >&2; exit 3"]}], DEFAULTS)[0]
    assert health.command_attempt(cmd).reason == "exit status 3, wanted 0: broken"
    hung = health.prepare_probes([{"name": "h", "type": "command", "command": "sleep 5", "timeout": 0.3}], DEFAULTS)[0]
    started = time.monotonic()
    assert health.command_attempt(hung).reason == "timeout after 0.3s"
    assert time.monotonic() - started <= 0.3 + health.DEADLINE_MARGIN_S, "not the 5 s of the sleep"


def test_command_timeout_kills_children_that_hold_the_output_open():
    # The background sleep inherits stdout/stderr: killing only sh would leave the attempt waiting for it.
    marker = f"sleep 7.{os.getpid()}"  # unique on this machine, about 7 s
    hung = health.prepare_probes([{"name": "h", "type": "command", "command": ["sh", "-c", f"{marker} & {marker}"], "timeout": 0.3}],
                                 DEFAULTS)[0]
    started = time.monotonic()
    assert health.command_attempt(hung).reason == "timeout after 0.3s"
    assert time.monotonic() - started < 3, "bounded by the probe's timeout, not by the children's 7 s"
    assert subprocess.run(["pgrep", "-f", marker], capture_output=True, check=False).returncode == 1, "the whole group was killed"
