# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: the decisions of a rollout, as plain functions the deploy role's plugins call.

plan_rollout() turns what the hosts run (sre.ops.release_info), what the load balancer shows
(sre.ops.haproxy_info) and the user's settings into a plan: which hosts need what (create, update,
restart, readmit or nothing), the canaries, the waves (each capped so that min_ready always holds, hosts a
killed run left out of service first, in a deterministic order), the release id and the live and idle
colour. assemble_report() turns the plan and what each host recorded into the rollout report. Both are
pure: no I/O, no Ansible, so the unit tests reach every decision.
"""

from __future__ import annotations

import math
import re
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._canary import power_statement
from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError, SreOpsError
from ansible_collections.sre.ops.plugins.module_utils._haproxy import share_weight
from ansible_collections.sre.ops.plugins.module_utils import _plan_words as words

STRATEGIES = ("rolling", "canary", "blue_green")
MODES = ("deploy", "rollback")
ON_INCONCLUSIVE = ("fail", "hold", "pause")
RELEASE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
NOT_KNOWN = "not known until deployed"
DEFAULT_BATCHES: list[t.Any] = [1, "25%", "100%"]

# What a host needs, in the words of a plan (sre.ops.plan uses the same classes).
CREATE, UPDATE, RESTART, READMIT, NONE = "create", "update", "restart", "readmit", "none"
NEEDS_RESTART = (CREATE, UPDATE, RESTART)
# What a host's need is in the classes of every plan of the collection (sre.ops.plan's): readmitting a host changes
# the load balancer's view of it, a host with nothing to do is noop.
PLAN_ACTIONS = {CREATE: [words.CREATE, words.RESTART], UPDATE: [words.UPDATE, words.RESTART], RESTART: [words.RESTART],
                READMIT: [words.UPDATE], NONE: [words.NOOP]}


class PlanError(InvalidInputError):
    """The settings or the state of the fleet do not allow the rollout; every problem is listed, nothing has changed."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems) + "; nothing was changed")


# ----- small parsers -------------------------------------------------------------------------------------
def count_or_percent(value: t.Any, total: int, option: str, problems: list[str], minimum: int = 0) -> int | None:
    """'3' or 3 -> 3; '25%' -> ceil(25% of total). Appends a problem naming the option and returns None when invalid."""
    text = str(value).strip()
    match = re.fullmatch(r"(\d+)(%?)", text)
    if not match:
        problems.append(f"{option} {value!r} is not a count or a percentage like 25%")
        return None
    number = int(match.group(1))
    if match.group(2):
        if number > 100:
            problems.append(f"{option} {value!r} is more than 100%")
            return None
        result = math.ceil(total * number / 100.0)
    else:
        result = number
    if result < minimum:
        problems.append(f"{option} {value!r} means {result}; it must be at least {minimum}")
        return None
    return result


def ramp(batches: list[t.Any], total: int, problems: list[str]) -> list[int]:
    """Batch sizes of the ramp for `total` hosts; each entry a count >= 1 or 1%..100%, the last one repeats."""
    if not batches:
        problems.append("deploy_batches is empty: give at least one batch size, for example [1, '25%', '100%']")
        return []
    sizes = []
    for index, entry in enumerate(batches):
        text = str(entry).strip()
        match = re.fullmatch(r"(\d+)(%?)", text) if not isinstance(entry, (bool, float)) else None
        if not match:
            problems.append(f"deploy_batches[{index}] {entry!r} is not a count or a percentage like 25%")
        elif int(match.group(1)) == 0:
            problems.append(f"deploy_batches[{index}] {entry!r} is zero: every batch needs at least one host")
        elif match.group(2) and int(match.group(1)) > 100:
            problems.append(f"deploy_batches[{index}] {entry!r} is more than 100%")
        elif match.group(2):
            sizes.append(max(1, math.ceil(total * int(match.group(1)) / 100.0)))
        else:
            sizes.append(int(match.group(1)))
    return sizes


def gated(record: dict[str, t.Any] | None) -> bool:
    """The release passed its gates since it last became current (marked good after its latest activation)."""
    if not record or record.get("outcome") != "good":
        return False
    return int(record.get("outcome_seq") or 0) > int(record.get("last_activated_seq") or 0)


# ----- the view of one host ------------------------------------------------------------------------------
class Host:
    """One host of the play as the plan sees it: what it runs and how the load balancer sees its server."""

    def __init__(self, index: int, data: dict[str, t.Any]) -> None:
        self.index = index
        self.name = str(data["name"])
        self.server = str(data.get("server") or "") or self.name
        self.probe_url = str(data.get("probe_url") or "")
        releases = data.get("releases") or {}
        self.current: str | None = releases.get("current")
        self.previous_good: str | None = releases.get("previous_good")
        self.records: dict[str, dict[str, t.Any]] = {str(r.get("id")): r for r in releases.get("releases") or [] if isinstance(r, dict)}
        self.lb: dict[str, t.Any] | None = None  # this host's server in the backend that matters for it
        self.colour: str | None = None
        self.action = NONE

    def record(self, release: str | None) -> dict[str, t.Any]:
        return self.records.get(release or "", {})

    @property
    def serving(self) -> bool:
        """Takes traffic now (ready, health not down, weight above zero)."""
        return bool(self.lb and self.lb.get("serving"))

    @property
    def full_service(self) -> bool:
        """Takes traffic at its configured weight, as the role leaves a host that passed its gates."""
        if not self.serving or self.lb is None:
            return False
        initial = self.lb.get("initial_weight")
        return initial is None or self.lb.get("weight") == initial

    @property
    def down(self) -> bool:
        """The load balancer's health check fails: the app does not answer."""
        if self.lb is None:
            return False
        status = str(self.lb.get("status") or "")
        return status.startswith("DOWN") or self.lb.get("operational_state") == "stopped"

    def lb_state(self) -> str:
        if self.lb is None:
            return "-"
        return f"{self.lb.get('admin_state')}/{self.lb.get('status')}/w{self.lb.get('weight')}"


def host_action(host: Host, target: str, traffic: bool) -> str:
    """What a host needs to run `target` and be back in service. `traffic`: the host's server state matters."""
    if host.current is None:
        return CREATE
    if host.current != target:
        return UPDATE
    if not gated(host.record(target)) or host.down:
        return RESTART
    if traffic and not host.full_service:
        return READMIT
    return NONE


def rollout_order(hosts: list[Host], target: str) -> list[Host]:
    """Deterministic: hosts out of service first (they cost no room and bring capacity back), those a killed run
    left on the target before the others, then inventory order."""
    def key(host: Host) -> tuple[int, int, int]:
        return (1 if host.serving else 0), (0 if host.current == target else 1), host.index
    return sorted(hosts, key=key)


def cut_waves(todo: list[Host], sizes: list[int], serving: int, need: int, first_index: int) -> tuple[list[list[Host]], str | None]:
    """Waves over `todo` following the ramp `sizes`, never taking more serving servers out than min_ready allows.

    Hosts out of service cost no room and come back with their wave, so each wave may take out
    `serving - need` serving servers, counted again after every wave. Returns the waves, or a reason when
    min_ready leaves no room for the next host.
    """
    waves: list[list[Host]] = []
    remaining = list(todo)
    step = 0
    while remaining:
        size = sizes[min(step, len(sizes) - 1)]
        room = serving - need
        wave: list[Host] = []
        for host in list(remaining):
            if len(wave) == size:
                break
            if host.serving:
                if room <= 0:
                    break
                room -= 1
            wave.append(host)
            remaining.remove(host)
        if not wave:
            return waves, (f"wave {first_index + len(waves)} cannot start: {serving} servers are in service and min_ready needs {need}, "
                           f"so no server can be taken out ({', '.join(h.name for h in remaining)} still to do)")
        serving += sum(1 for h in wave if not h.serving)
        waves.append(wave)
        step += 1
    return waves, None


# ----- the plan ------------------------------------------------------------------------------------------
# sre.ops.canary_power's arguments the plan fills from the role's variables, named as the user set them in its messages
_POWER_ARGUMENTS = {"baseline_p50_ms": "deploy_canary_expected_latency_ms.p50", "baseline_p90_ms": "deploy_canary_expected_latency_ms.p90",
                    "expected_rate": "deploy_canary_expected_rps"}


def _once(messages: list[str], message: str) -> None:
    """A message that is the same for every step, said once."""
    if message not in messages:
        messages.append(message)


class RolloutPlanner:
    """Builds the plan of one rollout (or rollback). Problems are collected and raised together as PlanError."""

    def __init__(self, settings: dict[str, t.Any], hosts: list[dict[str, t.Any]], lb: dict[str, t.Any] | None,
                 artifact_sha256: str | None = None, bg_members: dict[str, list[str]] | None = None) -> None:
        self.s = settings
        self.mode = settings.get("mode", "deploy")
        self.strategy = settings["strategy"]
        self.hosts = [Host(i, h) for i, h in enumerate(hosts)]
        self.by_name = {h.name: h for h in self.hosts}
        self.lb = lb or {"backends": {}, "maps": {}}
        self.sha256 = artifact_sha256
        self.bg_members = bg_members or {}
        self.problems: list[str] = []
        self.notes: list[str] = []

    # -- entry ----------------------------------------------------------------------------------------
    def plan(self) -> dict[str, t.Any]:
        self._check_common()
        target = self._target_release()
        if not self.hosts or self.strategy not in STRATEGIES or self.mode not in MODES:
            raise PlanError(self.problems)
        if self.strategy == "blue_green":
            result = self._plan_blue_green(target)
        else:
            result = self._plan_rolling(target)
        if self.problems:
            raise PlanError(self.problems)
        result["closing_line"] = closing_line(result)
        result["summary"] = summarize(result)
        return result

    # -- checks shared by every strategy --------------------------------------------------------------------
    def _check_common(self) -> None:
        s = self.s
        if self.mode not in MODES:
            self.problems.append(f"mode {self.mode!r} must be one of {', '.join(MODES)}")
        if self.strategy not in STRATEGIES:
            self.problems.append(f"deploy_strategy {self.strategy!r} must be one of {', '.join(STRATEGIES)}")
        if not self.hosts:
            self.problems.append("the play has no hosts to deploy to: check the play's hosts (deploy_group) and --limit")
        servers = [h.server for h in self.hosts]
        if len(set(servers)) != len(servers):
            self.problems.append(f"deploy_lb_server names repeat across hosts ({', '.join(servers)}): each host needs its own server")
        command, unit = s.get("restart_command") or "", s.get("restart_unit") or ""
        if bool(command) == bool(unit):
            self.problems.append("give exactly one of deploy_restart_command and deploy_restart_unit (how the app restarts on its host)")
        probes = s.get("health_probes")
        if probes is not None and not probes:
            self.problems.append("deploy_health_probes is empty: give at least one probe, or every gate would pass without checking anything")

    def _target_release(self) -> str:
        """The release every host ends on: the given or derived id (deploy), or the explicit rollback target."""
        release = str(self.s.get("release") or "")
        if self.mode == "rollback":
            if release and not RELEASE_ID.fullmatch(release):
                self.problems.append(f"deploy_release {release!r} is not a valid release id")
            return release
        if release:
            if not RELEASE_ID.fullmatch(release) or release in (".", ".."):
                self.problems.append(f"deploy_release {release!r} is not a valid release id: use letters, digits, '.', '_', '+', '-' (at most 128)")
        elif self.sha256:
            release = "r-" + self.sha256[:12]
        if self.sha256 and release:
            wanted = f"sha256:{self.sha256}"
            for host in self.hosts:
                recorded = host.record(release).get("source_checksum")
                if recorded and recorded != wanted:
                    self.problems.append(
                        f"deploy_release {release} already exists on {host.name} from another artifact ({recorded}; deploy_artifact is {wanted}): "
                        "releases are immutable, give a new deploy_release")
        return release

    # -- load balancer ----------------------------------------------------------------------------------------
    def _backend(self, name: str, option: str) -> dict[str, t.Any] | None:
        if not name:
            self.problems.append(f"{option} is not set: name the HAProxy backend that holds the app servers")
            return None
        backend = self.lb.get("backends", {}).get(name)
        if backend is None:
            self.problems.append(f"{option} {name!r} is not a backend of the load balancer")
        return backend

    def _attach_servers(self, backend_name: str, backend: dict[str, t.Any], hosts: list[Host], option: str) -> None:
        servers = backend.get("servers", {})
        for host in hosts:
            host.lb = servers.get(host.server)
            if host.lb is None:
                self.problems.append(
                    f"{host.name}'s server {host.server!r} is not in {option} {backend_name} (it has {', '.join(sorted(servers)) or 'no servers'}); "
                    "set deploy_lb_server for hosts whose server name differs from the inventory name")

    def _min_ready(self, backend: dict[str, t.Any]) -> int:
        total = len(backend.get("servers", {}))
        need = count_or_percent(self.s.get("min_ready", "75%"), total, "deploy_min_ready", self.problems)
        if need is not None and need > total:
            self.problems.append(f"deploy_min_ready {self.s.get('min_ready')!r} needs {need} servers but the backend has {total}")
        return need or 0

    # -- rolling and canary -----------------------------------------------------------------------------------
    def _plan_rolling(self, target: str) -> dict[str, t.Any]:
        backend_name = str(self.s.get("backend") or "")
        backend = self._backend(backend_name, "deploy_lb_backend")
        if backend is None:
            raise PlanError(self.problems)
        self._attach_servers(backend_name, backend, self.hosts, "deploy_lb_backend")
        if any(h.lb is None for h in self.hosts):
            raise PlanError(self.problems)
        need = self._min_ready(backend)
        serving = sum(1 for server in backend["servers"].values() if server.get("serving"))

        targets = self._targets(target)
        for host in self.hosts:
            host_target = targets.get(host.name)
            host.action = host_action(host, host_target, traffic=True) if host_target else NONE
        todo = [h for h in rollout_order(self.hosts, target) if h.action != NONE]

        canary: dict[str, t.Any] = {"hosts": [], "servers": [], "steps": [], "phase": None, "baseline": [], "group": self.s.get("canary_group")}
        index = 1
        waves: list[dict[str, t.Any]] = []
        if self.strategy == "canary" and self.mode == "deploy":
            self._check_steps()
            canary_hosts, phase = self._choose_canaries(target, todo)
            if canary_hosts:
                todo = [h for h in todo if h not in canary_hosts]
                serving_out = sum(1 for h in canary_hosts if h.serving)
                if phase == "canary" and serving_out > max(0, serving - need):
                    self.problems.append(
                        f"deploy_canary_hosts {self.s.get('canary_hosts')!r} takes {serving_out} serving servers out but deploy_min_ready "
                        f"{self.s.get('min_ready')!r} leaves room for {max(0, serving - need)} ({serving} in service, {need} needed)")
                baseline = [h for h in self.hosts if h not in canary_hosts]
                canary = {
                    "hosts": [h.name for h in canary_hosts], "servers": [h.server for h in canary_hosts], "phase": phase,
                    "baseline": [h.name for h in baseline], "group": self.s.get("canary_group"), "index": index,
                    "steps": self._canary_steps(canary_hosts, baseline, backend_name, backend) if phase == "canary" else [],
                }
                serving += sum(1 for h in canary_hosts if not h.serving)
                index += 1
        sizes = ramp(self.s.get("batches", DEFAULT_BATCHES), len(todo), self.problems)
        cut, blocked = cut_waves(todo, sizes or [1], serving, need, index)
        if blocked and not any("deploy_min_ready" in p for p in self.problems):
            self.problems.append(f"deploy_min_ready {self.s.get('min_ready')!r}: {blocked}")
        phase = "rollback" if self.mode == "rollback" else "rolling"
        for wave in cut:
            waves.append({"index": index, "phase": phase, "hosts": [h.name for h in wave], "servers": [h.server for h in wave]})
            index += 1
        return self._result(target, targets, {
            "lb": {"backend": backend_name, "servers": len(backend["servers"]), "serving": serving_before(backend), "min_ready": need,
                   "room": serving_before(backend) - need},
            "batches": [len(w["hosts"]) for w in waves],
            "canary": canary,
            "waves": waves,
            "blue_green": None,
        })

    def _targets(self, target: str) -> dict[str, str]:
        """The release each host ends on. For a rollback: the explicit target, else each host's own last good one.

        Without an explicit target, a rollback undoes the latest rollout and converges: a host an earlier rollback
        brought back stays; a host whose release has not passed its gates (a held or killed rollout) goes back; a host
        that finished on the release those hosts go back to was not part of that rollout and stays. When every host
        finished its rollout, all go back.
        """
        if self.mode == "deploy":
            return {h.name: target for h in self.hosts}

        def rolled_back(host: Host) -> bool:
            record = host.record(host.current)
            return bool(host.current) and record.get("activated_by") == "rollback" and record.get("outcome") == "good"

        unfinished = [h for h in self.hosts if h.current and not rolled_back(h) and not gated(h.record(h.current))]
        destinations = {h.previous_good for h in unfinished if h.previous_good} | {h.current for h in self.hosts if rolled_back(h)}
        targets = {}
        for host in self.hosts:
            if target:
                wanted = target
            elif rolled_back(host) or (host not in unfinished and host.current in destinations):
                wanted = host.current or ""  # already where the rollback converges: never further back
            else:
                wanted = host.previous_good or ""
            if not wanted:
                self.problems.append(f"{host.name} has no release marked good to roll back to (current: {host.current or 'none'})")
            elif wanted not in host.records or not host.records[wanted].get("on_disk", True):
                self.problems.append(f"{host.name} cannot roll back to {wanted}: it is not on the host")
            else:
                targets[host.name] = wanted
        return targets

    def _choose_canaries(self, target: str, todo: list[Host]) -> tuple[list[Host], str | None]:
        count = count_or_percent(self.s.get("canary_hosts", "1"), len(self.hosts), "deploy_canary_hosts", self.problems, minimum=1)
        if count is None:
            return [], None
        if count >= len(self.hosts):
            self.problems.append(f"deploy_canary_hosts {self.s.get('canary_hosts')!r} means {count} of the {len(self.hosts)} hosts: "
                                 "no baseline would be left to compare the canaries with")
            return [], None
        passed = [h for h in self.hosts if h.current == target and gated(h.record(target))]
        held = [h for h in todo if h.current == target and not gated(h.record(target))]
        if self.s.get("canary_promote") and held:
            self.notes.append(f"deploy_canary_promote: {', '.join(h.name for h in held)} run {target} and are promoted without another analysis")
            for host in held:
                # it was restarted and gated before it was held: it serves at its weight, so no restart (unless it is down)
                host.action = RESTART if host.down or not host.serving else READMIT
            return held, "promote"
        if self.s.get("canary_promote"):
            self.notes.append("deploy_canary_promote is set but no canary is held on the release: the canary runs as usual")
        if len(passed) >= count:
            self.notes.append(f"the canary phase already passed: {', '.join(h.name for h in passed)} run {target} and passed their gates")
            return [], None
        return todo[:count], "canary"

    def _check_steps(self) -> None:
        """Each step has exactly one known key with a value in range (the argument spec already refused unknown keys)."""
        for index, step in enumerate(self.s.get("canary_steps") or []):
            given = [k for k in ("set_weight", "pause", "analysis") if step.get(k) is not None]
            if len(given) != 1:
                self.problems.append(f"deploy_canary_steps[{index}] must have exactly one of set_weight, pause, analysis (it has {', '.join(given) or 'none'})")
            elif given[0] == "set_weight":
                share = step["set_weight"]
                if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 99:
                    self.problems.append(f"deploy_canary_steps[{index}].set_weight {share!r} must be a percentage from 0 to 99 "
                                         "(100 would leave the baseline no traffic)")
            elif given[0] == "pause":
                seconds = step["pause"]
                if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0:
                    self.problems.append(f"deploy_canary_steps[{index}].pause {seconds!r} must be a number of seconds, 0 or more")

    def _canary_steps(self, canaries: list[Host], baseline: list[Host], backend_name: str, backend: dict[str, t.Any]) -> list[dict[str, t.Any]]:
        steps = self.s.get("canary_steps") or []
        defaults = dict(self.s.get("canary_analysis") or {})
        # As sre.ops.haproxy_server's share option sees the backend when the step runs: every other server that
        # takes traffic (backups only do when every active server is down), in the inventory or not.
        canary_servers = {h.server for h in canaries}
        others_weight = sum(int(server.get("weight") or 0) for name, server in backend.get("servers", {}).items()
                            if name not in canary_servers and server.get("serving") and not server.get("backup"))
        out = []
        share_now: float | None = None  # the canaries' share of the backend's traffic when an analysis step runs
        for index, step in enumerate(steps):
            given = [k for k in ("set_weight", "pause", "analysis") if step.get(k) is not None]
            if len(given) != 1:
                continue  # reported by _check_steps
            kind = given[0]
            if kind == "set_weight":
                share = step["set_weight"]
                if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share <= 99:
                    continue
                if share and not others_weight:
                    # a first install: nothing else serves, so there is no traffic to share; the canaries go in at full weight
                    self.notes.append(f"deploy_canary_steps[{index}].set_weight {share}: no other server of {backend_name} takes traffic, "
                                      "so the canaries take all of it at their full weight")
                    out.append({"index": index, "kind": kind, "set_weight": share, "share": None, "weight": None, "effective": 100.0})
                    share_now = None
                    continue
                try:
                    # the weight the step will set (sre.ops.haproxy_server share=), refused here if no whole weight gives it
                    predicted = share_weight(float(share), len(canaries), others_weight, backend_name)
                except SreOpsError as exc:
                    self.problems.append(f"deploy_canary_steps[{index}].set_weight {share}: {exc.msg}")
                    continue
                out.append({"index": index, "kind": kind, "set_weight": share, "share": share, "weight": predicted["weight"],
                            "effective": predicted["effective"]})
                share_now = predicted["effective"] / 100
            elif kind == "pause":
                out.append({"index": index, "kind": kind, "pause": step["pause"]})
            else:
                options = dict(defaults, **(step.get("analysis") or {}))
                options = {k: v for k, v in options.items() if v is not None}
                options.setdefault("canary", [h.server for h in canaries])
                if "canary_urls" not in options and all(h.probe_url for h in canaries + baseline):
                    # the same number of URLs on each side, so every probed host gets the same load
                    options["canary_urls"] = [h.probe_url for h in canaries]
                    options["baseline_urls"] = [h.probe_url for h in [b for b in baseline if b.serving][: len(canaries)]]
                out.append({"index": index, "kind": kind, "analysis": options, "power": self._power(index, options, share_now)})
        return out

    def _power(self, index: int, options: dict[str, t.Any], share: float | None) -> dict[str, t.Any] | None:
        """What the analysis step would detect at deploy_canary_expected_rps (sre.ops.canary_analysis's own power functions)."""
        rate = self.s.get("canary_expected_rps") or 0
        if not rate:
            return None
        if share is None or not 0 < share < 1:
            self.notes.append(f"deploy_canary_steps[{index}].analysis: no set_weight step before it gives the canaries a share of the "
                              "traffic, so the plan cannot say what it would detect")
            return None
        latency = self.s.get("canary_expected_latency_ms") or {}
        p50, p90 = latency.get("p50"), latency.get("p90")
        if (p50 is None) != (p90 is None):
            _once(self.problems, "deploy_canary_expected_latency_ms needs both p50 and p90 (the baseline's median and 90th percentile in ms), "
                                 "or neither")
            return None
        try:
            # the role always gives the analysis the load balancer's socket (error counters when no request log is read)
            power = power_statement(dict(options, socket=options.get("socket") or "deploy_lb_socket"), expected_rate=float(rate),
                                    canary_share=share, baseline_p50_ms=p50, baseline_p90_ms=p90)
        except SreOpsError as exc:
            msg = exc.msg
            for name, variable in _POWER_ARGUMENTS.items():
                msg = msg.replace(name, variable)
            self.problems.append(f"deploy_canary_steps[{index}].analysis: {msg}")
            return None
        if p50 is None and any(m["metric"] == "latency" and m["power"] is None for m in power["metrics"]):
            _once(self.notes, "set deploy_canary_expected_latency_ms ({p50: ..., p90: ...}, the baseline's usual response times in ms) "
                              "for the plan to state the latency rise each analysis step would detect")
        return power

    # -- blue-green ---------------------------------------------------------------------------------------------
    def _plan_blue_green(self, target: str) -> dict[str, t.Any]:
        s = self.s
        backends: dict[str, str] = dict(s.get("bg_backends") or {})
        map_path, key = str(s.get("bg_map") or ""), str(s.get("bg_map_key") or "")
        if sorted(backends) != ["blue", "green"]:
            self.problems.append(f"deploy_bg_backends must name the backend of blue and of green, got {sorted(backends)}")
        if not map_path:
            self.problems.append("deploy_bg_map is not set: name the HAProxy map that routes traffic to a colour")
        if not key:
            self.problems.append("deploy_bg_map_key is not set: name the map key switched between the colours (for example the Host header)")
        if s.get("bg_retire") and self.mode == "deploy" and not (s.get("stop_command") or s.get("stop_unit")):
            self.problems.append("deploy_bg_retire needs deploy_stop_command or deploy_stop_unit (how the old colour's app is stopped)")
        if self.problems:
            raise PlanError(self.problems)
        routed = self.lb.get("maps", {}).get(map_path, {}).get(key)
        live = next((colour for colour, name in backends.items() if name == routed), None)
        if live is None:
            raise PlanError(self.problems + [
                f"deploy_bg_map_key {key!r} in deploy_bg_map {map_path} points at {routed or 'nothing'}, "
                f"which is neither deploy_bg_backends blue ({backends['blue']}) nor green ({backends['green']})"])
        idle = "green" if live == "blue" else "blue"
        members: dict[str, list[Host]] = {}
        for colour in ("blue", "green"):
            members[colour] = [self.by_name[n] for n in self.bg_members.get(colour, []) if n in self.by_name]
            if not members[colour]:
                self.problems.append(f"the {colour} colour (deploy_bg_groups.{colour}) has no host in this play")
            backend = self._backend(backends[colour], f"deploy_bg_backends.{colour}")
            if backend is not None:
                self._attach_servers(backends[colour], backend, members[colour], f"deploy_bg_backends.{colour}")
            for host in members[colour]:
                host.colour = colour
        if self.problems:
            raise PlanError(self.problems)
        live_hosts, idle_hosts = members[live], members[idle]
        targets: dict[str, str] = {}
        switch_to, confirm = idle, False
        if self.mode == "deploy":
            for host in self.hosts:
                targets[host.name] = target
                host.action = NONE
            if all(h.current == target for h in live_hosts):
                # the live colour already runs it: a killed run switched, or there is nothing to do
                switch_to, confirm = live, True
                for host in live_hosts:
                    host.action = host_action(host, target, traffic=False)
                wave_hosts = [h for h in live_hosts if h.action != NONE]
            else:
                for host in idle_hosts:
                    host.action = host_action(host, target, traffic=False)
                wave_hosts = idle_hosts
        else:
            outcomes = {h.name: h.record(h.current).get("outcome") for h in idle_hosts}
            live_good = all(h.record(h.current).get("outcome") == "good" for h in live_hosts)
            for host in self.hosts:
                host.action = NONE
                targets[host.name] = host.current or ""
            if all(o == "failed" for o in outcomes.values()) and live_good:
                self.notes.append(f"already rolled back: {idle} runs a release an earlier rollback marked failed; {live} stays live")
                wave_hosts, switch_to, confirm = [], live, True
            elif any(not h.current or o != "good" for h, o in zip(idle_hosts, outcomes.values())):
                bad = ", ".join(f"{h.name} ({h.current or 'nothing'}, {outcomes[h.name] or 'unknown'})" for h in idle_hosts)
                raise PlanError(self.problems + [f"cannot roll back to {idle}: it must run a release marked good on every host, but runs {bad}"])
            else:
                for host in idle_hosts:
                    # gate the colour before traffic returns to it; restart it if it was retired (its checks fail)
                    host.action = RESTART if host.down or not host.serving else READMIT
                wave_hosts = idle_hosts
        waves = []
        if wave_hosts or (self.mode == "deploy" and not confirm):
            waves.append({"index": 1, "phase": "blue_green" if self.mode == "deploy" else "rollback", "hosts": [h.name for h in wave_hosts],
                          "servers": [h.server for h in wave_hosts]})
        bg = {
            "live": live, "idle": idle, "live_backend": backends[live], "idle_backend": backends[idle],
            "live_hosts": [h.name for h in live_hosts], "idle_hosts": [h.name for h in idle_hosts],
            "switch_to": switch_to, "switch_backend": backends[switch_to], "switch": bool(waves) and not confirm,
            "map": map_path, "key": key,
            "live_releases": sorted({h.current or "none" for h in live_hosts}),
            "retire": bool(s.get("bg_retire")) and self.mode == "deploy" and bool(waves) and not confirm,
        }
        return self._result(target, targets, {
            "lb": {"backend": None, "servers": None, "serving": None, "min_ready": None, "room": None},
            "batches": [len(w["hosts"]) for w in waves],
            "canary": {"hosts": [], "servers": [], "steps": [], "phase": None, "baseline": [], "group": self.s.get("canary_group")},
            "waves": waves,
            "blue_green": bg,
        })

    # -- the result -------------------------------------------------------------------------------------------
    def _result(self, target: str, targets: dict[str, str], parts: dict[str, t.Any]) -> dict[str, t.Any]:
        wave_of: dict[str, tuple[int, str]] = {}
        for wave in parts["waves"]:
            for name in wave["hosts"]:
                wave_of[name] = (wave["index"], wave["phase"])
        canary = parts["canary"]
        for name in canary.get("hosts", []):
            wave_of[name] = (canary["index"], canary["phase"])
        hosts = {}
        for host in self.hosts:
            action = host.action
            host_target = targets.get(host.name) or host.current
            before = host.current
            # What a failed wave goes back to: what the host ran before this rollout, never further.
            rollback_to = before if before != host_target else host.previous_good
            hosts[host.name] = {
                "server": host.server,
                "colour": host.colour,
                "current": before,
                "target": host_target,
                "action": action,
                "actions": list(PLAN_ACTIONS[action]),
                "restart": action in NEEDS_RESTART,
                "release_state": "rolled_back" if self.mode == "rollback" else "active",
                "rollback_to": rollback_to,
                "protect": [r for r in (rollback_to,) if r],
                "wave": wave_of.get(host.name, (None, None))[0],
                "phase": wave_of.get(host.name, (None, None))[1],
                "lb": host.lb_state(),
                "gate": NOT_KNOWN if action in NEEDS_RESTART else ("checked when readmitted" if action == READMIT else "not needed"),
            }
        order = [h.name for h in rollout_order(self.hosts, target)] if self.strategy != "blue_green" else [h.name for h in self.hosts]
        todo = [n for n in order if hosts[n]["action"] != NONE]
        return {
            "mode": self.mode,
            "strategy": self.strategy,
            "release": target,
            "artifact_sha256": self.sha256,
            "hosts": hosts,
            "order": order,
            "todo": todo,
            "nothing_to_do": not todo and not (parts["blue_green"] or {}).get("switch"),
            "notes": self.notes,
            **parts,
        }


def serving_before(backend: dict[str, t.Any]) -> int:
    return sum(1 for server in backend.get("servers", {}).values() if server.get("serving"))


# ----- words ---------------------------------------------------------------------------------------------
def _change(host: dict[str, t.Any]) -> str:
    """A host's change in plan classes, with what it is: ``update + restart (v1 -> v2); health gate not known until deployed``."""
    action = host["action"]
    what = {CREATE: host["target"], UPDATE: f"{host['current']} -> {host['target']}", RESTART: f"on {host['target']}",
            READMIT: f"readmit on {host['target']}, LB {host['lb']}"}.get(action)
    classes = " + ".join(PLAN_ACTIONS[action])
    return f"{classes} ({what}); health gate {host['gate']}" if what else classes


def _hosts_lines(names: list[str], hosts: dict[str, t.Any]) -> str:
    """The same change on several hosts once, as sre.ops.plan groups them: ``web2..web4: update + restart (v1 -> v2); ...``."""
    groups: dict[str, list[str]] = {}
    for name in names:
        groups.setdefault(_change(hosts[name]), []).append(name)
    return "; ".join(f"{words.host_ranges(group)}: {change}" for change, group in groups.items())


def closing_line(plan: dict[str, t.Any]) -> str:
    """``Rollout plan: 4 hosts, 4 to change (0 create, 4 update, 0 delete, 4 restart).``: hosts by what they need, in plan classes."""
    counts: dict[str, int] = {}
    for host in plan["hosts"].values():
        for action in host["actions"]:
            counts[action] = counts.get(action, 0) + 1
    changing = sum(1 for h in plan["hosts"].values() if any(a in words.CHANGE_ACTIONS for a in h["actions"]))
    return words.closing_line("Rollout plan", len(plan["hosts"]), changing, counts)


def summarize(plan: dict[str, t.Any]) -> list[str]:
    """The plan in lines for the play's output."""
    lines = [f"{plan['mode']} ({plan['strategy']}) to {plan['release'] or 'each host' + chr(39) + 's last good release'}"
             + (f", artifact sha256 {plan['artifact_sha256'][:12]}..." if plan.get("artifact_sha256") else "")]
    lb = plan["lb"]
    if lb.get("backend"):
        lines.append(f"load balancer: backend {lb['backend']}, {lb['serving']} of {lb['servers']} servers in service, min_ready {lb['min_ready']}")
    canary = plan["canary"]
    if canary.get("hosts"):
        steps = " -> ".join(
            f"set_weight {s['set_weight']} (weight {s['weight'] or 'full'}: {s['effective']:g}%)" if s["kind"] == "set_weight" else
            (f"pause {s['pause']}s" if s["kind"] == "pause" else f"analysis ({s['analysis'].get('window', 60)}s window)")
            for s in canary["steps"]) or "none"
        lines.append(f"wave {canary['index']} ({canary['phase']}): " + _hosts_lines(canary["hosts"], plan["hosts"]))
        if canary["phase"] == "canary":
            lines.append(f"  canary steps: {steps}; baseline: {', '.join(canary['baseline'])}")
            for step in canary["steps"]:
                if step.get("power"):
                    verdict = "" if step["power"]["sufficient"] else " (not every metric is known to have the required power)"
                    lines.append(f"  analysis step {step['index']} would detect{verdict}:")
                    lines += [f"    {sentence}" for sentence in step["power"]["detectable"]]
    for wave in plan["waves"]:
        lines.append(f"wave {wave['index']} ({wave['phase']}): " + (_hosts_lines(wave["hosts"], plan["hosts"]) or "no host changes"))
    bg = plan.get("blue_green")
    if bg:
        if bg["switch"]:
            lines.append(f"switch {bg['key']} in {bg['map']}: {bg['live_backend']} ({bg['live']}) -> {bg['idle_backend']} ({bg['idle']})"
                         + (f"; then stop {bg['live']}" if bg["retire"] else ""))
        else:
            lines.append(f"{bg['key']} stays on {bg['switch_backend']} ({bg['switch_to']})")
    done = [n for n in plan["order"] if plan["hosts"][n]["action"] == NONE and plan["hosts"][n]["wave"] is None]
    if bg and bg["switch"]:
        lines.append(f"{', '.join(bg['live_hosts'])} ({bg['live']}) keep serving {', '.join(bg['live_releases'])} until the switch")
        done = [n for n in done if n not in bg["live_hosts"]]
    if done:
        lines.append(f"already done (noop): {words.host_ranges(done)}")
    if plan["nothing_to_do"]:
        lines.append("nothing to do: every host runs the release, passed its gates and is in service")
    lines += [f"note: {n}" for n in plan["notes"]]
    lines.append(plan.get("closing_line") or closing_line(plan))
    return lines


# ----- the report ----------------------------------------------------------------------------------------
def _number(value: t.Any) -> float | None:
    try:
        return round(float(value), 3)
    except (TypeError, ValueError):
        return None


def assemble_report(plan: dict[str, t.Any], records: list[dict[str, t.Any]], analyses: list[dict[str, t.Any]], *,
                    run_id: str, started: float, ended: float, check_mode: bool, held: bool = False) -> dict[str, t.Any]:
    """The rollout report: the same field types on every ansible-core (numbers as numbers), from the plan and the hosts' records."""
    by_host = {str(r.get("host")): r for r in records if isinstance(r, dict) and r.get("host")}
    waves_out = []
    reasons: list[str] = []
    unfinished: list[str] = []
    all_waves = ([{"index": plan["canary"]["index"], "phase": plan["canary"]["phase"], "hosts": plan["canary"]["hosts"]}]
                 if plan["canary"].get("hosts") else []) + list(plan["waves"])
    for wave in all_waves:
        rows = []
        for name in wave["hosts"]:
            host = plan["hosts"][name]
            record = by_host.get(name)
            if check_mode:
                rows.append(_planned_row(name, host))
            elif record is None:
                rows.append(dict(_planned_row(name, host), outcome="not started", health="not run"))
                unfinished.append(name)
            else:
                row = _recorded_row(name, host, record)
                rows.append(row)
                if row["failure"]:
                    reasons.append(f"wave {int(wave['index'])} ({wave['phase']}) {name}: {row['failure']}")
        outcomes = sorted({r["outcome"] for r in rows})
        waves_out.append({"wave": int(wave["index"]), "phase": str(wave["phase"]), "hosts": list(wave["hosts"]), "outcome": ", ".join(outcomes),
                          "records": rows})
    rolled_back = any(r["outcome"] == "rolled_back" for w in waves_out for r in w["records"])
    if check_mode:
        verdict = "planned"
    elif reasons:
        verdict = "aborted"
    elif held:
        verdict = "held"
        reasons.append("canary held at its weight after an inconclusive analysis: rerun with deploy_canary_promote=true to continue, "
                       "or run sre.ops.rollback")
    elif unfinished:
        verdict = "aborted"
        reasons.append(f"{', '.join(unfinished)} did not finish (the play's output says why)")
    else:
        verdict = "completed"
    clean_analyses = [{
        "step": int(a.get("step") or 0),
        "verdict": str(a.get("verdict") or "unknown"),
        "reasons": [str(x) for x in a.get("reasons") or []],
        "metrics": a.get("metrics") or [],
        "measurements": a.get("measurements") or {},
        "canary_urls": [str(u) for u in a.get("canary_urls") or []],
        "baseline_urls": [str(u) for u in a.get("baseline_urls") or []],
    } for a in analyses if isinstance(a, dict)]
    return {
        "run_id": str(run_id),
        "mode": str(plan["mode"]),
        "strategy": str(plan["strategy"]),
        "release": str(plan["release"] or ""),
        "artifact_sha256": str(plan.get("artifact_sha256") or ""),
        "check_mode": bool(check_mode),
        "started": float(round(started, 3)),
        "ended": float(round(ended, 3)),
        "duration_s": float(round(ended - started, 2)),
        "verdict": verdict,
        "abort_reason": "; ".join(reasons),
        "rollback_taken": bool(rolled_back),
        "nothing_to_do": bool(plan["nothing_to_do"]),
        "batches": [int(b) for b in plan["batches"]],
        "min_ready": plan["lb"].get("min_ready"),
        "canary": {"hosts": list(plan["canary"].get("hosts", [])), "phase": plan["canary"].get("phase"),
                   "steps": list(plan["canary"].get("steps", []))},
        "blue_green": plan.get("blue_green"),
        "analyses": clean_analyses,
        "waves": waves_out,
        "summary": list(plan.get("summary", [])),
    }


def _actions(host: dict[str, t.Any]) -> list[str]:
    return [str(a) for a in host.get("actions") or PLAN_ACTIONS.get(str(host["action"]), [words.NOOP])]


def _planned_row(name: str, host: dict[str, t.Any]) -> dict[str, t.Any]:
    return {
        "host": name, "action": str(host["action"]), "actions": _actions(host), "release_before": host["current"], "release_after": host["target"],
        "switched": host["current"] != host["target"], "restarted": bool(host["restart"]), "pruned": [], "healthy": None,
        "health": str(host["gate"]), "outcome": "planned", "failure": "", "finished_at": None,
    }


def _recorded_row(name: str, host: dict[str, t.Any], record: dict[str, t.Any]) -> dict[str, t.Any]:
    switch = record.get("switch") if isinstance(record.get("switch"), dict) else {}
    health = record.get("health") if isinstance(record.get("health"), dict) else {}
    rollback = record.get("rollback") if isinstance(record.get("rollback"), dict) else {}
    before = ((switch.get("diff") or {}).get("before") or {}).get("current", host["current"]) if switch else host["current"]
    after = switch.get("current", host["target"]) if switch and not switch.get("skipped") else host["current"]
    outcome = str(record.get("outcome") or "unknown")
    if rollback and not rollback.get("skipped"):
        after = rollback.get("current", after)
    return {
        "host": name,
        "action": str(host["action"]),
        "actions": _actions(host),
        "release_before": before,
        "release_after": after,
        "switched": bool(switch.get("switched", False)),
        "restarted": bool(record.get("restarted", False)),
        "pruned": [str(p) for p in switch.get("pruned") or []],
        "healthy": health.get("healthy") if "healthy" in health else None,
        "health": str(health.get("msg") or ("not run" if not health else "")),
        "outcome": outcome,
        "failure": str(record.get("failure") or ""),
        "finished_at": _number(record.get("at")),
    }


def report_lines(report: dict[str, t.Any], path: str) -> list[str]:
    """The few lines the play ends with."""
    what = f"{report['strategy']} {report['mode']} " + (f"of {report['release']}" if report["release"] else "to each host's last good release")
    lines = [f"{what}: {report['verdict']} in {report['duration_s']:.1f} s"]
    if report["verdict"] == "planned":
        lines.append("check mode: nothing was changed; this is what the run would do")
    elif report["abort_reason"]:
        lines.append(report["abort_reason"])
    elif report["nothing_to_do"]:
        lines.append("nothing to do: every host already ran the release, had passed its gates and was in service")
    elif report["blue_green"]:
        bg = report["blue_green"]
        lines.append(f"{bg['switch_to']} ({bg['switch_backend']}) takes the traffic" + (f"; {bg['live']} was stopped" if bg["retire"] else ""))
    else:
        lines.append(f"every host of the plan {'runs ' + report['release'] if report['release'] else 'is back on its last good release'}")
    lines.append(f"report: {path or 'not written (deploy_report_dir is empty)'}")
    return lines
