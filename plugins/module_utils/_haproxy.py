# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: HAProxy runtime API client, stats parsers, server and map managers.

One command per connection, over a UNIX socket or TCP, with a timeout. `changed` is computed from admin
state and weight only, never from live session counts, so a no-op is reported as one.
"""

from __future__ import annotations

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

MAX_RESPONSE_BYTES = 64 * 1024 * 1024
# srv_admin_state bits (HAProxy server.h): forced/inherited/config/resolution/hostname maintenance, drain.
ADMF_MAINT = 0x01 | 0x02 | 0x04 | 0x20 | 0x40
ADMF_DRAIN = 0x08 | 0x10
OP_STATES = {0: "stopped", 1: "starting", 2: "running", 3: "stopping"}
# Algorithms whose weights are fixed at start-up with the default (map-based) hash-type: the runtime API
# accepts only 0% and 100% for them.
STATIC_ALGORITHMS = ("static-rr", "source", "uri", "url_param", "hdr", "rdp-cookie")
STATIC_WEIGHT_ERROR = "static LB algorithm"
ERROR_PREFIXES = (
    "unknown command", "no such", "permission denied", "require", "missing", "can't", "cannot", "invalid",
    "unknown map", "unknown", "backend is using", "not found", "out of memory", "failed", "error",
)


class HAProxyError(SreOpsError):
    """The runtime API could not be reached, or it refused a command."""


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
        self.endpoint = endpoint
        self.family, self.address = parse_endpoint(endpoint)
        self.timeout = timeout
        self.log: list[str] = []  # commands sent, in order (for results and tests)

    def raw(self, command: str) -> str:
        """Send one command, return HAProxy's whole answer (it closes the connection after answering)."""
        if "\n" in command or ";" in command:
            raise InvalidInputError(f"refusing to send a command with a newline or ';' in it: {command!r}")
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


class ServerManager:
    """Bring servers of one backend to a wanted admin state and/or weight."""

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
    ) -> None:
        if state is None and weight is None:
            raise InvalidInputError("set at least one of state or weight")
        self.api = api
        self.backend = backend
        self.wanted_servers = servers
        self.state = state
        self.weight = weight
        self.min_ready = min_ready
        self.wait = wait
        self.wait_timeout = wait_timeout
        self.wait_interval = wait_interval
        self.check_mode = check_mode
        self.sleep = sleep
        self.clock = clock

    def plan(self) -> tuple[dict[str, t.Any], list[dict[str, t.Any]]]:
        info = collect_info(self.api, [self.backend])
        backend = info["backends"][self.backend]
        servers = backend["servers"]
        names = self.wanted_servers or sorted(servers)
        unknown = [n for n in names if n not in servers]
        if unknown:
            raise HAProxyError(f"backend {self.backend} has no server {', '.join(unknown)} (it has {', '.join(sorted(servers))})")
        changes = []
        for name in names:
            current = servers[name]
            after = {"state": current["admin_state"], "weight": current["weight"]}
            if self.state is not None:
                after["state"] = self.state
            if self.weight is not None:
                after["weight"] = parse_weight(self.weight, current["initial_weight"] or current["weight"], name)
                self._check_static(backend, current, after["weight"])
            before = {"state": current["admin_state"], "weight": current["weight"]}
            changes.append({"server": name, "before": before, "after": after, "changed": before != after})
        return backend, changes

    def _check_static(self, backend: dict[str, t.Any], server: dict[str, t.Any], weight: int) -> None:
        algorithm = str(backend.get("algorithm") or "")
        if algorithm in STATIC_ALGORITHMS and weight not in (0, server["initial_weight"], server["weight"]):
            raise HAProxyError(
                f"backend {self.backend} balances with '{algorithm}', a static algorithm: HAProxy can only switch its servers "
                f"between 0% and 100% of their initial weight at run time, not set {server['name']} to {weight}. "
                "Use state drain/maint/ready to move traffic, or a dynamic algorithm (roundrobin, leastconn, or hash-type consistent)."
            )

    def run(self) -> dict[str, t.Any]:
        backend, changes = self.plan()
        servers = backend["servers"]
        ready_before = sum(1 for s in servers.values() if s["serving"])
        after_serving = {name: s["serving"] for name, s in servers.items()}
        for change in changes:
            server = servers[change["server"]]
            projected = dict(server, admin_state=change["after"]["state"], weight=change["after"]["weight"])
            after_serving[change["server"]] = is_serving(projected)
        ready_after = sum(after_serving.values())
        required = parse_min_ready(self.min_ready, len(servers))
        if ready_after < required and ready_after < ready_before:
            taken = [c["server"] for c in changes if servers[c["server"]]["serving"] and not after_serving[c["server"]]]
            raise HAProxyError(
                f"refusing: {', '.join(taken)} out of service would leave {ready_after} of {len(servers)} servers of backend "
                f"{self.backend} ready, fewer than min_ready {self.min_ready} ({required}); nothing was changed"
            )
        changed = [c for c in changes if c["changed"]]
        result: dict[str, t.Any] = {
            "changed": bool(changed),
            "backend": self.backend,
            "servers": changes,
            "ready_before": ready_before,
            "ready_after": ready_after,
            "min_ready": required,
            "commands": [],
            "diff": {
                "before": {c["server"]: c["before"] for c in changes},
                "after": {c["server"]: c["after"] for c in changes},
            },
        }
        if not self.check_mode:
            for change in changed:
                result["commands"] += self._apply(change)
            if self.wait and (self.state in ("drain", "maint")):
                result.update(self._wait_drained([c["server"] for c in changes]))
        return result

    def _apply(self, change: dict[str, t.Any]) -> list[str]:
        target = f"{self.backend}/{change['server']}"
        commands = []
        before, after = change["before"], change["after"]
        # Taking a server out: state first, so it stops getting traffic before its weight matters.
        # Bringing one in: weight first, so it comes back with the intended share.
        steps = []
        if after["weight"] != before["weight"]:
            steps.append(f"set server {target} weight {after['weight']}")
        if after["state"] != before["state"]:
            state_step = f"set server {target} state {after['state']}"
            steps = [state_step] + steps if after["state"] != "ready" else steps + [state_step]
        for command in steps:
            try:
                self.api.set(command)
            except HAProxyError as exc:
                if STATIC_WEIGHT_ERROR in exc.msg:
                    raise HAProxyError(
                        f"backend {self.backend} uses a static load-balancing algorithm: HAProxy accepts only weights 0% and "
                        f"100% for its servers at run time, so {command!r} was refused. Use state drain/maint/ready to move "
                        "traffic, or a dynamic algorithm (roundrobin, leastconn, or hash-type consistent)."
                    ) from exc
                raise
            commands.append(command)
        return commands

    def _wait_drained(self, names: list[str]) -> dict[str, t.Any]:
        """Poll until the servers have no sessions. A server that is DOWN cannot drain further: it never holds the wait."""
        started = self.clock()
        while True:
            servers = collect_info(self.api, [self.backend])["backends"][self.backend]["servers"]
            remaining = {n: servers[n]["sessions"] for n in names
                         if servers[n]["sessions"] > 0 and not str(servers[n]["status"]).startswith("DOWN")}
            waited = self.clock() - started
            if not remaining:
                return {"waited_s": round(waited, 3), "sessions_remaining": {}}
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
    ) -> None:
        if persist and map_name.startswith("#"):
            raise InvalidInputError(f"persist needs the map's file path, not the id {map_name}")
        for key, value in entries.items():
            if not key or re.search(r"\s", str(key)):
                raise InvalidInputError(f"entries: map key {key!r} must be non-empty and contain no whitespace")
            if state == "present" and (value is None or re.search(r"[\r\n]", str(value))):
                raise InvalidInputError(f"entries: value for {key!r} must be a single line of text")
        self.api = api
        self.map_name = map_name
        self.entries = {str(k): ("" if v is None else str(v)) for k, v in entries.items()}
        self.state = state
        self.exclusive = exclusive
        self.persist = persist
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
        current = parse_map(self.api.show(f"show map {self.map_name}"))
        wanted = self.desired(current)
        # Order within a map does not matter for exact-match lookups; duplicate keys do.
        runtime_changed = dict(current) != dict(wanted) or len(current) != len(dict(current))
        file_before = file_after = None
        if self.persist:
            file_before = self._read_file()
            file_after = render_map_file(file_before, wanted)
        file_changed = self.persist and file_before != file_after
        result: dict[str, t.Any] = {
            "changed": bool(runtime_changed or file_changed),
            "map": self.map_name,
            "entries": dict(wanted),
            "commands": [],
            "diff": {"before": _render(current), "after": _render(wanted), "before_header": f"{self.map_name} (runtime)",
                     "after_header": f"{self.map_name} (runtime)"},
        }
        if self.persist:
            result["file_changed"] = file_changed
        if self.check_mode:
            return result
        if runtime_changed:
            result["commands"] = self._apply(current, wanted)
        if file_changed:
            write_atomic(self.map_name, file_after.encode(), mode=_mode_of(self.map_name))
        return result

    def _apply(self, current: list[tuple[str, str]], wanted: list[tuple[str, str]]) -> list[str]:
        before, after = dict(current), dict(wanted)
        changed_keys = [k for k in set(before) | set(after) if before.get(k) != after.get(k)]
        duplicates = len(current) != len(before)
        if len(changed_keys) == 1 and not duplicates:
            key = changed_keys[0]
            if key not in after:
                command = f"del map {self.map_name} {key}"
            elif key in before:
                command = f"set map {self.map_name} {key} {after[key]}"
            else:
                command = f"add map {self.map_name} {key} {after[key]}"
            self.api.set(command)
            return [command]
        # Several keys: build a new version of the map and commit it in one step, so traffic never sees
        # half of the change.
        answer = self.api.set(f"prepare map {self.map_name}")
        match = re.search(r"(\d+)", answer)
        if not match:
            raise HAProxyError(f"HAProxy at {self.api.endpoint} did not return a version for 'prepare map {self.map_name}': {answer!r}")
        version = match.group(1)
        commands = [f"prepare map {self.map_name}"]
        for key, value in wanted:
            command = f"add map @{version} {self.map_name} {key} {value}"
            self.api.set(command)
            commands.append(command)
        command = f"commit map @{version} {self.map_name}"
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


def _render(entries: list[tuple[str, str]]) -> str:
    return "".join(f"{k} {v}\n" for k, v in entries)


def _mode_of(path: str) -> int:
    try:
        return os.stat(path).st_mode & 0o7777
    except FileNotFoundError:
        return 0o644


def render_map_file(existing: str, wanted: list[tuple[str, str]]) -> str:
    """Keep comments and the order of keys already in the file; update, drop and append entries."""
    values = dict(wanted)
    written: set[str] = set()
    lines = []
    for line in existing.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            lines.append(line)
            continue
        key = stripped.split(None, 1)[0]
        if key in values and key not in written:
            lines.append(f"{key} {values[key]}")
            written.add(key)
    lines += [f"{k} {v}" for k, v in wanted if k not in written]
    return "\n".join(lines) + ("\n" if lines else "")
