# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The fleet fits around the machine's own sshd on 0.0.0.0:22 and web server on 0.0.0.0:80, and leaves them running.

A machine's sshd on the wildcard address would block port 22 for every other test fleet running at the same
time on this machine, so the "machine" here is a private network namespace (and a private /run): inside it,
a real sshd listens on 0.0.0.0:22 and a real HAProxy on 0.0.0.0:80, then a fleet comes up, ansible reaches
every host, a rolling deploy of the demo's v1 (playbook sre.ops.deploy, the demo's variables) puts it behind the
fleet's HAProxy, and the fleet goes down again, with both machine services answering throughout.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

from sreops_fleet import core

from .conftest import COLLECTION_ROOT

pytestmark = pytest.mark.fleet

INSIDE = r"""
import glob, json, os, socket, subprocess, sys, time, urllib.request
sys.path[:0] = PATHS
from sreops_fleet import Fleet, FleetConfig

work = sys.argv[1]


def banner(port):
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        return sock.recv(64).decode(errors="replace").strip()


def http_status(url, host=None):
    request = urllib.request.Request(url, headers={"Host": host} if host else {})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, ""


def wait_for(port):
    end = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.02)


subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", f"{work}/machine_host_key"], check=True)
with open(f"{work}/machine_sshd_config", "w") as handle:
    handle.write(f"ListenAddress 0.0.0.0:22\nHostKey {work}/machine_host_key\nPidFile none\nUsePAM no\n")
with open(f"{work}/machine_haproxy.cfg", "w") as handle:
    handle.write("defaults\n    mode http\n    timeout client 5s\n    timeout connect 5s\n    timeout server 5s\n"
                 "frontend machine\n    bind 0.0.0.0:80\n"
                 "    http-request return status 200 content-type text/plain string machine-haproxy\n")
sshd = subprocess.Popen(["/usr/sbin/sshd", "-D", "-f", f"{work}/machine_sshd_config", "-E", f"{work}/machine_sshd.log"])
haproxy = subprocess.Popen(["haproxy", "-db", "-f", f"{work}/machine_haproxy.cfg"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
result = {}
try:
    wait_for(22)
    wait_for(80)
    result["banner_before"] = banner(22)
    fleet = Fleet(FleetConfig(run_dir=f"{work}/fleet", address_base=ADDRESS_BASE, hosts=2))
    fleet.up()
    try:
        result["ports"] = [fleet.config.ssh_port, fleet.config.http_port]
        ping = subprocess.run([ANSIBLE, "all", "-m", "ansible.builtin.ping"], env=fleet.env(), capture_output=True, text=True, timeout=300)
        result["ping"] = [ping.returncode, ping.stdout + ping.stderr]
        result["fleet_lb"] = http_status(fleet.lb_url, "app.test")[0]
        with open(f"{work}/deploy.json", "w") as handle:
            json.dump(DEPLOY_PLAYS, handle)
        deploy = subprocess.run([PLAYBOOK_COMMAND, f"{work}/deploy.json", *DEPLOY_ARGS, "-e", f"deploy_report_dir={work}/reports"],
                                env=fleet.env(), cwd=COLLECTION_ROOT, capture_output=True, text=True, timeout=600)
        result["deploy"] = [deploy.returncode, deploy.stdout[-6000:] + deploy.stderr[-2000:]]
        reports = sorted(glob.glob(f"{work}/reports/*-rolling.json"))
        result["verdicts"] = [json.load(open(report)).get("verdict") for report in reports]
        status, body = http_status(fleet.lb_url + "version", "app.test")
        result["served"] = [status, json.loads(body).get("version") if status == 200 else body]
    finally:
        fleet.down()
    result["machine_http"] = http_status("http://127.0.0.1:80/")
    result["banner_after"] = banner(22)
    result["alive"] = [sshd.poll() is None, haproxy.poll() is None]
finally:
    sshd.terminate()
    haproxy.terminate()
    sshd.wait()
    haproxy.wait()
print(json.dumps(result))
"""


@pytest.fixture
def short_tmp():
    """A short directory: ssh ControlPath sockets in the fleet's run directory must stay under 108 bytes."""
    path = tempfile.mkdtemp(prefix="sreops-coexist-", dir="/tmp")
    yield pathlib.Path(path)
    shutil.rmtree(path, ignore_errors=True)


# Where each app host listens is host configuration (as in the demo); then the collection's rolling deploy.
DEPLOY_PLAYS = [
    {"name": "Configure the demo app", "hosts": "app", "gather_facts": False, "tasks": [
        {"name": "App configuration directory", "ansible.builtin.file": {"path": "/etc/app", "state": "directory", "mode": "0755"}},
        {"name": "App configuration", "ansible.builtin.copy": {
            "content": "{{ {'listen': app_listen_address, 'port': app_port} | to_json }}\n", "dest": "/etc/app/app.json", "mode": "0644"}}]},
    {"import_playbook": "sre.ops.deploy"},
]


def tool(name: str) -> str:
    """The ansible command of the Python running the tests (the project's venv), else the one on PATH."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.path.exists(path) else name


def test_fleet_comes_up_around_the_machines_own_sshd_and_web_server(short_tmp, releases_dir):
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("ip"):
        pytest.skip("needs root, unshare and ip")
    tmp_path = short_tmp
    paths = [os.path.dirname(os.path.dirname(core.__file__))] + [p for p in sys.path if p.endswith("collections")]
    deploy_args = ["-e", f"@{os.path.join(COLLECTION_ROOT, 'playbooks', 'vars', 'demo-fleet.yml')}", "-e", "deploy_strategy=rolling",
                   "-e", f"deploy_artifact={releases_dir}/demo-app-v1.tar.gz", "-e", "deploy_release=v1"]
    script = tmp_path / "inside.py"
    script.write_text(INSIDE.replace("PATHS", repr(paths)).replace("ADDRESS_BASE", repr("127.0.22.10"))
                      .replace("PLAYBOOK_COMMAND", repr(tool("ansible-playbook"))).replace("ANSIBLE", repr(tool("ansible")))
                      .replace("DEPLOY_PLAYS", repr(DEPLOY_PLAYS)).replace("DEPLOY_ARGS", repr(deploy_args))
                      .replace("COLLECTION_ROOT", repr(COLLECTION_ROOT)))
    # A network namespace of its own (a wildcard listener there blocks nobody else) and a /run of its own (sshd
    # wants /run/sshd, which this machine need not have).
    setup = "ip link set lo up && mount -t tmpfs tmpfs /run && mkdir -p /run/sshd && exec \"$0\" \"$@\""
    proc = subprocess.run(["unshare", "--net", "--mount", "--propagation", "private", "--", "sh", "-c", setup,
                           sys.executable, str(script), str(tmp_path)], capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["banner_before"].startswith("SSH-2.0-")
    assert result["ports"] == [2222, 8000], "22 and 80 are the machine's: the fleet takes the next free ports"
    rc, output = result["ping"]
    assert rc == 0 and output.count("SUCCESS") == 3 and output.count("ping: pong") == 3, output
    assert result["fleet_lb"] == 503, "the fleet's own HAProxy answers on its port (no app deployed: 503)"
    rc, output = result["deploy"]
    assert rc == 0 and result["verdicts"] == ["completed"], output
    assert result["served"] == [200, "v1"], "the deployed release answers through the fleet's HAProxy"
    assert result["machine_http"] == [200, "machine-haproxy"]
    assert result["banner_after"].startswith("SSH-2.0-") and result["alive"] == [True, True], "the machine's services still run"
