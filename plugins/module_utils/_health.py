# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: concurrent health probes (HTTP(S), TCP, command) with rise/fall semantics.

Every attempt has a hard deadline that covers all of it: name resolution (in a worker thread, abandoned at
the deadline), connecting, the TLS handshake, sending, and reading with the time left rather than a
per-read timeout, so neither a silent resolver nor an endpoint that trickles bytes (slow-loris) can hold an
attempt past its timeout, and no probe can hold the whole run past its deadline. CA stores are loaded
once per process, not per attempt. Stdlib only: this runs on managed hosts.
"""

from __future__ import annotations

import calendar
import ipaddress
import json
import math
import os
import re
import shlex
import signal
import socket
import ssl
import subprocess
import threading
import time
import typing as t
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError

MAX_BODY_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
NOT_RUN = "not run before the deadline"
MAX_OUTPUT_CHARS = 300
USER_AGENT = "sre.ops-health_check"
JSON_OPS = ("eq", "ne", "lt", "le", "gt", "ge", "in", "not_in", "regex", "exists", "absent")


class AttemptTimeout(Exception):
    """An attempt ran out of time."""


class ResolverTimeout(AttemptTimeout):
    """The resolver did not answer within the attempt's time."""


# ----- inputs ---------------------------------------------------------------------------------------
def parse_status_codes(specs: list[str], probe: str) -> list[tuple[int, int]]:
    """'200', '2xx', '200-299' -> inclusive ranges; anything else is an error naming the probe."""
    ranges = []
    for spec in specs:
        text = str(spec).strip().lower()
        if re.fullmatch(r"[1-5]xx", text):
            low = int(text[0]) * 100
            ranges.append((low, low + 99))
        elif re.fullmatch(r"\d{3}", text):
            ranges.append((int(text), int(text)))
        elif re.fullmatch(r"\d{3}-\d{3}", text):
            low, high = (int(p) for p in text.split("-"))
            if low > high:
                raise InvalidInputError(f"probe {probe!r}: status_codes range {spec!r} is empty")
            ranges.append((low, high))
        else:
            raise InvalidInputError(f"probe {probe!r}: status_codes entry {spec!r} is not like 200, 2xx or 200-299")
    return ranges


def status_allowed(status: int, ranges: list[tuple[int, int]]) -> bool:
    return any(low <= status <= high for low, high in ranges)


def describe_status_codes(specs: list[str]) -> str:
    return "[" + ", ".join(str(s) for s in specs) + "]"


_PATH_TOKEN = re.compile(r"([^.\[\]]+)|\[(-?\d+)\]")


def json_lookup(document: t.Any, path: str) -> tuple[bool, t.Any]:
    """Dotted path with [index] (e.g. checks[0].status) -> (found, value)."""
    value = document
    if path in ("", "."):
        return True, value
    for match in _PATH_TOKEN.finditer(path):
        key, index = match.groups()
        if key is not None:
            if not isinstance(value, dict) or key not in value:
                return False, None
            value = value[key]
        else:
            i = int(index)
            if not isinstance(value, list) or not -len(value) <= i < len(value):
                return False, None
            value = value[i]
    return True, value


def evaluate_json_condition(document: t.Any, condition: dict[str, t.Any]) -> str | None:
    """None if the condition holds, else the reason in words."""
    path, op, expected = condition["path"], condition.get("op") or "eq", condition.get("value")
    found, actual = json_lookup(document, path)
    if op == "exists":
        return None if found else f"JSON {path} is missing"
    if op == "absent":
        return None if not found else f"JSON {path} is present ({actual!r})"
    if not found:
        return f"JSON {path} is missing (wanted {op} {expected!r})"
    try:
        if op == "eq":
            ok = actual == expected or (not isinstance(actual, (dict, list)) and str(actual) == str(expected))
        elif op == "ne":
            ok = actual != expected and str(actual) != str(expected)
        elif op in ("lt", "le", "gt", "ge"):
            a, b = float(actual), float(expected)
            ok = {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]
        elif op in ("in", "not_in"):
            choices = expected if isinstance(expected, list) else [expected]
            inside = actual in choices or str(actual) in [str(c) for c in choices]
            ok = inside if op == "in" else not inside
        else:  # regex
            ok = re.search(str(expected), str(actual)) is not None
    except (TypeError, ValueError):
        return f"JSON {path} = {actual!r} cannot be compared with {op} {expected!r}"
    return None if ok else f"JSON {path} = {actual!r}, wanted {op} {expected!r}"


# ----- results --------------------------------------------------------------------------------------
class Attempt(t.NamedTuple):
    ok: bool
    status: t.Any  # HTTP status, exit code, "connected", or None
    latency: float  # seconds
    reason: str  # "ok" or why it failed
    cut: bool = False  # no answer, and the task's deadline, not the probe's timeout, ended it


def percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(pct / 100.0 * len(ordered))) - 1]


def redact_url(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        parts = parts._replace(netloc=f"***@{host}")
    return urllib.parse.urlunsplit(parts)


# ----- attempts -------------------------------------------------------------------------------------
class _Deadline:
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.end = time.monotonic() + seconds

    def left(self) -> float:
        remaining = self.end - time.monotonic()
        if remaining <= 0:
            raise AttemptTimeout()
        return remaining


class _Lookup:
    """One getaddrinfo call in a daemon thread: a resolver that never answers holds the thread, not the probe."""

    def __init__(self, host: str) -> None:
        self.done = threading.Event()
        self.result: list[t.Any] = []
        self.error: BaseException | None = None
        threading.Thread(target=self._run, args=(host,), daemon=True, name=f"resolve {host}").start()

    def _run(self, host: str) -> None:
        try:
            self.result = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            self.error = exc
        finally:
            self.done.set()


class Resolver:
    """Name resolution bounded by the caller's time. Probes of the same host share one lookup in flight, and
    an answer is kept for the rest of the task; a failed or unanswered lookup is tried again next attempt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: dict[str, _Lookup] = {}
        self._answers: dict[str, list[t.Any]] = {}

    def resolve(self, host: str, port: int, timeout: float) -> list[t.Any]:
        """[(family, type, proto, canonname, sockaddr)] like socket.getaddrinfo, sockaddr with port."""
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            pass
        else:
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            return [(family, socket.SOCK_STREAM, 0, "", (host, port) if family == socket.AF_INET else (host, port, 0, 0))]
        with self._lock:
            answer = self._answers.get(host)
            lookup = None if answer is not None else self._pending.get(host)
            if answer is None and lookup is None:
                lookup = self._pending[host] = _Lookup(host)
        if lookup is not None:
            if not lookup.done.wait(max(0.0, timeout)):
                raise ResolverTimeout()
            with self._lock:
                if self._pending.get(host) is lookup:
                    del self._pending[host]
                if lookup.error is None:
                    self._answers[host] = lookup.result
            if lookup.error is not None:
                raise lookup.error
            answer = lookup.result
        return [(family, kind, proto, name, (address[0], port) + tuple(address[2:])) for family, kind, proto, name, address in answer]


RESOLVER = Resolver()


def _connect(host: str, port: int, deadline: "_Deadline") -> socket.socket:
    """A TCP connection to host:port within the deadline, trying each address the name resolves to."""
    last_error: OSError | None = None
    for family, kind, proto, _canonical, address in RESOLVER.resolve(host, port, deadline.left()):
        sock = socket.socket(family, kind, proto)
        try:
            sock.settimeout(deadline.left())
            sock.connect(address)
            return sock
        except socket.timeout as exc:
            sock.close()
            raise AttemptTimeout() from exc
        except AttemptTimeout:
            sock.close()
            raise
        except OSError as exc:
            sock.close()
            last_error = exc
    raise last_error or OSError(f"{host} has no address")


def _recv_all(sock: socket.socket, deadline: _Deadline, limit: int, stop: t.Callable[[bytes], bool] | None = None) -> bytes:
    data = bytearray()
    while len(data) < limit:
        sock.settimeout(deadline.left())
        try:
            chunk = sock.recv(min(65536, limit - len(data)))
        except socket.timeout as exc:
            raise AttemptTimeout() from exc
        if not chunk:
            break
        data += chunk
        if stop is not None and stop(bytes(data)):
            break
    return bytes(data)


def _decode_chunked(body: bytes, complete: bool = True) -> bytes:
    """De-chunk a body. When reading stopped at our size limit (complete=False), the chunks read so far are
    the body: a healthy response longer than the limit is not an error."""
    out = bytearray()
    pos = 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            if complete:
                raise ValueError("truncated chunked body")
            return bytes(out)
        size = int(body[pos:end].split(b";")[0].strip() or b"0", 16)
        pos = end + 2
        if size == 0:
            return bytes(out)
        if pos + size > len(body) and complete:
            raise ValueError("truncated chunked body")
        out += body[pos:pos + size]
        pos += size + 2


def parse_http_response(raw: bytes, complete: bool = True) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a response. complete=False: reading stopped at the size limit, so the
    body is a prefix of the real one."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError("incomplete HTTP response headers")
    lines = head.decode("iso-8859-1").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ValueError(f"not an HTTP response: {lines[0][:60]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _sep, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _decode_chunked(body, complete)
    elif headers.get("content-length", "").isdigit():
        body = body[: int(headers["content-length"])]
    return int(parts[1]), headers, body


def der_not_after(der: bytes) -> float:
    """notAfter of a DER X.509 certificate as a UNIX time (for certificates that were not verified)."""

    def read(pos: int) -> tuple[int, int, int]:  # -> (tag, content start, content end)
        tag = der[pos]
        length = der[pos + 1]
        pos += 2
        if length & 0x80:
            count = length & 0x7F
            length = int.from_bytes(der[pos:pos + count], "big")
            pos += count
        return tag, pos, pos + length

    _tag, cert_start, _end = read(0)  # Certificate SEQUENCE
    _tag, pos, _end = read(cert_start)  # TBSCertificate SEQUENCE
    fields = []
    while len(fields) < 5:
        tag, start, end = read(pos)
        fields.append((tag, start, end))
        pos = end
    if fields[0][0] == 0xA0:  # explicit [0] version present: validity is the 5th field
        validity = fields[4]
    else:
        validity = fields[3]
    _tag, start, _end = validity
    _tag, start, end = read(start)  # notBefore
    tag, start, end = read(end)  # notAfter
    text = der[start:end].decode("ascii")
    fmt = "%y%m%d%H%M%SZ" if tag == 0x17 else "%Y%m%d%H%M%SZ"
    return float(calendar.timegm(time.strptime(text, fmt)))


_SSL_CONTEXTS: dict[tuple[bool, str | None], ssl.SSLContext] = {}
_SSL_CONTEXTS_LOCK = threading.Lock()


def ssl_context(validate_certs: bool, ca_path: str | None) -> ssl.SSLContext:
    """One context per (validate_certs, ca_path) for the whole process: loading a CA store takes tens of
    milliseconds of CPU, far too much to repeat for every attempt of every probe."""
    key = (validate_certs, ca_path)
    with _SSL_CONTEXTS_LOCK:
        if key not in _SSL_CONTEXTS:
            if validate_certs:
                context = ssl.create_default_context(cafile=ca_path)
            else:
                context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            _SSL_CONTEXTS[key] = context
        return _SSL_CONTEXTS[key]


def http_attempt(probe: dict[str, t.Any], now: t.Callable[[], float] = time.time) -> Attempt:
    deadline = _Deadline(probe["timeout"])
    started = time.monotonic()
    url = urllib.parse.urlsplit(probe["url"])
    host = url.hostname or ""
    port = url.port or (443 if url.scheme == "https" else 80)
    path = (url.path or "/") + (f"?{url.query}" if url.query else "")
    sock: socket.socket | None = None
    try:
        sock = _connect(host, port, deadline)
        cert_days = None
        if url.scheme == "https":
            context = ssl_context(probe["validate_certs"], probe.get("ca_path"))
            # With a timeout set, CPython bounds the whole handshake by it, not each read.
            sock.settimeout(deadline.left())
            sock = context.wrap_socket(sock, server_hostname=host)
            if probe.get("cert_min_days") is not None:
                der = sock.getpeercert(binary_form=True)
                cert_days = (der_not_after(der) - now()) / 86400.0 if der else None
        body = probe.get("body")
        payload = body.encode() if isinstance(body, str) else b""
        headers = {"Host": url.netloc.rpartition("@")[2], "User-Agent": USER_AGENT, "Accept": "*/*"}
        # The user's headers replace the defaults (a duplicate Host header is a 400 at any proxy).
        for name, value in (probe.get("headers") or {}).items():
            for default in [d for d in headers if d.lower() == str(name).lower()]:
                del headers[default]
            headers[str(name)] = str(value)
        headers["Connection"] = "close"
        lines = [f"{probe['method']} {path} HTTP/1.1"] + [f"{k}: {v}" for k, v in headers.items()]
        if payload or probe["method"] in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(payload)}")
        request = ("\r\n".join(lines) + "\r\n\r\n").encode("iso-8859-1") + payload
        sock.settimeout(deadline.left())
        sock.sendall(request)
        limit = MAX_BODY_BYTES + MAX_HEADER_BYTES
        raw = _recv_all(sock, deadline, limit)
        latency = time.monotonic() - started
        status, _headers, content = parse_http_response(raw, complete=len(raw) < limit)
    except ResolverTimeout:
        return timed_out(probe, started, f"no answer from the resolver for {host}")
    except AttemptTimeout:
        return timed_out(probe, started)
    except ssl.SSLCertVerificationError as exc:
        return Attempt(False, None, time.monotonic() - started, f"TLS certificate not trusted: {exc.verify_message}")
    except (OSError, ValueError) as exc:
        if isinstance(exc, socket.timeout):
            return timed_out(probe, started)
        return Attempt(False, None, time.monotonic() - started, _os_reason(exc))
    finally:
        if sock is not None:
            sock.close()
    return Attempt(*_judge_http(probe, status, content, latency, cert_days))


def _judge_http(probe: dict[str, t.Any], status: int, content: bytes, latency: float, cert_days: float | None) -> tuple[bool, int, float, str]:
    if not status_allowed(status, probe["_status_ranges"]):
        return False, status, latency, f"status {status} not in {describe_status_codes(probe['status_codes'])}"
    text = content.decode("utf-8", errors="replace")
    if probe.get("body_regex") and not re.search(probe["body_regex"], text):
        return False, status, latency, f"body did not match {probe['body_regex']!r}"
    if probe.get("body_not_regex") and re.search(probe["body_not_regex"], text):
        return False, status, latency, f"body matched {probe['body_not_regex']!r}"
    if probe.get("json_conditions"):
        try:
            document = json.loads(text)
        except ValueError:
            return False, status, latency, "body is not JSON"
        for condition in probe["json_conditions"]:
            reason = evaluate_json_condition(document, condition)
            if reason:
                return False, status, latency, reason
    if probe.get("max_latency") is not None and latency > probe["max_latency"]:
        return False, status, latency, f"latency {latency:.3f}s over max {probe['max_latency']:g}s"
    if probe.get("cert_min_days") is not None:
        if cert_days is None:
            return False, status, latency, "no TLS certificate to check (cert_min_days needs https)"
        if cert_days < probe["cert_min_days"]:
            return False, status, latency, f"cert expires in {math.floor(cert_days)} days (minimum {probe['cert_min_days']})"
    return True, status, latency, "ok"


def tcp_attempt(probe: dict[str, t.Any]) -> Attempt:
    deadline = _Deadline(probe["timeout"])
    started = time.monotonic()
    try:
        with _connect(probe["host"], probe["port"], deadline) as sock:
            if probe.get("send"):
                sock.settimeout(deadline.left())
                sock.sendall(probe["send"].encode())
            if probe.get("expect"):
                pattern = re.compile(probe["expect"].encode())
                data = _recv_all(sock, deadline, 65536, stop=lambda d: pattern.search(d) is not None)
                if not pattern.search(data):
                    shown = data[:80].decode("utf-8", errors="replace")
                    return Attempt(False, "connected", time.monotonic() - started, f"reply {shown!r} did not match {probe['expect']!r}")
    except ResolverTimeout:
        return timed_out(probe, started, f"no answer from the resolver for {probe['host']}")
    except AttemptTimeout:
        return timed_out(probe, started)
    except OSError as exc:
        if isinstance(exc, socket.timeout):
            return timed_out(probe, started)
        return Attempt(False, None, time.monotonic() - started, _os_reason(exc))
    latency = time.monotonic() - started
    if probe.get("max_latency") is not None and latency > probe["max_latency"]:
        return Attempt(False, "connected", latency, f"latency {latency:.3f}s over max {probe['max_latency']:g}s")
    return Attempt(True, "connected", latency, "ok")


def command_attempt(probe: dict[str, t.Any]) -> Attempt:
    # subprocess rather than AnsibleModule.run_command: a hung check command must be killed at its
    # timeout, and run_command has no timeout. Its own session, so the whole process group is killed: a
    # child left holding the output pipes would otherwise keep the attempt waiting for their end.
    command = probe["command"]
    argv = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    started = time.monotonic()
    try:
        proc = subprocess.Popen(  # pylint: disable=consider-using-with
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
        )
    except OSError as exc:
        return Attempt(False, None, time.monotonic() - started, f"cannot run {argv[0]}: {exc.strerror}")
    try:
        stdout, stderr = proc.communicate(timeout=probe["timeout"])
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        return timed_out(probe, started)
    latency = time.monotonic() - started
    if proc.returncode not in probe["rc"]:
        output = (stderr or stdout).decode("utf-8", errors="replace").strip()[:MAX_OUTPUT_CHARS]
        expected = probe["rc"][0] if len(probe["rc"]) == 1 else probe["rc"]
        return Attempt(False, proc.returncode, latency, f"exit status {proc.returncode}, wanted {expected}" + (f": {output}" if output else ""))
    return Attempt(True, proc.returncode, latency, "ok")


def timed_out(probe: dict[str, t.Any], started: float, what: str = "") -> Attempt:
    """An attempt that got no answer in time. When the task's deadline, not the probe's own timeout, ended it
    (run_probe passes the probe's own as _timeout), it is marked cut and says so rather than blaming the endpoint."""
    full = probe.get("_timeout")
    latency = time.monotonic() - started
    if full is not None and probe["timeout"] < full:
        return Attempt(False, None, latency, f"{what or 'no answer'} in the {probe['timeout']:.3g}s left before the deadline (timeout {full:g}s)", True)
    return Attempt(False, None, latency, f"{what} within {probe['timeout']:g}s" if what else f"timeout after {probe['timeout']:g}s")


def _os_reason(exc: BaseException) -> str:
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve host: {exc.strerror}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


ATTEMPTS: dict[str, t.Callable[[dict[str, t.Any]], Attempt]] = {
    "http": http_attempt,
    "tcp": tcp_attempt,
    "command": command_attempt,
}


# ----- thresholds -----------------------------------------------------------------------------------
def run_probe(
    probe: dict[str, t.Any],
    wait: bool,
    deadline_at: float,
    attempt: t.Callable[[dict[str, t.Any]], Attempt] | None = None,
    sleep: t.Callable[[float], t.Any] = time.sleep,
    clock: t.Callable[[], float] = time.monotonic,
) -> dict[str, t.Any]:
    """Attempt until success_threshold consecutive passes (healthy) or failure_threshold consecutive
    failures (unhealthy; never in wait mode), or until the deadline (unhealthy).

    A probe whose turn comes after the deadline (it waited for a free slot) is not attempted, and one whose
    only attempt the deadline cut short before any answer came has not really run either: both are
    reported as not run before the deadline, never as failures of their endpoint.
    """
    attempt = attempt or ATTEMPTS[probe["type"]]
    rise, fall = probe["success_threshold"], probe["failure_threshold"]
    passes = failures = attempts = 0
    latencies: list[float] = []
    last: Attempt | None = None
    healthy = None
    while True:
        remaining = deadline_at - clock()
        if remaining <= 0:
            break
        # An attempt never outlives the deadline.
        last = attempt(dict(probe, timeout=min(probe["timeout"], remaining), _timeout=probe["timeout"]))
        attempts += 1
        latencies.append(last.latency)
        if last.ok:
            passes, failures = passes + 1, 0
            if passes >= rise:
                healthy = True
                break
        else:
            passes, failures = 0, failures + 1
            if not wait and failures >= fall:
                healthy = False
                break
        if probe["interval"] >= deadline_at - clock():
            break  # the next attempt would start at or after the deadline
        sleep(probe["interval"])
    ran = attempts > 0 and not (attempts == 1 and t.cast(Attempt, last).cut)
    if not ran:
        started_late = f": it started {t.cast(Attempt, last).latency:.3g}s before it, with a timeout of {probe['timeout']:g}s" if attempts else ""
        healthy, reason = False, NOT_RUN + started_late
    elif healthy is None:
        healthy = False
        detail = last.reason if last and not last.ok else f"only {passes} of {rise} consecutive passes"
        reason = f"not healthy within the deadline after {attempts} attempts: {detail}"
    elif healthy:
        reason = "ok"
    else:
        reason = t.cast(Attempt, last).reason
    return {
        "name": probe["name"],
        "type": probe["type"],
        "target": probe["_target"],
        "healthy": healthy,
        "ran": ran,
        "reason": reason,
        "attempts": attempts,
        "consecutive_passes": passes,
        "consecutive_failures": failures,
        "last_status": last.status if last else None,
        "last_reason": last.reason if last else None,
        "latency_ms": {
            "p50": _ms(percentile(latencies, 50)),
            "p95": _ms(percentile(latencies, 95)),
            "max": _ms(max(latencies) if latencies else None),
        },
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000.0, 3)


# ----- the whole check ------------------------------------------------------------------------------
PROBE_DEFAULT_KEYS = ("timeout", "interval", "success_threshold", "failure_threshold")


def prepare_probes(probes: list[dict[str, t.Any]], defaults: dict[str, t.Any]) -> list[dict[str, t.Any]]:
    """Fill per-probe settings from the task-level defaults and check what argument_spec cannot."""
    names = [p["name"] for p in probes]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise InvalidInputError(f"probes: names must be unique, repeated: {', '.join(duplicates)}")
    prepared = []
    for raw in probes:
        probe = {k: v for k, v in raw.items() if v is not None}
        for key in PROBE_DEFAULT_KEYS:
            probe.setdefault(key, defaults[key])
        for key in ("timeout", "interval"):
            if probe[key] <= 0:
                raise InvalidInputError(f"probe {probe['name']!r}: {key} must be positive, got {probe[key]}")
        for key in ("success_threshold", "failure_threshold"):
            if probe[key] < 1:
                raise InvalidInputError(f"probe {probe['name']!r}: {key} must be at least 1, got {probe[key]}")
        kind = probe["type"]
        if kind == "http":
            url = urllib.parse.urlsplit(probe["url"])
            if url.scheme not in ("http", "https") or not url.hostname:
                raise InvalidInputError(f"probe {probe['name']!r}: url {redact_url(probe['url'])!r} is not an http(s) URL")
            probe.setdefault("method", "GET")
            probe.setdefault("validate_certs", True)
            probe.setdefault("status_codes", ["2xx"])
            probe["_status_ranges"] = parse_status_codes(probe["status_codes"], probe["name"])
            for key in ("body_regex", "body_not_regex"):
                _check_regex(probe, key)
            probe["_target"] = redact_url(probe["url"])
        elif kind == "tcp":
            _check_regex(probe, "expect")
            probe["_target"] = f"{probe['host']}:{probe['port']}"
        else:
            probe.setdefault("rc", [0])
            command = probe["command"]
            probe["_target"] = command if isinstance(command, str) else " ".join(shlex.quote(str(a)) for a in command)
            if not (shlex.split(command) if isinstance(command, str) else command):
                raise InvalidInputError(f"probe {probe['name']!r}: command is empty")
        prepared.append(probe)
    return prepared


def _check_regex(probe: dict[str, t.Any], key: str) -> None:
    if probe.get(key):
        try:
            re.compile(probe[key])
        except re.error as exc:
            raise InvalidInputError(f"probe {probe['name']!r}: {key} {probe[key]!r} is not a valid regex: {exc}") from exc


class HealthCheck:
    """Run prepared probes concurrently; one result per probe, in the order given.

    The run ends within its deadline plus DEADLINE_MARGIN_S (collecting results; far less on an idle host):
    every attempt is bounded by the time left, and a probe that gets a slot after the deadline is not run.
    """

    def __init__(self, probes: list[dict[str, t.Any]], mode: str, deadline: float, concurrency: int) -> None:
        if deadline <= 0:
            raise InvalidInputError(f"deadline must be positive, got {deadline}")
        if concurrency < 1:
            raise InvalidInputError(f"concurrency must be at least 1, got {concurrency}")
        self.probes = probes
        self.wait = mode == "wait"
        self.deadline = deadline
        self.concurrency = concurrency

    def run(self) -> dict[str, t.Any]:
        started = time.monotonic()
        deadline_at = started + self.deadline
        load_ssl_contexts(self.probes)
        results: list[dict[str, t.Any] | None] = [None] * len(self.probes)
        lock = threading.Lock()

        def one(index: int) -> None:
            result = run_probe(self.probes[index], self.wait, deadline_at)
            with lock:
                results[index] = result

        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(self.probes)))) as pool:
            for future in [pool.submit(one, i) for i in range(len(self.probes))]:
                future.result()
        done = t.cast(list, results)
        unhealthy = [r for r in done if not r["healthy"] and r["ran"]]
        not_run = [r for r in done if not r["ran"]]
        healthy = len(done) - len(unhealthy) - len(not_run)
        if unhealthy or not_run:
            msg = failure_message(unhealthy, not_run, len(done), self.deadline)
        else:
            msg = f"all {len(done)} probes healthy"
        return {
            "healthy": not unhealthy and not not_run,
            "probes": done,
            "summary": {
                "total": len(done),
                "healthy": healthy,
                "unhealthy": len(unhealthy),
                "not_run": len(not_run),
                "elapsed_s": round(time.monotonic() - started, 3),
            },
            "failed_probes": [r["name"] for r in unhealthy],
            "not_run_probes": [r["name"] for r in not_run],
            "msg": msg,
        }


# What the run may take beyond its deadline, documented in health_check's deadline option.
DEADLINE_MARGIN_S = 1.0


def load_ssl_contexts(probes: list[dict[str, t.Any]]) -> None:
    """Load every CA store the https probes need, once, before any attempt; a bad ca_path is bad input."""
    for probe in probes:
        if probe["type"] == "http" and probe["url"].lower().startswith("https:"):
            try:
                ssl_context(probe["validate_certs"], probe.get("ca_path"))
            except (OSError, ssl.SSLError) as exc:
                reason = getattr(exc, "strerror", None) or getattr(exc, "reason", None) or str(exc)
                raise InvalidInputError(f"probe {probe['name']!r}: cannot load the CA certificates of ca_path {probe.get('ca_path')!r}: {reason}") from exc


def failure_message(unhealthy: list[dict[str, t.Any]], not_run: list[dict[str, t.Any]], total: int, deadline: float) -> str:
    parts = []
    if unhealthy:
        shown = "; ".join(f"{r['name']} ({r['reason']})" for r in unhealthy[:20])
        more = f"; and {len(unhealthy) - 20} more" if len(unhealthy) > 20 else ""
        parts.append(f"{len(unhealthy)} of {total} probes unhealthy: {shown}{more}")
    if not_run:
        names = ", ".join(r["name"] for r in not_run[:20]) + (f" and {len(not_run) - 20} more" if len(not_run) > 20 else "")
        parts.append(f"{len(not_run)} of {total} probes not run before the deadline ({deadline:g}s; raise deadline or concurrency): {names}")
    return "; ".join(parts)
