# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""500 HTTP endpoints on loopback: one sre.ops.health_check task versus an ansible.builtin.uri loop.

Both playbooks run against localhost (connection local) in the same run, against the same local server
(started here), and are timed end to end (ansible-playbook wall time). The probing time reported by
health_check itself (summary.elapsed_s) is printed too.

Usage: python benchmarks/health_check_vs_uri.py [--endpoints 500] [--skip-uri]
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802 - http.server's naming
        body = json.dumps({"status": "ok", "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    # socketserver's default backlog of 5 drops concurrent SYNs, which then wait a 1 s retransmit;
    # real servers listen with a deep backlog.
    request_queue_size = 1024
    daemon_threads = True


def playbook(task: dict) -> list:
    return [{"name": "benchmark", "hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [task]}]


def timed(path: str, env: dict) -> tuple[float, str]:
    started = time.perf_counter()
    proc = subprocess.run(["ansible-playbook", "-i", "localhost,", path, "-v"], capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - started
    if proc.returncode != 0:
        sys.exit(f"{path} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-2000:]}")
    return elapsed, proc.stdout


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--endpoints", type=int, default=500)
    parser.add_argument("--skip-uri", action="store_true", help="only run sre.ops.health_check (the uri loop takes minutes)")
    args = parser.parse_args()

    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    urls = [f"http://127.0.0.1:{server.server_address[1]}/endpoint/{i}" for i in range(args.endpoints)]

    env = dict(os.environ, ANSIBLE_PYTHON_INTERPRETER=sys.executable, ANSIBLE_STDOUT_CALLBACK="default")
    with tempfile.TemporaryDirectory() as tmp:
        ours = os.path.join(tmp, "health_check.yml")
        with open(ours, "w", encoding="utf-8") as handle:
            json.dump(playbook({"name": "probe all", "sre.ops.health_check": {
                "concurrency": 64, "probes": [{"name": f"e{i}", "url": u, "json_conditions": [{"path": "status", "value": "ok"}]}
                                              for i, u in enumerate(urls)]}}), handle)
        theirs = os.path.join(tmp, "uri.yml")
        with open(theirs, "w", encoding="utf-8") as handle:
            json.dump(playbook({"name": "probe all", "ansible.builtin.uri": {"url": "{{ item }}", "return_content": True},
                                "register": "r", "failed_when": "r.json.status != 'ok'", "loop": urls}), handle)

        ours_s, output = timed(ours, env)
        probing = json.loads(output[output.index("=> {"):].split("\n\nPLAY RECAP")[0][3:]) if "=> {" in output else {}
        probe_s = probing.get("summary", {}).get("elapsed_s")
        print(f"endpoints: {args.endpoints} on loopback")
        print(f"{'approach':<44}{'wall s':>10}")
        print(f"{'sre.ops.health_check (one task)':<44}{ours_s:>10.2f}")
        print(f"{'  of which probing (summary.elapsed_s)':<44}{probe_s:>10.3f}" if probe_s is not None else "")
        if not args.skip_uri:
            theirs_s, _output = timed(theirs, env)
            print(f"{'ansible.builtin.uri loop':<44}{theirs_s:>10.2f}")
            print(f"ratio (uri loop / health_check, playbook wall time): {theirs_s / ours_s:.0f}x")
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
