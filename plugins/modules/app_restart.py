#!/usr/bin/python
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
module: app_restart
short_description: Restart an app with its command or systemd unit, without starting Python on the host
version_added: 0.1.0
description:
  - Runs the command that restarts an app (O(command)) or restarts a systemd unit (O(unit)) over the connection, as one
    shell command, so no Python starts on the host. M(ansible.builtin.command) starts Python on the host to run the same
    command, which with ansible-core 2.19 costs about 0.3 s of CPU per host, more than restarting a small app; the
    C(sre.ops.deploy) role restarts every host of every wave with this action.
  - O(command) is split into words as M(ansible.builtin.command) splits a string, and each word is quoted for the host's
    shell, so no shell feature applies (variables, globs, pipes, redirections, C(&&)); write a script for those.
  - Become applies as to any task. Over SSH the command runs with a terminal (as ansible-core runs modules without
    pipelining), so a process the command leaves running must detach from it (C(setsid), a service manager).
  - Always reports a change; fails with the exit code and the last line of output when the command fails.
author:
  - sre.ops developers (@sre-ops)
extends_documentation_fragment:
  - sre.ops._attributes
attributes:
  check_mode:
    support: full
    details:
      - Runs nothing and reports the restart (C(changed=true)) the real run would do, with RV(cmd).
  diff_mode:
    support: none
    details:
      - A restart changes a process, not a file or setting to compare.
  idempotent:
    support: none
    details:
      - Every run restarts the app.
options:
  command:
    description:
      - The command that restarts the app (and starts it when stopped), run without a shell.
      - Mutually exclusive with O(unit); one of them is required.
    type: str
  unit:
    description:
      - A systemd unit, restarted with C(systemctl restart -- UNIT).
      - Mutually exclusive with O(command).
    type: str
notes:
  - An action plugin; the host needs a POSIX shell, not Python.
seealso:
  - module: ansible.builtin.command
  - module: ansible.builtin.systemd_service
  - module: sre.ops.health_check
"""

EXAMPLES = r"""
---
- name: Restart the app on its new release
  sre.ops.app_restart:
    command: /srv/app/current/bin/appctl restart

- name: Restart its systemd unit instead
  sre.ops.app_restart:
    unit: shop.service
  become: true
"""

RETURN = r"""
cmd:
  description: The words run on the host (in check mode, that would be run).
  returned: always
  type: list
  elements: str
  sample: [/srv/app/current/bin/appctl, restart]
rc:
  description: The command's exit code.
  returned: when the command ran
  type: int
  sample: 0
stdout:
  description: What the command printed (with a terminal, its error output too).
  returned: when the command ran
  type: str
  sample: "started /srv/app/releases/v2 (pid 4242)"
stderr:
  description: Error output that did not go through the terminal.
  returned: when the command ran
  type: str
  sample: ""
msg:
  description: What was run, or would be in check mode, or why it failed.
  returned: always
  type: str
  sample: ran /srv/app/current/bin/appctl restart
"""
