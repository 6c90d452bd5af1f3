# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A scripted stand-in for the restic runner, and the captured restic 0.14 output the unit tests feed it."""

from __future__ import annotations

import io
import os
import subprocess
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
        self.processes: list[FakeProcess] = []

    def add(self, words: str, rc: int = 0, stdout: str = "", stderr: str = "", times: int = 1) -> "FakeRunner":
        wanted = words.split()

        def matches(argv: list[str]) -> bool:
            return all(word in argv for word in wanted)

        for _time in range(times):
            self.script.append((matches, (rc, stdout, stderr)))
        return self

    def answer(self, argv: list[str]) -> tuple[int, str, str]:
        """(exit status, stdout, stderr) of the first script entry that matches argv (used up)."""
        for index, (matches, answer) in enumerate(self.script):
            if matches(argv):
                del self.script[index]
                return answer(argv) if callable(answer) else answer
        raise AssertionError(f"unexpected restic call: {argv}")

    def run(self, argv: list[str], env: dict[str, str] | None = None, data: bytes | None = None, timeout: float | None = None,
            cwd: str | None = None) -> Completed:
        self.calls.append(list(argv))
        self.envs.append(dict(env or {}))
        rc, stdout, stderr = self.answer(list(argv))
        return Completed(list(argv), rc, stdout, stderr, 0.01)

    def spawn(self, argv: list[str], env: dict[str, str] | None = None, stdin: t.Any = None, stdout: t.Any = None, stderr: t.Any = None,
              user: str | None = None, cwd: str | None = None) -> FakeProcess:
        """A process that has already written the script's answer: through a pipe, or into the file given."""
        self.calls.append(list(argv))
        self.envs.append(dict(env or {}))
        rc, out, err = self.answer(list(argv))
        self.processes.append(FakeProcess(rc, out, err, stdout, stderr))
        return self.processes[-1]

    def commands(self) -> list[str]:
        """The restic sub-commands called, in order (global -o options skipped)."""
        out = []
        for argv in self.calls:
            words = [w for w in argv[1:] if not w.startswith("-")]
            out.append(" ".join(words[:2]) if words and words[0] in ("list", "cat") else (words[0] if words else ""))
        return out


class FakeProcess:
    """What Runner.spawn returns, for a command whose output is known: poll() says it runs until waited for or killed."""

    def __init__(self, rc: int, stdout: str, stderr: str, stdout_to: t.Any, stderr_to: t.Any) -> None:
        self._rc = rc
        self.returncode: int | None = None
        self.killed = False
        self.stdout = io.BufferedReader(io.BytesIO(stdout.encode())) if stdout_to == subprocess.PIPE else None
        self.stderr = io.BufferedReader(io.BytesIO(stderr.encode())) if stderr_to == subprocess.PIPE else None
        for target, text in ((stdout_to, stdout), (stderr_to, stderr)):
            if hasattr(target, "write"):
                target.write(text.encode())

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = self._rc
        return self.returncode

    def kill(self) -> None:
        self.killed = True
        self.returncode = -9
