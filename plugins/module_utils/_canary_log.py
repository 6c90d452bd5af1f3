# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: HAProxy's per-request log lines, read for exactly the canary analysis window.

HAProxy's `option httplog` line carries the backend/server that answered, the timers and the status:

    10.0.1.2:33317 [06/Feb/2009:12:14:14.655] http-in be_app/web1 10/0/30/69/109 200 2750 - - ---- 1/1/1/1/0 0/0 "GET / HTTP/1.1"

`option httpslog` lines start the same way. Lines are found anywhere in what a syslog daemon writes (any
header before them), in a datagram HAProxy sends, or in HAProxy's own `log stdout`.

A request belongs to the window when its line is written during the window (HAProxy logs a request when it
ends). Two ways to get them on the load balancer:
- RequestLogFile: a file a syslog daemon writes (Debian's haproxy + rsyslog: /var/log/haproxy.log); read from
  its size at the start, following a rotation (rename or copytruncate) during the window.
- RequestLogSocket: a UNIX datagram socket path, or a UDP host:port, HAProxy has a `log` line for; bound only
  for the window (HAProxy drops lines nobody listens to), under a lock so two analyses cannot share it.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import socket
import stat
import threading
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError

HTTPLOG = re.compile(
    r"\[\d{2}/\w{3}/\d{4}:\d{2}:\d{2}:\d{2}\.\d{3}\] \S+ (?P<backend>[^\s/]+)/(?P<server>\S+) "
    r"-?\d+/-?\d+/-?\d+/(?P<tr>-?\d+)/\+?-?\d+ (?P<status>-?\d+) \+?\d+ \S+ \S+ (?P<term>\S{4}) "
)
_MAX_LINE = 65536


class Request(t.NamedTuple):
    backend: str
    server: str
    status: int  # -1 when no response was sent
    response_ms: int | None  # Tr: from the request sent to the server to its response headers; None if none came
    termination: str  # the four termination state characters, e.g. "----", "SC--", "CD--"


def parse_request(line: str) -> Request | None:
    """The request an httplog line describes, or None for any other line."""
    match = HTTPLOG.search(line)
    if not match:
        return None
    response_ms = int(match["tr"])
    return Request(match["backend"], match["server"], int(match["status"]), response_ms if response_ms >= 0 else None, match["term"])


def is_server_error(request: Request) -> bool | None:
    """True for a 5xx or a server-side abort, False for an answer, None when the client gave up first."""
    if request.status >= 500:
        return True
    if request.status >= 0:
        return False
    return True if request.termination[:1] in ("S", "s") else None


class RequestLogFile:
    """The complete lines a syslog daemon appends to `path` between start() and read()."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._handle: t.BinaryIO | None = None
        self._inode: tuple[int, int] | None = None
        self._partial = b""

    def start(self) -> None:
        try:
            if not stat.S_ISREG(os.stat(self.path).st_mode):
                raise InvalidInputError(f"log_path {self.path} is not a regular file")
            handle = open(self.path, "rb")  # pylint: disable=consider-using-with
        except FileNotFoundError:
            raise InvalidInputError(f"log_path {self.path} does not exist: point it at the file your syslog daemon writes HAProxy's "
                                    "request log to (e.g. /var/log/haproxy.log)") from None
        except OSError as exc:
            raise InvalidInputError(f"log_path {self.path} cannot be read: {exc.strerror}") from None
        info = os.fstat(handle.fileno())
        handle.seek(0, os.SEEK_END)
        self._handle, self._inode = handle, (info.st_dev, info.st_ino)

    def read(self) -> list[str]:
        """Lines written since the last read; after a rotation, the rest of the old file and the new one."""
        handle = t.cast(t.BinaryIO, self._handle)
        position = handle.tell()
        if os.fstat(handle.fileno()).st_size < position:  # truncated in place (copytruncate)
            handle.seek(0)
        data = handle.read()
        try:
            info = os.stat(self.path)
            rotated = (info.st_dev, info.st_ino) != self._inode
        except FileNotFoundError:
            rotated = False  # moved away and not yet recreated: keep reading the old file
        if rotated:
            handle.close()
            handle = open(self.path, "rb")  # pylint: disable=consider-using-with
            info = os.fstat(handle.fileno())
            self._handle, self._inode = handle, (info.st_dev, info.st_ino)
            data += handle.read()
        return self._lines(data)

    def _lines(self, data: bytes) -> list[str]:
        data = self._partial + data
        complete, _newline, self._partial = data.rpartition(b"\n")
        if len(self._partial) > _MAX_LINE:
            self._partial = b""
        return complete.decode("utf-8", errors="replace").splitlines() if complete else []

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def parse_listen_address(address: str) -> tuple[int, t.Any]:
    """'/path/x.sock' -> UNIX datagram; 'host:port' or '[v6]:port' -> UDP."""
    if address.startswith("/"):
        return socket.AF_UNIX, address
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise InvalidInputError(f"log_socket must be an absolute path (UNIX datagram socket) or host:port (UDP), got {address!r}")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return family, (host, int(port))


class RequestLogSocket:
    """Receives HAProxy's log datagrams on `address` from start() until close()."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.family, self.target = parse_listen_address(address)
        self._sock: socket.socket | None = None
        self._lock_handle: t.TextIO | None = None
        self._lines: list[str] = []
        self._guard = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        sock = socket.socket(self.family, socket.SOCK_DGRAM)
        try:
            if self.family == socket.AF_UNIX:
                self._claim_path()
            sock.bind(self.target)
            if self.family == socket.AF_UNIX:
                # HAProxy often runs as its own user: it needs write permission to send.
                os.chmod(self.target, 0o622)
        except OSError as exc:
            sock.close()
            self._release()
            if exc.errno == errno.EADDRINUSE:
                raise InvalidInputError(f"log_socket {self.address} is in use (another canary analysis or a syslog daemon listens there)") from None
            raise InvalidInputError(f"cannot listen on log_socket {self.address}: {exc.strerror}") from None
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
        except OSError:
            pass  # the kernel's limit applies
        sock.settimeout(0.1)
        self._sock = sock
        self._thread = threading.Thread(target=self._receive, name="canary-log", daemon=True)
        self._thread.start()

    def _claim_path(self) -> None:
        lock_path = f"{self.target}.lock"
        try:
            handle = open(lock_path, "a", encoding="utf-8")  # pylint: disable=consider-using-with
        except OSError as exc:
            raise InvalidInputError(f"cannot create the lock {lock_path} for log_socket: {exc.strerror}") from None
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            raise InvalidInputError(f"log_socket {self.address} is in use by another canary analysis (it holds {lock_path})") from None
        self._lock_handle = handle
        try:
            info = os.lstat(self.target)
        except FileNotFoundError:
            return
        if not stat.S_ISSOCK(info.st_mode):
            self._release()
            raise InvalidInputError(f"log_socket {self.address} exists and is not a socket; refusing to replace it")
        # A socket left by a killed analysis: the lock proves no analysis uses it now.
        os.unlink(self.target)

    def _receive(self) -> None:
        sock = t.cast(socket.socket, self._sock)
        while not self._stop.is_set():
            try:
                data = sock.recv(_MAX_LINE)
            except socket.timeout:
                continue
            except OSError:
                return
            text = data.decode("utf-8", errors="replace")
            with self._guard:
                self._lines.extend(text.splitlines())

    def read(self) -> list[str]:
        with self._guard:
            lines, self._lines = self._lines, []
        return lines

    def close(self) -> None:
        """Stop listening, collect what was queued, and remove the socket (so HAProxy drops lines again)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._sock is not None:
            self._sock.setblocking(False)
            try:
                while True:
                    data = self._sock.recv(_MAX_LINE)
                    with self._guard:
                        self._lines.extend(data.decode("utf-8", errors="replace").splitlines())
            except OSError:
                pass
            self._sock.close()
            self._sock = None
            if self.family == socket.AF_UNIX:
                try:
                    os.unlink(self.target)
                except FileNotFoundError:
                    pass
        self._release()

    def _release(self) -> None:
        if self._lock_handle is not None:
            self._lock_handle.close()  # closing drops the flock
            self._lock_handle = None
