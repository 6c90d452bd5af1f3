# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Make the collection importable as ansible_collections.sre.ops, and the fleet harness as sreops_fleet."""

from __future__ import annotations

import os
import sys

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_parts = COLLECTION_ROOT.split(os.sep)
if _parts[-3:] != ["ansible_collections", "sre", "ops"]:
    raise RuntimeError(
        f"tests must run from an installed collection (.../ansible_collections/sre/ops), not {COLLECTION_ROOT}; "
        "use `make test`, which builds and installs the collection first"
    )
for _path in (os.sep.join(_parts[:-3]), os.path.join(COLLECTION_ROOT, "tests", "fleet")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
