# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: the words every plan of the collection speaks, in one place.

The sre.ops.plan callback (plugin_utils/_plan.py) and the deploy role's rollout plan (_rollout.py) classify with
the same action classes, list many hosts the same way (web1..web37) and end with the same closing line, so a
user reads one plan concept whichever of them speaks. Pure Python, no ansible imports.
"""

from __future__ import annotations

import re
import typing as t

CREATE, UPDATE, DELETE, RESTART, EXEC = "create", "update", "delete", "restart", "exec"
NOOP, UNKNOWN, FAILED, UNREACHABLE = "noop", "unknown", "failed", "unreachable"
# Ordered from most to least significant: a record's main action is the first of these it has.
ACTIONS = (FAILED, UNREACHABLE, DELETE, CREATE, UPDATE, RESTART, EXEC, UNKNOWN, NOOP)
CHANGE_ACTIONS = (CREATE, UPDATE, DELETE, RESTART, EXEC)
REPORT_ORDER = (CREATE, UPDATE, DELETE, RESTART, EXEC, NOOP, UNKNOWN, FAILED, UNREACHABLE)


def order_actions(actions: t.Iterable[str]) -> list[str]:
    """The classes present, most significant first; ``noop`` only when nothing else is there."""
    present = set(actions)
    ordered = [a for a in ACTIONS if a in present]
    if len(ordered) > 1 and NOOP in ordered:
        ordered.remove(NOOP)
    return ordered


def closing_line(head: str, hosts: int, to_change: int, counts: t.Mapping[str, int], verb: str = "to change", tail: t.Sequence[str] = ()) -> str:
    """``Plan: 4 hosts, 7 to change (2 create, 5 update, 0 delete), 1 unknown, 0 failed.`` - restart and exec only when there are some."""
    breakdown = [f"{counts.get(a, 0)} {a}" for a in (CREATE, UPDATE, DELETE)]
    breakdown += [f"{counts[a]} {a}" for a in (RESTART, EXEC) if counts.get(a)]
    line = f"{head}: {hosts} host{'s' if hosts != 1 else ''}, {to_change} {verb} ({', '.join(breakdown)})"
    return "".join([line] + [f", {part}" for part in tail]) + "."


_SPLIT = re.compile(r"^(.*?)(\d+)$")


def host_ranges(hosts: t.Iterable[str]) -> str:
    """``web1, web2, web3, web5, db1`` -> ``web1..web3, web5, db1``: consecutive numbered names as ranges."""
    names = list(dict.fromkeys(hosts))
    parsed = []
    for index, name in enumerate(names):
        match = _SPLIT.match(name)
        parsed.append((match.group(1), match.group(2), index) if match else (name, None, index))
    out: list[tuple[int, str]] = []
    by_prefix: dict[str, list[tuple[int, str, int]]] = {}
    for prefix, digits, index in parsed:
        if digits is None:
            out.append((index, prefix))
        else:
            by_prefix.setdefault(prefix, []).append((int(digits), digits, index))

    def follows(previous: tuple[int, str, int], current: tuple[int, str, int]) -> bool:
        same_style = len(current[1]) == len(previous[1]) or not (current[1].startswith("0") or previous[1].startswith("0"))
        return current[0] == previous[0] + 1 and same_style

    for prefix, numbers in by_prefix.items():
        numbers.sort()
        runs = [[numbers[0]]]
        for number in numbers[1:]:
            if follows(runs[-1][-1], number):
                runs[-1].append(number)
            else:
                runs.append([number])
        for run in runs:
            if len(run) >= 3:
                out.append((run[0][2], f"{prefix}{run[0][1]}..{prefix}{run[-1][1]}"))
            else:
                out.extend((n[2], f"{prefix}{n[1]}") for n in run)
    return ", ".join(text for _index, text in sorted(out))
