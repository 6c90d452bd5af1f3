# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

# Private doc fragment: how sre.ops HAProxy modules reach the runtime API (and, for the modules that change
# HAProxy, how they lock it). Paired with plugins/module_utils/_haproxy_argspec.py.

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
    description: Seconds to wait for HAProxy to answer one command. Must be positive.
    type: float
    default: 5
"""

    # For the modules that change HAProxy: the lock around their read-decide-write.
    LOCK = r"""
options:
  lock_timeout:
    description:
      - Seconds to wait for the lock that every sre.ops task changing this HAProxy holds while it reads the current
        state, decides and applies, so that concurrent tasks (one per app host, delegated to the load balancer) decide
        one after the other, each on what the previous one did. On timeout the task fails, changes nothing, and names
        the holder (host, pid, since when, what for).
      - The lock is C(fcntl.flock) on a file on the host the module runs on, released by the kernel when its holder
        ends however it ends. For a UNIX O(socket) it is O(socket) with C(.lock) appended; for V(host:port), it is
        C(sre.ops-haproxy-<host>_<port>.lock) in C(/run/lock) (or C(/var/lock), or C(/tmp)). Tasks lock each other
        out only when they run on the same host and name the runtime API the same way, so delegate them all to the
        load balancer (or to one host) with the same O(socket).
      - Check mode reads without locking and creates no lock file.
      - V(0) tries once.
    type: float
    default: 30
"""
