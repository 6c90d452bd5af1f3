# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Run every check `make test` promises, in the installed collection, and print one summary.

Usage: python tests/run_checks.py [sanity|lint|unit|integration|molecule ...]
Each stage's full output goes to $SREOPS_LOG_DIR/<stage>.log; a failing stage's tail is printed.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LOG_DIR = os.environ.get("SREOPS_LOG_DIR", os.path.join(ROOT, ".logs"))
# Target Pythons the collection supports besides the controller's; compiled where this machine has them.
TARGET_PYTHONS = ("3.9", "3.10", "3.12", "3.13")


def find_python(version: str) -> str | None:
    """A working pythonX.Y: on PATH if it runs (pyenv shims may not), else in pyenv's version directories."""
    candidates = [shutil.which(f"python{version}") or ""]
    candidates += sorted(glob.glob(os.path.expanduser(f"~/.pyenv/versions/{version}.*/bin/python{version}")), reverse=True)
    for candidate in candidates:
        if candidate and subprocess.run([candidate, "--version"], capture_output=True, check=False).returncode == 0:
            return candidate
    return None


def sanity() -> list[tuple[list[str], dict[str, str] | None]]:
    controller = f"{sys.version_info.major}.{sys.version_info.minor}"
    commands: list[tuple[list[str], dict[str, str] | None]] = [
        (["ansible-test", "sanity", "--requirements", "--python", controller, "--color", "no"], None)
    ]
    for version in TARGET_PYTHONS:
        interpreter = find_python(version) if version != controller else None
        if interpreter:
            env = dict(os.environ, PATH=os.path.dirname(interpreter) + os.pathsep + os.environ["PATH"])
            commands.append((["ansible-test", "sanity", "--test", "compile", "--python", version, "--color", "no"], env))
    return commands


def integration_workers() -> list[str]:
    """pytest-xdist options: test files spread over $SREOPS_TEST_WORKERS processes (default 2, 1 = no xdist).

    Most of an integration test's time is spent waiting on SSH round trips, HAProxy health checks and traffic
    windows, so two workers roughly halve the stage on two cores. Whole files go to one worker (loadfile): a
    file's fleet fixture is brought up once, and each worker's fleets get addresses of their own.
    """
    workers = os.environ.get("SREOPS_TEST_WORKERS", "2")
    if not workers.isdigit() or int(workers) < 1:
        raise SystemExit(f"SREOPS_TEST_WORKERS must be a whole number of 1 or more, got {workers!r}")
    return [] if int(workers) == 1 else ["-n", workers, "--dist", "loadfile"]


STAGES = {
    "sanity": sanity,
    "lint": lambda: [(["ansible-lint", "--offline", "--profile", "production", "--nocolor"], None)],
    "unit": lambda: [([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "tests/unit"], None)],
    "integration": lambda: [([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *integration_workers(), "--durations=25",
                              "tests/integration"], None)],
    "molecule": lambda: [(["molecule", "test", "--all"], None)],
}


def run_stage(name: str) -> tuple[bool, float, str]:
    os.makedirs(LOG_DIR, exist_ok=True)
    log_path = os.path.join(LOG_DIR, f"{name}.log")
    started = time.monotonic()
    ok = True
    with open(log_path, "wb") as log:
        for command, env in STAGES[name]():
            log.write(f"$ {' '.join(command)}\n".encode())
            log.flush()
            proc = subprocess.run(
                command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, check=False
            )
            if proc.returncode != 0:
                log.write(f"exit status {proc.returncode}\n".encode())
                ok = False
                break
    return ok, time.monotonic() - started, log_path


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


def main(argv: list[str]) -> int:
    isolate_test_network()
    names = argv or list(STAGES)
    unknown = [n for n in names if n not in STAGES]
    if unknown:
        print(f"unknown stage(s): {', '.join(unknown)}; choose from {', '.join(STAGES)}", file=sys.stderr)
        return 2
    results = []
    total_started = time.monotonic()
    for name in names:
        print(f"--- {name} ...", flush=True)
        ok, elapsed, log_path = run_stage(name)
        detail = closing_line(log_path) if name in ("unit", "integration") else ""
        print(f"--- {name}: {'PASSED' if ok else 'FAILED'} in {elapsed:.0f}s {detail}  (log: {log_path})", flush=True)
        if not ok:
            print(tail(log_path), flush=True)
        results.append((name, ok))
    passed = sum(1 for _name, ok in results if ok)
    failed = len(results) - passed
    print("=" * 20 + f" summary ({time.monotonic() - total_started:.0f}s) " + "=" * 20)
    for name, ok in results:
        print(f"{'PASSED' if ok else 'FAILED'} {name}")
    print(f"checks: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
