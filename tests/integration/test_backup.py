# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Backups on the fleet, over SSH, with the real restic: web1-web3 back up to an SFTP repository on web4.

One fleet for the whole file (127.x.34.10+), PostgreSQL 15 and MariaDB started once, inside web2's private
/srv, on their own sockets (no TCP), so a database server of the machine itself is never touched.
The kill matrix with many random kill points runs locally (tests/unit/.../test__kill_matrix.py); here a
backup and a prune are killed over SSH to prove the same on the SFTP path.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from .conftest import make_fleet, run_playbook, ssh

from unit.utils import promtext  # tests/ is on sys.path (pytest rootdir)

pytestmark = pytest.mark.fleet

PASSWORD = "fleet-backup-secret"
CLIENTS = ["web1", "web2", "web3"]
TREE = "/srv/data"
TREE_FINGERPRINT = f"cd {TREE} && find . -printf '%p %y %m %s %T@ %l\\n' | sort && find . -type f -exec sha256sum {{}} + | sort"
PG = {"type": "postgresql", "name": "bank", "host": "/srv/pg", "port": 5433, "user": "postgres", "os_user": "postgres"}
MY = {"type": "mysql", "name": "bank", "host": "/srv/my/mysqld.sock", "user": "root"}
LITE = {"type": "sqlite", "path": "/srv/lite/bank.db"}
INVARIANT = {
    "postgresql": "SELECT count(*) || ' ' || ((SELECT sum(amount) FROM ledger) = (SELECT total FROM totals)) FROM ledger",
    "mysql": "SELECT CONCAT(COUNT(*), ' ', (SELECT SUM(amount) FROM ledger) = (SELECT total FROM totals)) FROM ledger",
    "sqlite": "SELECT count(*) || ' ' || ((SELECT sum(amount) FROM ledger) = (SELECT total FROM totals)) FROM ledger",
}

DB_SETUP = r"""
set -eu
mkdir -p /srv/pg /srv/my /srv/lite
chown postgres:postgres /srv/pg && chmod 700 /srv/pg && chown mysql:mysql /srv/my
runuser -u postgres -- /usr/lib/postgresql/15/bin/initdb -D /srv/pg/data -U postgres --auth-local=trust --no-sync >/srv/pg/initdb.log 2>&1
printf 'local all postgres trust\nlocal all all scram-sha-256\n' > /srv/pg/data/pg_hba.conf
runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D /srv/pg/data -l /srv/pg/log -w \
  -o "-k /srv/pg -c listen_addresses='' -p 5433 -c fsync=off" start >/dev/null
mariadb-install-db --no-defaults --user=mysql --datadir=/srv/my/data --auth-root-authentication-method=socket --skip-test-db \
  >/srv/my/install.log 2>&1
setsid -f mariadbd --no-defaults --user=mysql --datadir=/srv/my/data --socket=/srv/my/mysqld.sock --skip-networking \
  --pid-file=/srv/my/mysqld.pid --log-error=/srv/my/err.log </dev/null >/dev/null 2>&1
i=0; until [ -S /srv/my/mysqld.sock ] && mariadb --socket=/srv/my/mysqld.sock -e 'SELECT 1' >/dev/null 2>&1; do
  i=$((i+1)); [ $i -lt 600 ] || { cat /srv/my/err.log; exit 1; }; sleep 0.1; done
psql -q -h /srv/pg -p 5433 -U postgres -c "CREATE DATABASE bank" -c "CREATE ROLE app LOGIN PASSWORD 'right'"
psql -q -h /srv/pg -p 5433 -U postgres -d bank -c "CREATE TABLE ledger (id bigserial PRIMARY KEY, amount int NOT NULL)" \
  -c "CREATE TABLE totals (total bigint NOT NULL)" -c "INSERT INTO ledger (amount) SELECT 1 FROM generate_series(1, 50000)" \
  -c "INSERT INTO totals VALUES (50000)"
mariadb --socket=/srv/my/mysqld.sock -e "CREATE DATABASE bank; USE bank;
  CREATE TABLE ledger (id BIGINT AUTO_INCREMENT PRIMARY KEY, amount INT NOT NULL) ENGINE=InnoDB;
  CREATE TABLE totals (total BIGINT NOT NULL) ENGINE=InnoDB;
  INSERT INTO ledger (amount) SELECT 1 FROM seq_1_to_50000; INSERT INTO totals VALUES (50000);"
python3 - <<'PY'
import sqlite3
c = sqlite3.connect("/srv/lite/bank.db")
c.execute("PRAGMA journal_mode=WAL")
c.execute("CREATE TABLE ledger (id INTEGER PRIMARY KEY, amount INTEGER NOT NULL)")
c.execute("CREATE TABLE totals (total INTEGER NOT NULL)")
c.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 50000) INSERT INTO ledger (amount) SELECT 1 FROM n")
c.execute("INSERT INTO totals VALUES (50000)")
c.commit()
PY
# Writers: one transaction at a time, each adds a ledger row and the same amount to the total.
setsid -f sh -c 'while :; do echo "BEGIN; INSERT INTO ledger (amount) VALUES (1); UPDATE totals SET total = total + 1; COMMIT; SELECT pg_sleep(0.003);"; done \
  | psql -q -h /srv/pg -p 5433 -U postgres -d bank >/dev/null 2>&1' </dev/null >/dev/null 2>&1
setsid -f sh -c 'while :; do echo "START TRANSACTION; INSERT INTO ledger (amount) VALUES (1); UPDATE totals SET total = total + 1; COMMIT;"; \
  echo "DO SLEEP(0.003);"; done \
  | mariadb --socket=/srv/my/mysqld.sock bank >/dev/null 2>&1' </dev/null >/dev/null 2>&1
setsid -f python3 -c '
import sqlite3, time
c = sqlite3.connect("/srv/lite/bank.db", timeout=30, isolation_level=None)
while True:
    c.execute("BEGIN IMMEDIATE"); c.execute("INSERT INTO ledger (amount) VALUES (1)"); c.execute("UPDATE totals SET total = total + 1"); c.execute("COMMIT")
    time.sleep(0.003)
' </dev/null >/dev/null 2>&1
"""


def sh(fleet, host: str, command: str) -> str:
    done = ssh(fleet, host, command)
    assert done.returncode == 0, f"{host}: {command[:200]}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def address(fleet, host: str) -> str:
    return {h.name: h.address for h in fleet.hosts()}[host]


def port(fleet, host: str) -> int:
    """The host's sshd port: 22, or one of 2222.. when the machine's own sshd holds port 22 on every address."""
    return {h.name: h.ssh_port for h in fleet.hosts()}[host]


class Backups:
    """The fleet, the shared repository and a way to run tasks and read back what each returned."""

    def __init__(self, fleet, tmp_dir: str) -> None:
        self.fleet = fleet
        self.tmp_dir = tmp_dir
        self.repo = f"sftp://root@{address(fleet, 'web4')}:{port(fleet, 'web4')}//var/backups/restic"
        self.runs = 0

    def repo_args(self, **extra):
        return {"repository": self.repo, "password": PASSWORD, "lock_wait": 5, **extra}

    def play(self, hosts: str, tasks: list[dict], *args: str, inventory: str | None = None) -> tuple[object, dict[str, list[dict]]]:
        """Run tasks (each registered, errors ignored) on hosts; return the run and, per host, each task's result."""
        self.runs += 1
        out = os.path.join(self.tmp_dir, f"play{self.runs}")
        os.makedirs(out)
        body = []
        for index, task in enumerate(tasks):
            body.append({"name": f"task {index}", "register": f"r{index}", "ignore_errors": True, **task})
        results = "[" + ", ".join(f"r{i}" for i in range(len(tasks))) + "]"
        save = {"content": "{{ " + results + " | to_json }}", "dest": out + "/{{ inventory_hostname }}.json", "mode": "0600"}
        body.append({"name": "save results", "ansible.builtin.copy": save, "delegate_to": "localhost", "check_mode": False})
        path = os.path.join(out, "playbook.yml")
        with open(path, "w", encoding="utf-8") as handle:
            # Scratch files of the modules go to the host's private /srv, not the /tmp it shares with the machine.
            json.dump([{"name": "backup test", "hosts": hosts, "gather_facts": False, "environment": {"TMPDIR": "/srv/tmp"}, "tasks": body}], handle)
        extra = ("-i", inventory) if inventory else ()
        run = run_playbook(self.fleet, path, *extra, *args)
        found = {}
        for name in os.listdir(out):
            if name.endswith(".json"):
                with open(os.path.join(out, name), encoding="utf-8") as handle:
                    found[name[:-5]] = json.load(handle)
        assert found, run.output
        return run, found

    def restic(self, host: str, args: str) -> str:
        return sh(self.fleet, host, f"RESTIC_PASSWORD={PASSWORD} restic -r {self.repo} {args}")

    def snapshots(self, host: str = "web1") -> list[dict]:
        return json.loads(self.restic(host, "snapshots --json --no-lock"))


@pytest.fixture(scope="session")
def backups(tmp_path_factory):
    fleet = make_fleet("backup", "127.0.34.10")
    fleet.up()
    try:
        with open(fleet.path("id_ed25519"), encoding="ascii") as handle:
            key = handle.read()
        with open(fleet.path("known_hosts"), encoding="ascii") as handle:
            known = handle.read()
        for host in CLIENTS:
            sh(fleet, host, f"umask 077 && printf '%s' '{key}' > /root/.ssh/id_ed25519 && printf '%s' '{known}' > /root/.ssh/known_hosts && "
                            "mkdir -m 1777 /srv/tmp && "
                            f"mkdir -p {TREE}/sub && echo 'hello from {host}' > {TREE}/a.txt && head -c 700000 /dev/urandom > {TREE}/sub/b.bin && "
                            f"ln -s a.txt {TREE}/link && touch -d '2026-01-01 00:00:00' {TREE}/a.txt")
        yield Backups(fleet, str(tmp_path_factory.mktemp("backups")))
    finally:
        fleet.down()


@pytest.fixture(scope="session")
def databases(backups):
    """PostgreSQL 15, MariaDB and SQLite in web2's /srv, each with a writer committing transactions all the time."""
    started = time.monotonic()
    sh(backups.fleet, "web2", DB_SETUP)
    print(f"databases up in {time.monotonic() - started:.1f}s")
    return backups


def fingerprint(backups, host: str, paths: str = TREE) -> str:
    return sh(backups.fleet, host, f"find {paths} -printf '%p %y %m %s %T@ %l\\n' 2>/dev/null | sort | sha256sum; "
                                   f"find {paths} -type f -exec sha256sum {{}} + 2>/dev/null | sort | sha256sum")


def ok(result: dict) -> dict:
    assert not result.get("failed"), result.get("msg", result)
    return result


# ----- sre.ops.backup over SFTP -------------------------------------------------------------------------------
def test_backup_check_apply_apply_check_over_sftp(backups):
    """check -> apply -> apply -> check in one play (task-level check mode), the hosts' files hashed around the check."""
    hosts = ",".join(CLIENTS)
    init = {"sre.ops.backup": backups.repo_args(init=True), "throttle": 1}
    backup = {"sre.ops.backup": backups.repo_args(paths=[TREE], tags=["app"], min_interval="1h", init=True, name="app", metrics_dir="/srv/metrics")}
    print_hosts = {"ansible.builtin.shell": f"find {TREE} /srv/metrics -printf '%p %y %m %s %T@\\n' 2>/dev/null | sort",
                   "changed_when": False, "check_mode": False}
    print_repo = {**print_hosts, "ansible.builtin.shell": "find /var/backups -printf '%p %y %s\\n' | sort", "delegate_to": "web4", "run_once": True}
    tasks = [print_hosts, print_repo, {**init, "check_mode": True}, {**backup, "check_mode": True}, print_hosts, print_repo,
             init, backup, init, backup, {**init, "check_mode": True}, {**backup, "check_mode": True}]
    _run, results = backups.play(hosts, tasks, "--diff")
    for host in CLIENTS:
        r = results[host]
        assert r[0]["stdout"] == r[4]["stdout"] and r[1]["stdout"] == r[5]["stdout"], "check mode wrote something"
        changed = [[r[i]["changed"], r[i + 1]["changed"]] for i in (2, 6, 8, 10)]
        assert changed in ([[True, True], [True, True], [False, False], [False, False]],
                           [[True, True], [False, True], [False, False], [False, False]]), (host, changed, r[6], r[7])
        snapshot = ok(r[7])
        assert snapshot["files_new"] == 2 and snapshot["data_added"] > 700_000 and snapshot["snapshot_id"]
        assert ok(r[9])["snapshot_id"].startswith(snapshot["snapshot_id"]) and "younger than min_interval" in r[9]["skipped_reason"]
        metrics = promtext.parse(sh(backups.fleet, host, "cat /srv/metrics/sreops_backup_app.prom"))
        assert metrics["sreops_backup_last_run_success"]["samples"] == {(("backup", "app"),): 1.0}
        assert metrics["sreops_backup_files_new"]["samples"] == {(("backup", "app"),): 2.0}
    assert sum(1 for h in CLIENTS if results[h][6]["changed"]) == 1, "exactly one host initialised the shared repository"
    assert sorted(s["hostname"] for s in backups.snapshots()) == CLIENTS

    # Check mode is restic's dry run: it predicts the files and bytes a real run then adds.
    sh(backups.fleet, "web1", f"head -c 50000 /dev/urandom > {TREE}/new.bin && echo changed >> {TREE}/a.txt")
    task = {"sre.ops.backup": backups.repo_args(paths=[TREE], tags=["app"])}
    _run, results = backups.play("web1", [{**task, "check_mode": True}, task])
    predicted, done = (ok(r) for r in results["web1"])
    assert (predicted["files_new"], predicted["files_changed"], predicted["files_unmodified"]) == (1, 1, 1)
    assert (done["files_new"], done["files_changed"], done["files_unmodified"]) == (1, 1, 1)
    assert predicted["snapshot_id"] is None and predicted["data_added"] >= 50_000 and done["data_added"] >= 50_000


# ----- retention ------------------------------------------------------------------------------------------------
def test_retention_equals_restic_forget_dry_run_and_refuses_to_empty(backups):
    days = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-09", "2026-01-10", "2026-02-01"]
    for day in days:
        backups.restic("web3", f"backup -q --host web3 --tag ret --time '{day} 10:00:00' {TREE}")
    policy = {"keep_daily": 2, "keep_weekly": 2, "host": "web3", "tags": ["ret"]}
    raw = json.loads(backups.restic("web3", "forget --json --dry-run --no-lock --group-by host,paths --keep-daily 2 --keep-weekly 2 --host web3 --tag ret"))
    raw_removed = sorted(s["id"] for g in raw for s in g["remove"])
    raw_kept = sorted(s["id"] for g in raw for s in g["keep"])
    assert raw_removed, "the policy must remove something for this test to mean anything"
    tasks = [
        {"sre.ops.backup_retention": backups.repo_args(**policy), "check_mode": True},
        {"sre.ops.backup_retention": backups.repo_args(**policy)},
        {"sre.ops.backup_retention": backups.repo_args(**policy)},
        {"sre.ops.backup_retention": backups.repo_args(**policy), "check_mode": True},
        {"sre.ops.backup": backups.repo_args(paths=[TREE], tags=["ret", "golden"], extra_args=["--time", "2026-01-05 10:00:00"])},
        {"sre.ops.backup_retention": backups.repo_args(keep_tag=["nothing-has-this"], host="web3", tags=["ret"])},
        {"sre.ops.backup_retention": backups.repo_args(keep_tag=["golden"], host="web3", tags=["ret"])},
    ]
    _run, results = backups.play("web3", tasks)
    check, apply, again, check_again, golden, empty, newest = results["web3"]
    assert sorted(ok(check)["removed"]) == raw_removed and sorted(check["kept"]) == raw_kept
    assert all(s["reasons"] for g in check["groups"] for s in g["keep"]), "every kept snapshot says why"
    assert sorted(ok(apply)["removed"]) == raw_removed and apply["changed"]
    assert not ok(again)["changed"] and not ok(check_again)["changed"]
    golden_id = [s["id"] for s in backups.snapshots() if "golden" in (s.get("tags") or [])]
    assert len(golden_id) == 1 and golden_id[0].startswith(ok(golden)["snapshot_id"])
    assert empty["failed"] and "removes every snapshot of group (host web3" in empty["msg"]
    assert newest["failed"] and "removes the newest snapshot" in newest["msg"]
    left = sorted(s["id"] for s in backups.snapshots() if "ret" in (s.get("tags") or []))
    assert left == sorted(raw_kept + golden_id), "the policy removed other snapshots than predicted, or a refused policy removed some"


# ----- restore --------------------------------------------------------------------------------------------------
def test_restore_preview_refusal_and_check_apply_apply_check(backups):
    host = "web2"
    sh(backups.fleet, host, f"echo older-local-edit > {TREE}/a.txt && touch -d '2020-01-01' {TREE}/a.txt && "
                            f"echo mine > {TREE}/extra.txt && head -c 1000 /dev/urandom >> {TREE}/sub/b.bin && rm {TREE}/link")
    restore = backups.repo_args(host=host, tags=["app"], path=TREE)
    tasks = [
        {"sre.ops.restore": restore, "check_mode": True, "diff": True},
        {"ansible.builtin.shell": TREE_FINGERPRINT, "changed_when": False, "check_mode": False},
        {"sre.ops.restore": restore},
        {"ansible.builtin.shell": TREE_FINGERPRINT, "changed_when": False, "check_mode": False},
        {"sre.ops.restore": {**restore, "overwrite": "if-newer"}, "check_mode": True},
        {"sre.ops.restore": {**restore, "overwrite": "if-newer"}},
        {"sre.ops.restore": {**restore, "overwrite": "if-newer"}},
        {"sre.ops.restore": {**restore, "overwrite": "if-newer"}, "check_mode": True},
    ]
    _run, results = backups.play(host, tasks)
    preview, print_before, refused, print_after, check, apply, again, check_again = results[host]
    p = preview["preview"]
    assert (p["create"], p["overwrite"], p["newer"], p["extra"]) == (["link"], ["a.txt"], ["sub/b.bin"], ["extra.txt"])
    assert p["newer_files"] == "refused" and "+ create: link" in preview["diff"]["prepared"]
    assert preview["failed"] and refused["failed"] and preview["msg"] == refused["msg"], "check mode predicts the refusal"
    assert "refusing to overwrite 1 file(s) in the target that are newer than the snapshot: sub/b.bin" in refused["msg"]
    assert print_before["stdout"] == print_after["stdout"], "a refused restore changed the target"
    assert [check["changed"], ok(apply)["changed"], ok(again)["changed"], ok(check_again)["changed"]] == [True, True, False, False]
    assert check["preview"] == apply["preview"] and apply["switched"] and apply["verified"]
    assert sh(backups.fleet, host, f"cat {TREE}/a.txt") == f"hello from {host}\n"
    assert sh(backups.fleet, host, f"readlink {TREE}/link") == "a.txt\n"
    assert sh(backups.fleet, host, f"stat -c %s {TREE}/sub/b.bin") == "701000\n", "if-newer keeps the newer file"
    assert sh(backups.fleet, host, f"cat {TREE}/extra.txt") == "mine\n"
    assert [n for n in sh(backups.fleet, host, "ls -A /srv").split() if "sreops" in n] == [], "staging and old trees are gone"


# ----- databases ------------------------------------------------------------------------------------------------
def counts(kind: str) -> dict:
    query = INVARIANT[kind]
    argv = {
        "postgresql": ["psql", "-At", "-h", "/srv/pg", "-p", "5433", "-U", "postgres", "-d", "bank", "-c", query],
        "mysql": ["mariadb", "--socket=/srv/my/mysqld.sock", "-N", "bank", "-e", query],
        "sqlite": ["python3", "-c", "import sqlite3, sys; print(sqlite3.connect('/srv/lite/bank.db', timeout=30).execute(sys.argv[1]).fetchone()[0])",
                   query],
    }[kind]
    return {"ansible.builtin.command": {"argv": argv}, "changed_when": False, "check_mode": False}


def test_database_dumps_are_consistent_under_writes_and_restore(databases):
    backups = databases
    tasks = [counts("postgresql"), counts("mysql"), counts("sqlite")]
    for db in (PG, MY, LITE):
        tasks.append({"sre.ops.backup": backups.repo_args(database=db, tags=["db", db["type"]])})
    tasks += [counts("postgresql"), counts("mysql"), counts("sqlite")]
    tasks.append({"sre.ops.backup": backups.repo_args(database={**PG, "user": "app", "password": "wrong", "os_user": None}, tags=["db", "refused"])})
    tasks.append({"ansible.builtin.shell": "ls -d /srv/tmp/sreops-* 2>/dev/null; find /srv /root /var/backups -name '*.pgdump' -o -name 'bank.sql'",
                  "changed_when": False, "check_mode": False})
    drills = [
        {**PG, "target_name": "bank_drill"},
        {**MY, "target_name": "bank_drill"},
    ]
    for db in drills:
        tasks.append({"sre.ops.restore": backups.repo_args(database=db, tags=["db", db["type"]], host="web2", probe_sql=INVARIANT[db["type"]],
                                                           remove_after=True)})
    tasks.append({"sre.ops.restore": backups.repo_args(database=LITE, tags=["db", "sqlite"], host="web2", target="/srv/restored/bank.db",
                                                       probe_sql=INVARIANT["sqlite"])})
    tasks.append({"sre.ops.restore": backups.repo_args(database={**PG, "target_name": "bank_copy"}, tags=["db", "postgresql"], host="web2")})
    tasks.append({"sre.ops.restore": backups.repo_args(database={**PG, "target_name": "bank_copy"}, tags=["db", "postgresql"], host="web2")})
    _run, results = backups.play("web2", tasks)
    r = results["web2"]
    before = [int(x["stdout"].split()[0]) for x in r[0:3]]
    after = [int(x["stdout"].split()[0]) for x in r[6:9]]
    for i, kind in enumerate(("postgresql", "mysql", "sqlite")):
        assert ok(r[3 + i])["data_added"] > 0 and r[3 + i]["paths"] == [{"postgresql": "/bank.pgdump", "mysql": "/bank.sql", "sqlite": "/bank.db"}[kind]]
        assert after[i] > before[i], f"{kind}: no writes went on during the dump"
    refused = r[9]
    assert refused["failed"] and 'password authentication failed for user "app"' in refused["msg"] and "nothing was added" in refused["msg"]
    assert not [s for s in backups.snapshots() if "refused" in (s.get("tags") or [])], "a failed dump left a snapshot"
    assert r[10]["stdout"] == "", f"dump files or scratch directories left on disk: {r[10]['stdout']}"
    for i, kind in enumerate(("postgresql", "mysql", "sqlite")):
        restored = ok(r[11 + i])
        rows, consistent = restored["probe"]["sql"]["output"].split()
        assert consistent in ("t", "true", "1"), f"{kind}: the restored dump is not consistent: {restored['probe']}"
        assert before[i] <= int(rows) <= after[i], f"{kind}: restored {rows} rows, outside [{before[i]}, {after[i]}]"
        assert restored["rto_seconds"] > 0 and restored["data_age_seconds"] >= 0
    assert r[11]["removed_after"] and "bank_drill" not in sh(backups.fleet, "web2", "psql -At -h /srv/pg -p 5433 -U postgres -l")
    assert ok(r[14])["changed"] and not r[14]["replaced"]
    assert r[15]["failed"] and "database 'bank_copy' exists; set overwrite=always" in r[15]["msg"]


# ----- verify and info ------------------------------------------------------------------------------------------
def test_verify_and_info(backups):
    tasks = [
        {"sre.ops.backup_verify": backups.repo_args(read_data_subset="50%", sample_files=3, host="web1", tags=["app"], seed=7), "check_mode": True},
        {"sre.ops.backup_info": backups.repo_args(tags=["app"], max_age="1h", locks=True)},
        {"sre.ops.backup": {"repository": "/var/backups/local", "password": PASSWORD, "paths": [TREE], "init": True}},
        {"ansible.builtin.shell": "f=$(find /var/backups/local/data -type f | head -1); printf 'XXXXXXXX' | dd of=$f bs=1 seek=100 conv=notrunc 2>/dev/null",
         "check_mode": False},
        {"sre.ops.backup_verify": {"repository": "/var/backups/local", "password": PASSWORD, "read_data": True, "sample_files": 2}},
    ]
    _run, results = backups.play("web1", tasks)
    verify, info, _local, _corrupt, broken = results["web1"]
    ok(verify)
    assert verify["check"]["passed"] and len(verify["sample"]["files"]) == 3 and not verify["changed"]
    assert all(f["match"] and f["sha256"] == f["snapshot_sha256"] for f in verify["sample"]["files"])
    assert any("source_sha256" in f for f in verify["sample"]["files"]), "unchanged source files are compared too"
    ok(info)
    assert sorted(g["host"] for g in info["groups"]) == CLIENTS and info["fresh"] and info["stats"]["raw-data"]["total_size"] > 0
    assert info["locks"] == []
    assert broken["failed"] and "verification failed" in broken["msg"] and not broken["check"]["passed"]


# ----- bad input ------------------------------------------------------------------------------------------------
def test_bad_input_is_named_and_changes_nothing_and_a_killed_backup_is_cleaned_up(backups):
    sh(backups.fleet, "web3", "mkdir -p /srv/big && head -c 30000000 /dev/urandom > /srv/big/blob")
    count = len(backups.snapshots())
    before = fingerprint(backups, "web3", "/srv/big /srv/data")
    nowhere = f"{address(backups.fleet, 'web4').rsplit('.', 1)[0]}.99"
    unreachable = f"sftp:root@{nowhere}:/var/backups/restic"
    no_ssh = {"sftp.command": f"ssh -o ConnectTimeout=3 -o BatchMode=yes -p {port(backups.fleet, 'web4')} root@{nowhere} -s sftp"}
    # A backup kept running (upload limited to 1 MiB/s) while a restore into its source is attempted, then killed.
    slow = backups.repo_args(paths=["/srv/big"], tags=["big"], extra_args=["--limit-upload", "1024"])
    tasks = [
        {"sre.ops.backup": {**backups.repo_args(paths=[TREE]), "password": "not-the-password"}},
        {"sre.ops.backup": {**backups.repo_args(paths=[TREE]), "repository": unreachable, "repository_options": no_ssh}},
        {"sre.ops.backup": backups.repo_args(paths=["/srv/no-such-dir"])},
        {"sre.ops.backup_retention": backups.repo_args(keep_last=0)},
        {"sre.ops.restore": backups.repo_args(snapshot="deadbeef", target="/srv/x")},
        {"sre.ops.backup": slow, "async": 300, "poll": 0},
        {"ansible.builtin.shell": "for i in $(seq 600); do ls /run/sre-ops/backup/*.json >/dev/null 2>&1 && exit 0; sleep 0.1; done; exit 1",
         "check_mode": False, "changed_when": False},
        {"sre.ops.restore": backups.repo_args(host="web3", tags=["app"], path=TREE, target="/srv/big/restored")},
    ]
    _run, results = backups.play("web3", tasks)
    password, unreach, missing, keeps_nothing, no_snapshot, _bg, _wait, inside = results["web3"]
    assert password["failed"] and password["msg"].startswith("wrong repository password for sftp:")
    assert unreach["failed"] and "cannot reach the repository" in unreach["msg"]
    assert missing["failed"] and missing["msg"] == "paths do not exist on this host: /srv/no-such-dir"
    assert keeps_nothing["failed"] and "the retention policy keeps nothing" in keeps_nothing["msg"]
    assert no_snapshot["failed"] and "snapshot 'deadbeef' does not exist" in no_snapshot["msg"]
    assert inside["failed"] and "is inside the source /srv/big of a backup running now" in inside["msg"]
    assert "not-the-password" not in json.dumps(results)
    assert fingerprint(backups, "web3", "/srv/big /srv/data") == before

    # SIGKILL the running backup (the module and its restic) while its lock is in the repository, like a power cut.
    killed_while_locked(backups, "web3", "backup", [])
    left = sh(backups.fleet, "web3", "ls /run/sre-ops/backup; ps -eo pid,stat,args | grep -v ' ps ' || true")
    _run, results = backups.play("web3", [{"sre.ops.backup": backups.repo_args(paths=[TREE], tags=["app"])}])
    after = ok(results["web3"][0])
    assert any("was killed before it finished" in n for n in after["notes"]), json.dumps({"after": after, "left": left}, indent=1)
    assert [lock["hostname"] for lock in after["stale_locks_removed"]] == ["web3"], after
    assert "no longer exists on web3" in " ".join(after["notes"])
    assert len(backups.snapshots()) == count + 1, "only the backup after the kill added a snapshot"


# ----- kills over SSH -------------------------------------------------------------------------------------------
KILL_WHEN_LOCKED = r"""
for i in $(seq 6000); do
  for p in /proc/[0-9]*; do
    if tr '\0' ' ' < $p/cmdline 2>/dev/null | grep -q "^restic .*{word}"; then
      for j in $(seq 300); do
        if [ -n "$(ssh -o BatchMode=yes -p {repo_port} root@{repo_host} ls /var/backups/restic/locks)" ]; then
          pp=$(cut -d' ' -f4 $p/stat)
          # Stop the module first: between two SIGKILLs it could see restic die and remove its marker.
          kill -STOP $pp ${{p#/proc/}} 2>/dev/null; kill -9 $pp ${{p#/proc/}} 2>/dev/null && echo killed; exit 0
        fi
        [ -d $p ] || exit 0
      done
      exit 0
    fi
  done
  sleep 0.02
done
exit 1
"""


def killed_while_locked(backups, host: str, word: str, start: list[dict], attempts: int = 3) -> None:
    """Start tasks (an async run among them) while a watcher on the host SIGKILLs restic `word` and its module as soon as
    that restic's lock is in the repository; repeat if the run ended before (the watcher looks over SSH, like restic)."""
    script = KILL_WHEN_LOCKED.format(word=word, repo_host=address(backups.fleet, "web4"), repo_port=port(backups.fleet, "web4"))
    for attempt in range(attempts):
        watcher = subprocess.Popen(  # pylint: disable=consider-using-with
            backups.fleet.ssh_argv(host, script), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if start:
            backups.play(host, start)
        out, _err = watcher.communicate(timeout=600)
        if "killed" in out and ssh(backups.fleet, "web4", "ls /var/backups/restic/locks").stdout.split():
            print(f"restic {word} on {host} killed while holding its lock (attempt {attempt + 1})")
            return
    raise AssertionError(f"no kill of restic {word} on {host} left a lock in {attempts} attempts")


def test_killed_prune_over_ssh_leaves_a_sound_repository(backups):
    host = "web3"
    prune = backups.repo_args(keep_last=1, host=host, tags=["big"], prune=True)
    new_snapshot = {"sre.ops.backup": backups.repo_args(paths=["/srv/big"], tags=["big"])}
    killed_while_locked(backups, host, "prune", [new_snapshot, new_snapshot, {"sre.ops.backup_retention": prune, "async": 300, "poll": 0}])
    _run, results = backups.play(host, [{"sre.ops.backup": backups.repo_args(paths=[TREE], tags=["app"])}, {"sre.ops.backup_retention": prune}])
    backup_after, retention_after = results[host]
    removed = ok(backup_after)["stale_locks_removed"] + ok(retention_after)["stale_locks_removed"]
    assert [lock["exclusive"] for lock in removed] == [True], (backup_after, retention_after)
    checked = ssh(backups.fleet, "web4", f"RESTIC_PASSWORD={PASSWORD} restic -r /var/backups/restic check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    app = [s for s in backups.snapshots() if s["hostname"] == host and "app" in (s.get("tags") or [])][0]
    sh(backups.fleet, "web4", f"RESTIC_PASSWORD={PASSWORD} restic -r /var/backups/restic restore {app['id']} --target /srv/verify")
    restored = sh(backups.fleet, "web4", f"cd /srv/verify{TREE} && find . -type f -exec sha256sum {{}} + | sort")
    original = sh(backups.fleet, host, f"cd {TREE} && find . -type f -exec sha256sum {{}} + | sort")
    assert restored == original, "an earlier snapshot does not restore byte-for-byte"


# ----- playbooks: restore drill (report, metrics) and the restore preview, with an inventory of its own -------------
def test_restore_drill_and_restore_playbooks(databases, tmp_path):
    backups = databases
    fleet = backups.fleet
    inventory = tmp_path / "inventory.yml"
    key = fleet.path("id_ed25519")
    common = f"-o UserKnownHostsFile={fleet.path('known_hosts')} -o StrictHostKeyChecking=yes -o IdentitiesOnly=yes"
    inventory.write_text(json.dumps({"all": {"vars": {"ansible_user": "root", "ansible_ssh_private_key_file": key, "ansible_ssh_common_args": common,
                                                      "ansible_python_interpreter": "/usr/bin/python3", "backup_repository": backups.repo,
                                                      "backup_password_file": "/srv/drill.pass", "backup_metrics_dir": "/srv/metrics",
                                                      "drill_scratch_dir": "/srv/drill"},
                                             "children": {"backup_clients": {"hosts": {
                                                 "files-01.example.test": {"ansible_host": address(fleet, "web1"), "ansible_port": port(fleet, "web1"),
                                                                           "drill_from_host": "web1",
                                                                           "drill_path": TREE, "drill_tags": ["app"]},
                                                 "db-01.example.test": {"ansible_host": address(fleet, "web2"), "ansible_port": port(fleet, "web2"),
                                                                        "drill_from_host": "web2",
                                                                        "drill_tags": ["db", "postgresql"],
                                                                        "drill_database": {**PG, "target_name": "bank_drill"},
                                                                        "drill_probe_sql": INVARIANT["postgresql"]}}}}}}))
    for host in ("web1", "web2"):
        sh(fleet, host, f"umask 077 && printf '%s' '{PASSWORD}' > /srv/drill.pass")
    sums = sh(fleet, "web1", f"cd {TREE} && sha256sum a.txt sub/b.bin")
    checksums = {line.split()[1]: line.split()[0] for line in sums.splitlines()}
    reports = tmp_path / "reports"
    run = run_playbook(fleet, "sre.ops.restore_drill", "-i", str(inventory), "-e", json.dumps({
        "drill_report_dir": str(reports), "drill_max_rto": 3600, "drill_expect_checksums": checksums}))
    assert run.rc == 0, run.output
    for name, kind in (("files-01.example.test", "files"), ("db-01.example.test", "db")):
        report = json.loads((reports / f"{name}-main.json").read_text())
        assert report["passed"] is True and float(report["rto_seconds"]) > 0 and float(report["data_age_seconds"]) >= 0, report
        host = "web1" if kind == "files" else "web2"
        metrics = promtext.parse(sh(fleet, host, "cat /srv/metrics/sreops_restore_drill_main.prom"))
        assert metrics["sreops_restore_drill_success"]["samples"] == {(("backup", "main"),): 1.0}
        assert metrics["sreops_restore_drill_rto_seconds"]["samples"][(("backup", "main"),)] == pytest.approx(float(report["rto_seconds"]), abs=0.01)
    assert sh(fleet, "web1", "ls -A /srv/drill") == "", "the drill removes what it restored"
    report = json.loads((reports / "files-01.example.test-main.json").read_text())
    assert report["probe"]["checksums"] == {"checked": 2, "mismatched": []}

    run = run_playbook(fleet, "sre.ops.restore", "-i", str(inventory), "--check", "--diff", "--limit", "files-01.example.test",
                       "-e", json.dumps({"restore_from_host": "web1", "restore_tags": ["app"], "restore_path": TREE}))
    assert run.rc == 0 and run.recap["files-01.example.test"]["changed"] == 0, run.output
    flat = " ".join(run.output.split())  # the YAML callback folds long messages
    assert '"unchanged":' in flat and "(preview only)" in flat, run.output
