# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""The non-file facets on command output captured from real systems (fixtures/drift/README.md says where from)."""

from __future__ import annotations

import os

import pytest

from ansible_collections.sre.ops.plugins.module_utils import _host_facets as hf

FIXTURES = os.path.join(os.path.dirname(__file__), "fixtures", "drift")


def fixture(name):
    with open(os.path.join(FIXTURES, name), encoding="utf-8") as handle:
        return handle.read()


class FakeRunner:
    """Answers commands with canned (rc, stdout, stderr); records what was run."""

    def __init__(self, binaries, answers):
        self.binaries = binaries
        self.answers = answers
        self.ran = []

    def which(self, name):
        return self.binaries.get(name)

    def run(self, argv):
        self.ran.append(argv)
        for prefix, answer in self.answers.items():
            if argv[1] == prefix:
                return answer
        raise AssertionError(f"unexpected command {argv}")


def test_dpkg_query_output():
    packages = hf.parse_dpkg_query(fixture("dpkg-query.txt"))
    assert packages["aide"] == {"version": "0.18.3-1+deb12u5", "arch": "amd64"}
    assert packages["adduser"] == {"version": "3.134", "arch": "all"}
    assert packages["libacl1:amd64"]["arch"] == "amd64", "multi-arch packages keep dpkg's own name:arch"
    assert len(packages) == len(fixture("dpkg-query.txt").splitlines())


def test_dpkg_states_that_are_not_installed_are_left_out():
    text = "gone\t1.0\tall\trc \nhalf\t2.0\tamd64\tiU \nheld\t3.0\tamd64\thi \n"
    assert hf.parse_dpkg_query(text) == {
        "half": {"version": "2.0", "arch": "amd64", "status": "iU"},
        "held": {"version": "3.0", "arch": "amd64", "status": "hi"},
    }


def test_rpm_query_output_with_epochs_install_only_kernels_and_keys():
    packages = hf.parse_rpm_query(fixture("rpm-qa.txt"))
    assert packages["demo-lib"] == {"version": "1:2.0-1", "arch": "noarch"}
    assert packages["demo-tool"] == {"version": "1.4.2-3", "arch": "x86_64"}
    assert packages["kernel-core-5.14.0-503.el9.x86_64"]["version"] == "5.14.0-503.el9"
    assert packages["kernel-core-5.14.0-427.el9.x86_64"]["version"] == "5.14.0-427.el9"
    assert "kernel-core" not in packages
    assert packages["gpg-pubkey"] == {"version": "8783d481-63ceb953", "arch": "(none)"}


def test_packages_prefer_dpkg_then_rpm_then_say_unavailable():
    dpkg = FakeRunner({"dpkg-query": "/usr/bin/dpkg-query"}, {"-W": (0, fixture("dpkg-query.txt"), "")})
    facet = hf.collect_packages(dpkg)
    assert facet["status"] == "ok" and facet["note"] == "dpkg" and "aide" in facet["items"]
    assert dpkg.ran[0][2:4] == ["-f", "${binary:Package}\t${Version}\t${Architecture}\t${db:Status-Abbrev}\n"]
    rpm = FakeRunner({"rpm": "/usr/bin/rpm"}, {"-qa": (0, fixture("rpm-qa.txt"), "")})
    assert hf.collect_packages(rpm)["items"]["demo-tool"]["arch"] == "x86_64"
    broken = FakeRunner({"rpm": "/usr/bin/rpm"}, {"-qa": (1, "", "error: rpmdb open failed\n")})
    assert hf.collect_packages(broken) == {"status": "error", "items": {}, "note": "rpm -qa failed (rc 1): error: rpmdb open failed"}
    assert hf.collect_packages(FakeRunner({}, {}))["status"] == "unavailable"


def test_systemctl_unit_files_output():
    states = hf.parse_systemctl_unit_files(fixture("systemctl-list-unit-files.txt"))
    assert states["haproxy.service"] == "enabled" and states["cryptdisks.service"] == "masked"
    assert states["apt-daily.timer"] == "enabled"
    assert states["autovt@.service"] == "alias"
    assert len(states) == len(fixture("systemctl-list-unit-files.txt").splitlines())


def test_systemctl_units_output_plain_and_decorated():
    units = hf.parse_systemctl_units(fixture("systemctl-list-units.txt"))
    assert units["ssh.service"] == {"load": "loaded", "active": "active", "sub": "running"}
    assert units["systemd-vconsole-setup.service"]["active"] == "failed"
    decorated = "  UNIT LOAD ACTIVE SUB DESCRIPTION\n● foo.service loaded failed failed Foo\n\nLOAD   = Reflects whether...\n"
    assert hf.parse_systemctl_units(decorated) == {"foo.service": {"load": "loaded", "active": "failed", "sub": "failed"}}


def test_services_with_a_running_systemd(tmp_path):
    runner = FakeRunner({"systemctl": "/usr/bin/systemctl"}, {
        "list-unit-files": (0, fixture("systemctl-list-unit-files.txt"), ""),
        "list-units": (0, fixture("systemctl-list-units.txt"), ""),
    })
    facet = hf.collect_services(runner, systemd_dir=str(tmp_path))
    assert facet["status"] == "ok"
    assert facet["items"]["haproxy.service"] == {"enabled": "enabled", "active": "inactive", "sub": "dead"}
    assert facet["items"]["apt-daily.timer"] == {"enabled": "enabled", "active": "active", "sub": "waiting"}
    assert facet["items"]["cron.service"] == {"active": "active", "sub": "running"}, "loaded units without a unit file count"
    assert "nginx.service" not in facet["items"], "a unit that is not found and has no unit file is not a service"


def test_services_without_a_running_systemd_say_so(tmp_path):
    runner = FakeRunner({"systemctl": "/usr/bin/systemctl"}, {"list-unit-files": (0, fixture("systemctl-list-unit-files.txt"), "")})
    facet = hf.collect_services(runner, systemd_dir=str(tmp_path / "missing"))
    assert facet["status"] == "partial" and "systemd is not running" in facet["note"]
    assert facet["items"]["haproxy.service"] == {"enabled": "enabled"}
    failing = FakeRunner({"systemctl": "/usr/bin/systemctl"}, {"list-unit-files": (1, "", fixture("systemctl-list-units-no-systemd.txt"))})
    facet = hf.collect_services(failing, systemd_dir=str(tmp_path))
    assert facet["status"] == "unavailable" and "System has not been booted with systemd" in facet["note"]
    assert hf.collect_services(FakeRunner({}, {}))["status"] == "unavailable"


def test_proc_net_listening_sockets():
    tcp = hf.parse_proc_net(fixture("proc-net-tcp.txt"), "tcp")
    assert {"proto": "tcp", "address": "127.10.2.11", "port": 22, "uid": 0, "inode": "1889948"} in tcp
    assert all(s["port"] for s in tcp)
    assert [(s["address"], s["port"]) for s in hf.parse_proc_net(fixture("proc-net-tcp6.txt"), "tcp6")] == [("[::1]", 47614)]
    udp = hf.parse_proc_net(fixture("proc-net-udp.txt"), "udp")
    assert ("127.0.0.1", 5414) in [(s["address"], s["port"]) for s in udp]


def test_listening_collector_names_processes(tmp_path):
    proc = tmp_path / "proc"
    (proc / "net").mkdir(parents=True)
    (proc / "net" / "tcp").write_text(fixture("proc-net-tcp.txt"))
    (proc / "sys" / "net" / "ipv4").mkdir(parents=True)
    (proc / "sys" / "net" / "ipv4" / "ip_local_port_range").write_text("32768\t60999\n")
    (proc / "4242" / "fd").mkdir(parents=True)
    (proc / "4242" / "comm").write_text("sshd\n")
    os.symlink("socket:[1889948]", proc / "4242" / "fd" / "3")
    os.symlink("/usr/sbin/sshd", proc / "4242" / "exe")
    owned = hf.collect_listening(owned_only=True, proc=str(proc))
    assert owned["items"] == {"tcp/127.10.2.11:22": {"uid": 0, "processes": ["sshd (/usr/sbin/sshd)"]}}
    everything = hf.collect_listening(owned_only=False, proc=str(proc))
    assert len(everything["items"]) == len(hf.parse_proc_net(fixture("proc-net-tcp.txt"), "tcp"))


def test_passwd_and_group_never_carry_passwords():
    users = hf.parse_passwd("root:x:0:0:root:/root:/bin/bash\nold:$6$salt$hash:1001:1001::/home/old:/bin/sh\n# comment\n+nis\nbad\n")
    assert users == {
        "root": {"uid": 0, "gid": 0, "gecos": "root", "home": "/root", "shell": "/bin/bash"},
        "old": {"uid": 1001, "gid": 1001, "gecos": "", "home": "/home/old", "shell": "/bin/sh"},
    }
    assert "$6$" not in repr(users)
    assert hf.parse_group("sudo:x:27:alice,bob\nempty:x:100:\n") == {"sudo": {"gid": 27, "members": ["alice", "bob"]}, "empty": {"gid": 100, "members": []}}


def test_crontab_lines_and_mountinfo():
    assert hf.parse_crontab("# m h dom\n\nSHELL=/bin/sh\n*/5  *  * * *   root   /bin/true\n") == ["SHELL=/bin/sh", "*/5 * * * * root /bin/true"]
    mounts = hf.parse_mountinfo(fixture("mountinfo.txt"))
    assert mounts[0] == {"mount_point": "/proc", "options": "rw,relatime", "fstype": "proc", "source": "proc", "super_options": "rw"}
    assert len(mounts) == len(fixture("mountinfo.txt").splitlines())
    escaped = hf.parse_mountinfo("36 35 98:0 / /mnt/my\\040disk rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n")
    assert escaped == [{"mount_point": "/mnt/my disk", "options": "rw,noatime", "fstype": "ext3", "source": "/dev/root", "super_options": "rw,errors=continue"}]


def test_kernel_modules_and_sysctl(tmp_path):
    assert hf.parse_proc_modules("overlay 151552 0 - Live 0x0000000000000000\nbad\n") == {"overlay": {"size": 151552}}
    missing = hf.collect_kernel_modules(str(tmp_path / "modules"))
    assert missing["status"] == "unavailable" and "not present" in missing["note"]
    root = tmp_path / "sys"
    (root / "vm").mkdir(parents=True)
    (root / "kernel" / "random").mkdir(parents=True)
    (root / "vm" / "swappiness").write_text("60\n")
    (root / "kernel" / "random" / "uuid").write_text("b6c1...\n")
    (root / "kernel" / "hostname").write_text("web1\n")
    (root / "kernel" / "write_only").write_text("")
    os.chmod(root / "kernel" / "write_only", 0o200)
    facet = hf.collect_sysctl(["kernel.hostname"], root=str(root))
    assert facet["items"] == {"vm.swappiness": {"value": "60"}}


@pytest.mark.parametrize("name, shown", [("plain", "plain"), ("caf\u00e9", "caf\u00e9"), (b"bad\xffname".decode("utf-8", "surrogateescape"), "bad\\xffname")])
def test_names_that_are_not_utf8_are_shown_escaped(name, shown):
    assert hf.display(name) == shown
    assert hf.is_utf8(name) == (shown == name)


def test_glob_matcher_names_and_paths():
    matcher = hf.GlobMatcher(["*.swp", "/etc/ssl/*", "cache"])
    assert matcher("x.swp", "/etc/x.swp") and matcher("cert.pem", "/etc/ssl/certs/cert.pem") and matcher("cache", "/var/cache")
    assert not matcher("ssl", "/etc/ssl") and not matcher("x.conf", "/etc/x.conf")
    assert not hf.GlobMatcher([]).any
