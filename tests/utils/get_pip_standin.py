# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Stand-in for ansible-test's downloaded pip bootstrap script, for machines that reach only the package index.

ansible-test runs it as `python get_pip.py [pip options] pip==X setuptools ... [--no-setuptools] [--no-wheel]`
inside a new venv created without pip. This installs pip from the interpreter's bundled wheel (ensurepip),
then the requested versions from the package index. ansible-test sets PIP_CONFIG_FILE=/dev/null, which hides
a machine-wide CA bundle setting, so the system bundle is passed explicitly when there is one; the pip it
installs then verifies TLS with the system trust store by itself.
"""

from __future__ import annotations

import os
import subprocess
import sys

SYSTEM_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def main() -> int:
    args = [a for a in sys.argv[1:] if a not in ("--no-setuptools", "--no-wheel")]
    subprocess.run([sys.executable, "-m", "ensurepip", "--upgrade", "--default-pip"], check=True, stdout=subprocess.DEVNULL)
    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    for bundle in SYSTEM_CA_BUNDLES:
        if os.path.exists(bundle) and not os.environ.get("PIP_CERT"):
            cmd += ["--cert", bundle]
            break
    return subprocess.run(cmd + args, check=False).returncode


if __name__ == "__main__":
    sys.exit(main())
