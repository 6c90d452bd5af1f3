# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: the non-file facets of a host snapshot - packages, services, sysctl, listening sockets,
users, groups, cron, mounts and kernel modules.

Parsers are pure functions over command output or file text (unit-tested on output captured from real
systems); collectors run the commands through a Runner (the module's run_command) and read /proc and /etc.
Each collector returns {"status": ok|partial|unavailable|error, "items": {key: {...}}, "note": why}: a host
without systemd, rpm or /proc/modules says so in its status instead of failing the snapshot.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
import socket
import stat
import typing as t

# sysctl keys whose values move on their own (counters, random values); never worth a drift report.
SYSCTL_VOLATILE = (
    "kernel.random.*", "kernel.ns_last_pid", "kernel.pty.nr", "kernel.perf_event_max_sample_rate", "kernel.tainted",
    "fs.dentry-state", "fs.file-nr", "fs.inode-nr", "fs.inode-state", "fs.aio-nr", "fs.quota.*", "fs.binfmt_misc.*",
    "net.netfilter.nf_conntrack_count", "vm.stat_refresh", "vm.drop_caches", "kernel.sched_domain.*",
)
CRON_FILES = ("/etc/crontab", "/etc/anacrontab")
CRON_DIRS = ("/etc/cron.d", "/var/spool/cron/crontabs", "/var/spool/cron")
CRON_SCRIPT_DIRS = ("/etc/cron.hourly", "/etc/cron.daily", "/etc/cron.weekly", "/etc/cron.monthly")


def display(text: str) -> str:
    """A name as it can be shown and sent as JSON: bytes that are not UTF-8 become \\xNN escapes."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def is_utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class GlobMatcher:
    """Glob patterns of one rule: a pattern with a '/' matches the whole path (its * crosses '/'), else the name."""

    def __init__(self, patterns: list[str]) -> None:
        names = [p for p in patterns if "/" not in p]
        paths = [p for p in patterns if "/" in p]
        self.name = re.compile("|".join(fnmatch.translate(p) for p in names)).match if names else None
        self.path = re.compile("|".join(fnmatch.translate(p) for p in paths)).match if paths else None
        self.any = bool(patterns)

    def __call__(self, name: str, path: str) -> bool:
        return bool((self.name is not None and self.name(name)) or (self.path is not None and self.path(path)))


class Runner(t.Protocol):
    def which(self, name: str) -> str | None: ...  # noqa: E704

    def run(self, argv: list[str]) -> tuple[int, str, str]: ...  # noqa: E704


def _facet(items: dict[str, t.Any], status: str = "ok", note: str | None = None) -> dict[str, t.Any]:
    facet = {"status": status, "items": items}
    if note:
        facet["note"] = note
    return facet


DPKG_FORMAT = "${binary:Package}\\t${Version}\\t${Architecture}\\t${db:Status-Abbrev}\\n"
RPM_FORMAT = "%{NAME}\\t%|EPOCH?{%{EPOCH}:}:{}|%{VERSION}-%{RELEASE}\\t%{ARCH}\\n"


def parse_dpkg_query(text: str) -> dict[str, dict[str, str]]:
    """dpkg-query -W -f DPKG_FORMAT: installed packages (status i*), keyed by dpkg's own name (name:arch for multi-arch)."""
    packages = {}
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < 4 or not fields[0]:
            continue
        name, version, arch, status = fields[0], fields[1], fields[2], fields[3].strip()
        if status[1:2] in ("", "n", "c"):
            continue  # not installed, or only its configuration files are left
        record = {"version": version, "arch": arch}
        if status != "ii":
            record["status"] = status
        packages[name] = record
    return packages


def parse_rpm_query(text: str) -> dict[str, dict[str, str]]:
    """rpm -qa --qf RPM_FORMAT; a name installed more than once (kernels, multilib, gpg-pubkey) is keyed name-version.arch."""
    rows = []
    for line in text.splitlines():
        fields = line.split("\t")
        if len(fields) < 3 or not fields[0]:
            continue
        rows.append((fields[0], fields[1], fields[2]))
    names: dict[str, int] = {}
    for name, _version, _arch in rows:
        names[name] = names.get(name, 0) + 1
    packages = {}
    for name, version, arch in rows:
        key = name if names[name] == 1 else f"{name}-{version}.{arch}"
        packages[key] = {"version": version, "arch": arch}
    return packages


def parse_systemctl_unit_files(text: str) -> dict[str, str]:
    """systemctl list-unit-files --no-legend --no-pager: unit -> enablement state (enabled, disabled, static, ...)."""
    states = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2 and "." in fields[0]:
            states[fields[0]] = fields[1]
    return states


def parse_systemctl_units(text: str) -> dict[str, dict[str, str]]:
    """systemctl list-units --all --plain --no-legend --no-pager: unit -> load, active and sub state."""
    units = {}
    for line in text.splitlines():
        fields = line.strip().lstrip("●*").split(None, 4)
        if len(fields) >= 4 and "." in fields[0]:
            units[fields[0]] = {"load": fields[1], "active": fields[2], "sub": fields[3]}
    return units


def collect_packages(runner: Runner) -> dict[str, t.Any]:
    dpkg = runner.which("dpkg-query")
    if dpkg:
        rc, out, err = runner.run([dpkg, "-W", "-f", DPKG_FORMAT.replace("\\t", "\t").replace("\\n", "\n")])
        if rc == 0:
            return _facet(parse_dpkg_query(out), note="dpkg")
        return _facet({}, "error", f"dpkg-query failed (rc {rc}): {err.strip()[:300]}")
    rpm = runner.which("rpm")
    if rpm:
        rc, out, err = runner.run([rpm, "-qa", "--qf", RPM_FORMAT.replace("\\t", "\t").replace("\\n", "\n")])
        if rc == 0:
            return _facet(parse_rpm_query(out), note="rpm")
        return _facet({}, "error", f"rpm -qa failed (rc {rc}): {err.strip()[:300]}")
    return _facet({}, "unavailable", "neither dpkg-query nor rpm is installed")


def collect_services(runner: Runner, systemd_dir: str = "/run/systemd/system") -> dict[str, t.Any]:
    systemctl = runner.which("systemctl")
    if not systemctl:
        return _facet({}, "unavailable", "systemctl is not installed: this host does not use systemd")
    rc, out, err = runner.run([systemctl, "list-unit-files", "--type=service,timer", "--no-legend", "--no-pager"])
    if rc != 0:
        return _facet({}, "unavailable", f"systemctl list-unit-files failed (rc {rc}): {err.strip()[:300]}")
    items: dict[str, dict[str, str]] = {unit: {"enabled": state} for unit, state in parse_systemctl_unit_files(out).items()}
    if not os.path.isdir(systemd_dir):
        return _facet(items, "partial", f"systemd is not running on this host ({systemd_dir} is missing): unit-file states only, no active states")
    rc, out, err = runner.run([systemctl, "list-units", "--type=service,timer", "--all", "--plain", "--no-legend", "--no-pager"])
    if rc != 0:
        return _facet(items, "partial", f"systemctl list-units failed (rc {rc}): {err.strip()[:300]}; unit-file states only")
    for unit, state in parse_systemctl_units(out).items():
        if state["load"] == "not-found" and unit not in items:
            continue
        record = items.setdefault(unit, {})
        record["active"] = state["active"]
        record["sub"] = state["sub"]
    return _facet(items)


def collect_sysctl(exclude: list[str], root: str = "/proc/sys") -> dict[str, t.Any]:
    if not os.path.isdir(root):
        return _facet({}, "unavailable", f"{root} is not mounted")
    skip = GlobMatcher(list(SYSCTL_VOLATILE) + list(exclude))
    items = {}
    unreadable = 0
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in filenames:
            path = os.path.join(dirpath, name)
            key = os.path.relpath(path, root).replace("/", ".")
            if skip(key, key):
                continue
            try:
                if not os.stat(path).st_mode & 0o444:
                    continue
                with open(path, encoding="utf-8", errors="replace") as handle:
                    value = handle.read()
            except OSError:
                unreadable += 1
                continue
            items[key] = {"value": " ".join(value.split())}
    note = f"{unreadable} keys could not be read" if unreadable else None
    return _facet(items, note=note)


def _hex_address(text: str) -> str:
    raw = bytes.fromhex(text)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return "[" + socket.inet_ntop(socket.AF_INET6, words) + "]"


def parse_proc_net(text: str, proto: str) -> list[dict[str, t.Any]]:
    """Listening sockets of /proc/net/{tcp,tcp6,udp,udp6}: TCP in LISTEN, UDP bound and unconnected."""
    wanted = "0A" if proto.startswith("tcp") else "07"
    sockets = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != wanted:
            continue
        address, port = fields[1].rsplit(":", 1)
        sockets.append({"proto": proto, "address": _hex_address(address), "port": int(port, 16), "uid": int(fields[7]), "inode": fields[9]})
    return sockets


def _socket_owners(proc: str) -> dict[str, list[str]]:
    """socket inode -> the names of the processes holding it (those visible in this PID namespace)."""
    owners: dict[str, set[str]] = {}
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return {}
    for pid in pids:
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        inodes = []
        for fd in fds:
            try:
                link = os.readlink(f"{fd_dir}/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                inodes.append(link[8:-1])
        if not inodes:
            continue
        try:
            with open(f"{proc}/{pid}/comm", encoding="utf-8", errors="replace") as handle:
                comm = handle.read().strip()
        except OSError:
            continue
        try:
            exe = os.readlink(f"{proc}/{pid}/exe")
        except OSError:
            exe = ""
        label = f"{comm} ({exe})" if exe else comm
        for inode in inodes:
            owners.setdefault(inode, set()).add(label)
    return {inode: sorted(labels) for inode, labels in owners.items()}


def collect_listening(owned_only: bool, proc: str = "/proc") -> dict[str, t.Any]:
    sockets = []
    for proto in ("tcp", "tcp6", "udp", "udp6"):
        try:
            with open(f"{proc}/net/{proto}", encoding="ascii", errors="replace") as handle:
                sockets.extend(parse_proc_net(handle.read(), proto))
        except OSError:
            continue
    if not sockets and not os.path.exists(f"{proc}/net/tcp"):
        return _facet({}, "unavailable", f"{proc}/net is not readable")
    low, high = 32768, 60999
    try:
        with open(f"{proc}/sys/net/ipv4/ip_local_port_range", encoding="ascii") as handle:
            low, high = (int(v) for v in handle.read().split()[:2])
    except (OSError, ValueError):
        pass
    owners = _socket_owners(proc)
    items: dict[str, dict[str, t.Any]] = {}
    for sock in sockets:
        processes = owners.get(sock["inode"], [])
        if owned_only and not processes:
            continue
        if sock["proto"].startswith("udp") and low <= sock["port"] <= high and not processes:
            continue  # an unowned UDP socket on an ephemeral port is a client's, not a listener
        key = f"{sock['proto']}/{sock['address']}:{sock['port']}"
        record = items.setdefault(key, {"uid": sock["uid"], "processes": []})
        record["processes"] = sorted(set(record["processes"]) | set(processes))
    note = "only sockets held by processes visible on this host" if owned_only else None
    return _facet(items, note=note)


def parse_passwd(text: str) -> dict[str, dict[str, t.Any]]:
    """/etc/passwd without the password field (hashes never leave the host, not even their presence)."""
    users = {}
    for line in text.splitlines():
        if not line or line.startswith(("#", "+", "-")):
            continue
        fields = line.split(":")
        if len(fields) < 7:
            continue
        try:
            uid, gid = int(fields[2]), int(fields[3])
        except ValueError:
            continue
        users[fields[0]] = {"uid": uid, "gid": gid, "gecos": fields[4], "home": fields[5], "shell": fields[6]}
    return users


def parse_group(text: str) -> dict[str, dict[str, t.Any]]:
    groups = {}
    for line in text.splitlines():
        if not line or line.startswith(("#", "+", "-")):
            continue
        fields = line.split(":")
        if len(fields) < 4:
            continue
        try:
            gid = int(fields[2])
        except ValueError:
            continue
        groups[fields[0]] = {"gid": gid, "members": sorted(m for m in fields[3].split(",") if m)}
    return groups


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            return handle.read()
    except OSError:
        return None


def collect_table(path: str, parser: t.Callable[[str], dict[str, t.Any]]) -> dict[str, t.Any]:
    text = _read_text(path)
    if text is None:
        return _facet({}, "unavailable", f"{path} is not readable")
    return _facet({display(k): v for k, v in parser(text).items()})


def parse_crontab(text: str) -> list[str]:
    """The active lines of a crontab (comments and blank lines dropped, whitespace normalized)."""
    return [" ".join(line.split()) for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def collect_cron() -> dict[str, t.Any]:
    items: dict[str, dict[str, t.Any]] = {}
    paths = [p for p in CRON_FILES if os.path.isfile(p)]
    for directory in CRON_DIRS:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        paths.extend(os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n)) and not n.startswith("."))
    for path in paths:
        text = _read_text(path)
        if text is not None:
            items[display(path)] = {"lines": parse_crontab(text)}
    for directory in CRON_SCRIPT_DIRS:
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            continue
        for name in names:
            path = os.path.join(directory, name)
            try:
                info = os.stat(path)
                with open(path, "rb") as handle:
                    digest = hashlib.sha256(handle.read()).hexdigest()
            except OSError:
                continue
            items[display(path)] = {"sha256": digest, "mode": f"{stat.S_IMODE(info.st_mode):04o}"}
    return _facet(items)


def _unescape_mount(text: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), text)


def parse_mountinfo(text: str) -> list[dict[str, str]]:
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields:
            continue
        sep = fields.index("-")
        if sep < 6 or len(fields) < sep + 3:
            continue
        mounts.append({
            "mount_point": _unescape_mount(fields[4]),
            "options": fields[5],
            "fstype": fields[sep + 1],
            "source": _unescape_mount(fields[sep + 2]),
            "super_options": fields[sep + 3] if len(fields) > sep + 3 else "",
        })
    return mounts


def collect_mounts(path: str = "/proc/self/mountinfo") -> dict[str, t.Any]:
    text = _read_text(path)
    if text is None:
        return _facet({}, "unavailable", f"{path} is not readable")
    items: dict[str, dict[str, str]] = {}
    for mount in parse_mountinfo(text):
        key = display(mount["mount_point"])
        number = 2
        while key in items:  # stacked mounts on one point: the later ones get #2, #3, ...
            key = f"{display(mount['mount_point'])}#{number}"
            number += 1
        items[key] = {"source": display(mount["source"]), "fstype": mount["fstype"], "options": mount["options"]}
    return _facet(items)


def parse_proc_modules(text: str) -> dict[str, dict[str, t.Any]]:
    modules = {}
    for line in text.splitlines():
        fields = line.split()
        if len(fields) >= 2:
            try:
                modules[fields[0]] = {"size": int(fields[1])}
            except ValueError:
                continue
    return modules


def collect_kernel_modules(path: str = "/proc/modules") -> dict[str, t.Any]:
    text = _read_text(path)
    if text is None:
        return _facet({}, "unavailable", f"{path} is not present (a kernel without loadable modules, or hidden in this container)")
    return _facet(parse_proc_modules(text))


class ModuleRunner:
    """A Runner over AnsibleModule: get_bin_path and run_command, in the C locale so output parses the same everywhere."""

    def __init__(self, module: t.Any) -> None:
        self.module = module

    def which(self, name: str) -> str | None:
        return self.module.get_bin_path(name)

    def run(self, argv: list[str]) -> tuple[int, str, str]:
        rc, out, err = self.module.run_command(argv, environ_update={"LC_ALL": "C", "LANG": "C", "SYSTEMD_COLORS": "0"})
        return rc, out, err
