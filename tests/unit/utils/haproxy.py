# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A real HAProxy for unit tests: runtime API on a UNIX socket, no listening TCP port, servers never contacted."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
import typing as t

import pytest

# name -> balance lines. Every backend has web1..web4 at weight 100 without health checks ("no check").
BACKENDS = {
    "be_app": ["balance roundrobin"],
    "be_static_rr": ["balance static-rr"],
    "be_source": ["balance source"],
    "be_source_consistent": ["balance source", "hash-type consistent"],
    "be_uri_consistent": ["balance uri", "hash-type consistent"],
    "be_hash": ["balance hash req.hdr(host)"],
}


def api(socket_path: str, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(socket_path)
        sock.sendall(command.encode() + b"\n")
        data = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return data.decode()
            data += chunk


@contextlib.contextmanager
def running_haproxy(directory: str, map_text: str = "app.test be_app\n") -> t.Iterator[dict[str, str]]:
    """Start HAProxy in the foreground; yield {"socket": ..., "map": ...}; stop it."""
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not os.path.exists(binary):
        pytest.skip("haproxy is not installed")
    sock, map_path, frontend = (os.path.join(directory, n) for n in ("admin.sock", "hosts.map", "fe.sock"))
    with open(map_path, "w", encoding="utf-8") as handle:
        handle.write(map_text)
    lines = ["global", f"    stats socket {sock} mode 600 level admin", "defaults", "    mode http", "    timeout connect 1s",
             "    timeout client 5s", "    timeout server 5s", "frontend fe", f"    bind unix@{frontend}",
             f"    use_backend %[req.hdr(host),map({map_path},be_app)]"]
    for name, balance in BACKENDS.items():
        lines += [f"backend {name}"] + [f"    {line}" for line in balance]
        lines += [f"    server web{i} 127.0.0.1:{i} weight 100" for i in range(1, 5)]
    config = os.path.join(directory, "haproxy.cfg")
    with open(config, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    with open(os.path.join(directory, "haproxy.log"), "wb") as log:
        proc = subprocess.Popen([binary, "-db", "-f", config], stdout=log, stderr=log, stdin=subprocess.DEVNULL)  # pylint: disable=consider-using-with
    try:
        end = time.monotonic() + 10
        while True:
            try:
                api(sock, "show info")
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > end:
                    with open(os.path.join(directory, "haproxy.log"), encoding="utf-8", errors="replace") as handle:
                        raise RuntimeError(f"haproxy did not start: {handle.read()}") from None
                time.sleep(0.01)
        yield {"socket": sock, "map": map_path}
    finally:
        proc.terminate()
        proc.wait(10)


def weights(socket_path: str, backend: str) -> dict[str, tuple[int, int]]:
    """server -> (admin state bits, user weight) from `show servers state`."""
    result = {}
    for line in api(socket_path, f"show servers state {backend}").splitlines():
        parts = line.split()
        if len(parts) > 8 and parts[1] == backend:
            result[parts[3]] = (int(parts[6]), int(parts[7]))
    return result
