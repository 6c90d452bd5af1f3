# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""sre.ops test fleet: hosts, load balancer, demo application and traffic generator for tests and demos."""

from __future__ import annotations

from .core import Fleet, FleetConfig, FleetError, can_bind, pid_alive, port_busy, on_test_net

__all__ = ["Fleet", "FleetConfig", "FleetError", "can_bind", "pid_alive", "port_busy", "on_test_net"]
