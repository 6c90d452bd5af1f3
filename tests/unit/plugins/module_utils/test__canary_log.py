# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HAProxy request log lines: parsing every way they are written, and reading exactly a window of them."""

from __future__ import annotations

import os
import socket

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _canary_log as log
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError

# As HAProxy 2.6 writes them with `log stdout format raw` (the fleet) ...
RAW = '127.0.0.1:34126 [03/Dec/2026:07:48:51.897] fe_http be_app/web1 0/0/0/61/62 200 500 - - ---- 4/4/1/1/0 0/0 "GET / HTTP/1.1"'
# ... in a datagram to a socket (syslog header) ...
DATAGRAM = ('<134>Dec  3 07:48:54 haproxy[10763]: 127.0.0.1:34134 [03/Dec/2026:07:48:51.909] fe_http be_app/web2 0/0/-1/-1/3004 503 217 '
            '- - SC-- 1/1/0/0/3 0/0 "GET / HTTP/1.1"')
# ... by rsyslog into /var/log/haproxy.log (traditional and RFC 3339 timestamps), with option httpslog ...
RSYSLOG = ('Dec  3 07:48:55 lb1 haproxy[812]: 10.0.0.7:51234 [03/Dec/2026:07:48:55.001] fe_https~ be_app/web3 0/0/1/2/3 500 210 - - '
           '---- 9/9/2/1/0 0/0 {app.test} "GET /x HTTP/1.1" 0/0000000000000000/0/0/0 app.test/TLSv1.3/TLS_AES_256_GCM_SHA384')
RFC3339 = ('2026-12-03T07:48:56.120431+00:00 lb1 haproxy[812]: 10.0.0.7:51240 [03/Dec/2026:07:48:56.100] fe_http be_app/web4 '
           '0/0/0/-1/1500 -1 0 - - CD-- 3/3/1/1/0 0/0 "GET / HTTP/1.1"')
SERVER_ABORT = ('10.0.0.7:51241 [03/Dec/2026:07:48:56.200] fe_http be_app/web4 0/0/0/-1/30001 -1 0 - - sH-- 3/3/1/1/0 0/0 '
                '"GET / HTTP/1.1"')
NOSRV = '10.0.0.7:51242 [03/Dec/2026:07:48:57.000] fe_http be_app/<NOSRV> 0/-1/-1/-1/0 503 217 - - SC-- 1/1/0/0/0 0/0 "GET / HTTP/1.1"'
TCPLOG = '10.0.0.7:51243 [03/Dec/2026:07:48:57.100] fe_tcp be_db/db1 1/0/5007 212 -- 0/0/0/0/0 0/0'


@pytest.mark.parametrize("line, expected", [
    (RAW, log.Request("be_app", "web1", 200, 61, "----")),
    (DATAGRAM, log.Request("be_app", "web2", 503, None, "SC--")),
    (RSYSLOG, log.Request("be_app", "web3", 500, 2, "----")),
    (RFC3339, log.Request("be_app", "web4", -1, None, "CD--")),
    (SERVER_ABORT, log.Request("be_app", "web4", -1, None, "sH--")),
    (NOSRV, log.Request("be_app", "<NOSRV>", 503, None, "SC--")),
    (TCPLOG, None),
    ("[WARNING]  (812) : Server be_app/web1 is DOWN, reason: Layer4 connection problem", None),
    ("", None),
])
def test_parse_request(line, expected):
    assert log.parse_request(line) == expected


@pytest.mark.parametrize("line, error", [(RAW, False), (DATAGRAM, True), (RSYSLOG, True), (RFC3339, None), (SERVER_ABORT, True)])
def test_server_errors_are_5xx_and_server_side_aborts_while_client_aborts_do_not_count(line, error):
    assert log.is_server_error(log.parse_request(line)) is error


def _append(path, *lines, end="\n"):
    with open(path, "a", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + end)


def test_log_file_reads_only_lines_written_after_start(tmp_path):
    path = str(tmp_path / "haproxy.log")
    _append(path, "before the window 1", "before the window 2")
    reader = log.RequestLogFile(path)
    reader.start()
    try:
        _append(path, "in 1", "in 2")
        _append(path, "in 3 (half", end="")
        assert reader.read() == ["in 1", "in 2"], "a line being written is not complete yet"
        _append(path, " written)")
        assert reader.read() == ["in 3 (half written)"]
        assert reader.read() == []
    finally:
        reader.close()


def test_log_file_follows_a_rename_rotation(tmp_path):
    path = str(tmp_path / "haproxy.log")
    _append(path, "old")
    reader = log.RequestLogFile(path)
    reader.start()
    try:
        _append(path, "a")
        os.rename(path, path + ".1")
        assert reader.read() == ["a"], "moved away, not yet recreated: the old file is still read"
        _append(path + ".1", "b")  # the daemon writes the old file until it reopens
        _append(path, "c")
        assert reader.read() == ["b", "c"]
        _append(path, "d")
        assert reader.read() == ["d"]
    finally:
        reader.close()


def test_log_file_follows_copytruncate(tmp_path):
    path = str(tmp_path / "haproxy.log")
    _append(path, "x" * 100)
    reader = log.RequestLogFile(path)
    reader.start()
    try:
        with open(path, "w", encoding="utf-8"):
            pass
        _append(path, "after truncation")
        assert reader.read() == ["after truncation"]
    finally:
        reader.close()


def test_log_file_errors_name_the_option(tmp_path):
    with pytest.raises(InvalidInputError, match="log_path .*missing.log does not exist"):
        log.RequestLogFile(str(tmp_path / "missing.log")).start()
    with pytest.raises(InvalidInputError, match="is not a regular file"):
        log.RequestLogFile(str(tmp_path)).start()


def _send_unix(path, *messages):
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as client:
        for message in messages:
            client.sendto(message.encode(), path)


def test_unix_socket_receives_while_open_and_is_removed_after(tmp_path):
    path = str(tmp_path / "canary.sock")
    receiver = log.RequestLogSocket(path)
    receiver.start()
    try:
        assert oct(os.stat(path).st_mode & 0o777) == oct(0o622), "HAProxy's own user must be able to send"
        _send_unix(path, DATAGRAM + "\n", RAW)
    finally:
        receiver.close()
    assert receiver.read() == [DATAGRAM, RAW]
    assert not os.path.exists(path), "nobody listens after the window: HAProxy must drop lines again"
    with pytest.raises(OSError):
        _send_unix(path, RAW)


def test_unix_socket_is_never_shared_and_a_stale_one_is_replaced(tmp_path):
    path = str(tmp_path / "canary.sock")
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    stale.bind(path)
    stale.close()  # a killed analysis leaves its socket file behind
    first = log.RequestLogSocket(path)
    first.start()
    try:
        with pytest.raises(InvalidInputError, match="in use by another canary analysis"):
            log.RequestLogSocket(path).start()
        _send_unix(path, RAW)
    finally:
        first.close()
    assert first.read() == [RAW]
    regular = tmp_path / "not-a-socket"
    regular.write_text("keep me")
    with pytest.raises(InvalidInputError, match="exists and is not a socket"):
        log.RequestLogSocket(str(regular)).start()
    assert regular.read_text() == "keep me"


def test_udp_receiver(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    receiver = log.RequestLogSocket(f"127.0.0.1:{port}")
    receiver.start()
    try:
        with pytest.raises(InvalidInputError, match="is in use"):
            log.RequestLogSocket(f"127.0.0.1:{port}").start()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.sendto(DATAGRAM.encode(), ("127.0.0.1", port))
    finally:
        receiver.close()
    assert receiver.read() == [DATAGRAM]


@pytest.mark.parametrize("address, expected", [
    ("/run/haproxy/canary.sock", (socket.AF_UNIX, "/run/haproxy/canary.sock")),
    ("127.0.0.1:5140", (socket.AF_INET, ("127.0.0.1", 5140))),
    ("[::1]:5140", (socket.AF_INET6, ("::1", 5140))),
])
def test_listen_addresses(address, expected):
    assert log.parse_listen_address(address) == expected


@pytest.mark.parametrize("address", ["relative.sock", "127.0.0.1", ":5140", "host:port"])
def test_bad_listen_addresses_name_the_option(address):
    with pytest.raises(InvalidInputError, match="log_socket must be an absolute path"):
        log.parse_listen_address(address)
