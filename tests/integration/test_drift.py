# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Drift detection on a fleet of its own: baseline, real drift of every kind, a rolling deploy with the
sre.ops.deploy role in between, waivers, the fleet compared with its majority, accept previewed and applied, then
no drift.

The scenario runs once (seven ansible-playbook runs). The drift runs use an inventory of their own (names unlike the
hosts' own names, so waivers and reports are shown to use inventory names); the demo release and the deploy use the
fleet's inventory, as a user's deploy job would. The tests assert on what the scenario produced.
Drift is induced only in per-host private paths (/srv, /root, the /etc overlay); snapshots live under
/var/backups because /var/lib is shared by every fleet host.
"""

from __future__ import annotations

import json
import os
import time

import pytest

from sreops_fleet import port_busy

from .conftest import COLLECTION_ROOT, deploy_demo, make_fleet, run_playbook, ssh

pytestmark = pytest.mark.fleet

NAMES = {"drift-a": "web1", "drift-b": "web2", "drift-c": "web3", "drift-d": "web4"}
PORT = 9414
STATE = "/var/backups/sre-ops"
DEPLOY_VARS = os.path.join(COLLECTION_ROOT, "playbooks", "vars", "demo-fleet.yml")
# Everything private to a host that the modules could write (the shared lower /etc may change under other tests).
FINGERPRINT = f"find {STATE} /srv -xdev -printf '%p %y %m %U %G %s %T@ %C@ %l\\n' 2>/dev/null | sort | sha256sum"
SETUP = r"""
set -e
mkdir -p /srv/drift/bin /srv/drift/log
printf 'hello world\n' > /srv/drift/motd
printf 'setting=1\n' > /srv/drift/app.conf
printf '#!/bin/sh\necho tool\n' > /srv/drift/bin/tool
chmod 755 /srv/drift/bin/tool
ln -s motd /srv/drift/link
printf 'line 1\n' > /srv/drift/log/app.log
for f in waived.conf expired.conf policy.conf split.conf; do printf 'A\n' > /srv/drift/$f; done
mkfifo /srv/drift/fifo
ln -s loop /srv/drift/loop
touch "$(printf '/srv/drift/bad\377name')"
"""
INDUCE = {
    # content change with the mtime (and size) restored, mode and owner change, a log that only grew
    "web1": r"""
cp -p /srv/drift/motd /root/motd.ref
printf 'HELLO' | dd of=/srv/drift/motd conv=notrunc status=none
touch -r /root/motd.ref /srv/drift/motd
chmod 600 /srv/drift/app.conf && chown 1234:1234 /srv/drift/app.conf
printf 'line 2\n' >> /srv/drift/log/app.log
printf 'B\n' > /srv/drift/policy.conf; printf 'X\n' > /srv/drift/split.conf
""",
    # symlink retargeted, a new setuid file, a removed file
    "web2": r"""
ln -sfn app.conf /srv/drift/link
cp /bin/true /srv/drift/suid && chmod 4755 /srv/drift/suid
rm /srv/drift/bin/tool
printf 'B\n' > /srv/drift/policy.conf; printf 'X\n' > /srv/drift/split.conf
""",
    # a user and a group written into the host's own /etc, a cron entry, a new listening port
    "web3": r"""
echo 'drifttest:x:4242:4242:drift test:/nonexistent:/usr/sbin/nologin' >> /etc/passwd
echo 'drifttest:x:4242:' >> /etc/group
echo '*/5 * * * * root /bin/true' > /etc/cron.d/drift-test
setsid -f python3 -m http.server --bind {address} {port} >/dev/null 2>&1 </dev/null
printf 'B\n' > /srv/drift/policy.conf; printf 'Y\n' > /srv/drift/split.conf
""",
    # one change a waiver hides, one an expired waiver no longer hides
    "web4": r"""
printf 'changed\n' > /srv/drift/waived.conf
printf 'changed\n' > /srv/drift/expired.conf
printf 'Y\n' > /srv/drift/split.conf
""",
}
WAIVERS = """\
waivers:
  - id: vendor-rewrite
    hosts: drift-d
    facet: files
    key: /srv/drift/waived.conf
    justification: the vendor agent rewrites it nightly
    expires: 2099-12-31
    owner: platform
  - id: old-exception
    hosts: edge
    key: /srv/drift/expired.conf
    justification: until the 2020 migration
    expires: 2020-01-01
"""


class Scenario:
    def __init__(self, fleet, tmp):
        self.fleet = fleet
        self.tmp = tmp
        self.runs: dict[str, tuple] = {}
        self.fingerprints: dict[str, dict[str, str]] = {}
        self.reports: dict[str, dict] = {}
        addresses = {h.name: h.address for h in fleet.hosts()}
        self.addresses = addresses
        with open(fleet.inventory, encoding="utf-8") as handle:
            fleet_vars = json.load(handle)["all"]["vars"]
        inventory = {"all": {"vars": fleet_vars, "children": {"edge": {"hosts": {
            name: {"ansible_host": addresses[host]} for name, host in NAMES.items()}}}}}
        self.inventory = os.path.join(tmp, "inventory.json")
        self.vars_file = os.path.join(tmp, "vars.json")
        self.waivers = os.path.join(tmp, "waivers.yml")
        with open(self.inventory, "w", encoding="utf-8") as handle:
            json.dump(inventory, handle)
        with open(self.waivers, "w", encoding="utf-8") as handle:
            handle.write(WAIVERS)
        with open(self.vars_file, "w", encoding="utf-8") as handle:
            json.dump({
                "drift_hosts": "edge",
                "drift_path": f"{STATE}/baseline.json.gz",
                "drift_compare_path": f"{STATE}/fleet.json.gz",
                "drift_facets": ["files", "users", "groups", "cron", "listening", "sysctl", "mounts", "kernel_modules"],
                "drift_files": [
                    {"path": "/srv/drift"},
                    {"path": "/srv/drift/log", "attributes": ["growing"]},
                    {"path": "/srv/app", "attributes": ["content", "inode"]},
                    {"path": "/etc/cron.d"},
                ],
                "drift_listening_owned_only": True,
                "drift_waivers_file": self.waivers,
                "drift_compare_ignore": [{"facet": "sysctl", "key": "kernel.hostname"}, {"facet": "mounts"},
                                         {"facet": "listening", "key": f"tcp/*:{fleet.config.ssh_port}"},
                                         {"facet": "listening", "key": f"tcp/*:{fleet.config.app_port}"}],
            }, handle)

    def play(self, label: str, plays: list, *flags: str, report: str | None = None) -> object:
        """Run a playbook of the given plays (dicts, or sre.ops.drift imports); record output, time and report."""
        path = os.path.join(self.tmp, f"{label}.yml")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(plays, handle)
        started = time.monotonic()
        run = run_playbook(self.fleet, path, "-i", self.inventory, "-e", f"@{self.vars_file}", *flags)
        self.runs[label] = (run, round(time.monotonic() - started, 1))
        if report:
            with open(os.path.join(self.tmp, report, "drift-report.json"), encoding="utf-8") as handle:
                self.reports[label] = json.load(handle)
        return run

    def drift(self, label: str, mode: str, **extra: object) -> dict:
        return {"import_playbook": "sre.ops.drift", "vars": {"drift_mode": mode, "drift_report_dir": os.path.join(self.tmp, label), **extra}}

    def fingerprint(self) -> dict[str, str]:
        return {name: ssh(self.fleet, host, FINGERPRINT).stdout for name, host in NAMES.items()}


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, releases_dir):
    fleet = make_fleet("drift", "127.0.32.10")
    fleet.up()
    try:
        s = Scenario(fleet, str(tmp_path_factory.mktemp("drift")))
        for host in NAMES.values():
            assert ssh(fleet, host, SETUP).returncode == 0
        deploy_demo(fleet, releases_dir, "v1")  # the application runs v1 (plain tasks, no release ledger yet)
        run = s.play("baseline", [s.drift("baseline", "baseline")])
        assert run.rc == 0, run.output
        for host, script in INDUCE.items():
            proc = ssh(fleet, host, script.format(address=s.addresses["web3"], port=PORT))
            assert proc.returncode == 0, proc.stderr
        deadline = time.monotonic() + 30
        while not port_busy(s.addresses["web3"], PORT):
            assert time.monotonic() < deadline, "the test listener on web3 did not start"
            time.sleep(0.05)
        # a rolling deploy of v2 between the baseline and the check, then the fleet compared with its majority
        started = time.monotonic()
        s.runs["deploy"] = (run_playbook(
            fleet, "sre.ops.deploy", "-e", f"@{DEPLOY_VARS}", "-e", f"deploy_artifact={releases_dir}/demo-app-v2.tar.gz",
            "-e", "deploy_release=v2", "-e", "deploy_strategy=rolling", "-e", f"deploy_report_dir={s.tmp}/deploy",
            # one wave of every host: what matters here is the ledger it leaves, not the ramp (tested in test_deploy)
            "-e", json.dumps({"deploy_min_ready": "0", "deploy_batches": ["100%"]})),
            round(time.monotonic() - started, 1))
        assert s.runs["deploy"][0].rc == 0, s.runs["deploy"][0].output
        s.play("compare", [s.drift("compare", "compare")], report="compare")
        s.fingerprints["before-check"] = s.fingerprint()
        reason = ["-e", json.dumps({"drift_accept_reason": "CHG-14 reviewed in the drift test"})]
        # one check-mode run: the accept preview, then the scheduled check (which fails the drifted hosts last)
        s.play("preview", [s.drift("accept-preview", "accept"), s.drift("check", "check")], "--check", "--diff", *reason)
        for label in ("accept-preview", "check"):
            with open(os.path.join(s.tmp, label, "drift-report.json"), encoding="utf-8") as handle:
                s.reports[label] = json.load(handle)
        s.fingerprints["after-check"] = s.fingerprint()
        s.play("accept", [s.drift("accept", "accept")], *reason, report="accept")
        s.fingerprints["after-accept"] = s.fingerprint()
        s.play("after", [s.drift("again", "accept"), s.drift("after", "check")], *reason)
        for label in ("again", "after"):
            with open(os.path.join(s.tmp, label, "drift-report.json"), encoding="utf-8") as handle:
                s.reports[label] = json.load(handle)
        print("playbook runs (s):", {label: seconds for label, (_run, seconds) in s.runs.items()})
        yield s
    finally:
        fleet.down()


def changes(report: dict) -> dict[tuple[str, str, str], dict]:
    return {(g["facet"], g["change"], g["key"]): g for g in report["changes"]}


def test_baseline_then_the_deploy(scenario):
    run, _seconds = scenario.runs["baseline"]
    assert set(run.changed()) == set(NAMES) and all(run.changed().values()), run.output
    for host in NAMES.values():
        listing = ssh(scenario.fleet, host, f"ls -l {STATE}/baseline.json.gz; readlink /srv/app/current").stdout
        assert listing.startswith("-rw------- 1 root root") and listing.endswith("releases/v2\n"), listing


def test_every_kind_of_drift_is_found_and_classed(scenario):
    report = scenario.reports["check"]
    found = changes(report)
    motd = found[("files", "changed", "/srv/drift/motd")]
    # same size, mtime restored: only the content (and the ctime nobody can set back) changed
    assert motd["hosts"] == ["drift-a"] and motd["class"] == "unexpected"
    assert set(motd["changes"]) == {"sha256"} and motd["also_changed"] == ["ctime"]
    app_conf = found[("files", "changed", "/srv/drift/app.conf")]
    assert app_conf["hosts"] == ["drift-a"]
    assert app_conf["changes"]["mode"] == {"before": "0644", "after": "0600"}
    assert app_conf["changes"]["uid"] == {"before": 0, "after": 1234} and app_conf["changes"]["gid"] == {"before": 0, "after": 1234}
    link = found[("files", "changed", "/srv/drift/link")]
    assert link["hosts"] == ["drift-b"] and link["changes"]["target"] == {"before": "motd", "after": "app.conf"}
    suid = found[("files", "added", "/srv/drift/suid")]
    assert suid["hosts"] == ["drift-b"] and suid["flags"] == ["setuid"] and suid["attributes"]["mode"] == "4755"
    assert found[("files", "removed", "/srv/drift/bin/tool")]["hosts"] == ["drift-b"]
    listening = [g for (facet, change, key), g in found.items() if facet == "listening" and key.endswith(f":{PORT}")]
    assert len(listening) == 1 and listening[0]["change"] == "added" and listening[0]["hosts"] == ["drift-c"]
    assert any("python3" in p for p in listening[0]["attributes"]["processes"])
    assert found[("users", "added", "drifttest")]["hosts"] == ["drift-c"]
    assert found[("users", "added", "drifttest")]["attributes"]["uid"] == 4242
    assert found[("groups", "added", "drifttest")]["hosts"] == ["drift-c"]
    assert found[("cron", "added", "/etc/cron.d/drift-test")]["attributes"]["lines"] == ["*/5 * * * * root /bin/true"]
    assert found[("files", "added", "/etc/cron.d/drift-test")]["hosts"] == ["drift-c"]
    # the log only grew: not drift
    assert not [k for k in found if k[2].startswith("/srv/drift/log")]
    # the same change on three hosts reads once
    policy = found[("files", "changed", "/srv/drift/policy.conf")]
    assert policy["hosts"] == ["drift-a", "drift-b", "drift-c"] and policy["class"] == "unexpected"


def test_the_deploy_is_intentional_and_waivers_apply(scenario):
    report = scenario.reports["check"]
    app = [g for g in report["changes"] if g["key"].startswith("/srv/app")]
    assert app and all(g["class"] == "intentional" for g in app)
    assert {g["release"]["release"] for g in app} == {"v2"}
    assert {h for g in app if g["key"] == "/srv/app/current" and g["change"] == "changed" for h in g["hosts"]} == set(NAMES)
    waived = changes(report)[("files", "changed", "/srv/drift/waived.conf")]
    assert waived["class"] == "waived" and waived["hosts"] == ["drift-d"] and waived["waiver"]["id"] == "vendor-rewrite"
    expired = changes(report)[("files", "changed", "/srv/drift/expired.conf")]
    assert expired["class"] == "unexpected" and expired["expired_waiver"] == "old-exception"
    assert [(w["id"], w["hosts"]) for w in report["expired_waivers"]] == [("old-exception", ["drift-d"])]
    counts = report["hosts"]["counts"]
    assert all(counts[h]["intentional"] == sum(h in g["hosts"] for g in app) for h in NAMES) and counts["drift-d"]["waived"] == 1
    assert report["hosts"]["unexpected"] == sorted(NAMES)
    with open(os.path.join(scenario.tmp, "check", "drift-report.md"), encoding="utf-8") as handle:
        markdown = handle.read()
    assert "## Unexpected drift" in markdown and "**setuid**" in markdown and "vendor-rewrite" in markdown
    assert "`files` changed `/srv/drift/policy.conf` — 3 hosts: drift-a, drift-b, drift-c" in markdown


def test_unreadable_and_odd_files_are_reported_not_fatal(scenario):
    issues = scenario.reports["check"]["hosts"]["issues"]["drift-a"]
    assert issues["symlink_loop"] >= 1 and issues["non_utf8_name"] >= 1 and issues["special"] >= 1


def test_check_mode_runs_fail_the_hosts_with_unexpected_drift_and_write_nothing(scenario):
    run, _seconds = scenario.runs["preview"]
    assert run.rc == 2, run.output
    assert {h: c["failed"] for h, c in run.recap.items()} == {h: 1 for h in NAMES}
    assert all(run.changed()[h] >= 2 for h in NAMES), "both the accept preview and the check report drift as changed"
    assert "[files] /srv/drift/suid" in run.output and "[users] drifttest" in run.output, "--diff shows the drift"
    assert scenario.fingerprints["after-check"] == scenario.fingerprints["before-check"]


def test_majority_comparison_names_the_odd_host(scenario):
    fleet = scenario.reports["compare"]["fleet"]
    found = {(d["facet"], d["change"], d["key"]): d for d in fleet["differences"]}
    # three hosts changed policy.conf the same way: the one that did not is the odd one out
    policy = found[("files", "changed", "/srv/drift/policy.conf")]
    assert policy["hosts"] == ["drift-d"] and set(policy["changes"]) == {"sha256"}
    assert found[("files", "added", "/srv/drift/suid")]["hosts"] == ["drift-b"]
    assert found[("users", "added", "drifttest")]["hosts"] == ["drift-c"]
    assert found[("files", "changed", "/srv/drift/app.conf")]["hosts"] == ["drift-a"]
    # two against two: no majority, so neither side is called drift
    assert not [k for k in found if k[2] == "/srv/drift/split.conf"]
    assert any(u["key"] == "/srv/drift/split.conf" for u in fleet["undecided"])
    assert set(fleet["outliers"]) == set(NAMES)
    assert set(fleet["bytes"]) == set(NAMES) and all(b["received"] > 0 for b in fleet["bytes"].values())


def test_accept_previews_under_check_diff_then_applies_then_nothing_is_left(scenario):
    preview = scenario.reports["accept-preview"]
    assert preview["mode"].startswith("accept (check mode") and preview["counts"] == scenario.reports["check"]["counts"]
    assert preview["hosts"]["drifted"] == sorted(NAMES)
    accept, _s = scenario.runs["accept"]
    assert accept.rc == 0 and all(accept.changed()[h] for h in NAMES), accept.output
    assert scenario.fingerprints["after-accept"] != scenario.fingerprints["after-check"]
    accepted = changes(scenario.reports["accept"])
    assert all(accepted.get(key, {}).get("hosts") == group["hosts"] for key, group in changes(scenario.reports["check"]).items())
    after, _s = scenario.runs["after"]
    assert after.rc == 0, after.output
    assert set(after.changed().values()) == {0}
    assert scenario.reports["again"]["counts"]["total"] == 0 and scenario.reports["after"]["counts"]["total"] == 0
    script = f"import gzip,json;print(json.dumps(json.load(gzip.open('{STATE}/baseline.json.gz'))['acceptances']))"
    info = ssh(scenario.fleet, "web2", f'python3 -c "{script}"')
    acceptances = json.loads(info.stdout)
    assert [a["reason"] for a in acceptances] == ["CHG-14 reviewed in the drift test"] and acceptances[0]["by"]
