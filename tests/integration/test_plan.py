# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The sre.ops.plan callback in real runs: fidelity on the fleet, exit statuses, secrets, bad settings.

Fidelity: the plan of a --check run must equal what the real run right after it records (same hosts, tasks and
action classes; only a documented `unknown` may differ), and a --check after the real run plans 0 changes.
"""

from __future__ import annotations

import glob
import io
import json
import os
import subprocess
import sys
import tarfile
import uuid

import pytest

from ansible_collections.sre.ops.plugins.plugin_utils import _plan

from .conftest import ANSIBLE_PLAYBOOK, COLLECTION_ROOT, make_fleet, ssh

COLLECTIONS_PATH = os.path.dirname(os.path.dirname(os.path.dirname(COLLECTION_ROOT)))
ANSIBLE_DOC = os.path.join(os.path.dirname(ANSIBLE_PLAYBOOK), "ansible-doc")
QUIET_STDOUT = '''
from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    """Prints nothing, so every line of output comes from ansible itself or sre.ops.plan."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "stdout"
    CALLBACK_NAME = "quiet"
'''


def squeeze(text: str) -> str:
    """Text without whitespace: ansible-core 2.16 wraps warnings at the terminal width, also inside paths at a '-'."""
    return "".join(text.split())


def closing_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith(("Plan: ", "Run: "))]
    assert lines, output
    return lines[-1]


def load(plan_dir: str) -> dict:
    with open(os.path.join(plan_dir, "latest.json"), encoding="utf-8") as handle:
        return json.load(handle)


def local_setup(tmp_path, **settings: str) -> tuple[dict[str, str], str]:
    """An ansible.cfg, inventory and environment for runs on this machine (plus one host that is never reachable)."""
    home = tmp_path / "ansible-home"
    cfg = tmp_path / "ansible.cfg"
    cfg.write_text(
        "[defaults]\n"
        f"home = {home}\nlocal_tmp = {home}/tmp\nremote_tmp = {home}/remote\ncollections_path = {COLLECTIONS_PATH}\n"
        "retry_files_enabled = False\nhost_key_checking = False\n"
    )
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(json.dumps({"all": {"children": {
        "local": {"hosts": {"box1": {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}}},
        "gone": {"hosts": {"gone1": {"ansible_host": "127.0.0.1", "ansible_port": 1, "ansible_user": "nobody",
                                     "ansible_ssh_common_args": "-o ConnectTimeout=5 -o BatchMode=yes"}}},
    }}}))
    env = dict(os.environ, ANSIBLE_CONFIG=str(cfg), ANSIBLE_CALLBACKS_ENABLED="sre.ops.plan", SREOPS_PLAN_DIR=str(tmp_path / "plans"))
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    env.update(settings)
    return env, str(inventory)


def playbook(tmp_path, name: str, tasks: list, hosts: str = "local") -> str:
    path = tmp_path / name
    path.write_text(json.dumps([{"name": f"{name} play", "hosts": hosts, "gather_facts": False, "tasks": tasks}]))
    return str(path)


def ansible_playbook(env: dict[str, str], *args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([ANSIBLE_PLAYBOOK, *args], env=env, capture_output=True, text=True, timeout=600, check=False,
                          cwd=cwd or COLLECTION_ROOT)


def runner(env: dict[str, str], private_data_dir: str, playbook_name: str, inventory: str, cmdline: str, limit: str = ""):
    """ansible-runner, as AWX uses it: its own display callback is the stdout callback. Returns (rc, status, stdout)."""
    ansible_runner = pytest.importorskip("ansible_runner")
    os.makedirs(private_data_dir, exist_ok=True)
    envvars = {k: v for k, v in env.items() if k.startswith(("ANSIBLE_", "SREOPS_"))}
    run = ansible_runner.run(private_data_dir=private_data_dir, playbook=playbook_name, inventory=inventory, cmdline=cmdline,
                             limit=limit or None, envvars=envvars, quiet=True)
    return run.rc, run.status, run.stdout.read()


# ----- fidelity on the fleet -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def plan_fleet():
    instance = make_fleet("plan", "127.0.30.10", hosts=2)
    instance.up()
    try:
        yield instance
    finally:
        instance.down()


def fleet_env(fleet, plan_dir: str, **settings: str) -> dict[str, str]:
    env = fleet.env()
    env.update(ANSIBLE_CALLBACKS_ENABLED="sre.ops.plan", SREOPS_PLAN_DIR=plan_dir, SREOPS_PLAN_EXIT_STATUS="detailed", **settings)
    env.pop("ANSIBLE_STDOUT_CALLBACK", None)
    return env


def assert_same(planned: dict, ran: dict) -> None:
    problems = _plan.compare(planned, ran)
    assert not problems, "the plan and the run disagree:\n" + "\n".join(problems)
    assert planned["check_mode"] is True and ran["check_mode"] is False


@pytest.mark.fleet
def test_demo_plan_equals_the_real_run_then_nothing_to_change(plan_fleet, releases_dir, tmp_path):
    """sre.ops.demo on fresh hosts: --check under ansible-runner, the real run, then --check again."""
    demo_vars = f"-e demo_release_dir={releases_dir} -e demo_version=v1"
    private = str(tmp_path / "runner")
    env = fleet_env(plan_fleet, str(tmp_path / "unused"))
    del env["SREOPS_PLAN_DIR"]  # under ansible-runner the plan goes to the run's artifact directory by default
    rc, status, stdout = runner(env, private, "sre.ops.demo", plan_fleet.inventory, f"--check --diff {demo_vars}")
    assert (rc, status) == (2, "failed"), stdout
    planned_files = glob.glob(os.path.join(private, "artifacts", "*", "sre_ops_plan", "plan-*.json"))
    assert len(planned_files) == 1, stdout
    with open(planned_files[0], encoding="utf-8") as handle:
        planned = json.load(handle)
    assert planned["summary"]["to_change"] > 0 and planned["exit_status"]["code"] == 2
    unknown = {(host, r["task"]) for host, records in planned["hosts"].items() for r in records if r["action"] == "unknown"}
    # Check mode skips both on a fresh host (their conditions read ansible_check_mode): the plan says it cannot know.
    assert unknown == {(f"web{i}", task) for i in range(1, 3) for task in ("Unpack the release", "Ask whether the application runs")}

    plan_dir = str(tmp_path / "plans")
    real = ansible_playbook(fleet_env(plan_fleet, plan_dir), "sre.ops.demo", "--diff", *demo_vars.split())
    assert real.returncode == 2, real.stdout + real.stderr  # detailed: changes made
    ran = load(plan_dir)
    assert_same(planned, ran)
    assert ran["summary"]["unknown"] == 0 and ran["summary"]["failed"] == 0

    again = ansible_playbook(fleet_env(plan_fleet, plan_dir), "sre.ops.demo", "--check", "--diff", *demo_vars.split())
    assert again.returncode == 0, again.stdout + again.stderr
    assert closing_line(again.stdout) == "Plan: 3 hosts, 0 to change (0 create, 0 update, 0 delete), 0 unknown, 0 failed."


@pytest.fixture(scope="module")
def small_releases(tmp_path_factory) -> str:
    """Two tiny release archives (the demo's are megabytes: copying them would only make the test slow)."""
    out = tmp_path_factory.mktemp("small-releases")
    for version in ("v1", "v2"):
        with tarfile.open(out / f"app-{version}.tar.gz", "w:gz") as tar:
            data = f"release {version}\n".encode()
            info = tarfile.TarInfo("VERSION")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(out)


MODULES_PLAYBOOK = [
    {
        "name": "The collection's modules on the app hosts",
        "hosts": "app",
        "gather_facts": False,
        "tasks": [
            {"name": "Upload the artifact", "ansible.builtin.copy": {
                "src": "{{ releases }}/app-{{ version }}.tar.gz", "dest": "/srv/plan-artifacts/", "mode": "0644"}},
            {"name": "Activate the release", "sre.ops.release": {
                "path": "/srv/plan-app", "release": "{{ version }}", "src": "/srv/plan-artifacts/app-{{ version }}.tar.gz",
                "remote_src": True, "keep_releases": 1}},
            {"name": "Probe the host's SSH port", "sre.ops.health_check": {  # the fleet's port: 22 may be the machine's own sshd
                "probes": [{"name": "ssh", "type": "tcp", "host": "{{ ansible_host }}", "port": "{{ ansible_port }}"}]}},
        ],
    },
    {
        "name": "The collection's modules on the load balancer",
        "hosts": "lb",
        "gather_facts": False,
        "tasks": [
            {"name": "Weigh web1", "sre.ops.haproxy_server": {
                "socket": "{{ haproxy_socket }}", "backend": "{{ haproxy_backend }}", "servers": ["web1"], "weight": "{{ weight }}"}},
            {"name": "Route a host name", "sre.ops.haproxy_map": {
                "socket": "{{ haproxy_socket }}", "map": "{{ haproxy_map_file }}", "entries": {"plan.test": "{{ haproxy_backend }}"}}},
            {"name": "Read the backend", "sre.ops.haproxy_info": {"socket": "{{ haproxy_socket }}", "backends": ["{{ haproxy_backend }}"]}},
        ],
    },
]


@pytest.mark.fleet
@pytest.mark.parametrize("version, weight, expected", [
    ("v1", 50, {"create": 4, "update": 2, "delete": 0}),   # first release on 2 hosts: artifact + release; weight and map
    ("v2", 60, {"create": 2, "update": 3, "delete": 2}),   # a switch that prunes v1 (keep_releases=1), new artifact, weight
])
def test_module_plans_equal_the_real_runs(plan_fleet, small_releases, tmp_path, version, weight, expected):
    """Each action class of the collection's modules, predicted by --check, recorded by the real run, then 0 to change.

    The v2 round needs the v1 round's state; a v2 round alone puts v1 in place first (without the plan).
    """
    path = tmp_path / "modules.yml"
    path.write_text(json.dumps(MODULES_PLAYBOOK))
    plan_dir = str(tmp_path / "plans")
    env = fleet_env(plan_fleet, plan_dir)
    if version == "v2" and not _has_release(plan_fleet, "v1"):
        setup = ansible_playbook(env, str(path), "-e", f"releases={small_releases}", "-e", "version=v1", "-e", "weight=50")
        assert setup.returncode in (0, 2), setup.stdout + setup.stderr
    extra = ["-e", f"releases={small_releases}", "-e", f"version={version}", "-e", f"weight={weight}", "--diff"]
    check = ansible_playbook(env, str(path), "--check", *extra)
    assert check.returncode == 2, check.stdout + check.stderr
    planned = load(plan_dir)
    counts = {k: planned["summary"][k] for k in expected}
    assert counts == expected, json.dumps(planned["hosts"], indent=1)[:4000]
    real = ansible_playbook(env, str(path), *extra)
    assert real.returncode == 2, real.stdout + real.stderr
    assert_same(planned, load(plan_dir))
    again = ansible_playbook(env, str(path), "--check", *extra)
    assert again.returncode == 0, again.stdout + again.stderr
    assert closing_line(again.stdout) == "Plan: 3 hosts, 0 to change (0 create, 0 update, 0 delete), 0 unknown, 0 failed."


def _has_release(fleet, release: str) -> bool:
    return ssh(fleet, "web1", f"test -d /srv/plan-app/releases/{release}").returncode == 0


# ----- exit statuses without a fleet -----------------------------------------------------------------------
STATUS_TASKS = [
    {"name": "Write a file", "ansible.builtin.copy": {"content": "x\n", "dest": "{{ out }}/{{ inventory_hostname }}.txt", "mode": "0600"}},
    {"name": "Fail when asked", "ansible.builtin.fail": {"msg": "asked to fail"}, "when": "fail_now | default(false) | bool"},
]


def test_detailed_exit_statuses_from_ansible_runner_and_ansible_playbook(tmp_path):
    """Every status, from ansible-runner (its rc and status, as AWX sees them) and from ansible-playbook."""
    env, inventory = local_setup(tmp_path, SREOPS_PLAN_EXIT_STATUS="detailed")
    book = playbook(tmp_path, "status.yml", STATUS_TASKS, hosts="all")
    out = f"-e out={tmp_path}"
    private = str(tmp_path / "runner")
    os.makedirs(os.path.join(private, "project"))
    with open(book, encoding="utf-8") as src, open(os.path.join(private, "project", "status.yml"), "w", encoding="utf-8") as dst:
        dst.write(src.read())
    expected = [
        ("--check -e fail_now=true", "local", 6, "changes pending and failures"),
        ("", "local", 2, "changes pending"),  # a real run: changes made
        ("--check", "local", 0, "converged: nothing to change"),
        ("--check", "", 8, "unreachable hosts"),
    ]
    runner_env = {k: v for k, v in env.items() if k != "SREOPS_PLAN_DIR"}  # plans go to the runner's artifact directory
    for cmdline, limit, code, meaning in expected:
        rc, status, stdout = runner(runner_env, private, "status.yml", inventory, f"{cmdline} {out}", limit=limit)
        assert (rc, status) == (code, "successful" if code == 0 else "failed"), stdout
        plans = sorted(glob.glob(os.path.join(private, "artifacts", "*", "sre_ops_plan", "latest.json")), key=os.path.getmtime)
        with open(plans[-1], encoding="utf-8") as handle:
            assert json.load(handle)["exit_status"] == {"code": code, "meaning": meaning}

    failed = ansible_playbook(env, "-i", inventory, book, "--limit", "local", "-e", "fail_now=true", *out.split())
    assert failed.returncode == 4, failed.stdout + failed.stderr
    assert closing_line(failed.stdout) == "Run: 1 host, 0 changed (0 create, 0 update, 0 delete), 0 unknown, 1 failed."
    unreachable = ansible_playbook(env, "-i", inventory, book, "--check", *out.split())
    assert unreachable.returncode == 8, unreachable.stdout + unreachable.stderr
    assert closing_line(unreachable.stdout) == "Plan: 2 hosts, 0 to change (0 create, 0 update, 0 delete), 0 unknown, 0 failed, 1 unreachable."
    plain = ansible_playbook(dict(env, SREOPS_PLAN_EXIT_STATUS="ansible"), "-i", inventory, book, "--check", *out.split())
    assert plain.returncode == 4, "without exit_status=detailed, ansible's own status (4: unreachable hosts) stands"


# ----- secrets ---------------------------------------------------------------------------------------------
def test_no_secret_reaches_the_plan_or_the_output(tmp_path):
    """A canary secret in every place a playbook puts secrets; grep every plan file and every line of output."""
    canary = f"canary-{uuid.uuid4().hex}"
    secrets = {"token": canary + "-tok", "dsn": f"pg://app:{canary}-dsn@db", "vault": canary + "-vault"}
    derived = secrets["token"].upper()
    password_file = tmp_path / "vault-pass"
    password_file.write_text("vault-test-password\n")
    vault_vars = tmp_path / "vault.yml"
    encrypted = subprocess.run(
        [os.path.join(os.path.dirname(ANSIBLE_PLAYBOOK), "ansible-vault"), "encrypt_string", "--vault-password-file", str(password_file),
         secrets["vault"], "--name", "vaulted_password"], capture_output=True, text=True, check=True)
    vault_vars.write_text(encrypted.stdout)
    out = tmp_path / "out"
    tasks = [
        {"name": "Create the output directory", "ansible.builtin.file": {"path": str(out), "state": "directory", "mode": "0700"}},
        {"name": "Write a config with a token", "ansible.builtin.copy": {"content": "token={{ app_api_token }}\n", "dest": f"{out}/app.conf", "mode": "0600"}},
        {"name": "Write the DSN the user listed", "ansible.builtin.copy": {"content": "dsn={{ db_conn }}\n", "dest": f"{out}/db.conf", "mode": "0600"}},
        {"name": "Write the vaulted password, without a diff", "ansible.builtin.copy": {
            "content": "pw={{ vaulted_password }}\n", "dest": f"{out}/pw.conf", "mode": "0600"}, "diff": False},
        {"name": "A no_log task holding the DSN", "ansible.builtin.command": "echo {{ db_conn }}", "no_log": True},
        {"name": "Echo the token", "ansible.builtin.command": "echo {{ app_api_token }}", "register": "echoed"},
        {"name": "Derive a secret fact", "ansible.builtin.set_fact": {"derived_secret": "{{ app_api_token | upper }}"}},
        {"name": "Write the derived secret", "ansible.builtin.copy": {"content": "{{ derived_secret }}\n", "dest": f"{out}/derived", "mode": "0600"}},
        {"name": "Loop over items holding the DSN", "ansible.builtin.copy": {
            "content": "{{ item.value }}\n", "dest": f"{out}/{{{{ item.name }}}}", "mode": "0600"}, "loop": [{"name": "one", "value": "{{ db_conn }}"}]},
        {"name": "Fail with the token in the message", "ansible.builtin.fail": {"msg": "bad token {{ app_api_token }}"}, "ignore_errors": True},
        {"name": "Named after the token {{ app_api_token }}", "ansible.builtin.debug": {"msg": "ok"}},
    ]
    book = tmp_path / "secrets.yml"
    book.write_text(json.dumps([{"name": "Use secrets every way a playbook does", "hosts": "local", "gather_facts": False,
                                 "vars_files": [str(vault_vars)], "tasks": tasks}]))
    plugins = tmp_path / "callbacks"
    plugins.mkdir()
    (plugins / "quiet.py").write_text(QUIET_STDOUT)
    # The default stdout callback prints --diff output and task names itself: a quiet one leaves only ansible's and the plan's lines.
    env, inventory = local_setup(tmp_path, SREOPS_PLAN_SECRET_VARS="db_conn", ANSIBLE_CALLBACK_PLUGINS=str(plugins), ANSIBLE_STDOUT_CALLBACK="quiet",
                                 SREOPS_PLAN_DISPLAY="markdown")
    extra = ["-e", f"app_api_token={secrets['token']}", "-e", f"db_conn={secrets['dsn']}", "--vault-password-file", str(password_file), "--diff"]
    outputs = []
    for mode in (["--check"], []):
        run = ansible_playbook(env, "-i", inventory, str(book), *mode, *extra)
        assert run.returncode == 0, run.stdout + run.stderr
        outputs.append(run.stdout + run.stderr)
    # The secrets were really used: they are on the host, so the plan had every chance to leak them.
    assert (out / "app.conf").read_text() == f"token={secrets['token']}\n" and (out / "derived").read_text() == derived + "\n"
    assert (out / "pw.conf").read_text() == f"pw={secrets['vault']}\n" and (out / "one").read_text() == secrets["dsn"] + "\n"
    files = glob.glob(str(tmp_path / "plans" / "*"))
    assert len(files) == 6  # two runs x (json + md) + latest.json + latest.md
    for path in files:
        with open(path, encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                assert canary not in line.lower(), f"{path}:{number}: {line}"
    for output in outputs:
        for number, line in enumerate(output.splitlines(), 1):
            assert canary not in line.lower(), f"output line {number}: {line}"
    plan = load(str(tmp_path / "plans"))
    records = {r["task"]: r for r in plan["hosts"]["box1"]}
    assert records["Write a config with a token"]["diff"][0]["after"] == "token=(masked)\n"
    assert records["A no_log task holding the DSN"]["msg"] == "hidden (no_log)" and records["A no_log task holding the DSN"]["hidden"]
    assert "diff" not in records["Write the vaulted password, without a diff"]
    assert records["Fail with the token in the message"]["msg"] == "bad token (masked)"
    assert "Named after the token (masked)" in records


# ----- bad settings ----------------------------------------------------------------------------------------
def test_bad_settings_warn_naming_the_setting_and_never_break_the_run(tmp_path):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    env, inventory = local_setup(tmp_path, SREOPS_PLAN_DIR=str(a_file), SREOPS_PLAN_EXIT_STATUS="sometimes", SREOPS_PLAN_FORMATS="json,pdf",
                                 SREOPS_PLAN_UNKNOWN_AS_CHANGE="perhaps", SREOPS_PLAN_DISPLAY="loud")
    book = playbook(tmp_path, "bad.yml", STATUS_TASKS)
    run = ansible_playbook(env, "-i", inventory, book, "--check", "-e", f"out={tmp_path}")
    output = squeeze(run.stdout + run.stderr)
    assert run.returncode == 0, output
    assert closing_line(run.stdout) == "Plan: 1 host, 1 to change (0 create, 1 update, 0 delete), 0 unknown, 0 failed."
    assert squeeze(f"plan directory {a_file} (dir, set by SREOPS_PLAN_DIR or [sre_ops_plan] dir) is not a directory") in output
    # ansible's own wording of the problem differs between versions; the setting's name and source are the plan's
    assert squeeze("exit_status (SREOPS_PLAN_EXIT_STATUS or [sre_ops_plan] exit_status) is invalid") in output and "sometimes" in output
    assert squeeze("formats (SREOPS_PLAN_FORMATS or [sre_ops_plan] formats) is invalid") in output and "pdf" in output
    assert squeeze("unknown_as_change (SREOPS_PLAN_UNKNOWN_AS_CHANGE or [sre_ops_plan] unknown_as_change) must be true or false, got 'perhaps'") in output
    assert squeeze("display (SREOPS_PLAN_DISPLAY or [sre_ops_plan] display) is invalid") in output and "loud" in output
    assert a_file.read_text() == "not a directory\n"

    unwritable = "/proc/sre-ops-plans"
    env["SREOPS_PLAN_DIR"] = unwritable
    env["SREOPS_PLAN_EXIT_STATUS"] = "detailed"
    run = ansible_playbook(env, "-i", inventory, book, "--check", "-e", f"out={tmp_path}")
    output = squeeze(run.stdout + run.stderr)
    assert run.returncode == 2, output  # the plan is not written, the exit status still works
    assert squeeze(f"cannot write to the plan directory {unwritable} (dir, set by SREOPS_PLAN_DIR or [sre_ops_plan] dir)") in output
    assert not os.path.exists(unwritable)


def test_ansible_doc_documents_the_callback():
    doc = subprocess.run([ANSIBLE_DOC, "-t", "callback", "--json", "sre.ops.plan"], capture_output=True, text=True, check=False,
                         env=dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS_PATH))
    assert doc.returncode == 0, doc.stderr
    options = json.loads(doc.stdout)["sre.ops.plan"]["doc"]["options"]
    assert sorted(options) == ["dir", "display", "exit_status", "formats", "secret_patterns", "secret_vars", "unknown_as_change"]
    assert all(option["description"] for option in options.values())
