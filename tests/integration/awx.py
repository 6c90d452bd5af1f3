# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Jobs run the way AWX / Automation Controller runs them: ansible-runner over a private data dir.

AWX writes a private data dir per job (project checkout, inventory, the machine credential's key in
env/ssh_key, extra vars and survey answers in env/extravars, job settings in env/settings) and runs
ansible-runner on it, on the controller or inside an execution environment. The job's status and rc are what
the AWX job page shows; set_stats data arrives as artifact_data of the playbook_on_stats event, which AWX
passes to the next node of a workflow as extra vars.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import typing as t

import ansible_runner
import yaml

from sreops_fleet import Fleet

from .conftest import COLLECTION_ROOT

DEMO_VARS = os.path.join(COLLECTION_ROOT, "playbooks", "vars", "demo-fleet.yml")
AWX_PROJECT = os.path.join(COLLECTION_ROOT, "docs", "awx", "project")


def inventory_for_awx(fleet: Fleet) -> dict[str, t.Any]:
    """The fleet's inventory as AWX would hold it: no key file (the machine credential brings the key through
    ssh-agent), host keys checked against a known_hosts file shipped beside the inventory."""
    with open(fleet.inventory, encoding="utf-8") as handle:
        inventory = json.load(handle)
    all_vars = inventory["all"]["vars"]
    all_vars.pop("ansible_ssh_private_key_file", None)
    all_vars["ansible_ssh_common_args"] = "-o UserKnownHostsFile={{ inventory_dir }}/known_hosts.txt -o StrictHostKeyChecking=yes"
    return inventory


def private_data_dir(
    path: str,
    fleet: Fleet,
    extravars: dict[str, t.Any],
    *,
    check: bool = False,
    settings: dict[str, t.Any] | None = None,
) -> str:
    """A private data dir with docs/awx/project as the project (what a job template's project would check out)."""
    shutil.rmtree(path, ignore_errors=True)
    for sub in ("env", "inventory"):
        os.makedirs(os.path.join(path, sub))
    shutil.copytree(AWX_PROJECT, os.path.join(path, "project"))
    with open(os.path.join(path, "inventory", "hosts.yml"), "w", encoding="utf-8") as handle:
        yaml.safe_dump(inventory_for_awx(fleet), handle)
    # .txt: ansible's inventory loader skips it, ssh reads it
    shutil.copy(fleet.path("known_hosts"), os.path.join(path, "inventory", "known_hosts.txt"))
    with open(fleet.path("id_ed25519"), encoding="ascii") as handle:
        key = handle.read()
    files = {
        "env/ssh_key": key,
        "env/extravars": json.dumps(extravars),
        # AWX's defaults for a job: no prompt can be answered, so a prompt must never be reached.
        "env/settings": json.dumps({"idle_timeout": 600, "job_timeout": 900, "pexpect_timeout": 10, **(settings or {})}),
    }
    if check:
        files["env/cmdline"] = "--check --diff"  # job type "check" with "show changes" on
    for name, content in files.items():
        with open(os.path.join(path, name), "w", encoding="utf-8") as handle:
            handle.write(content)
    os.chmod(os.path.join(path, "env", "ssh_key"), 0o600)
    return path


def deploy_vars(fleet_reports: str, artifact: str, release: str, strategy: str, **extra: t.Any) -> dict[str, t.Any]:
    with open(DEMO_VARS, encoding="utf-8") as handle:
        values = yaml.safe_load(handle)
    values = copy.deepcopy(values)
    values.update(deploy_artifact=artifact, deploy_release=release, deploy_strategy=strategy, deploy_report_dir=fleet_reports)
    values.update(extra)
    return values


def run_job(data_dir: str, playbook: str, **kwargs: t.Any) -> ansible_runner.Runner:
    """One job, the way AWX starts it: no terminal, events collected, status and rc as the job page shows."""
    return ansible_runner.run(private_data_dir=data_dir, playbook=playbook, quiet=True, **kwargs)


def stats_artifacts(runner: ansible_runner.Runner) -> dict[str, t.Any]:
    """What set_stats handed to AWX: the artifact_data of the playbook_on_stats event (empty if none)."""
    stats = [e for e in runner.events if e.get("event") == "playbook_on_stats"]
    assert len(stats) == 1, f"expected one playbook_on_stats event, got {len(stats)}"
    return stats[0]["event_data"].get("artifact_data") or {}


def job_output(runner: ansible_runner.Runner) -> str:
    return runner.stdout.read() if runner.stdout else ""
