# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Misbehaving servers for tests."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import typing as t


@contextlib.contextmanager
def slow_loris(address: str = "127.0.0.1", every: float = 0.1, limit: float = 20.0) -> t.Iterator[int]:
    """An HTTP endpoint that starts a response and then sends one header line every `every` seconds, never
    finishing (each connection is bounded at `limit` seconds). Yields the port."""
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((address, 0))
    server.listen(16)
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        end = time.monotonic() + limit
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.is_set() and time.monotonic() < end:
                conn.sendall(b"X-Slow: 1\r\n")
                time.sleep(every)
        except OSError:
            pass
        finally:
            conn.close()

    def serve() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                conn, _addr = server.accept()
            except socket.timeout:
                continue
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1]
    finally:
        stop.set()
        thread.join()
        server.close()
