# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A docker engine of our own for the execution environment and molecule's docker scenario, without a registry.

    python tests/utils/docker_engine.py start        # dockerd on its own socket, data root and exec root
    python tests/utils/docker_engine.py base-image   # Debian 12 made with mmdebstrap and imported (cached)
    python tests/utils/docker_engine.py ee TARBALL [DIR]  # the EE image (ansible-builder; context in DIR; cached)
    python tests/utils/docker_engine.py stop         # ends the dockerd `start` began, nothing else

`start` prints DOCKER_HOST=...; with $DOCKER_HOST already answering, that engine is used and never stopped.
Images stay in a data root under ~/.cache/sre-ops, so later runs on this machine reuse them. Exit status 3
means no engine can run here (not root, no dockerd): callers skip what needs one and say why.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import tarfile
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NET = os.environ.get("SREOPS_TEST_NET", "0") or "0"
STATE_DIR = os.environ.get("SREOPS_DOCKER_DIR", os.path.expanduser(f"~/.cache/sre-ops/docker-{NET}"))
RUN_DIR = f"/run/sre-ops-docker-{NET}"  # short: the socket path must fit in 108 bytes
OWN_HOST = f"unix://{RUN_DIR}/docker.sock"
PID_FILE = os.path.join(RUN_DIR, "dockerd.pid")
BASE_IMAGE = "sre-ops/debian:bookworm-minbase"
EE_IMAGE = "sre-ops-ee"
# In the base image: what ansible-builder needs of a base (python3 with pip). The EE adds the rest (bindep).
BASE_PACKAGES = "python3,python3-pip,ca-certificates"
UNAVAILABLE = 3


class EngineUnavailable(Exception):
    """No docker engine can be used or started here; the message says why."""


def docker(*args: str, check: bool = True, capture: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, capture_output=capture, text=True, env=engine_env(), **kwargs)


def engine_env() -> dict[str, str]:
    env = dict(os.environ)
    env.setdefault("DOCKER_HOST", OWN_HOST)
    return env


def answers(host: str) -> bool:
    if not shutil.which("docker"):
        return False
    proc = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True, check=False,
                          env=dict(os.environ, DOCKER_HOST=host), timeout=30)
    return proc.returncode == 0


def start(timeout: float = 60.0) -> str:
    """The DOCKER_HOST of a running engine: the caller's, else ours (started if needed)."""
    if os.environ.get("DOCKER_HOST") and os.environ["DOCKER_HOST"] != OWN_HOST:
        if answers(os.environ["DOCKER_HOST"]):
            return os.environ["DOCKER_HOST"]
        raise EngineUnavailable(f"DOCKER_HOST={os.environ['DOCKER_HOST']} does not answer")
    if answers(OWN_HOST):
        return OWN_HOST
    dockerd = shutil.which("dockerd") or ("/usr/sbin/dockerd" if os.path.exists("/usr/sbin/dockerd") else None)
    if not dockerd or not shutil.which("docker"):
        raise EngineUnavailable("no dockerd/docker here (scripts/bootstrap installs Debian's docker.io as root)")
    if os.geteuid() != 0:
        raise EngineUnavailable("starting dockerd needs root")
    os.makedirs(RUN_DIR, exist_ok=True)
    os.makedirs(STATE_DIR, exist_ok=True)
    log = open(os.path.join(STATE_DIR, "dockerd.log"), "ab")  # pylint: disable=consider-using-with
    # No iptables rules, no bridge: nothing on the machine's network changes; containers use --network host.
    subprocess.Popen(  # pylint: disable=consider-using-with
        [dockerd, "--iptables=false", "--ip6tables=false", "--ip-masq=false", "--bridge=none",
         "--data-root", os.path.join(STATE_DIR, "data"), "--exec-root", os.path.join(RUN_DIR, "exec"),
         "--pidfile", PID_FILE, "-H", OWN_HOST],
        stdout=log, stderr=log, stdin=subprocess.DEVNULL, start_new_session=True,
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if answers(OWN_HOST):
            return OWN_HOST
        time.sleep(0.2)
    raise EngineUnavailable(f"dockerd did not answer within {timeout:.0f} s; see {STATE_DIR}/dockerd.log")


def stop(timeout: float = 30.0) -> bool:
    """End the dockerd `start` began (by its pidfile); True if one was running."""
    try:
        with open(PID_FILE, encoding="ascii") as handle:
            pid = int(handle.read().strip())
    except (OSError, ValueError):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    return True


def image_exists(name: str) -> bool:
    return docker("image", "inspect", name, check=False).returncode == 0


def trusted_ca_bundle() -> str | None:
    """The CA bundle this machine's pip trusts, if it was told one (a TLS-inspecting proxy needs it in the image too)."""
    bundle = os.environ.get("PIP_CERT") or os.environ.get("REQUESTS_CA_BUNDLE")
    return bundle if bundle and os.path.isfile(bundle) else None


def base_image() -> str:
    """Debian 12 (minbase, python3) made with mmdebstrap from the machine's apt sources; built once, then cached."""
    if image_exists(BASE_IMAGE):
        return BASE_IMAGE
    if not shutil.which("mmdebstrap"):
        raise EngineUnavailable("no mmdebstrap here to make the base image (scripts/bootstrap installs it)")
    hooks = []
    changes = ["--change", "ENV LANG=C.UTF-8", "--change", 'CMD ["/bin/bash"]']
    bundle = trusted_ca_bundle()
    if bundle:
        hooks = [f"--customize-hook=copy-in {bundle} /usr/local/share/sre-ops", "--customize-hook=mkdir -p $1/usr/local/share/sre-ops"]
        hooks.reverse()
        changes += ["--change", f"ENV PIP_CERT=/usr/local/share/sre-ops/{os.path.basename(bundle)}"]
    debootstrap = subprocess.Popen(  # pylint: disable=consider-using-with
        ["mmdebstrap", "--quiet", "--variant=minbase", f"--include={BASE_PACKAGES}", *hooks, "bookworm", "-"],
        stdout=subprocess.PIPE,
    )
    try:
        docker("import", *changes, "-", BASE_IMAGE, stdin=debootstrap.stdout)
    finally:
        debootstrap.stdout.close()
        if debootstrap.wait() != 0:
            raise EngineUnavailable(f"mmdebstrap failed with status {debootstrap.returncode}")
    return BASE_IMAGE


def content_digest(tarball: str) -> str:
    """sha256 over the tarball's member names, modes and contents: equal for two builds of the same collection
    (the tarball's own bytes differ, as gzip and tar record when they were written)."""
    digest = hashlib.sha256()
    with tarfile.open(tarball) as archive:
        for member in sorted(archive.getmembers(), key=lambda m: m.name):
            digest.update(f"{member.name}\0{member.mode}\0{member.type!r}\0{member.linkname}\0".encode())
            if member.isfile():
                digest.update(archive.extractfile(member).read())
    return digest.hexdigest()


def stage_definition(tarball: str, stage: str) -> str:
    """meta/execution-environment.yml ready for ansible-builder, with the collection tarball where it names it.

    ansible-builder reads a definition's files relative to the definition's folder, and collections name theirs
    relative to the collection root (that is what other EEs' introspection reads): stage the definition at the
    root of a copy of meta/, so both read the same paths. Returns the staged definition's path.
    """
    shutil.rmtree(stage, ignore_errors=True)
    os.makedirs(os.path.join(stage, "collections"))
    shutil.copytree(os.path.join(ROOT, "meta"), os.path.join(stage, "meta"))
    shutil.copy(os.path.join(ROOT, "meta", "execution-environment.yml"), os.path.join(stage, "execution-environment.yml"))
    shutil.copy(tarball, os.path.join(stage, "collections", "sre-ops.tar.gz"))
    return os.path.join(stage, "execution-environment.yml")


def ee_image(tarball: str, context_dir: str) -> str:
    """The execution environment of meta/execution-environment.yml with this collection tarball in it.

    Tagged by the content of the tarball (which holds the definition), so an unchanged collection is not rebuilt.
    """
    base_image()
    tag = f"{EE_IMAGE}:{content_digest(tarball)[:12]}"
    if image_exists(tag):
        return tag
    stage = stage_definition(tarball, os.path.join(context_dir, "definition"))
    builder = shutil.which("ansible-builder") or os.path.join(os.path.dirname(sys.executable), "ansible-builder")
    subprocess.run(
        [builder, "build", "--file", stage, "--context", os.path.join(context_dir, "context"),
         "--tag", tag, "--tag", f"{EE_IMAGE}:latest", "--container-runtime", "docker", "--build-arg", f"EE_BASE_IMAGE={BASE_IMAGE}",
         "--extra-build-cli-args=--network=host", "--verbosity", "2"],
        check=True, env=engine_env(),
    )
    return tag


def main(argv: list[str]) -> int:
    command = argv[0] if argv else ""
    try:
        if command == "start":
            print(f"DOCKER_HOST={start()}")
        elif command == "stop":
            print("docker engine stopped" if stop() else "no docker engine of ours was running")
        elif command == "base-image":
            os.environ["DOCKER_HOST"] = start()
            print(base_image())
        elif command == "ee" and len(argv) in (2, 3):
            os.environ["DOCKER_HOST"] = start()
            with tempfile.TemporaryDirectory(prefix="sre-ops-ee-") as scratch:
                print(ee_image(os.path.abspath(argv[1]), argv[2] if len(argv) == 3 else scratch))
        else:
            print(__doc__, file=sys.stderr)
            return 2
    except EngineUnavailable as exc:
        print(f"docker engine unavailable: {exc}", file=sys.stderr)
        return UNAVAILABLE
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
