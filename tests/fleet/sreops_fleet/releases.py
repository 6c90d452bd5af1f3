# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Reproducible release artifacts of the demo application: the same sources give byte-identical tarballs."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import random
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
APP_DIR = os.path.join(HERE, "demo_app")
FIXED_MTIME = 1700000000  # a fixed timestamp: wall-clock time must not leak into the artifact

# v1, v2 healthy; v3 healthy on /healthz but 1 in 5 main requests fail; v4 healthy but 300 ms slower;
# v5 starts but is unhealthy (/healthz answers 503): a health gate must stop it.
# The subtle ones canary analysis must catch (5xx at random, latency on /): "subtle" 6% 5xx and +60 ms,
# "err6" 6% 5xx, "slow60" +60 ms, "err1" a rare 1% 5xx.
RELEASES: dict[str, dict[str, float]] = {
    "v1": {},
    "v2": {},
    "v3": {"error_every": 5},
    "v4": {"extra_latency_ms": 300},
    "v5": {"healthz_status": 503},
    "subtle": {"error_ratio": 0.06, "extra_latency_ms": 60},
    "err6": {"error_ratio": 0.06},
    "slow60": {"extra_latency_ms": 60},
    "err1": {"error_ratio": 0.01},
}


def _add(tar: tarfile.TarFile, name: str, data: bytes, mode: int) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = mode
    info.mtime = FIXED_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    tar.addfile(info, io.BytesIO(data))


def build(version: str, output_dir: str, padding_bytes: int = 0) -> dict[str, str]:
    """Write demo-app-<version>.tar.gz and its .sha256 into output_dir; return path and digest.

    padding_bytes adds an incompressible asset of that size (benchmarks use it to make a ~20 MB release).
    """
    if version not in RELEASES and not padding_bytes:
        raise ValueError(f"unknown demo release {version!r}; known: {', '.join(RELEASES)}")
    behaviour = RELEASES.get(version, {})
    files: dict[str, tuple[bytes, int]] = {}
    with open(os.path.join(APP_DIR, "app.py"), "rb") as handle:
        files["app.py"] = (handle.read(), 0o644)
    with open(os.path.join(APP_DIR, "bin", "appctl"), "rb") as handle:
        files["bin/appctl"] = (handle.read(), 0o755)
    release = {"version": version, **behaviour}
    files["release.json"] = ((json.dumps(release, indent=2, sort_keys=True) + "\n").encode(), 0o644)
    files["VERSION"] = (f"{version}\n".encode(), 0o644)
    if padding_bytes:
        # Deterministic but incompressible: seeded pseudo-random bytes, so gzip cannot shrink them.
        blob = random.Random(f"sre.ops demo {version}").randbytes(padding_bytes)
        files["assets/blob.bin"] = (blob, 0o644)

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory in sorted({os.path.dirname(n) for n in files if os.path.dirname(n)}):
            info = tarfile.TarInfo(directory)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            info.mtime = FIXED_MTIME
            info.uname = info.gname = "root"
            tar.addfile(info)
        for name in sorted(files):
            data, mode = files[name]
            _add(tar, name, data, mode)
    compressed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=compressed, mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    payload = compressed.getvalue()
    digest = hashlib.sha256(payload).hexdigest()

    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, f"demo-app-{version}.tar.gz")
    tmp = path + ".tmp"
    with open(tmp, "wb") as handle:
        handle.write(payload)
    os.replace(tmp, path)
    with open(path + ".sha256", "w", encoding="ascii") as handle:
        handle.write(f"{digest}  {os.path.basename(path)}\n")
    return {"version": version, "path": path, "sha256": digest}


def build_all(output_dir: str) -> list[dict[str, str]]:
    return [build(version, output_dir) for version in RELEASES]
