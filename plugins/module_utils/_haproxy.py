# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: HAProxy runtime API client, stats parsers, server and map managers.

One command per connection, over a UNIX socket or TCP, with a timeout. `changed` is computed from admin
state and weight only, never from live session counts, so a no-op is reported as one. Every
read-decide-write holds a lock on the load balancer host (see lock_path), so concurrent tasks -- one per
app host, delegated to the load balancer -- decide one after the other on what the previous one did.
"""

from __future__ import annotations

import contextlib
import csv
import io
import math
import os
import re
import socket
import time
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError, SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._io import write_atomic
from ansible_collections.sre.ops.plugins.module_utils._lock import PathLock

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# srv_admin_state bits (HAProxy server.h): forced/inherited/config/resolution/hostname maintenance, drain.
ADMF_MAINT = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
ADMF_DRAIN = 0x08 | 0x10
OP_STATES = {0: "stopped", 1: "starting", 2: "running", 3: "stopping"}
# Whether HAProxy changes a server's weight at run time depends on the backend's algorithm and, for the
# hashing ones, on `hash-type` (consistent: yes; map-based, the default: only 0% and 100%), which the
# runtime API does not report. Known answers are used; otherwise HAProxy is asked by trying the change.
DYNAMIC_ALGORITHMS = ("roundrobin", "leastconn", "first", "random")
STATIC_ALGORITHMS = ("static-rr",)
STATIC_WEIGHT_ERROR = "static LB algorithm"
# Where the lock for a TCP runtime API lives (the first directory that exists).
TCP_LOCK_DIRS = ("/run/lock", "/var/lock", "/tmp")
ERROR_PREFIXES = (
    "unknown command", "no such", "permission denied", "require", "missing", "can't", "cannot", "invalid",
    "unknown map", "unknown", "backend is using", "not found", "out of memory", "failed", "error",
)


class HAProxyError(SreOpsError):
    """The runtime API could not be reached, or it refused a command."""


def lock_path(endpoint: str) -> str:
    """The lock file every sre.ops task that changes this HAProxy holds around its read-decide-write.

    Beside a UNIX socket (``<socket>.lock``); for a TCP runtime API, ``sre.ops-haproxy-<host>_<port>.lock`` in
    /run/lock (else /var/lock, else /tmp) of the host the task runs on.
    """
    family, address = parse_endpoint(endpoint)
    if family == socket.AF_UNIX:
        return os.path.abspath(endpoint) + ".lock"
    host, port = address
    directory = next((d for d in TCP_LOCK_DIRS if os.path.isdir(d)), TCP_LOCK_DIRS[-1])
    return os.path.join(directory, "sre.ops-haproxy-" + re.sub(r"[^A-Za-z0-9._-]", "_", f"{host}_{port}") + ".lock")


@contextlib.contextmanager
def change_lock(endpoint: str, timeout: float, purpose: str) -> t.Iterator[None]:
    """Hold the lock of lock_path(endpoint); a lock file that cannot be created (the socket's directory is missing,
    or not writable) is a clear error, not a traceback."""
    path = lock_path(endpoint)
    try:
        lock = PathLock(path, timeout, purpose=purpose).acquire()
    except OSError as exc:
        raise HAProxyError(f"cannot create the lock file {path} of the runtime API at {endpoint}: {exc.strerror or exc}; "
                           "is the socket path right?") from exc
    try:
        yield
    finally:
        lock.release()


def cli_arg(text: str) -> str:
    """One argument of a runtime API command: the CLI splits on spaces and tabs and ends a command at ';'
    unless a backslash escapes them (HAProxy 2.x)."""
    return re.sub(r"([\\ \t;])", r"\\\1", text)


def _unescaped_semicolon(command: str) -> bool:
    escaped = False
    for char in command:
        if escaped:
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ";":
            return True
    return False


def parse_endpoint(endpoint: str) -> tuple[int, t.Any]:
    """A path is a UNIX socket; host:port (or [v6]:port) is TCP."""
    if endpoint.startswith("/") or endpoint.startswith("."):
        return socket.AF_UNIX, endpoint
    match = re.fullmatch(r"\[?([^\[\]]+?)\]?:(\d+)", endpoint)
    if not match:
        raise InvalidInputError(f"socket {endpoint!r} is neither a path to a UNIX socket nor host:port")
    host, port = match.group(1), int(match.group(2))
    return (socket.AF_INET6 if ":" in host else socket.AF_INET), (host, port)


class RuntimeAPI:
    """HAProxy's runtime API (the stats socket at level admin)."""

    def __init__(self, endpoint: str, timeout: float = 5.0) -> None:
        if timeout <= 0:
            raise InvalidInputError(f"timeout must be positive, got {timeout:g}")
        self.endpoint = endpoint
        self.family, self.address = parse_endpoint(endpoint)
        self.timeout = timeout
        self.log: list[str] = []  # commands sent, in order (for results and tests)

    def raw(self, command: str) -> str:
        """Send one command, return HAProxy's whole answer (it closes the connection after answering)."""
        if "\n" in command or "\r" in command or _unescaped_semicolon(command):
            raise InvalidInputError(f"refusing to send a command with a newline or an unescaped ';' in it: {command!r}")
        deadline = time.monotonic() + self.timeout
        data = command + "\n"
        try:
            with socket.socket(self.family, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.address)
                sock.sendall(data.encode())
                chunks = []
                size = 0
                while True:
                    sock.settimeout(max(0.001, deadline - time.monotonic()))
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                    if size > MAX_RESPONSE_BYTES:
                        raise HAProxyError(f"HAProxy at {self.endpoint} answered {command!r} with more than {MAX_RESPONSE_BYTES} bytes")
        except socket.timeout as exc:
            raise HAProxyError(f"HAProxy at {self.endpoint} did not answer {command!r} within {self.timeout:g}s") from exc
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise HAProxyError(f"cannot reach the HAProxy runtime API at {self.endpoint} to send {command!r}: {reason}") from exc
        self.log.append(command)
        return b"".join(chunks).decode("utf-8", errors="replace")

    def show(self, command: str) -> str:
        """A read command: its answer must not be an error message."""
        answer = self.raw(command)
        first = answer.strip().split("\n", 1)[0].strip()
        if first and not first.startswith("#") and first.lower().startswith(ERROR_PREFIXES):
            raise HAProxyError(f"HAProxy at {self.endpoint} refused {command!r}: {first}")
        return answer

    def set(self, command: str) -> str:
        """A write command: HAProxy answers nothing on success (or a known acknowledgement)."""
        answer = self.raw(command).strip()
        if answer and not answer.lower().startswith(("new version created", "done")):
            raise HAProxyError(f"HAProxy at {self.endpoint} refused {command!r}: {answer}")
        return answer


# ----- parsers --------------------------------------------------------------------------------------
def _number(value: str) -> t.Any:
    if value == "":
        return None
    if re.fullmatch(r"-?\d+", value):
        return int(value)
    return value


def parse_stat_csv(text: str) -> list[dict[str, t.Any]]:
    """`show stat` CSV -> one dict per row, numeric fields as int, empty fields as None."""
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines or not lines[0].startswith("# "):
        raise HAProxyError("show stat answer has no '# pxname,svname,...' header")
    header = lines[0][2:].rstrip(",").split(",")
    rows = []
    for record in csv.reader(io.StringIO("\n".join(lines[1:]))):
        row = {name: _number(record[i]) if i < len(record) else None for i, name in enumerate(header)}
        rows.append(row)
    return rows


def parse_servers_state(text: str) -> list[dict[str, t.Any]]:
    """`show servers state` -> one dict per server (the first line is a format version)."""
    lines = [line for line in text.splitlines() if line.strip()]
    header_index = next((i for i, line in enumerate(lines) if line.startswith("# be_id")), None)
    if header_index is None:
        raise HAProxyError("show servers state answer has no '# be_id ...' header")
    header = lines[header_index][2:].split()
    return [{name: _number(value) for name, value in zip(header, line.split())} for line in lines[header_index + 1:]]


def parse_map(text: str) -> list[tuple[str, str]]:
    """`show map <map>` -> [(key, value)] in HAProxy's order (lines are '<ref> <key> <value>')."""
    entries = []
    for line in text.splitlines():
        parts = line.strip().split(None, 2)
        if len(parts) >= 2:
            entries.append((parts[1], parts[2] if len(parts) > 2 else ""))
    return entries


def admin_state(bits: int) -> str:
    if bits & ADMF_MAINT:
        return "maint"
    if bits & ADMF_DRAIN:
        return "drain"
    return "ready"


def _hrsp(row: dict[str, t.Any]) -> dict[str, int]:
    return {f"{c}xx": row.get(f"hrsp_{c}xx") or 0 for c in range(1, 6)} | {"other": row.get("hrsp_other") or 0}


def collect_info(api: RuntimeAPI, backends: list[str] | None = None) -> dict[str, t.Any]:
    """Backends and their servers, merging `show stat` and `show servers state`."""
    stats = parse_stat_csv(api.show("show stat"))
    states = {(s["be_name"], s["srv_name"]): s for s in parse_servers_state(api.show("show servers state"))}
    result: dict[str, t.Any] = {}
    frontends: dict[str, t.Any] = {}
    for row in stats:
        proxy, name = row["pxname"], row["svname"]
        if name == "FRONTEND":
            frontends[proxy] = {"status": row.get("status"), "sessions": row.get("scur"), "total_sessions": row.get("stot"),
                                "requests": row.get("req_tot"), "responses": _hrsp(row)}
            continue
        if backends and proxy not in backends:
            continue
        if name == "BACKEND":
            backend = result.setdefault(proxy, {"servers": {}})
            backend.update({
                "status": row.get("status"), "algorithm": row.get("algo"), "weight": row.get("weight"),
                "sessions": row.get("scur"), "total_sessions": row.get("stot"), "queue": row.get("qcur"),
                "responses": _hrsp(row), "response_time_ms": row.get("rtime"), "connect_time_ms": row.get("ctime"),
                "active_servers": row.get("act"), "backup_servers": row.get("bck"),
            })
            continue
        state = states.get((proxy, name), {})
        server = {
            "backend": proxy,
            "name": name,
            "status": row.get("status"),
            "admin_state": admin_state(state.get("srv_admin_state") or 0),
            "operational_state": OP_STATES.get(state.get("srv_op_state"), "unknown"),
            "weight": state.get("srv_uweight", row.get("weight")),
            "effective_weight": row.get("weight"),
            "initial_weight": state.get("srv_iweight"),
            "address": f"{state.get('srv_addr')}:{state.get('srv_port')}" if state else None,
            "sessions": row.get("scur") or 0,
            "total_sessions": row.get("stot") or 0,
            # HAProxy 2.6 leaves req_tot empty for servers: count the responses it classified instead.
            "requests": row.get("req_tot") if row.get("req_tot") is not None else sum(_hrsp(row).values()),
            "queue": row.get("qcur") or 0,
            "responses": _hrsp(row),
            "response_time_ms": row.get("rtime"),
            "connect_time_ms": row.get("ctime"),
            "check_status": row.get("check_status"),
            "last_change_s": row.get("lastchg"),
            "backup": bool(row.get("bck")),
        }
        server["serving"] = is_serving(server)
        result.setdefault(proxy, {"servers": {}})["servers"][name] = server
    missing = [b for b in backends or [] if b not in result]
    if missing:
        raise HAProxyError(f"no such backend at {api.endpoint}: {', '.join(missing)} (known: {', '.join(sorted(_backend_names(stats)))})")
    return {"backends": result, "frontends": frontends}


def _backend_names(stats: list[dict[str, t.Any]]) -> set[str]:
    return {row["pxname"] for row in stats if row["svname"] == "BACKEND"}


def is_serving(server: dict[str, t.Any]) -> bool:
    """Takes new traffic: admin ready, health not down, weight above zero."""
    status = str(server.get("status") or "")
    healthy = status.startswith("UP") or status == "no check"
    return server["admin_state"] == "ready" and healthy and server["operational_state"] in ("running", "starting") and (server["weight"] or 0) > 0


def serving_after(server: dict[str, t.Any], state: str, weight: int) -> bool:
    """Whether a server takes new traffic right after being set to state and weight.

    Health does not change with the admin state, except that HAProxy puts a server leaving maintenance UP at
    once (its health checks then confirm it or take it down); a drained server's status reads DRAIN while it
    is healthy.
    """
    if state != "ready" or weight <= 0:
        return False
    if server["admin_state"] == "maint":
        return True
    status = str(server.get("status") or "")
    healthy = status.startswith(("UP", "DRAIN")) or status == "no check"
    return healthy and server["operational_state"] in ("running", "starting")


# ----- servers --------------------------------------------------------------------------------------
def parse_weight(spec: str, initial: int, server: str) -> int:
    text = str(spec).strip()
    match = re.fullmatch(r"(\d+)(%?)", text)
    if not match:
        raise InvalidInputError(f"weight {spec!r} is not a number (0-256) or a percentage like 50%")
    value = int(match.group(1))
    if match.group(2):
        if value > 100:
            raise InvalidInputError(f"weight {spec!r}: a percentage of the initial weight may not exceed 100%")
        return int(round(initial * value / 100.0))
    if value > 256:
        raise InvalidInputError(f"weight {spec!r} is above HAProxy's maximum of 256")
    return value


def parse_min_ready(spec: str | None, total: int) -> int:
    if spec is None:
        return 0
    text = str(spec).strip()
    match = re.fullmatch(r"(\d+)(%?)", text)
    if not match:
        raise InvalidInputError(f"min_ready {spec!r} is not a count or a percentage like 50%")
    value = int(match.group(1))
    if match.group(2):
        return math.ceil(total * min(value, 100) / 100.0)
    return value


def share_weight(share: float, count: int, others_weight: int, backend: str) -> dict[str, t.Any]:
    """The weight each of `count` servers needs so that together they get `share` percent of the traffic of
    a backend whose other serving servers' weights sum to `others_weight`.

    count * w / (count * w + others_weight) = share / 100, so w = share * others_weight / (count * (100 - share)),
    rounded half up to a whole weight; `effective` is the share that whole weight gives.
    """
    if not 0 <= share < 100:
        raise InvalidInputError(f"share must be at least 0 and below 100 (percent of the backend's traffic), got {share:g}")
    if share == 0:
        return {"requested": share, "effective": 0.0, "weight": 0, "others_weight": others_weight}
    if others_weight <= 0:
        raise HAProxyError(f"share {share:g}: no other server of backend {backend} takes traffic, so the selected servers would get all "
                           "of it; bring other servers in first, or use state/weight")
    exact = share * others_weight / (count * (100.0 - share))
    weight = int(math.floor(exact + 0.5))

    def effective(w: int) -> float:
        return round(100.0 * count * w / (count * w + others_weight), 2)

    if not 1 <= weight <= 256:
        raise HAProxyError(
            f"share {share:g}: each of the {count} selected servers would need weight {exact:.2f} (the other serving servers of "
            f"backend {backend} weigh {others_weight} together), but HAProxy weights are whole numbers from 1 to 256; "
            f"shares from {effective(1):g}% to {effective(256):g}% are possible here"
        )
    return {"requested": share, "effective": effective(weight), "weight": weight, "others_weight": others_weight}


def _initial(server: dict[str, t.Any]) -> int:
    return server["initial_weight"] if server["initial_weight"] is not None else server["weight"]


class Refused(HAProxyError):
    """A change min_ready refuses; the servers to put back still go back."""

    def __init__(self, msg: str, put_back: list[str], put_back_commands: list[str]) -> None:
        super().__init__(msg)
        self.put_back = put_back
        self.put_back_commands = put_back_commands


class ServerManager:
    """Bring servers of one backend to a wanted admin state and/or weight (or share of the traffic)."""

    def __init__(
        self,
        api: RuntimeAPI,
        backend: str,
        servers: list[str] | None,
        state: str | None,
        weight: str | None,
        min_ready: str | None = None,
        wait: bool = False,
        wait_timeout: float = 60.0,
        wait_interval: float = 0.5,
        check_mode: bool = False,
        sleep: t.Callable[[float], t.Any] = time.sleep,
        clock: t.Callable[[], float] = time.monotonic,
        share: float | None = None,
        lock_timeout: float = 30.0,
        put_back: list[str] | None = None,
    ) -> None:
        if state is None and weight is None and share is None:
            raise InvalidInputError("set at least one of state, weight or share")
        if weight is not None and share is not None:
            raise InvalidInputError("weight and share are mutually exclusive: share computes the weight")
        if wait_timeout < 0:
            raise InvalidInputError(f"wait_timeout must be zero or positive, got {wait_timeout:g}")
        if wait_interval <= 0:
            raise InvalidInputError(f"wait_interval must be positive, got {wait_interval:g}")
        if lock_timeout < 0:
            raise InvalidInputError(f"lock_timeout must be zero or positive, got {lock_timeout:g}")
        if share is not None and not 0 <= share < 100:
            raise InvalidInputError(f"share must be at least 0 and below 100 (percent of the backend's traffic), got {share:g}")
        self.api = api
        self.backend = backend
        self.wanted_servers = list(dict.fromkeys(servers)) if servers else None
        # The rolling handover: the wave before goes back in the same locked step as this one changes, so a rolling
        # update pays one load balancer round trip per wave instead of two, and min_ready counts them as back.
        self.put_back = list(dict.fromkeys(put_back or []))
        self.state = state
        self.weight = weight
        self.share = share
        self.min_ready = min_ready
        self.wait = wait
        self.wait_timeout = wait_timeout
        self.wait_interval = wait_interval
        self.lock_timeout = lock_timeout
        self.check_mode = check_mode
        self.sleep = sleep
        self.clock = clock

    def plan(self) -> tuple[dict[str, t.Any], list[dict[str, t.Any]], dict[str, t.Any] | None]:
        info = collect_info(self.api, [self.backend])
        backend = info["backends"][self.backend]
        servers = backend["servers"]
        names = self.wanted_servers or sorted(servers)
        unknown = [n for n in names if n not in servers]
        if unknown:
            raise HAProxyError(f"backend {self.backend} has no server {', '.join(unknown)} (it has {', '.join(sorted(servers))})")
        missing = [n for n in self.put_back if n not in servers]
        if missing:
            raise HAProxyError(f"put_back: backend {self.backend} has no server {', '.join(missing)} (it has {', '.join(sorted(servers))})")
        both = [n for n in self.put_back if n in names]
        if both:
            raise InvalidInputError(f"put_back and servers both name {', '.join(both)}: a server is either put back or changed"
                                    + ("" if self.wanted_servers else " (servers omitted means every server of the backend)"))
        share = None
        if self.share is not None:
            # The other servers that take traffic once the change is made (backups only do when every active server is
            # down): those serving now, and those put back in the same step, at their initial weight.
            others = [(_initial(s) if n in self.put_back else s["weight"]) for n, s in servers.items()
                      if n not in names and not s["backup"]
                      and (serving_after(s, "ready", _initial(s)) if n in self.put_back else s["serving"])]
            share = share_weight(self.share, len(names), sum(others), self.backend)
        changes = []
        for name in names:
            current = servers[name]
            before = {"state": current["admin_state"], "weight": current["weight"]}
            after = dict(before)
            if self.state is not None:
                after["state"] = self.state
            if self.weight is not None:
                after["weight"] = parse_weight(self.weight, _initial(current), name)
            elif share is not None:
                after["weight"] = share["weight"]
            changes.append({"server": name, "before": before, "after": after, "changed": before != after})
        return backend, changes, share

    def _put_back_changes(self, servers: dict[str, t.Any]) -> list[dict[str, t.Any]]:
        changes = []
        for name in self.put_back:
            before = {"state": servers[name]["admin_state"], "weight": servers[name]["weight"]}
            after = {"state": "ready", "weight": _initial(servers[name])}
            changes.append({"server": name, "before": before, "after": after, "changed": before != after})
        return changes

    def run(self) -> dict[str, t.Any]:
        if self.check_mode:
            # Reads only, and leaves no lock file behind.
            return self._decide()[0]
        with change_lock(self.api.endpoint, self.lock_timeout, f"sre.ops.haproxy_server on backend {self.backend}"):
            try:
                result, commands = self._decide()
            except Refused as refused:
                # The servers put back were never the problem: they go back in even when the change is refused.
                self._apply(refused.put_back_commands, {"servers": [], "algorithm": ""})
                raise HAProxyError(refused.msg + (f" (put back: {', '.join(refused.put_back)})" if refused.put_back else ""),
                                   changed=bool(refused.put_back_commands), commands=refused.put_back_commands) from None
            result["commands"] = self._apply(commands, result)
        if self.wait and self.state in ("drain", "maint"):
            result.update(self._wait_drained([c["server"] for c in result["servers"]]))
        return result

    def _decide(self) -> tuple[dict[str, t.Any], list[str]]:
        backend, changes, share = self.plan()
        servers = backend["servers"]
        put_back = self._put_back_changes(servers)
        ready_before = sum(1 for s in servers.values() if s["serving"])
        after_serving = {name: s["serving"] for name, s in servers.items()}
        for change in put_back + changes:
            after_serving[change["server"]] = serving_after(servers[change["server"]], change["after"]["state"], change["after"]["weight"])
        ready_after = sum(after_serving.values())
        required = parse_min_ready(self.min_ready, len(servers))
        if ready_after < required and ready_after < ready_before:
            taken = [c["server"] for c in changes if servers[c["server"]]["serving"] and not after_serving[c["server"]]]
            back = [c for c in put_back if c["changed"]]
            raise Refused(
                f"refusing: {', '.join(taken)} out of service would leave {ready_after} of {len(servers)} servers of backend "
                f"{self.backend} ready, fewer than min_ready {self.min_ready} ({required}); "
                + ("nothing else was changed" if back and not self.check_mode else "nothing was changed"),
                [c["server"] for c in back], [] if self.check_mode else self._commands(backend, back, []),
            )
        warnings: list[str] = []
        # Servers going back in first, so the backend never has fewer in service than before or after.
        commands = self._commands(backend, [c for c in put_back + changes if c["changed"]], warnings)
        result: dict[str, t.Any] = {
            "changed": bool(commands),
            "backend": self.backend,
            "algorithm": str(backend.get("algorithm") or ""),
            "servers": changes,
            "ready_before": ready_before,
            "ready_after": ready_after,
            "min_ready": required,
            "commands": [],
            "diff": {
                "before": {c["server"]: c["before"] for c in put_back + changes},
                "after": {c["server"]: c["after"] for c in put_back + changes},
            },
        }
        if self.put_back:
            result["put_back"] = put_back
        if share is not None:
            result["share"] = share
        if warnings:
            result["warnings"] = warnings
        return result, commands

    def _commands(self, backend: dict[str, t.Any], changed: list[dict[str, t.Any]], warnings: list[str]) -> list[str]:
        """The runtime API commands, in the order to send them."""
        commands: list[str] = []
        for change in changed:
            target = f"{self.backend}/{change['server']}"
            before, after = change["before"], change["after"]
            # Taking a server out: state first, so it stops getting traffic before its weight matters.
            # Bringing one in: weight first, so it comes back with the intended share.
            steps = []
            if after["weight"] != before["weight"]:
                steps.append(f"set server {target} weight {after['weight']}")
            if after["state"] != before["state"]:
                state_step = f"set server {target} state {after['state']}"
                steps = [state_step] + steps if after["state"] != "ready" else steps + [state_step]
            commands += steps
        servers = backend["servers"]
        # Weights other than 0% and 100% of the initial weight are what a static algorithm refuses.
        unusual = [c for c in changed if c["after"]["weight"] != c["before"]["weight"]
                   and c["after"]["weight"] not in (0, _initial(servers[c["server"]]))]
        algorithm = str(backend.get("algorithm") or "")
        proven_dynamic = algorithm in DYNAMIC_ALGORITHMS or any(s["weight"] not in (0, _initial(s)) for s in servers.values())
        if not unusual or proven_dynamic:
            return commands
        first = unusual[0]
        if algorithm in STATIC_ALGORITHMS:
            raise HAProxyError(self._static_message(algorithm, f"{first['server']} cannot be set to weight {first['after']['weight']}"))
        if self.check_mode:
            warnings.append(
                f"backend {self.backend} balances with '{algorithm}': HAProxy changes its weights at run time only with "
                "'hash-type consistent', which its runtime API does not report. The real run tries the first weight change "
                "before anything else and fails without changing anything if HAProxy refuses it."
            )
        # Ask HAProxy by trying: this weight change goes first, so a refusal leaves everything as it was. Once it
        # is accepted, the backend's algorithm accepts every other weight too.
        probe = f"set server {self.backend}/{first['server']} weight {first['after']['weight']}"
        return [probe] + [c for c in commands if c != probe]

    def _static_message(self, algorithm: str, consequence: str) -> str:
        return (
            f"backend {self.backend} balances with '{algorithm}', a static algorithm here: at run time HAProxy accepts only "
            f"weights of 0% and 100% of each server's initial weight, so {consequence}. Use state drain/maint/ready to move "
            "traffic, or a dynamic algorithm (roundrobin, leastconn, or hash-type consistent); nothing was changed."
        )

    def _apply(self, commands: list[str], result: dict[str, t.Any]) -> list[str]:
        sent: list[str] = []
        for index, command in enumerate(commands):
            try:
                self.api.set(command)
            except HAProxyError as exc:
                if not sent:
                    if STATIC_WEIGHT_ERROR in exc.msg:
                        raise HAProxyError(self._static_message(result["algorithm"], f"it refused {command!r}")) from exc
                    raise HAProxyError(f"{exc.msg}; nothing was changed") from exc
                raise HAProxyError(
                    f"{exc.msg}. The change is half applied: sent {', '.join(repr(c) for c in sent)}; not sent "
                    f"{', '.join(repr(c) for c in commands[index:])}",
                    changed=True, commands=sent, commands_not_sent=commands[index:], servers=result["servers"], backend=self.backend,
                ) from exc
            sent.append(command)
        return sent

    def _wait_drained(self, names: list[str]) -> dict[str, t.Any]:
        """Poll until the servers have no sessions. A server that is DOWN is not waited for (its sessions end
        when they end or time out, not because traffic moved away), but its sessions are reported."""
        started = self.clock()
        while True:
            servers = collect_info(self.api, [self.backend])["backends"][self.backend]["servers"]
            remaining = {n: servers[n]["sessions"] for n in names if servers[n]["sessions"] > 0}
            waiting_for = [n for n in remaining if not str(servers[n]["status"]).startswith("DOWN")]
            waited = self.clock() - started
            if not waiting_for:
                return {"waited_s": round(waited, 3), "sessions_remaining": remaining}
            if waited >= self.wait_timeout:
                return {"waited_s": round(waited, 3), "sessions_remaining": remaining, "wait_timed_out": True}
            self.sleep(min(self.wait_interval, max(0.0, self.wait_timeout - waited)))


# ----- maps -----------------------------------------------------------------------------------------
class MapManager:
    """Ensure entries of a runtime map, optionally persisting them to the map file atomically."""

    def __init__(
        self,
        api: RuntimeAPI,
        map_name: str,
        entries: dict[str, t.Any],
        state: str = "present",
        exclusive: bool = False,
        persist: bool = False,
        check_mode: bool = False,
        lock_timeout: float = 30.0,
    ) -> None:
        if persist and map_name.startswith("#"):
            raise InvalidInputError(f"persist needs the map's file path, not the id {map_name}")
        if lock_timeout < 0:
            raise InvalidInputError(f"lock_timeout must be zero or positive, got {lock_timeout:g}")
        for key, value in entries.items():
            if not key or re.search(r"\s", str(key)):
                raise InvalidInputError(f"entries: map key {key!r} must be non-empty and contain no whitespace")
            if state == "present":
                _check_value(str(key), value)
        self.api = api
        self.map_name = map_name
        self.entries = {str(k): ("" if v is None else str(v)) for k, v in entries.items()}
        self.state = state
        self.exclusive = exclusive
        self.persist = persist
        self.lock_timeout = lock_timeout
        self.check_mode = check_mode

    def desired(self, current: list[tuple[str, str]]) -> list[tuple[str, str]]:
        if self.state == "absent":
            return [(k, v) for k, v in current if k not in self.entries]
        if self.exclusive:
            return sorted(self.entries.items())
        result, seen = [], set()
        for key, value in current:
            if key in seen:
                continue  # duplicates collapse to one entry per key
            seen.add(key)
            result.append((key, self.entries.get(key, value)))
        result += [(k, v) for k, v in self.entries.items() if k not in seen]
        return result

    def run(self) -> dict[str, t.Any]:
        if self.check_mode:
            return self._decide()[0]
        with change_lock(self.api.endpoint, self.lock_timeout, f"sre.ops.haproxy_map on {self.map_name}"):
            result, current, wanted, file_after = self._decide()
            if dict(current) != dict(wanted) or len(current) != len(dict(current)):
                result["commands"] = self._apply(current, wanted)
            if file_after is not None:
                try:
                    write_atomic(self.map_name, file_after.encode())
                except SreOpsError as exc:
                    sent = result["commands"]
                    done = f"the runtime map was changed ({len(sent)} commands), but " if sent else ""
                    raise HAProxyError(f"{done}the map file was not written: {exc.msg}", changed=bool(sent), commands=sent) from exc
        return result

    def _decide(self) -> tuple[dict[str, t.Any], list[tuple[str, str]], list[tuple[str, str]], str | None]:
        current = parse_map(self.api.show(f"show map {self.map_name}"))
        wanted = self.desired(current)
        # Order within a map does not matter for exact-match lookups; duplicate keys do.
        runtime_changed = dict(current) != dict(wanted) or len(current) != len(dict(current))
        file_after = None
        result: dict[str, t.Any] = {
            "changed": runtime_changed,
            "map": self.map_name,
            "entries": dict(wanted),
            "commands": [],
            "diff": {"before": _render(current), "after": _render(wanted), "before_header": f"{self.map_name} (runtime)",
                     "after_header": f"{self.map_name} (runtime)"},
        }
        if self.persist:
            file_before = self._read_file()
            rendered = render_map_file(file_before, wanted)
            result["file_changed"] = rendered != file_before
            result["changed"] = result["changed"] or result["file_changed"]
            file_after = rendered if result["file_changed"] else None
            # The file may differ from the runtime map (keys set without persist, a hand edit): show what is written.
            result["diff"] = [result["diff"], {"before": file_before, "after": rendered, "before_header": f"{self.map_name} (file)",
                                               "after_header": f"{self.map_name} (file)"}]
        return result, current, wanted, file_after

    def _apply(self, current: list[tuple[str, str]], wanted: list[tuple[str, str]]) -> list[str]:
        before, after = dict(current), dict(wanted)
        changed_keys = [k for k in set(before) | set(after) if before.get(k) != after.get(k)]
        duplicates = len(current) != len(before)
        name = cli_arg(self.map_name)
        # `set map`/`del map` read a key starting with # as an entry's reference: such keys go the versioned way.
        if len(changed_keys) == 1 and not duplicates and not changed_keys[0].startswith("#"):
            key = changed_keys[0]
            if key not in after:
                command = f"del map {name} {cli_arg(key)}"
            elif key in before:
                command = f"set map {name} {cli_arg(key)} {cli_arg(after[key])}"
            else:
                command = f"add map {name} {cli_arg(key)} {cli_arg(after[key])}"
            self.api.set(command)
            return [command]
        # Several keys: build a new version of the map and commit it in one step, so traffic never sees
        # half of the change.
        answer = self.api.set(f"prepare map {name}")
        match = re.search(r"(\d+)", answer)
        if not match:
            raise HAProxyError(f"HAProxy at {self.api.endpoint} did not return a version for 'prepare map {self.map_name}': {answer!r}")
        version = match.group(1)
        commands = [f"prepare map {name}"]
        for key, value in wanted:
            command = f"add map @{version} {name} {cli_arg(key)} {cli_arg(value)}"
            self.api.set(command)
            commands.append(command)
        command = f"commit map @{version} {name}"
        self.api.set(command)
        commands.append(command)
        return commands

    def _read_file(self) -> str:
        try:
            with open(self.map_name, encoding="utf-8") as handle:
                return handle.read()
        except FileNotFoundError:
            return ""
        except OSError as exc:
            raise HAProxyError(f"cannot read map file {self.map_name}: {exc.strerror}") from exc


def _check_value(key: str, value: t.Any) -> None:
    text = "" if value is None else str(value)
    if not text or re.search(r"[\r\n]", text):
        raise InvalidInputError(f"entries: value for {key!r} must be a single line of text, not empty")
    if text != text.strip():
        raise InvalidInputError(f"entries: value for {key!r} must not start or end with whitespace (HAProxy drops it when it reads the map)")


def _render(entries: list[tuple[str, str]]) -> str:
    return "".join(f"{k} {v}\n" for k, v in entries)


def render_map_file(existing: str, wanted: list[tuple[str, str]]) -> str:
    """Keep comments and the order of keys already in the file; update, drop and append entries.

    As HAProxy reads a map file: a line is a comment only when its first character is #, blank lines are
    skipped, otherwise the first word (after leading blanks) is the key and the rest of the line the value.
    So a key starting with # is written after a space.
    """
    values = dict(wanted)
    written: set[str] = set()
    lines = []
    for line in existing.splitlines():
        if line.startswith("#") or not line.strip():
            lines.append(line)
            continue
        key = line.split(None, 1)[0]
        if key in values and key not in written:
            lines.append(_map_line(key, values[key]))
            written.add(key)
    lines += [_map_line(k, v) for k, v in wanted if k not in written]
    return "\n".join(lines) + ("\n" if lines else "")


def _map_line(key: str, value: str) -> str:
    return f"{' ' if key.startswith('#') else ''}{key} {value}"
