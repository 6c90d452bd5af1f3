# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops.release and sre.ops.release_info over SSH on the fleet hosts."""

from __future__ import annotations

import concurrent.futures
import io
import json
import os
import tarfile

import pytest

from sreops_fleet.hostile import issue_archive, write_tar
from sreops_fleet.traffic import TrafficGenerator

from .conftest import run_module, run_playbook, ssh

pytestmark = pytest.mark.fleet

ROOT = "/srv/rel-test"
HOSTS = "web1,web2"
FINGERPRINT = f"find {ROOT} /srv/artifacts -xdev \\( -type f -o -type l -o -type d \\) -printf '%p %y %m %s %T@ %l\\n' 2>/dev/null | sort | sha256sum"


@pytest.fixture(scope="module")
def uploaded(v1_everywhere, releases_dir, tmp_path_factory):
    """The demo artifacts on every app host, plus hostile and broken ones on web1 and web2, under /srv/artifacts:
    evil.tar.gz (`../../etc/cron.d/owned`), escape.tar (the CVE-2025-4517 symlink chain, aimed from a staging
    directory at /srv/outside) and truncated.tar.gz (the v2 artifact without its last 100 bytes)."""
    fleet = v1_everywhere
    hostile = tmp_path_factory.mktemp("hostile")
    with tarfile.open(hostile / "evil.tar.gz", "w:gz") as tar:
        data = b"owned\n"
        info = tarfile.TarInfo("../../etc/cron.d/owned")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    write_tar(hostile / "escape.tar", issue_archive(target="../../../outside")[0])
    with open(os.path.join(releases_dir, "demo-app-v2.tar.gz"), "rb") as handle:
        (hostile / "truncated.tar.gz").write_bytes(handle.read()[:-100])
    run, _results = run_module(fleet, "app", "ansible.builtin.copy", {"src": f"{releases_dir}/", "dest": "/srv/artifacts/", "mode": "0644"},
                               tmp_dir=str(tmp_path_factory.mktemp("upload")))
    assert run.rc == 0, run.output
    run, _results = run_module(fleet, HOSTS, "ansible.builtin.copy", {"src": f"{hostile}/", "dest": "/srv/artifacts/", "mode": "0644"},
                               tmp_dir=str(tmp_path_factory.mktemp("upload-evil")))
    assert run.rc == 0, run.output
    sums = {}
    for version in ("v1", "v2", "v3", "v4"):
        with open(os.path.join(releases_dir, f"demo-app-{version}.tar.gz.sha256"), encoding="ascii") as handle:
            sums[version] = handle.read().split()[0]
    return fleet, sums


def release(fleet, tmp_path, name, *flags, **args):
    run, results = run_module(fleet, HOSTS, "sre.ops.release", {"path": ROOT, **args}, *flags, tmp_dir=str(tmp_path / name))
    assert run.rc == 0, run.output
    assert sorted(results) == HOSTS.split(","), run.output
    return results


def four_steps(fleet, tmp_path, steps):
    """Each step's check -> apply -> apply -> check, all steps in one playbook run (one ansible start, not forty).

    Per step and host: changed, changed, ok, ok; the check run leaves the host's files alone (fingerprints taken
    right before and after it); check mode predicts what the apply does. Returns each step's apply results.
    """
    out_dir = tmp_path / "four-steps"
    out_dir.mkdir()
    tasks = []
    for label, args in steps:
        module = {"sre.ops.release": {"path": ROOT, **args}}
        probe = {"ansible.builtin.shell": FINGERPRINT, "changed_when": False, "check_mode": False}
        tasks += [
            {"name": f"{label} fingerprint before", **probe, "register": f"{label}_fp0"},
            {"name": f"{label} check", **module, "check_mode": True, "diff": True, "register": f"{label}_c1", "ignore_errors": True},
            {"name": f"{label} fingerprint after", **probe, "register": f"{label}_fp1"},
            {"name": f"{label} apply", **module, "register": f"{label}_a1", "ignore_errors": True},
            {"name": f"{label} apply again", **module, "register": f"{label}_a2", "ignore_errors": True},
            {"name": f"{label} check again", **module, "check_mode": True, "register": f"{label}_c2", "ignore_errors": True},
            {"name": f"{label} current", "ansible.builtin.command": f"readlink {ROOT}/current", "register": f"{label}_link",
             "changed_when": False, "failed_when": False, "check_mode": False},
        ]
    keys = [f"{label}_{part}" for label, _args in steps for part in ("fp0", "c1", "fp1", "a1", "a2", "c2", "link")]
    tasks.append({"name": "save the results", "ansible.builtin.copy": {
        "content": "{{ {" + ", ".join(f"'{k}': {k}" for k in keys) + "} | to_json }}",
        "dest": f"{out_dir}/{{{{ inventory_hostname }}}}.json", "mode": "0600"}, "delegate_to": "localhost", "check_mode": False})
    playbook = tmp_path / "four-steps.yml"
    playbook.write_text(json.dumps([{"name": "release four steps", "hosts": HOSTS, "gather_facts": False, "tasks": tasks}]))
    run = run_playbook(fleet, str(playbook))
    assert run.rc == 0, run.output
    results = {host: json.loads((out_dir / f"{host}.json").read_text()) for host in HOSTS.split(",")}
    applied = {}
    for label, _args in steps:
        for host, got in results.items():
            check, apply, again, check_again = (got[f"{label}_{part}"] for part in ("c1", "a1", "a2", "c2"))
            assert not any(r.get("failed") for r in (check, apply, again, check_again)), (label, host, check, apply)
            assert got[f"{label}_fp0"]["stdout"] == got[f"{label}_fp1"]["stdout"], f"{label}: check mode wrote to {host}"
            changed = [check["changed"], apply["changed"], again["changed"], check_again["changed"]]
            assert changed == [True, True, False, False], (label, host, changed)
            keys = ("current", "releases", "pruned", "staged", "switched")
            assert {k: check.get(k) for k in keys} == {k: apply.get(k) for k in keys}, f"{label}: check mode predicted something else"
            apply["current_link"] = got[f"{label}_link"]["stdout"]
        applied[label] = {host: got[f"{label}_a1"] for host, got in results.items()}
    return applied


def test_every_state_check_apply_apply_check(uploaded, tmp_path):
    fleet, sums = uploaded
    ssh(fleet, "web1", f"rm -rf {ROOT}")
    ssh(fleet, "web2", f"rm -rf {ROOT}")

    def artifact(v):
        return {"release": v, "src": f"/srv/artifacts/demo-app-{v}.tar.gz", "remote_src": True, "checksum": f"sha256:{sums[v]}", "keep_releases": 3}

    done = four_steps(fleet, tmp_path, [
        ("stage", {"state": "staged", **artifact("v1")}),
        ("v1", artifact("v1")),
        ("good1", {"state": "good"}),
        ("v2", artifact("v2")),
        ("good2", {"state": "good"}),
        ("v3", artifact("v3")),
        ("failed3", {"state": "failed"}),
        ("rollback", {"state": "rolled_back"}),
        ("v4", artifact("v4")),  # retention: keep 3 with v4 active -> v1 (oldest) goes; v2 (newest good) and v4 (current) stay
        ("absent", {"state": "absent", "release": "v3"}),
    ])
    assert done["stage"]["web1"]["current"] is None and done["stage"]["web1"]["releases"] == ["v1"]
    assert done["v1"]["web1"]["current"] == "v1" and not done["v1"]["web1"]["staged"]
    assert done["v1"]["web1"]["current_link"] == "releases/v1"
    assert done["v3"]["web2"]["previous"] == "v2" and done["v3"]["web2"]["previous_good"] == "v2"
    assert done["rollback"]["web1"]["current"] == "v2" and done["rollback"]["web1"]["rolled_back_from"] == "v3"
    assert done["rollback"]["web1"]["current_link"] == "releases/v2"
    assert done["v4"]["web1"]["pruned"] == ["v1"] and done["v4"]["web1"]["releases"] == ["v2", "v3", "v4"]
    assert done["absent"]["web1"]["releases"] == ["v2", "v4"]

    run, info = run_module(fleet, HOSTS, "sre.ops.release_info", {"path": ROOT}, "--check", tmp_dir=str(tmp_path / "info"))
    assert run.rc == 0
    web1 = info["web1"]
    assert web1["current"] == "v4" and web1["previous_good"] == "v2" and web1["leftovers"] == []
    assert {r["id"]: r["outcome"] for r in web1["releases"]} == {"v2": "good", "v4": "unknown"}
    ledger = json.loads(ssh(fleet, "web1", f"cat {ROOT}/ledger.json").stdout)
    assert ledger["releases"]["v2"]["source_checksum"] == f"sha256:{sums['v2']}"
    assert [e["event"] for e in ledger["history"]].count("removed") == 2


def test_rollback_twice_in_a_row(uploaded, tmp_path):
    fleet, sums = uploaded
    for host in HOSTS.split(","):
        ssh(fleet, host, f"rm -rf {ROOT}")
    for version in ("v1", "v2"):
        release(fleet, tmp_path, f"a{version}", release=version, src=f"/srv/artifacts/demo-app-{version}.tar.gz", remote_src=True)
        release(fleet, tmp_path, f"g{version}", state="good")
    release(fleet, tmp_path, "a3", release="v3", src="/srv/artifacts/demo-app-v3.tar.gz", remote_src=True)
    # an mtime change must not matter (ansistrano picks the "previous" release by mtime)
    ssh(fleet, "web1", f"touch -d '2030-01-01' {ROOT}/releases/v1")
    first = release(fleet, tmp_path, "r1", state="rolled_back")
    second = release(fleet, tmp_path, "r2", state="rolled_back")
    for host in HOSTS.split(","):
        assert first[host]["changed"] and first[host]["current"] == "v2"
        assert not second[host]["changed"] and second[host]["current"] == "v2"
        assert ssh(fleet, host, f"readlink {ROOT}/current").stdout.strip() == "releases/v2"


def test_refused_and_broken_archives_write_nothing_and_check_mode_fails_the_same_way(uploaded, tmp_path):
    fleet, sums = uploaded
    for host in HOSTS.split(","):
        ssh(fleet, host, f"rm -rf {ROOT} /srv/outside && mkdir /srv/outside && echo original > /srv/outside/existing")
    chain_member = issue_archive()[1]
    cases = [
        ("evil.tar.gz", "/srv/artifacts/evil.tar.gz: archive member '../../etc/cron.d/owned' contains '..'; refusing the archive"),
        ("escape.tar", f"/srv/artifacts/escape.tar: archive member {chain_member!r} passes through 'a', which is a symlink in the archive; "
                       "refusing the archive"),
        ("truncated.tar.gz", "cannot unpack /srv/artifacts/truncated.tar.gz: it is truncated: the gzip data ends before its end-of-stream marker"),
    ]
    for name, message in cases:
        for flags in (("--check",), ()) if name != "evil.tar.gz" else ((),):
            args = {"path": ROOT, "release": "evil", "src": f"/srv/artifacts/{name}", "remote_src": True}
            _run, results = run_module(fleet, HOSTS, "sre.ops.release", args, *flags, tmp_dir=str(tmp_path / f"{name}{flags}"))
            for host in HOSTS.split(","):
                assert results[host].get("failed") and results[host]["msg"].startswith(message), (flags, results[host])
    run, results = run_module(fleet, HOSTS, "sre.ops.release", {"path": ROOT, "release": "v1", "src": "/srv/artifacts/demo-app-v1.tar.gz",
                                                                "remote_src": True, "checksum": "sha256:" + "0" * 64}, tmp_dir=str(tmp_path / "sum"))
    assert results["web2"]["failed"] and results["web2"]["msg"].startswith("checksum mismatch for /srv/artifacts/demo-app-v1.tar.gz")
    for host in HOSTS.split(","):
        assert ssh(fleet, host, f"test -e {ROOT} || echo absent").stdout.strip() == "absent", "a failed first run leaves no root"
        assert ssh(fleet, host, "test -e /etc/cron.d/owned || echo absent").stdout.strip() == "absent"
        assert ssh(fleet, host, "ls /srv/outside; cat /srv/outside/existing").stdout == "existing\noriginal\n"
    run, results = run_module(fleet, HOSTS, "sre.ops.release", {"path": ROOT, "release": "v2\n"}, tmp_dir=str(tmp_path / "id"))
    assert "is not a valid release id" in results["web1"]["msg"]


def fresh_root_with_v1(fleet, host, tmp_path):
    ssh(fleet, host, f"rm -rf {ROOT}")
    args = {"path": ROOT, "release": "v1", "src": "/srv/artifacts/demo-app-v1.tar.gz", "remote_src": True}
    _run, results = run_module(fleet, host, "sre.ops.release", args, tmp_dir=str(tmp_path / "v1"))
    assert results[host]["current"] == "v1", results


def release_info_both_ways(fleet, host, tmp_path, name, *flags):
    """release_info read by the action plugin's shell snapshot (a plain path) and by the module on the host
    (a path with ~ must be expanded there): both results. -vvv shows which ran (the command, or the module file)."""
    run, fast = run_module(fleet, host, "sre.ops.release_info", {"path": ROOT}, "-vvv", *flags, tmp_dir=str(tmp_path / f"{name}-snapshot"))
    assert "sre.ops release snapshot" in run.output and "modules/release_info.py" not in run.output, run.output
    run, slow = run_module(fleet, host, "sre.ops.release_info", {"path": f"~root/../..{ROOT}"}, "-vvv", *flags,
                           tmp_dir=str(tmp_path / f"{name}-module"))
    assert "modules/release_info.py" in run.output, run.output
    # what AnsibleModule adds to any result with a path (the root's owner, mode, ...), not part of release_info's return
    path_info = {"uid", "gid", "owner", "group", "mode", "state", "size", "secontext"}
    return fast[host], {key: value for key, value in slow[host].items() if key not in path_info}


HOLD_LOCK = """
import fcntl, json, os, socket, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": "2026-01-01T00:00:00Z", "purpose": "a test holder"}).encode())
time.sleep(600)
"""


def test_a_held_lock_makes_runs_wait_then_fail_naming_the_holder_and_dies_with_it(uploaded, tmp_path):
    fleet, sums = uploaded
    host = "web1"
    fresh_root_with_v1(fleet, host, tmp_path)
    lock = f"{ROOT}/.release.lock"
    started = ssh(fleet, host, f"setsid -f python3 -c '{HOLD_LOCK}' {lock} >/dev/null 2>&1 </dev/null; "
                               f"for i in $(seq 300); do [ -s {lock} ] && break; sleep 0.1; done; cat {lock}")
    holder = json.loads(started.stdout)
    try:
        fast, slow = release_info_both_ways(fleet, host, tmp_path, "info")
        assert fast == slow and fast["locked_by"]["pid"] == holder["pid"]
        for flags in ((), ("--check",)):
            _run, results = run_module(fleet, host, "sre.ops.release", {"path": ROOT, "state": "good", "lock_timeout": 1}, *flags,
                                       tmp_dir=str(tmp_path / f"wait{flags}"))
            assert results[host]["failed"] and results[host]["msg"] == (
                f"{lock} is locked by pid {holder['pid']} on web1 since 2026-01-01T00:00:00Z (a test holder); gave up after waiting 1 s (lock_timeout)")
    finally:
        ssh(fleet, host, f"kill -9 {holder['pid']}")
    _run, results = run_module(fleet, host, "sre.ops.release", {"path": ROOT, "state": "good", "lock_timeout": 30}, tmp_dir=str(tmp_path / "after"))
    assert results[host]["changed"] and results[host]["outcome"] == "good", "the kernel released the killed holder's lock"


def test_two_runs_at_once_end_as_one_after_the_other_and_release_info_reports_a_dangling_current(uploaded, tmp_path):
    fleet, sums = uploaded
    host = "web2"
    fresh_root_with_v1(fleet, host, tmp_path)
    runs = {
        "activate": {"path": ROOT, "release": "v2", "src": "/srv/artifacts/demo-app-v2.tar.gz", "remote_src": True,
                     "checksum": f"sha256:{sums['v2']}"},
        "mark": {"path": ROOT, "state": "good"},
    }
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        futures = {name: pool.submit(run_module, fleet, host, "sre.ops.release", args, tmp_dir=str(tmp_path / name)) for name, args in runs.items()}
        results = {name: future.result()[1][host] for name, future in futures.items()}
    assert not any(r.get("failed") for r in results.values()), results
    ledger = json.loads(ssh(fleet, host, f"cat {ROOT}/ledger.json").stdout)
    outcomes = {rid: rec["outcome"] for rid, rec in ledger["releases"].items()}
    # either the mark ran first (v1 good) or the activation did (v2 good): never a lost mark or a half release
    assert outcomes in ({"v1": "good", "v2": "unknown"}, {"v1": "unknown", "v2": "good"}), outcomes
    assert ledger["current"] == "v2" and "pending" not in ledger
    assert results["mark"]["release"] == ("v1" if outcomes["v1"] == "good" else "v2")
    assert ssh(fleet, host, f"cat {ROOT}/current/VERSION; ls -A {ROOT}/releases").stdout == "v2\nv1\nv2\n"

    fast, slow = release_info_both_ways(fleet, host, tmp_path, "info")
    assert fast == slow and (fast["current"], fast["last_good"], fast["locked_by"]) == ("v2", results["mark"]["release"], None)
    ssh(fleet, host, f"ln -sfn releases/v9 {ROOT}/current; mkdir {ROOT}/releases/.staging-v3-x1")
    fast, slow = release_info_both_ways(fleet, host, tmp_path, "dangling", "--check")
    assert fast == slow and (fast["current"], fast["current_status"], fast["current_path"]) == (None, "dangling", None)
    assert fast["leftovers"] == [".staging-v3-x1"] and fast["to_reconcile"]


def test_demo_releases_deploy_and_serve_through_the_load_balancer(uploaded, tmp_path):
    fleet, sums = uploaded
    app_hosts = "web1,web2,web3,web4"
    try:
        run, results = run_module(fleet, app_hosts, "sre.ops.release",
                                  {"path": "/srv/app", "release": "v2", "src": "/srv/artifacts/demo-app-v2.tar.gz", "remote_src": True,
                                   "checksum": f"sha256:{sums['v2']}"},
                                  tmp_dir=str(tmp_path / "v2"))
        assert run.rc == 0 and all(r["switched"] for r in results.values()), run.output
        for host in app_hosts.split(","):
            assert ssh(fleet, host, "/srv/app/current/bin/appctl restart").returncode == 0
        run, health = run_module(fleet, app_hosts, "sre.ops.health_check",
                                 {"mode": "wait", "deadline": 10, "probes": [{"name": "v2", "url": "http://{{ app_listen_address }}:8080/version",
                                                                             "json_conditions": [{"path": "version", "value": "v2"}]}]},
                                 tmp_dir=str(tmp_path / "h"))
        assert all(r["healthy"] for r in health.values())
        report = TrafficGenerator(fleet.lb_url, rate=60, duration=1.5).run()
        assert report["by_version"] == {"v2": report["requests"]} and len(report["by_server"]) == 4
    finally:
        run, results = run_module(fleet, app_hosts, "sre.ops.release", {"path": "/srv/app", "release": "v1"}, tmp_dir=str(tmp_path / "back"))
        for host in app_hosts.split(","):
            ssh(fleet, host, "/srv/app/current/bin/appctl restart")
        run_module(fleet, app_hosts, "sre.ops.health_check", {"mode": "wait", "deadline": 10, "probes": [
            {"name": "v1", "url": "http://{{ app_listen_address }}:8080/version", "json_conditions": [{"path": "version", "value": "v1"}]}]},
            tmp_dir=str(tmp_path / "h1"))
