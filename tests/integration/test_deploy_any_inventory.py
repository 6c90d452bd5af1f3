# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sre.ops.deploy role on a fresh fleet of its own: the docs' examples as written (a first install previewed
and run), blue-green with retirement and rollbacks, a rolling rollback under traffic, and an inventory whose
group and variable names are not the fleet's, run on the oldest ansible-core the collection declares.

A separate file from test_deploy.py so the two fleets' suites can run in parallel (pytest-xdist, loadfile).
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from sreops_fleet.traffic import TrafficGenerator

from .conftest import ANSIBLE_PLAYBOOK, COLLECTION_ROOT, make_fleet, ssh
from .plans import assert_fidelity, assert_nothing_to_change, latest_plan, record_plans
from .test_deploy import APP, deploy, fingerprint, latest_report, live_colour, other, rollback, rows, serving, under_traffic, versions

pytestmark = pytest.mark.fleet

DOCS = os.path.join(COLLECTION_ROOT, "docs", "deploy.md")
# The oldest ansible-core the collection declares (make bootstrap installs its compatibility venv); CI must have it.
OLDEST = os.path.join(os.environ.get("SREOPS_VENVS_DIR", COLLECTION_ROOT), ".venv-ansible-2.16", "bin", "ansible-playbook")


def docs_examples():
    """The docs' example files (code blocks starting with '# file: NAME') and the commands of its fleet section."""
    with open(DOCS, encoding="utf-8") as handle:
        text = handle.read()
    files, commands = {}, []
    for lang_and_body in text.split("```")[1::2]:
        lang, _newline, body = lang_and_body.partition("\n")
        first = body.splitlines()[0] if body else ""
        if first.startswith("# file: "):
            files[first[len("# file: "):].strip()] = body
        elif lang.strip() == "sh" and "tests/fleet/fleet up" in body:
            commands = [line for line in body.splitlines() if line.startswith(("ansible", "tests/fleet/fleet traffic"))]
    return files, commands


@pytest.fixture(scope="module")
def ifleet(releases_dir, tmp_path_factory):
    fleet = make_fleet("inv", "127.0.24.10")  # short: ssh control sockets live under the run directory
    fleet.up()
    fleet.reports = str(tmp_path_factory.mktemp("inventory-reports"))
    fleet.artifacts = releases_dir
    record_plans(fleet, str(tmp_path_factory.mktemp("inventory-plans")))
    try:
        yield fleet
    finally:
        fleet.down()


def type_signature(report):
    """Field -> type name for the report's scalar fields, so two ansible-core versions can be compared."""
    first = report["waves"][0]["records"][0]
    fields = {f"report.{k}": report[k] for k in ("started", "ended", "duration_s", "check_mode", "rollback_taken", "verdict", "min_ready")}
    fields.update({f"wave.{k}": report["waves"][0][k] for k in ("wave", "phase", "hosts")})
    fields.update({f"record.{k}": first[k] for k in ("finished_at", "restarted", "switched", "healthy", "release_after", "pruned")})
    fields["batches[0]"] = report["batches"][0]
    return {k: type(v).__name__ for k, v in fields.items()}


def test_docs_fleet_example_runs_as_written_on_a_fresh_fleet_and_previews_a_first_install(ifleet, releases_dir):
    _files, commands = docs_examples()
    assert len(commands) == 6 and "--check" in commands[2], commands
    before = fingerprint(ifleet)
    traffic = None
    for command in commands:
        if command.startswith("tests/fleet/fleet traffic"):
            words = command.split()
            rate, duration = float(words[words.index("--rate") + 1]), float(words[words.index("--duration") + 1])
            traffic = TrafficGenerator(ifleet.lb_url, rate=rate, duration=duration).start()
            continue
        command = command.replace(".build/releases/", releases_dir.rstrip("/") + "/")
        command = command.replace("-e deploy_release=", f"-e deploy_report_dir={ifleet.reports} -e deploy_release=")
        proc = subprocess.run(["bash", "-c", command], env=dict(ifleet.env(), PATH=os.path.dirname(ANSIBLE_PLAYBOOK) + ":" + os.environ["PATH"]),
                              cwd=COLLECTION_ROOT, capture_output=True, text=True, check=False, timeout=600)
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-4000:]}\n{proc.stderr[-2000:]}"
        if "--check" in command:
            planned = latest_report(ifleet, "rolling-plan")
            assert {(r["action"], r["health"]) for w in planned["waves"] for r in w["records"]} == {("create", "not known until deployed")}
            assert fingerprint(ifleet) == before, "--check of a first install changed something"
        if command.startswith("ansible app -m ansible.builtin.copy"):
            before = fingerprint(ifleet)  # provisioning is not the deployment: compare from here
    assert traffic is not None and traffic.stop()["errors"] == 0
    assert versions(ifleet) == {h: "v2" for h in APP} and serving(ifleet) == APP
    assert rows(latest_report(ifleet, "rolling")) == rows(planned)


# ----- blue-green ------------------------------------------------------------------------------------------
def test_blue_green_retires_the_old_colour_then_rollback_starts_it_gates_it_and_converges(ifleet):
    old = live_colour(ifleet)
    new = [h for h in APP if h not in old]
    target = other(versions(ifleet)[old[0]])
    before = fingerprint(ifleet)
    retire = {"deploy_bg_rollback_window": 2, "deploy_bg_retire": True}
    plan = deploy(ifleet, target, "blue_green", "--check", "--diff", extra=retire)
    assert plan.rc == 0 and fingerprint(ifleet) == before, plan.output
    planned = latest_report(ifleet, "blue_green-plan")
    planned_tasks = latest_plan(ifleet)

    traffic = TrafficGenerator(ifleet.lb_url, rate=50, duration=120, host_header="www.test").start()
    started = time.monotonic()
    run = deploy(ifleet, target, "blue_green", extra=retire)
    elapsed = time.monotonic() - started
    report = traffic.stop()
    assert run.rc == 0, run.output
    assert_fidelity(planned_tasks, latest_plan(ifleet))
    assert report["errors"] == 0 and report["by_version"].get(target, 0) > 0, report
    assert elapsed >= 2, "the old colour must be kept for the rollback window"
    assert rows(latest_report(ifleet, "blue_green")) == rows(planned) and [r[2] for r in rows(planned)] == new
    after = TrafficGenerator(ifleet.lb_url, rate=40, duration=1, host_header="www.test").run()
    assert set(after["by_server"]) == set(new) and after["by_version"] == {target: after["requests"]}
    for host in old:
        assert ssh(ifleet, host, "/srv/app/current/bin/appctl status").returncode == 3, f"{host} (old colour) still runs"
    again = deploy(ifleet, target, "blue_green")
    assert again.rc == 0 and all(again.changed()[h] == 0 for h in APP) and "nothing to do" in again.output
    assert deploy(ifleet, target, "blue_green", "--check").rc == 0
    assert_nothing_to_change(latest_plan(ifleet))

    # the rollback starts the retired colour, gates it, and only then switches, under traffic
    assert rollback(ifleet, "blue_green", "--check", "--diff").rc == 0
    planned_tasks = latest_plan(ifleet)
    under_traffic(ifleet, lambda: rollback(ifleet, "blue_green"), host_header="www.test")
    assert_fidelity(planned_tasks, latest_plan(ifleet))
    assert set(TrafficGenerator(ifleet.lb_url, rate=40, duration=1, host_header="www.test").run()["by_server"]) == set(old)
    twice = rollback(ifleet, "blue_green")
    assert twice.rc == 0 and all(twice.changed()[h] == 0 for h in APP) and "already rolled back" in twice.output
    assert rollback(ifleet, "blue_green", "--check").rc == 0
    assert_nothing_to_change(latest_plan(ifleet))
    assert live_colour(ifleet) == old


# ----- rollback --------------------------------------------------------------------------------------------
def test_rolling_rollback_is_a_rollout_with_zero_errors_and_a_second_run_changes_nothing(ifleet):
    now = versions(ifleet)["web1"]
    if set(versions(ifleet).values()) != {now}:
        assert deploy(ifleet, now, "rolling").rc == 0
    assert deploy(ifleet, other(now), "rolling").rc == 0
    _back, sampler, _report = under_traffic(ifleet, lambda: rollback(ifleet, "rolling"))
    assert sampler.minimum >= 3, "a rollback drains host by host within min_ready"
    assert versions(ifleet) == {h: now for h in APP}
    rolled = latest_report(ifleet, "rolling-rollback")
    assert rolled["verdict"] == "completed" and [len(w["hosts"]) for w in rolled["waves"]] == [1, 1, 1, 1]
    twice = rollback(ifleet, "rolling")
    assert twice.rc == 0 and all(twice.changed()[h] == 0 for h in APP), twice.output


def test_own_inventory_with_other_names_hooks_and_the_oldest_ansible(ifleet, releases_dir, tmp_path):
    import yaml  # pylint: disable=import-outside-toplevel

    files, _commands = docs_examples()
    for name, content in files.items():
        os.makedirs(os.path.dirname(str(tmp_path / name)), exist_ok=True)
        (tmp_path / name).write_text(content)
    # The docs' inventory, with this fleet's addresses, socket and SSH settings (the names stay the docs' own).
    inventory = yaml.safe_load(files["inventory.yml"])
    shop = inventory["all"]["children"]["shop"]["hosts"]
    for i, name in enumerate(shop, 1):
        shop[name]["ansible_host"] = ifleet.config.host_address(i)
    lb = inventory["all"]["children"]["balancers"]["hosts"]["haproxy-1"]
    lb.update(ansible_host=ifleet.config.lb_address, admin_socket=ifleet.haproxy_socket)
    with open(ifleet.inventory, encoding="utf-8") as handle:
        fleet_vars = json.load(handle)["all"]["vars"]
    inventory["all"]["vars"] = {k: v for k, v in fleet_vars.items() if k.startswith("ansible_")}
    (tmp_path / "inventory.yml").write_text(yaml.safe_dump(inventory))
    # a third hook, after the switch, to show the order: switched before healthy
    (tmp_path / "hooks" / "after-switch.yml").write_text(
        "- name: Note the switch\n  ansible.builtin.lineinfile:\n    path: \"{{ deploy_app_root }}/shared/deploys.log\"\n"
        "    line: \"{{ deploy_plan.release }} switched\"\n    create: true\n    mode: \"0644\"\n")

    playbook = OLDEST if os.path.exists(OLDEST) else ANSIBLE_PLAYBOOK
    if os.environ.get("CI"):
        assert playbook == OLDEST, "CI runs this on the oldest ansible-core the collection declares (make bootstrap installs it)"
    version = subprocess.run([playbook, "--version"], capture_output=True, text=True, check=True).stdout.split("\n")[0]
    extra = {
        "deploy_strategy": "canary", "deploy_release": "v2", "deploy_report_dir": ifleet.reports,
        "deploy_after_switch_tasks_file": str(tmp_path / "hooks" / "after-switch.yml"),
        "deploy_artifact": os.path.join(releases_dir, "demo-app-v2.tar.gz"),
        "deploy_canary_steps": [{"set_weight": 25}, {"pause": 1}, {"analysis": {}}],
        # probes templated against the canary group the role creates (it does not exist when arguments are checked)
        "deploy_canary_analysis": {
            # at 40 requests a second a 6 s window has the power for a 10-point rise, not the default 5
            "window": 6, "interval": 1, "min_requests": 20, "min_samples": 5, "probe_rate": 5, "error_detect": 0.1,
            "canary_urls": "{{ groups['deploy_canary'] | default([]) | map('extract', hostvars, 'ansible_host') "
                           "| map('regex_replace', '^(.*)$', 'http://\\1:8080/') | list }}",
            "baseline_urls": "{{ groups['shop'] | difference(groups['deploy_canary'] | default([])) | map('extract', hostvars, 'ansible_host') "
                             "| map('regex_replace', '^(.*)$', 'http://\\1:8080/') | list }}"},
    }
    traffic = TrafficGenerator(ifleet.lb_url, rate=40, duration=240).start()
    proc = subprocess.run([playbook, "-i", str(tmp_path / "inventory.yml"), str(tmp_path / "deploy.yml"), "-e", json.dumps(extra)],
                          env=ifleet.env(), cwd=str(tmp_path), capture_output=True, text=True, check=False, timeout=900)
    report = traffic.stop()
    assert proc.returncode == 0, f"{version}\n{proc.stdout[-5000:]}\n{proc.stderr[-2000:]}"
    done = latest_report(ifleet, "canary")
    assert done["verdict"] == "completed" and done["canary"]["hosts"] == ["shop-a"], done["summary"]
    assert done["analyses"][0]["verdict"] == "pass"
    assert done["analyses"][0]["canary_urls"] == [f"http://{ifleet.config.host_address(1)}:8080/"], "probes templated against the canary group"
    assert len(done["analyses"][0]["baseline_urls"]) == 3
    assert versions(ifleet) == {h: "v2" for h in APP} and report["errors"] == 0, report
    for host in APP:
        settings = json.loads(ssh(ifleet, host, "cat /srv/shop/current/settings.json").stdout)
        assert settings["release"] == "v2", "the before-switch hook wrote into the release before it became current"
        assert ssh(ifleet, host, "cat /srv/shop/shared/deploys.log").stdout.splitlines() == ["v2 switched", "v2 healthy"], host
    # the report has the same field types on this ansible-core as on the newest
    assert type_signature(done) == type_signature(latest_report(ifleet, "rolling")), version
