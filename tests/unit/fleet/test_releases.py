# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import hashlib
import json
import tarfile

import pytest

from sreops_fleet import releases


def test_builds_are_byte_identical(tmp_path):
    first = releases.build_all(str(tmp_path / "a"))
    second = releases.build_all(str(tmp_path / "b"))
    assert [a["sha256"] for a in first] == [b["sha256"] for b in second]
    assert len({a["sha256"] for a in first}) == len(releases.RELEASES), "each release must differ"


def test_sha256_file_matches_artifact(tmp_path):
    artifact = releases.build("v2", str(tmp_path))
    with open(artifact["path"], "rb") as handle:
        digest = hashlib.sha256(handle.read()).hexdigest()
    with open(artifact["path"] + ".sha256", encoding="ascii") as handle:
        published, name = handle.read().split()
    assert digest == published == artifact["sha256"]
    assert name == "demo-app-v2.tar.gz"


@pytest.mark.parametrize(
    "version, behaviour",
    [("v1", {}), ("v2", {}), ("v3", {"error_every": 5}), ("v4", {"extra_latency_ms": 300}), ("v5", {"healthz_status": 503}),
     ("subtle", {"error_ratio": 0.06, "extra_latency_ms": 60}), ("err6", {"error_ratio": 0.06}), ("slow60", {"extra_latency_ms": 60}),
     ("err1", {"error_ratio": 0.01})],
)
def test_release_contents_and_behaviour(tmp_path, version, behaviour):
    artifact = releases.build(version, str(tmp_path))
    with tarfile.open(artifact["path"]) as tar:
        names = tar.getnames()
        release = json.load(tar.extractfile("release.json"))
        appctl = tar.getmember("bin/appctl")
    assert set(names) >= {"app.py", "bin/appctl", "release.json", "VERSION"}
    assert not any(n.startswith("/") or ".." in n.split("/") for n in names)
    assert appctl.mode & 0o111
    assert release == {"version": version, **behaviour}


def test_padding_makes_an_incompressible_release(tmp_path):
    artifact = releases.build("big", str(tmp_path), padding_bytes=2_000_000)
    with open(artifact["path"], "rb") as handle:
        assert len(handle.read()) > 1_900_000
