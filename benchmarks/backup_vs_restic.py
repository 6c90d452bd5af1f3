# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.backup versus the raw `restic backup` it drives, side by side on the same generated trees.

Trees (generated once from a fixed seed under --workdir, outside the repository; reused when present):
  (a) 100,000 files of 1-16 KiB (~870 MB), half random bytes, half text
  (b) 4 files of 256 MiB, each half random, half text
Scenarios per tree, raw restic and the module each into their own repository with the same options:
  initial backup, unchanged re-backup, 1% changed (1% of the files of (a); 1% of the bytes of one file of (b)).
The module runs as Ansible runs it on a managed host (python3 backup.py ARGS.json: AnsibleModule, argument
checks, the run marker, JSON parsing); --ansible adds the same task through ansible-playbook on localhost.
Also: the check-mode restore preview of (a) over itself; repository settings (compression, pack size) on both
trees; four fleet hosts backing up in parallel. Page cache warm (other users share this machine; dropping caches
would disturb them), medians of --rounds, the order of raw and module alternating between rounds. Besides wall time, each
run's CPU seconds (user + system, with its children): the load of other users stretches wall time, hardly CPU.

Usage (root, from the installed collection): python benchmarks/backup_vs_restic.py --workdir /work/wt/backup-bench
    [--rounds 3] [--only a|b] [--skip-settings] [--skip-fleet] [--ansible]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
COLLECTION = os.path.dirname(HERE)
COLLECTIONS_ROOT = os.path.abspath(os.path.join(COLLECTION, "..", "..", ".."))
sys.path.insert(0, os.path.join(COLLECTION, "tests", "fleet"))

PASSWORD = "benchmark"
SEED = 15


# ----- trees -----------------------------------------------------------------------------------------------------
def make_small_files(root: str, count: int = 100_000) -> None:
    rng = random.Random(SEED)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _letter in range(rng.randint(2, 9))) for _word in range(2000)]
    text = b" ".join(rng.choice(words) for _word in range(400_000))
    for i in range(count):
        directory = os.path.join(root, f"d{i // 1000:03d}", f"s{(i // 100) % 10}")
        if i % 100 == 0:
            os.makedirs(directory, exist_ok=True)
        size = rng.randint(1024, 16384)
        if i % 2:
            data = rng.randbytes(size)
        else:
            offset = rng.randint(0, len(text) - size)
            data = text[offset:offset + size]
        with open(os.path.join(directory, f"f{i % 100:02d}.dat"), "wb") as handle:
            handle.write(data)


def make_large_files(root: str, count: int = 4, size: int = 256 << 20) -> None:
    rng = random.Random(SEED)
    os.makedirs(root, exist_ok=True)
    words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _letter in range(rng.randint(2, 9))) for _word in range(2000)]
    text = b" ".join(rng.choice(words) for _word in range(1 << 20))
    for i in range(count):
        with open(os.path.join(root, f"large{i}.bin"), "wb") as handle:
            written = 0
            while written < size // 2:
                handle.write(rng.randbytes(4 << 20))
                written += 4 << 20
            while written < size:
                chunk = text[: min(len(text), size - written)]
                handle.write(chunk)
                written += len(chunk)


def ensure_tree(workdir: str, name: str) -> str:
    root = os.path.join(workdir, f"tree-{name}")
    stamp = root + ".done"
    if not os.path.exists(stamp):
        shutil.rmtree(root, ignore_errors=True)
        started = time.monotonic()
        (make_small_files if name == "a" else make_large_files)(root)
        with open(stamp, "w", encoding="utf-8") as handle:
            handle.write(f"generated in {time.monotonic() - started:.1f}s\n")
    return root


def change_one_percent(root: str, name: str, round_no: int) -> None:
    rng = random.Random(SEED * 100 + round_no)
    if name == "a":
        for i in rng.sample(range(100_000), 1000):
            path = os.path.join(root, f"d{i // 1000:03d}", f"s{(i // 100) % 10}", f"f{i % 100:02d}.dat")
            with open(path, "r+b") as handle:
                handle.seek(0)
                handle.write(rng.randbytes(512))
    else:
        path = os.path.join(root, "large0.bin")
        size = os.path.getsize(path)
        with open(path, "r+b") as handle:
            handle.seek(rng.randrange(0, size - (size * 4 // 100) // 4))
            handle.write(rng.randbytes((size * 4 // 100) // 4))


# ----- runs ------------------------------------------------------------------------------------------------------
def restic_env(repo: str) -> dict:
    return dict(os.environ, RESTIC_REPOSITORY=repo, RESTIC_PASSWORD=PASSWORD)


LAST_CPU = [0.0]  # CPU seconds (user + system) of the last timed command and its children: what the load does not change


def timed(cmd: list[str], env: dict | None = None) -> tuple[float, subprocess.CompletedProcess]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    LAST_CPU[0] = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed: {proc.stdout[-800:]} {proc.stderr[-800:]}")
    return elapsed, proc


def raw_backup(repo: str, tree: str, compression: str = "auto", pack_size: int = 16) -> float:
    return raw_backup_timed(repo, tree, compression, pack_size)[0]


def raw_backup_timed(repo: str, tree: str, compression: str = "auto", pack_size: int = 16) -> tuple[float, float]:
    """Wall time, and the time restic's own summary reports (its archiver's work, without start-up and index loading)."""
    elapsed, proc = timed(["restic", "backup", "--json", "--compression", compression, "--pack-size", str(pack_size), tree], restic_env(repo))
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    return elapsed, summary["total_duration"]


def module_run(module: str, args: dict, workdir: str) -> tuple[float, dict]:
    """Run a module the way Ansible runs it on the managed host: python3 MODULE ARGS.json."""
    args_file = os.path.join(workdir, "args.json")
    with open(args_file, "w", encoding="utf-8") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_ROOT)
    elapsed, proc = timed([sys.executable, os.path.join(COLLECTION, "plugins", "modules", f"{module}.py"), args_file], env)
    return elapsed, json.loads(proc.stdout)


def module_backup(repo: str, tree: str, workdir: str, compression: str = "auto", pack_size: int = 16) -> tuple[float, float]:
    elapsed, result = module_run("backup", {"repository": repo, "password": PASSWORD, "paths": [tree], "compression": compression,
                                            "pack_size": pack_size}, workdir)
    return elapsed, result["total_duration"]


def ansible_backup(repo: str, tree: str, workdir: str) -> float:
    playbook = os.path.join(workdir, "backup.yml")
    with open(playbook, "w", encoding="utf-8") as handle:
        json.dump([{"hosts": "localhost", "connection": "local", "gather_facts": False, "tasks": [
            {"name": "back up", "sre.ops.backup": {"repository": repo, "password": PASSWORD, "paths": [tree]}}]}], handle)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_ROOT, ANSIBLE_LOCALHOST_WARNING="False")
    return timed([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), "-i", "localhost,", playbook], env)[0]


def init(repo: str) -> None:
    shutil.rmtree(repo, ignore_errors=True)
    timed(["restic", "init", "--repository-version", "2"], restic_env(repo))


def repo_bytes(repo: str) -> int:
    return sum(os.path.getsize(os.path.join(d, f)) for d, _s, files in os.walk(repo) for f in files)


# ----- benchmarks ------------------------------------------------------------------------------------------------
def compare_backups(workdir: str, name: str, rounds: int, with_ansible: bool) -> list[dict]:
    tree = ensure_tree(workdir, name)
    rows = []
    times: dict[str, dict[str, list[float]]] = {s: {"raw": [], "module": [], "ansible": []} for s in ("initial", "unchanged", "1% changed")}
    # Wall time minus restic's own reported work: start-up, repository opening, and (module side) Python + Ansible.
    outside: dict[str, dict[str, list[float]]] = {s: {"raw": [], "module": []} for s in times}
    cpu: dict[str, dict[str, list[float]]] = {s: {"raw": [], "module": []} for s in times}
    for round_no in range(rounds):
        raw_repo, our_repo, pb_repo = (os.path.join(workdir, f"repo-{name}-{kind}") for kind in ("raw", "module", "ansible"))
        for repo in (raw_repo, our_repo, pb_repo):
            init(repo)
        order = ["raw", "module"] if round_no % 2 == 0 else ["module", "raw"]
        for scenario in ("initial", "unchanged", "1% changed"):
            if scenario == "1% changed":
                change_one_percent(tree, name, round_no)
            for side in order:
                elapsed, work = raw_backup_timed(raw_repo, tree) if side == "raw" else module_backup(our_repo, tree, workdir)
                times[scenario][side].append(elapsed)
                outside[scenario][side].append(elapsed - work)
                cpu[scenario][side].append(LAST_CPU[0])
            if with_ansible:
                times[scenario]["ansible"].append(ansible_backup(pb_repo, tree, workdir))
        for repo in (raw_repo, our_repo, pb_repo):
            shutil.rmtree(repo, ignore_errors=True)
    for scenario, sides in times.items():
        raw, ours = statistics.median(sides["raw"]), statistics.median(sides["module"])
        row = {"tree": name, "scenario": scenario, "raw_s": round(raw, 2), "module_s": round(ours, 2), "ratio": round(ours / raw, 3),
               "raw_all": [round(x, 2) for x in sides["raw"]], "module_all": [round(x, 2) for x in sides["module"]],
               "added_outside_restic_work_s": round(statistics.median(outside[scenario]["module"]) - statistics.median(outside[scenario]["raw"]), 2),
               "raw_cpu_s": round(statistics.median(cpu[scenario]["raw"]), 3), "module_cpu_s": round(statistics.median(cpu[scenario]["module"]), 3),
               "added_cpu_s": round(statistics.median(m - r for m, r in zip(cpu[scenario]["module"], cpu[scenario]["raw"])), 3)}
        if sides["ansible"]:
            row["ansible_playbook_s"] = round(statistics.median(sides["ansible"]), 2)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def restore_preview(workdir: str) -> dict:
    tree = ensure_tree(workdir, "a")
    repo = os.path.join(workdir, "repo-preview")
    init(repo)
    raw_backup(repo, tree)
    change_one_percent(tree, "a", 99)
    runs = []
    result: dict = {}
    cpus = []
    for _round in range(3):
        elapsed, result = module_run("restore", {"repository": repo, "password": PASSWORD, "path": tree, "overwrite": "always",
                                                 "_ansible_check_mode": True}, workdir)
        runs.append(elapsed)
        cpus.append(LAST_CPU[0])
    shutil.rmtree(repo, ignore_errors=True)
    row = {"restore_preview_a_s": round(statistics.median(runs), 2), "all": [round(x, 2) for x in runs], "cpu_s": round(statistics.median(cpus), 2),
           "counts": result["preview"]["counts"], "load": [round(x, 1) for x in os.getloadavg()]}
    print(json.dumps(row), flush=True)
    return row


def repository_settings(workdir: str, trees: list[str]) -> list[dict]:
    rows = []
    for name in trees:
        tree = ensure_tree(workdir, name)
        for compression, pack in (("auto", 16), ("off", 16), ("max", 16), ("auto", 32), ("auto", 64)):
            repo = os.path.join(workdir, f"repo-settings-{name}")
            init(repo)
            initial = raw_backup(repo, tree, compression, pack)
            change_one_percent(tree, name, 50)
            changed = raw_backup(repo, tree, compression, pack)
            row = {"tree": name, "compression": compression, "pack_size_mib": pack, "initial_s": round(initial, 2),
                   "changed_1pct_s": round(changed, 2), "repo_mb": round(repo_bytes(repo) / 1e6, 1),
                   "packs": sum(len(files) for _d, _s, files in os.walk(os.path.join(repo, "data")))}
            shutil.rmtree(repo, ignore_errors=True)
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def fleet_parallel(workdir: str) -> dict:
    """Four fleet hosts back up tree (a) at the same time, each into its own repository in its private /var/backups."""
    from sreops_fleet import Fleet, FleetConfig, on_test_net  # pylint: disable=import-outside-toplevel

    tree = ensure_tree(workdir, "a")
    fleet = Fleet(FleetConfig(run_dir=os.path.join(tempfile.gettempdir(), f"sre-ops-bench-backup-{os.environ.get('SREOPS_TEST_NET', '0')}"),
                              address_base=on_test_net("127.0.35.10"), http_port=8000))
    if fleet.status()["state"] != "down":
        fleet.down()
    fleet.up()
    try:
        playbook = os.path.join(workdir, "fleet.yml")
        out: dict = {}
        for label, hosts in (("one host", "web1"), ("four hosts in parallel", "web1:web2:web3:web4")):
            with open(playbook, "w", encoding="utf-8") as handle:
                json.dump([{"hosts": hosts, "gather_facts": False, "tasks": [
                    {"name": "fresh repository", "ansible.builtin.file": {"path": "/var/backups/bench", "state": "absent"}},
                    {"name": "back up", "sre.ops.backup": {"repository": "/var/backups/bench", "password": PASSWORD, "paths": [tree],
                                                           "init": True}}]}], handle)
            elapsed, _proc = timed([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), playbook], fleet.env())
            out[label] = round(elapsed, 2)
        raw_cmds = []
        for host in fleet.hosts()[1:]:
            raw_cmds.append(fleet.ssh_argv(host.name, f"rm -rf /var/backups/raw && RESTIC_PASSWORD={PASSWORD} restic -r /var/backups/raw init -q && "
                                                      f"RESTIC_PASSWORD={PASSWORD} restic -r /var/backups/raw backup -q {tree}"))
        started = time.monotonic()
        procs = [subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for cmd in raw_cmds]  # pylint: disable=consider-using-with
        codes = [p.wait() for p in procs]
        out["raw restic on four hosts in parallel (ssh)"] = round(time.monotonic() - started, 2)
        assert codes == [0, 0, 0, 0], codes
        print(json.dumps(out), flush=True)
        return out
    finally:
        fleet.down()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workdir", default=os.environ.get("SREOPS_BENCH_DIR", "/var/tmp/sre-ops-backup-bench"))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["a", "b"])
    parser.add_argument("--skip-settings", action="store_true")
    parser.add_argument("--skip-fleet", action="store_true")
    parser.add_argument("--skip-preview", action="store_true")
    parser.add_argument("--skip-backups", action="store_true", help="leave out the side-by-side backups")
    parser.add_argument("--ansible", action="store_true", help="also time the task through ansible-playbook on localhost")
    opts = parser.parse_args()
    if os.path.commonpath([os.path.abspath(opts.workdir), COLLECTION]) == COLLECTION:
        parser.error("--workdir must be outside the collection (the trees are about 2 GB)")
    os.makedirs(opts.workdir, exist_ok=True)
    print(json.dumps({"restic": subprocess.run(["restic", "version"], capture_output=True, text=True, check=True).stdout.strip(),
                      "cores": os.cpu_count(), "load": os.getloadavg()}), flush=True)
    trees = [opts.only] if opts.only else ["a", "b"]
    report: dict = {"backups": []}
    for name in [] if opts.skip_backups else trees:
        report["backups"] += compare_backups(opts.workdir, name, opts.rounds, opts.ansible)
    if "a" in trees and not opts.skip_preview:
        report["preview"] = restore_preview(opts.workdir)
    if not opts.skip_settings:
        report["settings"] = repository_settings(opts.workdir, trees)
    if not opts.skip_fleet:
        report["fleet"] = fleet_parallel(opts.workdir)
    print("\n| tree | scenario | raw restic s | sre.ops.backup s | ratio | added outside restic's work s | CPU s raw / ours / added |\n"
          "|---|---|---|---|---|---|---|")
    for row in report["backups"]:
        print(f"| {row['tree']} | {row['scenario']} | {row['raw_s']} | {row['module_s']} | {row['ratio']} | {row['added_outside_restic_work_s']} "
              f"| {row['raw_cpu_s']} / {row['module_cpu_s']} / {row['added_cpu_s']} |")
    print(json.dumps({"load_at_end": os.getloadavg()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
