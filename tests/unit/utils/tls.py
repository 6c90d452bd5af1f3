# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Self-signed certificates for tests, made with the openssl command."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


def self_signed(directory: str, days: int, name: str = "127.0.0.1") -> tuple[str, str]:
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed")
    cert, key = os.path.join(directory, f"cert-{days}.pem"), os.path.join(directory, f"key-{days}.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", key, "-out", cert, "-days", str(days), "-subj", f"/CN={name}",
         "-addext", f"subjectAltName=IP:{name}"],
        check=True, capture_output=True,
    )
    return cert, key
