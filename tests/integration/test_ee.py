# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The execution environment as AWX uses it: built by ansible-builder from meta/execution-environment.yml on a
locally made base image, then ansible-runner runs the jobs inside it (host network) against the fleet."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from sreops_fleet.traffic import TrafficGenerator

from . import awx
from .conftest import COLLECTION_ROOT
from .rollout import GOOD_CANARY, two_host_fleet, versions

pytestmark = pytest.mark.fleet

APP = ["web1", "web2"]
ENGINE = os.path.join(COLLECTION_ROOT, "tests", "utils", "docker_engine.py")


@pytest.fixture(scope="module")
def ee_image():
    """The EE image of this collection (cached by content: built once per change of the collection)."""
    started = subprocess.run([sys.executable, ENGINE, "start"], capture_output=True, text=True, check=False)
    if started.returncode == 3:
        pytest.skip(f"no docker engine can be started here: {started.stderr.strip()}")
    assert started.returncode == 0, started.stderr
    os.environ["DOCKER_HOST"] = started.stdout.strip().split("=", 1)[1]
    tarball = os.environ.get("SREOPS_TARBALL", "")
    assert os.path.isfile(tarball), "SREOPS_TARBALL must name the built collection tarball (make sets it)"
    built = subprocess.run([sys.executable, ENGINE, "ee", tarball], capture_output=True, text=True, check=False)
    assert built.returncode == 0, built.stdout[-4000:] + built.stderr[-4000:]
    return built.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def efleet(releases_dir, tmp_path_factory):
    with two_host_fleet("ee", "127.0.37.10", releases_dir, str(tmp_path_factory.mktemp("reports"))) as fleet:
        yield fleet


def ee_job(fleet, image, data_dir, releases_dir, playbook="deploy.yml"):
    return awx.run_job(
        data_dir, playbook,
        process_isolation=True, process_isolation_executable="docker", container_image=image,
        # AWX's execution nodes reach managed hosts over the network; the fleet lives on this machine's loopback
        container_options=["--network=host"],
        container_volume_mounts=[f"{releases_dir}:{releases_dir}:ro"],
    )


def test_the_ee_carries_the_collection_and_the_pinned_ansible_core(ee_image):
    proc = subprocess.run(["docker", "run", "--rm", ee_image, "ansible-galaxy", "collection", "list", "sre.ops"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and "sre.ops" in proc.stdout, proc.stdout + proc.stderr
    core = subprocess.run(["docker", "run", "--rm", ee_image, "python3", "-c", "import ansible.release as r; print(r.__version__)"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with open(os.path.join(COLLECTION_ROOT, "meta", "execution-environment.yml"), encoding="utf-8") as handle:
        assert f"ansible-core=={core}" in handle.read()
    ssh = subprocess.run(["docker", "run", "--rm", ee_image, "sh", "-c", "command -v ssh && command -v ssh-agent"],
                         capture_output=True, text=True, check=False)
    assert ssh.returncode == 0, "bindep's openssh-client must be in the EE"


def test_rolling_then_canary_inside_the_ee(ee_image, efleet, tmp_path, releases_dir):
    rolling = awx.deploy_vars(efleet.reports, os.path.join(releases_dir, "demo-app-v2.tar.gz"), "v2", "rolling", deploy_min_ready="50%",
                              deploy_report_dir="/runner/artifacts")
    runner = ee_job(efleet, ee_image, awx.private_data_dir(str(tmp_path / "rolling"), efleet, rolling), releases_dir)
    assert (runner.status, runner.rc) == ("successful", 0), awx.job_output(runner)
    assert versions(efleet) == {h: "v2" for h in APP}
    assert awx.stats_artifacts(runner)["sre_ops_rollout"]["verdict"] == "completed"

    canary = awx.deploy_vars(efleet.reports, os.path.join(releases_dir, "demo-app-v1.tar.gz"), "v1", "canary", deploy_min_ready="50%",
                             deploy_report_dir="/runner/artifacts", **GOOD_CANARY)
    traffic = TrafficGenerator(efleet.lb_url, rate=25, duration=900).start()
    runner = ee_job(efleet, ee_image, awx.private_data_dir(str(tmp_path / "canary"), efleet, canary), releases_dir)
    load = traffic.stop()
    assert (runner.status, runner.rc) == ("successful", 0), awx.job_output(runner)
    report = awx.stats_artifacts(runner)["sre_ops_rollout"]
    assert report["verdict"] == "completed" and [a["verdict"] for a in report["analyses"]] == ["pass"]
    assert versions(efleet) == {h: "v1" for h in APP}
    assert load["errors"] == 0, load
