# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A scripted stand-in for the restic runner, and the captured restic 0.14 output the unit tests feed it."""

from __future__ import annotations

import os
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._restic import Completed

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "plugins", "module_utils", "fixtures", "restic-0.14")


def fixture(name: str) -> tuple[str, str]:
    """(stdout, stderr) restic 0.14 printed for the command the capture script saved under name."""
    with open(os.path.join(FIXTURES, f"{name}.out"), encoding="utf-8") as out, open(os.path.join(FIXTURES, f"{name}.err"), encoding="utf-8") as err:
        return out.read(), err.read()


class FakeRunner:
    """Answers restic commands from a script: a list of (predicate on argv, Completed or callable)."""

    def __init__(self, script: list[tuple[t.Callable[[list[str]], bool], t.Any]] | None = None) -> None:
        self.script = list(script or [])
        self.calls: list[list[str]] = []
        self.envs: list[dict[str, str]] = []

    def add(self, words: str, rc: int = 0, stdout: str = "", stderr: str = "", times: int = 1) -> "FakeRunner":
        wanted = words.split()

        def matches(argv: list[str]) -> bool:
            return all(word in argv for word in wanted)

        for _time in range(times):
            self.script.append((matches, (rc, stdout, stderr)))
        return self

    def run(self, argv: list[str], env: dict[str, str] | None = None, data: bytes | None = None, timeout: float | None = None,
            cwd: str | None = None) -> Completed:
        self.calls.append(list(argv))
        self.envs.append(dict(env or {}))
        for index, (matches, answer) in enumerate(self.script):
            if matches(argv):
                del self.script[index]
                rc, stdout, stderr = answer(argv) if callable(answer) else answer
                return Completed(list(argv), rc, stdout, stderr, 0.01)
        raise AssertionError(f"unexpected restic call: {argv}")

    def spawn(self, *args: t.Any, **kwargs: t.Any) -> t.Any:
        raise AssertionError(f"unexpected spawn: {args}")

    def commands(self) -> list[str]:
        """The restic sub-commands called, in order (global -o options skipped)."""
        out = []
        for argv in self.calls:
            words = [w for w in argv[1:] if not w.startswith("-")]
            out.append(" ".join(words[:2]) if words and words[0] in ("list", "cat") else (words[0] if words else ""))
        return out
