# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import sys

import pytest

from ansible_collections.sre.ops.plugins.callback import plan


def test_the_exit_status_hook_replaces_the_final_status_once_and_restores_sys_exit(monkeypatch):
    seen = []
    original = sys.exit

    def decide(code: int) -> int:
        seen.append(code)
        return 2

    hook = plan._ExitStatusHook(decide)
    hook.install()
    try:
        assert sys.exit is hook
        with pytest.raises(SystemExit) as exc:
            sys.exit(0)
        assert exc.value.code == 2 and seen == [0]
        assert sys.exit is original, "the hook must put sys.exit back after its one use"
    finally:
        monkeypatch.setattr(sys, "exit", original)


def test_the_exit_status_hook_keeps_ansibles_status_when_deciding_fails(monkeypatch):
    original = sys.exit

    def broken(code: int) -> int:
        raise RuntimeError("plan problem")

    hook = plan._ExitStatusHook(broken)
    hook.install()
    try:
        with pytest.raises(SystemExit) as exc:
            sys.exit(250)
        assert exc.value.code == 250
    finally:
        monkeypatch.setattr(sys, "exit", original)


def test_the_exit_status_hook_leaves_other_processes_and_messages_alone(monkeypatch):
    hook = plan._ExitStatusHook(lambda code: 2)
    monkeypatch.setattr(hook, "_pid", -1)  # as in a forked worker
    hook.install()
    with pytest.raises(SystemExit) as exc:
        sys.exit(0)
    assert exc.value.code == 0
    hook = plan._ExitStatusHook(lambda code: 2)
    hook.install()
    with pytest.raises(SystemExit) as exc:
        sys.exit("a message")
    assert exc.value.code == "a message"


def test_raw_boolean_setting_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("SREOPS_PLAN_UNKNOWN_AS_CHANGE", "perhaps")
    assert plan._raw_setting("SREOPS_PLAN_UNKNOWN_AS_CHANGE", "unknown_as_change") == "perhaps"


def test_plain_secret_reads_wrapped_values():
    class Vaulted:
        def __str__(self) -> str:
            return "decrypted-value"

    assert plan._plain_secret({"a": [Vaulted(), 3, None]}) == {"a": ["decrypted-value", 3, None]}
