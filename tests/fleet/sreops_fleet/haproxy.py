# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""HAProxy configuration for the fleet's load balancer."""

from __future__ import annotations

BACKEND_ALL = "be_app"
BACKEND_BLUE = "be_blue"
BACKEND_GREEN = "be_green"
BACKEND_STATIC = "be_static"  # balance source: a static algorithm, weights only 0% or 100% at run time

# Host header -> backend. app.test reaches every app server; www.test is the blue/green switch.
DEFAULT_MAP = {"app.test": BACKEND_ALL, "www.test": BACKEND_BLUE}


def render_map(entries: dict[str, str] | None = None) -> str:
    entries = DEFAULT_MAP if entries is None else entries
    return "".join(f"{key} {value}\n" for key, value in sorted(entries.items()))


def _backend(name: str, servers: list[tuple[str, str, int]], balance: str = "roundrobin") -> str:
    lines = [
        f"backend {name}",
        f"    balance {balance}",
        "    option httpchk GET /healthz",
        "    http-check expect status 200",
        "    http-response set-header X-Served-By %s",
        "    default-server inter 500ms fastinter 250ms downinter 500ms rise 2 fall 2 weight 100",
    ]
    lines += [f"    server {sname} {address}:{port} check" for sname, address, port in servers]
    return "\n".join(lines) + "\n"


def render_logging(log_socket: str | None) -> str:
    """`global` lines that log every request (option httplog, in `defaults`) where canary analysis reads it.

    stdout: HAProxy runs in the foreground and the fleet sends its stdout to a file, the way rsyslog writes
    /var/log/haproxy.log on a typical load balancer. log_socket: a UNIX datagram socket nobody listens on until
    sre.ops.canary_analysis binds it for its window (HAProxy drops lines while no one listens).
    """
    lines = ["    log stdout format raw local0"]
    if log_socket:
        lines.append(f"    log {log_socket} len 8192 local0")
    return "\n".join(lines) + "\n"


def render_config(
    *,
    lb_address: str,
    http_port: int,
    stats_port: int,
    api_port: int,
    socket_path: str,
    map_path: str,
    servers: list[tuple[str, str, int]],
    log_socket: str | None = None,
) -> str:
    half = max(1, len(servers) // 2)
    return f"""\
# Written by tests/fleet. The runtime API is on the UNIX socket and on TCP {lb_address}:{api_port}.
global
    stats socket {socket_path} mode 600 level admin
    stats socket ipv4@{lb_address}:{api_port} level admin
    stats timeout 30s
    maxconn 4096
{render_logging(log_socket)}
defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-request 10s
    retries 2
    option redispatch 1

frontend fe_http
    bind {lb_address}:{http_port}
    use_backend %[req.hdr(host),field(1,:),lower,map({map_path},{BACKEND_ALL})]
    default_backend {BACKEND_ALL}

frontend fe_stats
    bind {lb_address}:{stats_port}
    http-request use-service prometheus-exporter if {{ path /metrics }}
    stats enable
    stats uri /stats
    stats refresh 5s

{_backend(BACKEND_ALL, servers)}
{_backend(BACKEND_BLUE, servers[:half])}
{_backend(BACKEND_GREEN, servers[half:] or servers[:half])}
{_backend(BACKEND_STATIC, servers, balance="source")}"""
