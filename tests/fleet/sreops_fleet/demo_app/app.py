# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops demo application: a small stdlib-only HTTP service with deliberately good and bad releases.

Configuration is merged from the release (release.json next to this file: version and fault behaviour)
and the host (/etc/app/app.json: where to listen). Endpoints:
  /healthz  200 "ok" while serving (every release is healthy here, including the faulty ones)
  /version  JSON with version, host and pid
  /         the main endpoint; v3 answers every 5th request with 500, v4 adds 300 ms latency; releases with
            error_ratio answer that share of requests with 500 at random
On SIGTERM it stops accepting, finishes in-flight requests (waiting at most 10 s) and exits. Idle keep-alive
connections (HAProxy keeps some open for reuse) do not hold the shutdown; once stopping, every response
closes its connection.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))


def load_config(release_dir: str, host_config: str) -> dict:
    config = {"listen": "127.0.0.1", "port": 8080, "version": "unknown", "error_every": 0, "error_ratio": 0.0, "extra_latency_ms": 0,
              "healthz_status": 200}
    for path in (os.path.join(release_dir, "release.json"), host_config):
        try:
            with open(path, encoding="utf-8") as handle:
                config.update(json.load(handle))
        except FileNotFoundError:
            pass
    return config


class App:
    def __init__(self, config: dict) -> None:
        self.config = config
        self.hostname = socket.gethostname()
        self.counter = 0
        self.lock = threading.Lock()
        self.inflight = 0
        self.stopping = threading.Event()

    def enter(self) -> None:
        with self.lock:
            self.inflight += 1

    def leave(self) -> None:
        with self.lock:
            self.inflight -= 1

    def drain(self, timeout: float) -> None:
        """Wait until no request is being processed (idle keep-alive connections do not count)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if self.inflight <= 0:
                    return
            time.sleep(0.01)

    def next_request_fails(self) -> bool:
        ratio = float(self.config.get("error_ratio") or 0.0)
        if ratio > 0:
            return random.random() < ratio
        every = int(self.config.get("error_every") or 0)
        if every <= 0:
            return False
        with self.lock:
            self.counter += 1
            return self.counter % every == 0


def make_handler(app: App) -> type:
    class Handler(BaseHTTPRequestHandler):
        server_version = "sre-ops-demo"
        protocol_version = "HTTP/1.1"
        timeout = 30  # idle keep-alive connections are closed after this many seconds

        def log_message(self, format: str, *args: object) -> None:  # pylint: disable=redefined-builtin
            return  # per-request logging would dominate the benchmarks

        def _send(self, status: int, body: dict) -> None:
            payload = (json.dumps(body, sort_keys=True) + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("X-App-Version", str(app.config["version"]))
            self.send_header("X-App-Host", app.hostname)
            if app.stopping.is_set():
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def do_HEAD(self) -> None:  # pylint: disable=invalid-name
            self.do_GET()

        def do_GET(self) -> None:  # pylint: disable=invalid-name
            app.enter()
            try:
                self._get()
            finally:
                app.leave()

        def _get(self) -> None:
            path = self.path.split("?", 1)[0]
            identity = {"version": app.config["version"], "host": app.hostname, "pid": os.getpid()}
            if path == "/healthz":
                status = int(app.config.get("healthz_status") or 200)
                self._send(status, {"status": "ok" if status == 200 else "unhealthy", **identity})
            elif path == "/version":
                self._send(200, identity)
            elif path == "/":
                latency = int(app.config.get("extra_latency_ms") or 0)
                if latency:
                    time.sleep(latency / 1000.0)
                if app.next_request_fails():
                    self._send(500, {"error": "injected failure", **identity})
                else:
                    self._send(200, {"message": "hello from the sre.ops demo", **identity})
            else:
                self._send(404, {"error": "not found", "path": path})

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host-config", default="/etc/app/app.json")
    parser.add_argument("--pidfile", default="")
    args = parser.parse_args()

    app = App(load_config(HERE, args.host_config))
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer((app.config["listen"], int(app.config["port"])), make_handler(app))
    # Request threads are daemons so idle keep-alive connections cannot keep the process alive;
    # in-flight requests are waited for explicitly below.
    server.daemon_threads = True

    def stop(_signum: int, _frame: object) -> None:
        app.stopping.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    if args.pidfile:
        tmp = f"{args.pidfile}.{os.getpid()}"
        with open(tmp, "w", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
        os.replace(tmp, args.pidfile)
    try:
        server.serve_forever(poll_interval=0.1)
        app.drain(timeout=10.0)
    finally:
        server.server_close()
        if args.pidfile:
            try:
                with open(args.pidfile, encoding="ascii") as handle:
                    if handle.read().strip() == str(os.getpid()):
                        os.unlink(args.pidfile)
            except FileNotFoundError:
                pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
