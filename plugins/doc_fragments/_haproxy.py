# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private doc fragment: how sre.ops HAProxy modules reach the runtime API. Paired with
# HAPROXY_CONNECTION_SPEC in plugins/module_utils/_haproxy_argspec.py.

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  socket:
    description:
      - Where HAProxy's runtime API listens (a C(stats socket) at C(level admin)).
      - A path is a UNIX socket on the host the module runs on (use C(delegate_to) to run it on the load balancer);
        V(host:port) is a TCP runtime API, reachable from anywhere that may connect to it.
    type: str
    required: true
  timeout:
    description: Seconds to wait for HAProxy to answer one command.
    type: float
    default: 5
"""
