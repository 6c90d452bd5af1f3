# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The test fleet: N sshd "hosts" in private namespaces on 127.x addresses, fronted by HAProxy.

Each host is an OpenSSH server running as PID 1 of its own PID, mount and UTS namespaces, with private
tmpfs mounts on /srv, /var/backups, /run and /root and a copy-on-write overlay on /etc. The network
namespace is shared, so each host listens on its own loopback address. Every process the fleet starts is
recorded in fleet.json the moment it exists, so `down` can end it even after the test runner was killed.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import time
import typing as t

from . import haproxy

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
DEFAULT_RUN_DIR = os.environ.get("SREOPS_FLEET_DIR", os.path.join(REPO_ROOT, ".fleet"))


def _default_collections_path() -> str:
    """Where ansible finds sre.ops: the install this harness is part of, else the checkout's build output."""
    if os.environ.get("SREOPS_COLLECTIONS_PATH"):
        return os.environ["SREOPS_COLLECTIONS_PATH"]
    parts = REPO_ROOT.split(os.sep)
    if parts[-3:] == ["ansible_collections", "sre", "ops"]:
        return os.sep.join(parts[:-3])
    return os.path.join(REPO_ROOT, ".build", "collections")


DEFAULT_COLLECTIONS_PATH = _default_collections_path()
STATE_FILE = "fleet.json"
# Each host gets its own copy of these; the run directory must live elsewhere so hosts can read it.
PRIVATE_MOUNTS = ("/srv", "/var/backups", "/run", "/root", "/etc")
SSHD = shutil.which("sshd") or "/usr/sbin/sshd"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"

# Runs inside the host's fresh namespaces before sshd takes over as PID 1. Mount propagation is private,
# so nothing mounted here is visible on the machine or in the other hosts.
HOST_INIT = r"""
set -eu
for d in /srv /var/backups /run; do mount -t tmpfs -o mode=0755,size=2g tmpfs "$d"; done
mount -t tmpfs -o mode=0700,size=512m tmpfs /root
mount -t tmpfs -o mode=0700,size=256m tmpfs "$FLEET_ETC_RW"
mkdir -p "$FLEET_ETC_RW/upper" "$FLEET_ETC_RW/work"
mount -t overlay overlay -o "lowerdir=/etc,upperdir=$FLEET_ETC_RW/upper,workdir=$FLEET_ETC_RW/work" /etc
mkdir -p /run/sshd /root/.ssh
chmod 0755 /run/sshd
chmod 0700 /root/.ssh
cp "$FLEET_AUTHORIZED_KEYS" /root/.ssh/authorized_keys
chmod 0600 /root/.ssh/authorized_keys
hostname "$FLEET_HOSTNAME"
printf '%s\n' "$FLEET_HOSTNAME" > /etc/hostname
/usr/sbin/sshd -t -f "$FLEET_SSHD_CONFIG"
exec /usr/sbin/sshd -D -f "$FLEET_SSHD_CONFIG" -E "$FLEET_SSHD_LOG"
"""

SSHD_CONFIG = """\
ListenAddress {address}:{port}
HostKey {host_key}
PidFile none
PermitRootLogin prohibit-password
PubkeyAuthentication yes
AuthorizedKeysFile .ssh/authorized_keys
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
MaxStartups 64:30:128
MaxSessions 64
LogLevel INFO
Subsystem sftp internal-sftp
"""


def on_test_net(address: str) -> str:
    """``address`` moved to the test network ``$SREOPS_TEST_NET`` (the second octet, default 0).

    Test suites, molecule and benchmarks pick fixed 127.0.x.y ranges; several checkouts tested at once on one
    machine each set their own SREOPS_TEST_NET so their fleets never share an address. Under pytest-xdist,
    worker gwN adds N * 64 to the third octet (see xdist_worker_index).
    """
    net = os.environ.get("SREOPS_TEST_NET", "0") or "0"
    if not net.isdigit() or not 0 <= int(net) <= 255:
        raise FleetError(f"SREOPS_TEST_NET must be a number from 0 to 255, got {net!r}")
    octets = address.split(".")
    if len(octets) != 4 or octets[0] != "127":
        raise FleetError(f"test addresses are loopback addresses 127.x.y.z, got {address!r}")
    third = int(octets[2]) + XDIST_WORKER_SHIFT * xdist_worker_index()
    if third > 255:
        raise FleetError(f"{address!r} moved for pytest-xdist worker {xdist_worker_index()} leaves the 127.x.y.z range")
    return ".".join([octets[0], str(int(net)), str(third), octets[3]])


# Test suites pick third octets below 64: each pytest-xdist worker after the first gets its own copy of them.
XDIST_WORKER_SHIFT = 64


def xdist_worker_index() -> int:
    """0 outside pytest-xdist and in its first worker (gw0), N in worker gwN.

    Session fixtures run once per worker, so two workers bringing up "the same" fleet must not share its
    addresses.
    """
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0


class FleetError(Exception):
    """A fleet operation failed; the message says what and how to recover."""


# Ports tried, in order, when a port is left to the fleet (0): the usual one first, then others, so the fleet
# fits around the machine's own services (an sshd or a web server listening on 0.0.0.0:22 or :80).
AUTO_PORTS = {
    "ssh_port": (22,) + tuple(range(2222, 2322)),
    "http_port": (80,) + tuple(range(8000, 8100)),
}


@dataclasses.dataclass
class FleetConfig:
    """What a fleet looks like. Every address and port is configurable so parallel runs can coexist.

    ssh_port and http_port 0 (the default) mean: the usual port (22, 80) if every fleet address can bind it,
    else the first one that can from AUTO_PORTS; `up` records the choice in fleet.json and the inventory.
    """

    run_dir: str = DEFAULT_RUN_DIR
    hosts: int = 4
    address_base: str = "127.0.0.10"
    ssh_port: int = 0
    app_port: int = 8080
    http_port: int = 0
    stats_port: int = 8404
    api_port: int = 9999
    collections_path: str = DEFAULT_COLLECTIONS_PATH

    def __post_init__(self) -> None:
        if not 1 <= self.hosts <= 200:
            raise FleetError(f"hosts must be between 1 and 200, got {self.hosts}")
        base = ipaddress.IPv4Address(self.address_base)
        if not base.is_loopback:
            raise FleetError(f"address_base must be a loopback address (127.0.0.0/8), got {self.address_base}")
        last = int(base) + self.hosts
        if not ipaddress.IPv4Address(last).is_loopback:
            raise FleetError(f"address_base {self.address_base} leaves no room for {self.hosts} hosts in 127.0.0.0/8")
        self.run_dir = os.path.abspath(self.run_dir)
        for private in PRIVATE_MOUNTS:
            if self.run_dir == private or self.run_dir.startswith(private + os.sep):
                raise FleetError(
                    f"run_dir {self.run_dir} is under {private}, which every host mounts privately, so the hosts "
                    "could not read their own configuration; choose a run directory elsewhere (e.g. under /tmp)"
                )

    @property
    def lb_address(self) -> str:
        return self.address_base

    def host_address(self, index: int) -> str:
        """Address of web<index> (1-based); the load balancer has the base address itself."""
        return str(ipaddress.IPv4Address(self.address_base) + index)

    @property
    def host_names(self) -> list[str]:
        return [f"web{i}" for i in range(1, self.hosts + 1)]

    @property
    def addresses(self) -> list[str]:
        return [self.lb_address] + [self.host_address(i) for i in range(1, self.hosts + 1)]

    def with_ports_chosen(self) -> "FleetConfig":
        """This config with every automatic (0) port replaced by the first port all its addresses can bind."""
        chosen = {}
        for field, candidates in AUTO_PORTS.items():
            if getattr(self, field):
                continue
            addresses = self.addresses if field == "ssh_port" else [self.lb_address]
            port = next((p for p in candidates if all(can_bind(a, p) for a in addresses)), None)
            if port is None:
                raise FleetError(f"no free {field.replace('_', ' ')} for {', '.join(addresses)} among {candidates[0]}-{candidates[-1]}; "
                                 f"choose one with --{field.replace('_', '-')}")
            chosen[field] = port
        return dataclasses.replace(self, **chosen)


@dataclasses.dataclass
class Host:
    name: str
    address: str
    ssh_port: int
    pid: int | None = None
    group: str = "app"


class Fleet:
    """Python API: Fleet(FleetConfig(...)).up() / .status() / .down(); also a context manager.

    Fleet.attach(run_dir) is the fleet recorded in run_dir, with the addresses and ports it really uses.
    """

    def __init__(self, config: FleetConfig | None = None) -> None:
        self.config = config or FleetConfig()
        self.run_dir = self.config.run_dir

    @classmethod
    def attach(cls, run_dir: str) -> "Fleet":
        """The fleet whose state file is in run_dir; FleetError when there is none."""
        fleet = cls(FleetConfig(run_dir=run_dir))
        state = fleet._read_state()
        if not state or not isinstance(state.get("config"), dict):
            raise FleetError(f"no fleet state in {fleet.run_dir}; start one with: tests/fleet/fleet up --run-dir {fleet.run_dir}")
        recorded = {f.name: state["config"][f.name] for f in dataclasses.fields(FleetConfig) if f.name in state["config"]}
        return cls(FleetConfig(**dict(recorded, run_dir=fleet.run_dir)))

    # ----- paths -------------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return os.path.join(self.run_dir, *parts)

    @property
    def inventory(self) -> str:
        return self.path("inventory.yml")

    @property
    def ansible_cfg(self) -> str:
        return self.path("ansible.cfg")

    @property
    def haproxy_socket(self) -> str:
        return self.path("haproxy.sock")

    @property
    def request_log(self) -> str:
        """HAProxy's per-request log lines (option httplog), one a line, as rsyslog would write them."""
        return self.path("haproxy-requests.log")

    @property
    def request_log_socket(self) -> str:
        """Where HAProxy also sends each request's log line (a UNIX datagram socket, bound only while read)."""
        return self.path("haproxy-log.sock")

    @property
    def lb_url(self) -> str:
        return f"http://{self.config.lb_address}:{self.config.http_port}/"

    @property
    def stats_url(self) -> str:
        return f"http://{self.config.lb_address}:{self.config.stats_port}"

    def hosts(self) -> list[Host]:
        """The SSH hosts: lb1 (where the runtime API is reached from) and web1..webN."""
        cfg = self.config
        result = [Host("lb1", cfg.lb_address, cfg.ssh_port, group="lb")]
        result += [Host(name, cfg.host_address(i), cfg.ssh_port) for i, name in enumerate(cfg.host_names, 1)]
        return result

    def ssh_argv(self, host: str, command: str) -> list[str]:
        """The ssh command line that runs ``command`` on fleet host ``host`` with the fleet's key, known hosts and SSH port."""
        address = {h.name: h.address for h in self.hosts()}[host]
        return ["ssh", "-F", "/dev/null", "-i", self.path("id_ed25519"), *shlex.split(self._ssh_trust_args()), "-o", "BatchMode=yes",
                "-p", str(self.config.ssh_port), f"root@{address}", command]

    def env(self) -> dict[str, str]:
        """Environment that points ansible at this fleet (ansible.cfg carries the rest)."""
        env = dict(os.environ)
        env["ANSIBLE_CONFIG"] = self.ansible_cfg
        return env

    # ----- state -------------------------------------------------------------------------------------
    def _read_state(self) -> dict[str, t.Any] | None:
        try:
            with open(self.path(STATE_FILE), encoding="utf-8") as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except ValueError:
            # A state file cut short by a kill still means a fleet may be running; treat it as stale.
            return {"processes": {}, "corrupt": True}

    def _write_state(self, state: dict[str, t.Any]) -> None:
        tmp = self.path(STATE_FILE + ".tmp")
        with open(tmp, "w", encoding="utf-8") as handle:
            json.dump(state, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path(STATE_FILE))

    def status(self) -> dict[str, t.Any]:
        """What is running: each recorded process with whether it is alive, and the overall state."""
        state = self._read_state()
        if state is None:
            return {"state": "down", "run_dir": self.run_dir, "processes": {}}
        processes = {name: {"pid": pid, "alive": pid_alive(pid)} for name, pid in state.get("processes", {}).items()}
        alive = [p for p in processes.values() if p["alive"]]
        if processes and len(alive) == len(processes) and not state.get("starting"):
            overall = "up"
        else:
            overall = "stale"
        return {
            "state": overall,
            "run_dir": self.run_dir,
            "processes": processes,
            "inventory": self.inventory,
            "ansible_cfg": self.ansible_cfg,
            "lb_url": self.lb_url,
            "stats_url": self.stats_url,
            "haproxy_socket": self.haproxy_socket,
        }

    # ----- up ----------------------------------------------------------------------------------------
    def up(self, timeout: float = 15.0) -> dict[str, t.Any]:
        """Start the fleet; refuses to start over a stale one. Returns status()."""
        if os.geteuid() != 0:
            raise FleetError("the fleet needs root (private mounts, root logins over SSH)")
        for tool in (SSHD, HAPROXY, "/usr/bin/ssh-keygen", "/usr/bin/unshare"):
            if not os.path.exists(tool):
                raise FleetError(f"{tool} is missing; run `make bootstrap` (it installs openssh-server and haproxy)")
        existing = self._read_state()
        if existing is not None:
            raise FleetError(
                f"a fleet state file exists in {self.run_dir} (a fleet is running or a run was killed); "
                f"clean it first with: tests/fleet/fleet down --run-dir {self.run_dir}"
            )
        self.config = self.config.with_ports_chosen()
        self._check_ports_free()
        if os.path.isdir(self.run_dir):
            shutil.rmtree(self.run_dir)
        os.makedirs(self.path("hosts"), mode=0o700)
        os.makedirs(self.path("cp"), mode=0o700)
        state: dict[str, t.Any] = {"config": dataclasses.asdict(self.config), "processes": {}, "starting": True}
        self._write_state(state)
        try:
            self._keygen()
            for host in self.hosts():
                state["processes"][host.name] = self._start_host(host)
                self._write_state(state)
            self._write_haproxy_files()
            state["processes"]["haproxy"] = self._start_haproxy()
            self._write_state(state)
            self._wait_ready(state, timeout)
            self._write_known_hosts()
            self._write_inventory()
            self._write_ansible_cfg()
        except BaseException:
            self.down()
            raise
        state["starting"] = False
        self._write_state(state)
        return self.status()

    def _check_ports_free(self) -> None:
        cfg = self.config
        wanted = [(h.address, h.ssh_port) for h in self.hosts()]
        wanted += [(cfg.lb_address, cfg.http_port), (cfg.lb_address, cfg.stats_port), (cfg.lb_address, cfg.api_port)]
        wanted += [(cfg.host_address(i), cfg.app_port) for i in range(1, cfg.hosts + 1)]
        busy = [f"{a}:{p}" for a, p in wanted if port_busy(a, p)]
        if busy:
            raise FleetError(
                f"fleet ports are busy: {', '.join(busy)}. A stale fleet may still run: "
                f"`tests/fleet/fleet down --run-dir {self.run_dir}`, or pick another --address-base/--ssh-port"
            )

    def _keygen(self) -> None:
        procs = [_keygen_proc(self.path("id_ed25519"), "sre.ops fleet controller")]
        for host in self.hosts():
            os.makedirs(self.path("hosts", host.name, "etc-rw"), mode=0o700)
            procs.append(_keygen_proc(self.path("hosts", host.name, "ssh_host_ed25519_key"), host.name))
        for proc in procs:
            err = proc.communicate()[1]
            if proc.returncode != 0:
                raise FleetError(f"ssh-keygen failed: {err.decode(errors='replace').strip()}")

    def _start_host(self, host: Host) -> int:
        hdir = self.path("hosts", host.name)
        config = os.path.join(hdir, "sshd_config")
        with open(config, "w", encoding="utf-8") as handle:
            handle.write(
                SSHD_CONFIG.format(address=host.address, port=host.ssh_port, host_key=os.path.join(hdir, "ssh_host_ed25519_key"))
            )
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "LANG": "C.UTF-8",
            "FLEET_HOSTNAME": host.name,
            "FLEET_ETC_RW": os.path.join(hdir, "etc-rw"),
            "FLEET_AUTHORIZED_KEYS": self.path("id_ed25519.pub"),
            "FLEET_SSHD_CONFIG": config,
            "FLEET_SSHD_LOG": os.path.join(hdir, "sshd.log"),
        }
        cmd = [
            "/usr/bin/unshare", "--mount", "--propagation", "private", "--uts", "--pid", "--fork",
            "--kill-child", "--mount-proc", "/bin/sh", "-c", HOST_INIT,
        ]
        with open(os.path.join(hdir, "init.log"), "ab") as log:
            proc = subprocess.Popen(  # pylint: disable=consider-using-with
                cmd, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True, cwd="/"
            )
        return proc.pid

    def _write_haproxy_files(self) -> None:
        cfg = self.config
        servers = [(name, cfg.host_address(i), cfg.app_port) for i, name in enumerate(cfg.host_names, 1)]
        with open(self.path("hosts.map"), "w", encoding="utf-8") as handle:
            handle.write(haproxy.render_map())
        with open(self.path("haproxy.cfg"), "w", encoding="utf-8") as handle:
            handle.write(
                haproxy.render_config(
                    lb_address=cfg.lb_address,
                    http_port=cfg.http_port,
                    stats_port=cfg.stats_port,
                    api_port=cfg.api_port,
                    socket_path=self.haproxy_socket,
                    map_path=self.path("hosts.map"),
                    servers=servers,
                    log_socket=self.request_log_socket,
                )
            )
        check = subprocess.run([HAPROXY, "-c", "-q", "-f", self.path("haproxy.cfg")], capture_output=True, check=False)
        if check.returncode != 0:
            raise FleetError(f"haproxy rejected its configuration: {check.stderr.decode(errors='replace').strip()}")

    def _start_haproxy(self) -> int:
        # stdout carries only the per-request log lines (`log stdout`); alerts and warnings go to stderr.
        with open(self.path("haproxy.log"), "ab") as log, open(self.request_log, "ab") as requests:
            proc = subprocess.Popen(  # pylint: disable=consider-using-with
                [HAPROXY, "-db", "-f", self.path("haproxy.cfg")],
                stdin=subprocess.DEVNULL, stdout=requests, stderr=log, start_new_session=True, cwd="/",
            )
        return proc.pid

    def _wait_ready(self, state: dict[str, t.Any], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pending = {h.name: (h.address, h.ssh_port) for h in self.hosts()}
        pending["haproxy"] = (self.config.lb_address, self.config.stats_port)
        while pending:
            for name, (address, port) in list(pending.items()):
                pid = state["processes"][name]
                if not pid_alive(pid):
                    raise FleetError(f"{name} exited during start-up:\n{self._log_tail(name)}")
                if port_busy(address, port) and (name != "haproxy" or os.path.exists(self.haproxy_socket)):
                    del pending[name]
            if pending and time.monotonic() > deadline:
                raise FleetError(f"not ready after {timeout}s: {', '.join(sorted(pending))}")
            if pending:
                time.sleep(0.01)

    def _log_tail(self, name: str) -> str:
        files = [self.path("haproxy.log")] if name == "haproxy" else [
            self.path("hosts", name, "init.log"), self.path("hosts", name, "sshd.log")]
        out = []
        for path in files:
            try:
                with open(path, encoding="utf-8", errors="replace") as handle:
                    out.append(f"--- {path}\n" + "".join(handle.readlines()[-20:]))
            except FileNotFoundError:
                pass
        return "\n".join(out)

    def _write_known_hosts(self) -> None:
        lines = []
        for host in self.hosts():
            with open(self.path("hosts", host.name, "ssh_host_ed25519_key.pub"), encoding="utf-8") as handle:
                key_type, key = handle.read().split()[:2]
            name = host.address if host.ssh_port == 22 else f"[{host.address}]:{host.ssh_port}"
            lines.append(f"{name} {key_type} {key}\n")
        with open(self.path("known_hosts"), "w", encoding="utf-8") as handle:
            handle.writelines(lines)

    def _write_inventory(self) -> None:
        cfg = self.config
        app_hosts = {}
        for i, name in enumerate(cfg.host_names, 1):
            app_hosts[name] = {
                "ansible_host": cfg.host_address(i),
                "app_listen_address": cfg.host_address(i),
                "app_port": cfg.app_port,
                "haproxy_server_name": name,
            }
        half = max(1, cfg.hosts // 2)
        inventory = {
            "all": {
                "vars": {
                    "ansible_user": "root",
                    "ansible_port": cfg.ssh_port,
                    "ansible_python_interpreter": "/usr/bin/python3",
                    # Connection facts live in the inventory too, so it works under any ansible.cfg (molecule's).
                    "ansible_ssh_private_key_file": self.path("id_ed25519"),
                    "ansible_ssh_common_args": self._ssh_trust_args(),
                    "fleet_lb_url": self.lb_url,
                    "fleet_stats_url": self.stats_url,
                    "fleet_run_dir": self.run_dir,
                },
                "children": {
                    "app": {"hosts": app_hosts},
                    "blue": {"hosts": {n: {} for n in cfg.host_names[:half]}},
                    "green": {"hosts": {n: {} for n in cfg.host_names[half:]}},
                    "lb": {
                        "hosts": {
                            "lb1": {
                                "ansible_host": cfg.lb_address,
                                "haproxy_socket": self.haproxy_socket,
                                "haproxy_api_address": f"{cfg.lb_address}:{cfg.api_port}",
                                "haproxy_backend": haproxy.BACKEND_ALL,
                                "haproxy_blue_backend": haproxy.BACKEND_BLUE,
                                "haproxy_green_backend": haproxy.BACKEND_GREEN,
                                "haproxy_map_file": self.path("hosts.map"),
                                "haproxy_frontend_url": self.lb_url,
                                "haproxy_metrics_url": f"{self.stats_url}/metrics",
                                "haproxy_request_log": self.request_log,
                                "haproxy_log_socket": self.request_log_socket,
                            }
                        }
                    },
                },
            }
        }
        # JSON is valid YAML; writing it avoids needing a YAML library in the harness.
        with open(self.inventory, "w", encoding="utf-8") as handle:
            json.dump(inventory, handle, indent=2)
            handle.write("\n")

    def _ssh_trust_args(self) -> str:
        return f"-o UserKnownHostsFile={self.path('known_hosts')} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"

    def _write_ansible_cfg(self) -> None:
        ssh_args = f"{self._ssh_trust_args()} -o ControlMaster=auto -o ControlPersist=60s -o BatchMode=yes"
        text = f"""\
# Written by tests/fleet for the fleet in this directory; regenerated on every `up`.
[defaults]
inventory = {self.inventory}
home = {self.path('ansible-home')}
local_tmp = {self.path('ansible-home', 'tmp')}
remote_tmp = ~/.ansible/tmp
collections_path = {self.config.collections_path}
private_key_file = {self.path('id_ed25519')}
host_key_checking = True
forks = 10
interpreter_python = /usr/bin/python3
retry_files_enabled = False
callback_result_format = yaml

[ssh_connection]
pipelining = True
ssh_args = {ssh_args}
control_path_dir = {self.path('cp')}
control_path = %(directory)s/%%C
"""
        with open(self.ansible_cfg, "w", encoding="utf-8") as handle:
            handle.write(text)

    # ----- down --------------------------------------------------------------------------------------
    def down(self, timeout: float = 10.0) -> list[str]:
        """End every recorded process (TERM, then KILL) and remove the run directory. Returns what it ended."""
        state = self._read_state()
        ended: list[str] = []
        if state is not None:
            pids = {name: pid for name, pid in state.get("processes", {}).items() if pid_alive(pid)}
            for pid in pids.values():
                _signal_group(pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while any(pid_alive(p) for p in pids.values()) and time.monotonic() < deadline:
                time.sleep(0.01)
            for pid in pids.values():
                if pid_alive(pid):
                    _signal_group(pid, signal.SIGKILL)
            deadline = time.monotonic() + timeout
            while any(pid_alive(p) for p in pids.values()) and time.monotonic() < deadline:
                time.sleep(0.01)
            left = [f"{n} ({p})" for n, p in pids.items() if pid_alive(p)]
            if left:
                raise FleetError(f"could not end: {', '.join(left)}; state kept in {self.run_dir}")
            ended = sorted(pids)
        # ssh ControlMaster processes from ansible runs belong to the user's session, not the fleet; they
        # exit on their own when the hosts close their connections.
        if os.path.isdir(self.run_dir):
            shutil.rmtree(self.run_dir, ignore_errors=True)
        return ended

    def __enter__(self) -> "Fleet":
        self.up()
        return self

    def __exit__(self, *exc: object) -> None:
        self.down()


def _keygen_proc(path: str, comment: str) -> subprocess.Popen:
    return subprocess.Popen(  # pylint: disable=consider-using-with
        ["/usr/bin/ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def _signal_group(pid: int, sig: int) -> None:
    """Signal the process group the fleet started (start_new_session made pid its leader), then pid itself."""
    for target in (lambda: os.killpg(pid, sig), lambda: os.kill(pid, sig)):
        try:
            target()
        except ProcessLookupError:
            pass
        except PermissionError:
            pass


def pid_alive(pid: int | None) -> bool:
    """True if pid runs and is not a zombie (a zombie has ended; only its parent has not reaped it)."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as handle:
            stat = handle.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    state = stat.rsplit(")", 1)[-1].split()[0]
    if state in ("Z", "X"):
        # Reap our own children so they don't linger as zombies.
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return False
    return True


def can_bind(address: str, port: int) -> bool:
    """True if a listener could bind address:port now, as sshd and HAProxy will (SO_REUSEADDR). A service on
    the wildcard address (0.0.0.0:22) makes this false for every 127.x address."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((address, port))
        except OSError:
            return False
        return True


def port_busy(address: str, port: int) -> bool:
    """True if something already listens on address:port (a connect succeeds)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.connect((address, port))
        except OSError:
            return False
        return True
