# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""meta/execution-environment.yml: ansible-builder makes a build context of it, and another EE that installs
sre.ops finds the collection's Python and system requirements through ansible-builder's introspection."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
_spec = importlib.util.spec_from_file_location("docker_engine", os.path.join(COLLECTION_ROOT, "tests", "utils", "docker_engine.py"))
docker_engine = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docker_engine)


def definition():
    with open(os.path.join(COLLECTION_ROOT, "meta", "execution-environment.yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


@pytest.fixture(name="tarball")
def fixture_tarball(tmp_path):
    """A stand-in collection tarball: the build context only has to carry it."""
    path = tmp_path / "sre-ops.tar.gz"
    with tarfile.open(path, "w:gz") as archive:
        archive.add(os.path.join(COLLECTION_ROOT, "meta"), arcname="meta")
    return str(path)


def test_ansible_builder_creates_a_build_context(tmp_path, tarball):
    builder = shutil.which("ansible-builder") or os.path.join(os.path.dirname(sys.executable), "ansible-builder")
    if not os.path.exists(builder):
        pytest.skip("ansible-builder is not installed with this Python (the compatibility venvs lack it)")
    staged = docker_engine.stage_definition(tarball, str(tmp_path / "stage"))
    context = tmp_path / "context"
    proc = subprocess.run([builder, "create", "--file", staged, "--context", str(context), "--output-filename", "Containerfile"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    containerfile = (context / "Containerfile").read_text(encoding="utf-8")
    pins = definition()["dependencies"]
    assert f'ARG ANSIBLE_INSTALL_REFS="{pins["ansible_core"]["package_pip"]} {pins["ansible_runner"]["package_pip"]}"' in containerfile
    assert 'ARG EE_BASE_IMAGE="sre-ops/debian:bookworm-minbase"' in containerfile
    assert 'ARG PKGMGR="/usr/local/sbin/apt-dnf"' in containerfile
    assert (context / "_build" / "collections" / "sre-ops.tar.gz").read_bytes() == open(tarball, "rb").read()
    assert "openssh-client [platform:dpkg]" in (context / "_build" / "bindep.txt").read_text(encoding="utf-8")
    galaxy = yaml.safe_load((context / "_build" / "requirements.yml").read_text(encoding="utf-8"))
    assert galaxy == {"collections": [{"name": "/build/collections/sre-ops.tar.gz", "type": "file"}]}


def test_the_ee_runs_the_ansible_core_ci_tests():
    with open(os.path.join(COLLECTION_ROOT, "constraints.txt"), encoding="utf-8") as handle:
        tested = re.search(r"^ansible-core==(\S+)$", handle.read(), re.M).group(1)
    assert definition()["dependencies"]["ansible_core"]["package_pip"] == f"ansible-core=={tested}"


def test_another_ee_finds_the_collections_requirements_by_introspection(tmp_path):
    introspect = pytest.importorskip("ansible_builder._target_scripts.introspect")
    installed = tmp_path / "ansible_collections" / "sre" / "ops"
    shutil.copytree(os.path.join(COLLECTION_ROOT, "meta"), installed / "meta")
    for marker in ("MANIFEST.json", "galaxy.yml"):  # installed copy or checkout: introspection looks for either
        if os.path.exists(os.path.join(COLLECTION_ROOT, marker)):
            shutil.copy(os.path.join(COLLECTION_ROOT, marker), installed / marker)
    # what ansible-builder would pick up without our definition: the root requirements.txt (controller dev pins)
    shutil.copy(os.path.join(COLLECTION_ROOT, "requirements.txt"), installed / "requirements.txt")
    found = introspect.process(data_dir=str(tmp_path))
    assert found["system"]["sre.ops"] == ["openssh-client [platform:dpkg]", "openssh-clients [platform:rpm]"]
    assert "sre.ops" not in found["python"], "no Python requirement beyond ansible-core: nothing from requirements.txt"
