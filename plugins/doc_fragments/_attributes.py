# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private doc fragment: the attribute descriptions every sre.ops module shares. Modules state only
# support:, so a new module never inherits a support level by accident.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options: {}
attributes:
  check_mode:
    description:
      - Can run in check mode and return changed status prediction without modifying target.
      - What check mode predicts is what a real run then does.
  diff_mode:
    description:
      - Will return details on what has changed (or possibly needs changing in check mode), when in diff mode.
  idempotent:
    description:
      - When run twice in a row outside check mode, with the same arguments, the second invocation indicates no change.
"""

    # The modules of the action group sre.ops.haproxy (meta/runtime.yml).
    ACTIONGROUP_HAPROXY = r"""
attributes:
  action_group:
    description: Use C(group/sre.ops.haproxy) in C(module_defaults) to set defaults for this module, for example O(socket) once for a play.
    support: full
    membership:
      - sre.ops.haproxy
"""
