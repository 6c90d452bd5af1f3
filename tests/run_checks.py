# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run every check `make test` promises, in the installed collection, and print one summary.

Usage: python tests/run_checks.py [sanity|lint|unit|docs|galaxy|integration|compat|molecule ...]
Each stage's full output goes to $SREOPS_LOG_DIR/<stage>.log; a failing stage's tail is printed.
A docker engine of our own (tests/utils/docker_engine.py) is started when a stage needs one; the base image and
the execution environment are built in the background while the first stages run, and the engine is stopped at
the end. The docs and galaxy stages run beside integration (they need no fleet and little time), compat beside
molecule (both spend most of their time waiting on SSH and containers, and their fleets have addresses of their own).
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG_DIR = os.environ.get("SREOPS_LOG_DIR", os.path.join(ROOT, ".logs"))
BUILD_DIR = os.path.dirname(LOG_DIR)
# Target Pythons the collection supports besides the controller's; compiled where this machine has them.
TARGET_PYTHONS = ("3.9", "3.10", "3.12", "3.13")
# The ansible-core versions CI runs besides the .venv's (scripts/bootstrap makes these venvs in the checkout).
VENVS_DIR = os.environ.get("SREOPS_VENVS_DIR", ROOT)
COMPAT_VENVS = (".venv-ansible-2.16", ".venv-ansible-newest")
DOCKER_ENGINE = [sys.executable, os.path.join(ROOT, "tests", "utils", "docker_engine.py")]
# A stage: (command, environment or None to inherit) run in order.
Commands = list[tuple[list[str], "dict[str, str] | None"]]


def find_python(version: str) -> str | None:
    """A working pythonX.Y: on PATH if it runs (pyenv shims may not), else in pyenv's version directories."""
    candidates = [shutil.which(f"python{version}") or ""]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")), reverse=True)
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "--version"], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def sanity() -> Commands:
    controller = f"{sys.version_info.major}.{sys.version_info.minor}"
    commands: Commands = [
        (["ansible-test", "sanity", "--requirements", "--python", controller, "--color", "no"], None)
    ]
    for version in TARGET_PYTHONS:
        interpreter = find_python(version) if version != controller else None
        if interpreter:
            env = dict(os.environ, PATH=os.path.dirname(interpreter) + os.pathsep + os.environ["PATH"])
            commands.append((["ansible-test", "sanity", "--test", "compile", "--python", version, "--color", "no"], env))
    return commands


def integration_workers() -> list[str]:
    """pytest-xdist options: test files spread over $SREOPS_TEST_WORKERS processes (default 3, 1 = no xdist).

    Most of an integration test's time is spent waiting on SSH round trips, HAProxy health checks and traffic
    windows, so three workers keep two cores busy (at most 4: each worker's fleets get a quarter of the
    third octet, see tests/fleet/sreops_fleet/core.py). Whole files go to one worker (loadfile): a
    file's fleet fixture is brought up once, and each worker's fleets get addresses of their own.
    """
    workers = os.environ.get("SREOPS_TEST_WORKERS", "3")
    if not workers.isdigit() or not 1 <= int(workers) <= 4:
        raise SystemExit(f"SREOPS_TEST_WORKERS must be a whole number from 1 to 4, got {workers!r}")
    return [] if int(workers) == 1 else ["-n", workers, "--dist", "loadfile"]


def docs() -> Commands:
    return [
        (["antsibull-docs", "lint-collection-docs", "--plugin-docs", "."], None),
        (["scripts/docs", os.path.join(BUILD_DIR, "docs")], None),
    ]


def galaxy() -> Commands:
    # ansible-lint already ran with the stricter production profile in the lint stage
    env = dict(os.environ, GALAXY_IMPORTER_RUN_ANSIBLE_LINT="false")
    return [([sys.executable, "-m", "galaxy_importer.main", os.environ["SREOPS_TARBALL"]], env)]


def compat() -> dict[str, Commands]:
    """Unit tests and one fleet deploy on each other ansible-core CI covers (oldest declared, newest runnable),
    the two side by side (each test_compat fleet takes addresses of its own)."""
    groups: dict[str, Commands] = {}
    for name in COMPAT_VENVS:
        python = os.path.join(VENVS_DIR, name, "bin", "python")
        if not os.path.exists(python):
            if name.endswith("newest"):
                print(f"compat: no {name} (no Python >= 3.12 here): ansible-core of .venv is the newest this machine runs", flush=True)
            else:
                groups[name] = [([sys.executable, "-c", f"raise SystemExit('compat: {python} missing; make bootstrap creates it')"], None)]
            continue
        env = dict(os.environ, PATH=os.path.dirname(python) + os.pathsep + os.environ["PATH"])
        groups[name] = [
            ([python, "-c", "import ansible.release, sys; print('ansible-core', ansible.release.__version__, 'on', sys.version.split()[0])"], env),
            # the kill matrix drives restic, not ansible-core: the unit stage runs it once
            ([python, "-m", "pytest", "-p", "no:cacheprovider", "tests/unit", "--ignore", "tests/unit/plugins/module_utils/test__kill_matrix.py"], env),
            ([python, "-m", "pytest", "-p", "no:cacheprovider", "--durations=5", "tests/integration/test_compat.py"], env),
        ]
    return groups


def molecule() -> Commands:
    commands: Commands = [(["molecule", "test", "--scenario-name", name], None) for name in ("default", "deploy", "backup")]
    if ENGINE.available:
        commands.append((["molecule", "test", "--scenario-name", "docker"], None))
    else:
        print(f"molecule: docker scenario skipped: {ENGINE.reason}", flush=True)
    return commands


class DockerEngine:
    """The engine, base image and execution environment, made in the background while the first stages run."""

    def __init__(self) -> None:
        self.available = False
        self.reason = "not started"
        self._thread: threading.Thread | None = None

    def prepare(self) -> None:
        self._thread = threading.Thread(target=self._prepare, daemon=True)
        self._thread.start()

    def _prepare(self) -> None:
        os.makedirs(LOG_DIR, exist_ok=True)
        started = time.monotonic()
        with open(os.path.join(LOG_DIR, "docker.log"), "wb") as log:
            proc = subprocess.run([*DOCKER_ENGINE, "start"], stdout=subprocess.PIPE, stderr=log, stdin=subprocess.DEVNULL, check=False)
            if proc.returncode != 0:
                self.reason = "no docker engine can be started here (see docker.log)"
                return
            os.environ["DOCKER_HOST"] = proc.stdout.decode().strip().split("=", 1)[1]
            tarball = os.environ.get("SREOPS_TARBALL", "")
            steps = [[*DOCKER_ENGINE, "base-image"]] + ([[*DOCKER_ENGINE, "ee", tarball]] if os.path.isfile(tarball) else [])
            for step in steps:
                if subprocess.run(step, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False).returncode != 0:
                    self.reason = f"{step[-2] if step[-2] == 'ee' else step[-1]} failed (see docker.log)"
                    return
            log.write(f"docker engine, base image and EE ready in {time.monotonic() - started:.0f}s\n".encode())
        self.available = True

    def wait(self) -> None:
        if self._thread:
            self._thread.join()

    def stop(self) -> None:
        if self._thread:
            self.wait()
            subprocess.run([*DOCKER_ENGINE, "stop"], capture_output=True, check=False)


ENGINE = DockerEngine()
NEEDS_DOCKER = ("integration", "molecule")
# stage -> stages run side by side with it (when both are asked for)
BESIDE = {"integration": ("docs", "galaxy"), "molecule": ("compat",)}

STAGES = {
    "sanity": sanity,
    "lint": lambda: [(["ansible-lint", "--offline", "--profile", "production", "--nocolor"], None)],
    # two workers: the unit tests are mostly CPU (and the restic kill matrix waits on processes), one pytest leaves a core idle
    "unit": lambda: [([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-n", "2", "--dist", "worksteal", "--durations=10", "tests/unit"], None)],
    "docs": docs,
    "galaxy": galaxy,
    "integration": lambda: [([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *integration_workers(), "--durations=25",
                              "tests/integration"], None)],
    "compat": compat,
    "molecule": molecule,
}


def run_commands(commands: Commands, log) -> bool:
    for command, env in commands:
        log.write(f"$ {' '.join(command)}\n".encode())
        log.flush()
        proc = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False)
        if proc.returncode != 0:
            log.write(f"exit status {proc.returncode}\n".encode())
            return False
    return True


def run_stage(name: str) -> tuple[bool, float, str]:
    """Run a stage's commands in order; a stage may instead give named groups, which run side by side."""
    os.makedirs(LOG_DIR, exist_ok=True)
    log_path = os.path.join(LOG_DIR, f"{name}.log")
    started = time.monotonic()
    commands = STAGES[name]()
    with open(log_path, "wb") as log:
        if isinstance(commands, list):
            return run_commands(commands, log), time.monotonic() - started, log_path
        outcomes: dict[str, bool] = {}
        paths = {group: os.path.join(LOG_DIR, f"{name}-{group}.log") for group in commands}

        def run_group(group: str) -> None:
            with open(paths[group], "wb") as group_log:
                outcomes[group] = run_commands(commands[group], group_log)

        threads = [threading.Thread(target=run_group, args=(group,)) for group in commands]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        for group, path in paths.items():
            log.write(f"=== {group}: {'passed' if outcomes.get(group) else 'FAILED'}\n".encode())
            with open(path, "rb") as group_log:
                log.write(group_log.read())
    return all(outcomes.get(group) for group in commands), time.monotonic() - started, log_path


def tail(path: str, lines: int = 60) -> str:
    with open(path, encoding="utf-8", errors="replace") as handle:
        content = [line for line in handle if "is ignored: it is neither a file nor a directory" not in line]
    return "".join(content[-lines:])


def closing_line(path: str) -> str:
    """The pytest summary line of a stage's log, if it ran pytest."""
    with open(path, encoding="utf-8", errors="replace") as handle:
        found = [line.strip().strip("=").strip() for line in handle if " passed" in line or " failed" in line]
    return found[-1] if found else ""


def isolate_test_network() -> None:
    """Give molecule the same $SREOPS_TEST_NET shift the pytest fleets get (see sreops_fleet.on_test_net)."""
    net = os.environ.get("SREOPS_TEST_NET", "0") or "0"
    if net != "0":
        os.environ.setdefault("SREOPS_MOLECULE_ADDRESS_BASE", f"127.{net}.4.10")
        os.environ.setdefault("SREOPS_MOLECULE_FLEET_DIR", f"/tmp/sre-ops-molecule-fleet-{net}")
        os.environ.setdefault("SREOPS_MOLECULE_DOCKER_ADDRESS_BASE", f"127.{net}.5.10")
        os.environ.setdefault("SREOPS_MOLECULE_DOCKER_FLEET_DIR", f"/tmp/sre-ops-molecule-docker-fleet-{net}")
        os.environ.setdefault("SREOPS_MOLECULE_DEPLOY_ADDRESS_BASE", f"127.{net}.6.10")
        os.environ.setdefault("SREOPS_MOLECULE_DEPLOY_FLEET_DIR", f"/tmp/sre-ops-molecule-deploy-fleet-{net}")


def report(name: str, ok: bool, elapsed: float, log_path: str) -> None:
    detail = closing_line(log_path) if name in ("unit", "integration", "compat") else ""
    print(f"--- {name}: {'PASSED' if ok else 'FAILED'} in {elapsed:.0f}s {detail}  (log: {log_path})", flush=True)
    if not ok:
        print(tail(log_path), flush=True)


def main(argv: list[str]) -> int:
    isolate_test_network()
    names = argv or list(STAGES)
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        print(f"unknown stage(s): {', '.join(unknown)}; choose from {', '.join(STAGES)}", file=sys.stderr)
        return 2
    if any(n in NEEDS_DOCKER for n in names):
        ENGINE.prepare()
    results: dict[str, bool] = {}
    total_started = time.monotonic()
    try:
        beside = {host: [n for n in names if n in others] for host, others in BESIDE.items() if host in names}
        for name in names:
            if any(name in others for others in beside.values()):
                continue
            if name in NEEDS_DOCKER:
                ENGINE.wait()
            print(f"--- {name} ...", flush=True)
            side_results: list[tuple[str, bool, float, str]] = []
            threads = []
            for other in beside.get(name, []):
                print(f"--- {other} ... (beside {name})", flush=True)
                threads.append(threading.Thread(target=lambda o=other: side_results.append((o, *run_stage(o)))))
                threads[-1].start()
            ok, elapsed, log_path = run_stage(name)
            for thread in threads:
                thread.join()
            for other, other_ok, other_elapsed, other_log in side_results:
                report(other, other_ok, other_elapsed, other_log)
                results[other] = other_ok
            report(name, ok, elapsed, log_path)
            results[name] = ok
    finally:
        ENGINE.stop()
    passed = sum(1 for ok in results.values() if ok)
    failed = len(results) - passed
    print("=" * 20 + f" summary ({time.monotonic() - total_started:.0f}s) " + "=" * 20)
    for name in names:
        print(f"{'PASSED' if results.get(name) else 'FAILED'} {name}")
    print(f"checks: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
