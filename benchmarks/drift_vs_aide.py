# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""File-integrity baselines on 100,000 files: sre.ops.host_snapshot / sre.ops.drift versus AIDE, side by side.

The tree (generated once, outside the repository): 10 x 10 x 10 directories with 100 files each, 1-16 KiB of
random bytes per file (about 870 MB, 1,111 directories). AIDE runs with an equivalent configuration: the same tree,
sha256 and the same metadata (p+ftype+i+n+u+g+s+m+c+l). The page cache is warmed first. Each side runs as its own
process, timed from start to exit, with CPU time and peak resident memory from wait4(2); ours is the real module
(python -m ...host_snapshot / ...drift with an arguments file, exactly what Ansible runs on a host).

Steps: a first snapshot (vs aide --init), a check with nothing changed (vs aide --check), a check after 1,000
files were rewritten (vs aide --check). Then the fleet comparison's bytes per host: four "hosts" (stored
snapshots of the tree: two identical, one with 1 changed file, one with the 1,000 changed files) go through the
three rounds of sre.ops.drift_compare, each round a real host_snapshot_info process whose stdout is counted.

Usage (root, from the installed collection, the venv on PATH):
  python benchmarks/drift_vs_aide.py [--tree /var/tmp/sre-ops-drift-bench-tree] [--aide-workers 1 2] [--skip-aide]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.dirname(os.path.dirname(os.path.dirname(ROOT)))
sys.path.insert(0, COLLECTIONS)

from ansible_collections.sre.ops.plugins.module_utils._drift_fleet import (  # noqa: E402 pylint: disable=wrong-import-position
    FleetInput, plan_details, plan_entries,
)

LAYOUT = (10, 10, 10, 100)  # directories per level, then files per leaf directory
AIDE_RULE = "p+ftype+i+n+u+g+s+m+c+l+sha256"
ISSUE_TARGETS = {"init": 0.4, "check": 0.06, "check-1000": 0.1}


def file_paths(tree: str) -> list[str]:
    a, b, c, n = LAYOUT
    return [os.path.join(tree, f"d{i}", f"d{i}{j}", f"d{i}{j}{k}", f"f{f:03d}.dat")
            for i in range(a) for j in range(b) for k in range(c) for f in range(n)]


def content(index: int, generation: int = 0) -> bytes:
    rng = random.Random(index * 7919 + generation)
    return rng.randbytes(rng.randint(1024, 16384))


def ensure_tree(tree: str) -> None:
    marker = tree.rstrip("/") + ".sre-ops-bench.json"
    expected = {"layout": list(LAYOUT), "version": 1}
    try:
        with open(marker, encoding="utf-8") as handle:
            if json.load(handle) == expected and os.path.isdir(tree):
                return
    except (OSError, ValueError):
        pass
    print(f"generating the tree in {tree} (once) ...", flush=True)
    shutil.rmtree(tree, ignore_errors=True)
    for index, path in enumerate(file_paths(tree)):
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(content(index))
    with open(marker, "w", encoding="utf-8") as handle:
        json.dump(expected, handle)


def warm(tree: str) -> int:
    total = 0
    for path in file_paths(tree):
        with open(path, "rb") as handle:
            total += len(handle.read())
    return total


def measure(argv: list[str], env: dict[str, str] | None = None) -> dict[str, float | int | str]:
    """Run a command; wall seconds, CPU seconds (with its reaped children) and peak RSS in MiB from wait4."""
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)  # pylint: disable=consider-using-with
    out_chunks = []
    while True:
        chunk = proc.stdout.read(1 << 20)
        if not chunk:
            break
        out_chunks.append(chunk)
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return {
        "wall": time.monotonic() - started,
        "cpu": usage.ru_utime + usage.ru_stime,
        "rss_mib": usage.ru_maxrss / 1024,
        "rc": proc.returncode,
        "stdout": b"".join(out_chunks).decode("utf-8", "replace"),
        "stderr": err.decode("utf-8", "replace"),
    }


def module(name: str, args: dict, work: str) -> dict:
    path = os.path.join(work, f"{name}-args.json")
    with open(path, "w", encoding="utf-8") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS)
    result = measure([sys.executable, "-m", f"ansible_collections.sre.ops.plugins.modules.{name}", path], env=env)
    try:
        result["result"] = json.loads(result["stdout"])
    except ValueError as exc:
        raise SystemExit(f"{name} failed: {result['stdout'][-2000:]} {result['stderr'][-2000:]}") from exc
    if result["result"].get("failed"):
        raise SystemExit(f"{name} failed: {result['result'].get('msg')}")
    return result


def aide(mode: str, conf: str) -> dict:
    result = measure(["aide", f"--{mode}", "--config", conf])
    if mode == "init" and result["rc"] != 0 or mode == "check" and result["rc"] not in (0, 1, 2, 3, 4, 5, 6, 7):
        raise SystemExit(f"aide --{mode} failed (rc {result['rc']}): {result['stderr'][-2000:]}")
    return result


def aide_config(work: str, tree: str, workers: int) -> str:
    conf = os.path.join(work, f"aide-{workers}.conf")
    with open(conf, "w", encoding="utf-8") as handle:
        handle.write(
            f"database_in=file:{work}/aide-{workers}.db.gz\n"
            f"database_out=file:{work}/aide-{workers}.db.new.gz\n"
            "gzip_dbout=yes\n"
            f"report_url=file:{work}/aide-{workers}.report\n"
            + (f"num_workers={workers}\n" if workers > 1 else "")
            + f"SreOps = {AIDE_RULE}\n{tree} SreOps\n"
        )
    return conf


def change_files(tree: str, indexes: list[int], generation: int) -> None:
    paths = file_paths(tree)
    for index in indexes:
        with open(paths[index], "wb") as handle:
            handle.write(content(index, generation))


def fleet_bytes(tree: str, work: str, snapshots: dict[str, str]) -> dict[str, dict[str, int]]:
    """Run the three rounds of drift_compare over stored snapshots; bytes each 'host' sent and received."""
    summaries, moved = {}, {}
    for host, path in snapshots.items():
        run = module("host_snapshot_info", {"path": path}, work)
        summaries[host] = run["result"]["summary"]
        moved[host] = {"round1": len(run["stdout"]), "round2": 0, "round3": 0, "requests": len(json.dumps({"path": path}))}
    groups = {"all": sorted(snapshots)}
    details = {}
    for host, wanted in plan_details(FleetInput(groups, summaries)).items():
        args = {"path": snapshots[host], "facet_buckets": wanted["facet_buckets"], "roots": wanted["roots"]}
        run = module("host_snapshot_info", args, work)
        details[host] = run["result"]
        moved[host]["round2"] = len(run["stdout"])
        moved[host]["requests"] += len(json.dumps(args))
    for host, wanted in plan_entries(FleetInput(groups, summaries, details=details)).items():
        args = {"path": snapshots[host], "buckets": wanted["buckets"], "dirs": wanted["dirs"]}
        run = module("host_snapshot_info", args, work)
        moved[host]["round3"] = len(run["stdout"])
        moved[host]["requests"] += len(json.dumps(args))
    full = module("host_snapshot_info", {"path": snapshots["identical-1"], "full": True}, work)
    moved["naive"] = {"full": len(full["stdout"])}
    return moved


def row(label: str, ours: dict, theirs: dict | None, target: float | None) -> str:
    if theirs is None:
        return f"| {label} | {ours['wall']:.2f} | {ours['cpu']:.2f} | {ours['rss_mib']:.0f} | — | — | — | — |"
    ratio = ours["wall"] / theirs["wall"]
    verdict = "" if target is None else (" ✔" if ratio <= target else " ✘") + f" (target ≤ {target}x)"
    return (f"| {label} | {ours['wall']:.2f} | {ours['cpu']:.2f} | {ours['rss_mib']:.0f} | {theirs['wall']:.2f} | {theirs['cpu']:.2f} | "
            f"{theirs['rss_mib']:.0f} | **{ratio:.3f}x**{verdict} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--tree", default="/var/tmp/sre-ops-drift-bench-tree", help="where the generated tree lives (outside the repository)")
    parser.add_argument("--aide-workers", type=int, nargs="+", default=[1, 2], help="AIDE num_workers settings to measure")
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--skip-aide", action="store_true")
    options = parser.parse_args()
    tree = os.path.abspath(options.tree)
    if os.path.commonpath([tree, ROOT]) == ROOT:
        raise SystemExit("the tree must live outside the collection")
    ensure_tree(tree)
    work = tempfile.mkdtemp(prefix="sre-ops-drift-bench-")
    changed = random.Random(14).sample(range(LAYOUT[0] * LAYOUT[1] * LAYOUT[2] * LAYOUT[3]), options.changes)
    try:
        size = warm(tree)
        print(f"tree: {len(file_paths(tree))} files, {size / 1e6:.0f} MB, warm; {os.cpu_count()} CPUs; load {os.getloadavg()[0]:.1f}", flush=True)
        rules = [{"path": tree}]
        baseline = os.path.join(work, "baseline.json.gz")
        ours: dict[str, dict] = {}
        ours["init"] = module("host_snapshot", {"path": baseline, "facets": ["files"], "files": rules}, work)
        shutil.copy(baseline, os.path.join(work, "identical-1.json.gz"))
        shutil.copy(baseline, os.path.join(work, "identical-2.json.gz"))
        ours["check"] = module("drift", {"path": baseline}, work)
        assert not ours["check"]["result"]["drifted"], ours["check"]["result"]["counts"]
        theirs: dict[int, dict[str, dict]] = {}
        if not options.skip_aide:
            for workers in options.aide_workers:
                conf = aide_config(work, tree, workers)
                theirs[workers] = {"init": aide("init", conf)}
                os.replace(f"{work}/aide-{workers}.db.new.gz", f"{work}/aide-{workers}.db.gz")
                theirs[workers]["check"] = aide("check", conf)
        change_files(tree, changed[:1], generation=1)
        module("host_snapshot", {"path": os.path.join(work, "one-change.json.gz"), "facets": ["files"], "files": rules}, work)
        change_files(tree, changed, generation=1)
        ours["check-1000"] = module("drift", {"path": baseline}, work)
        found = ours["check-1000"]["result"]["counts"]
        assert found["changed"] == options.changes, found
        module("host_snapshot", {"path": os.path.join(work, "many-changes.json.gz"), "facets": ["files"], "files": rules}, work)
        for workers in theirs:
            theirs[workers]["check-1000"] = aide("check", aide_config(work, tree, workers))
        moved = fleet_bytes(tree, work, {
            "identical-1": os.path.join(work, "identical-1.json.gz"), "identical-2": os.path.join(work, "identical-2.json.gz"),
            "one-change": os.path.join(work, "one-change.json.gz"), "many-changes": os.path.join(work, "many-changes.json.gz")})
    finally:
        change_files(tree, changed, generation=0)  # the tree as generated, for the next run
        shutil.rmtree(work, ignore_errors=True)

    print()
    labels = {"init": "first snapshot (vs aide --init)", "check": "check, nothing changed (vs aide --check)",
              "check-1000": f"check, {options.changes} files changed (vs aide --check)"}
    for workers in theirs or {0: None}:
        title = f"AIDE {'num_workers=' + str(workers) if workers > 1 else 'default (1 worker)'}" if workers else "no AIDE run"
        print(f"#### sre.ops vs {title}\n")
        print("| step | sre.ops wall s | CPU s | peak RSS MiB | AIDE wall s | CPU s | peak RSS MiB | ratio (wall) |")
        print("|---|---|---|---|---|---|---|---|")
        for step, label in labels.items():
            target = ISSUE_TARGETS[step] if workers == 1 else None
            print(row(label, ours[step], (theirs.get(workers) or {}).get(step), target))
        print()
    init = ours["init"]["result"]
    print(f"sre.ops snapshot: {init['bytes'] / 1e6:.1f} MB compressed, {init['workers']} worker processes, {init['counts']['files']} entries\n")
    print("#### Fleet comparison: bytes per host (three rounds of sre.ops.drift_compare; JSON each host returned)\n")
    print("| host | round 1 (digests) | round 2 (directory digests) | round 3 (entries) | total returned | requests sent to it |")
    print("|---|---|---|---|---|---|")
    for host in ("identical-1", "identical-2", "one-change", "many-changes"):
        m = moved[host]
        print(f"| {host} | {m['round1']} | {m['round2']} | {m['round3']} | {m['round1'] + m['round2'] + m['round3']} | {m['requests']} |")
    print(f"\nThe whole snapshot as JSON (what shipping every file list would move): {moved['naive']['full']} bytes per host.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
