# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: sre.ops.release_info without Python on the host.

A module run costs the host a Python start and the compilation of ansible's module_utils (about 0.14 s of CPU
with ansible-core 2.19, and a rollout reads every host before it plans). Reading an application root needs
only a readlink, a directory listing, the ledger and a try of the lock, so the action plugin runs one POSIX
shell command (snapshot_command) and hands what it printed to ReleaseSnapshot: the same ReleaseManager code as
the module, reading from that snapshot instead of the disk. Anything the command cannot read as the module
would (a root that is not a directory, an unreadable file, a lock file that is a symlink, no readlink or
flock on the host) makes it print "fallback", and the action plugin runs the module instead.

The output is a list of fields, each a line "<nonce> <kind>" after a newline, then the field's bytes up to
the next such line: names and contents are taken byte for byte, newlines included, and the nonce (random
per run) cannot be forged by a file's content.
"""

from __future__ import annotations

import errno
import shlex
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._io import parse_json
from ansible_collections.sre.ops.plugins.module_utils._lock import parse_holder
from ansible_collections.sre.ops.plugins.module_utils._release import LEDGER, LEFTOVER_PREFIXES, LOCK, RELEASE_ID, ReleaseManager

FORMAT = "sre.ops release snapshot 1"

# $p the root, $n the nonce. Every test mirrors what ReleaseManager does with the same path (see its methods):
# [ -d ] follows symlinks as os.listdir does; "is a release directory" is lstat's S_ISDIR ([ -d ] and not [ -L ]);
# the lock is tried on a descriptor the shell opens read-only, as the module's probe does (flock FILE would create it),
# and a descriptor it cannot open leaves rc at 2 (bash gives 1, flock's "held", for a failed redirection);
# a root that does not exist is absent only when its nearest existing ancestor is a directory we may search:
# otherwise (a directory we may not search, a file, a symlink loop or a dangling one on the way) the module fails
# to read it (or tells why), so it must be the one to say so.
_SCRIPT = r"""
LC_ALL=C; export LC_ALL
f() { printf '\n%s %s\n' "$n" "$1"; }
printf '%s\n' "$v"
command -v readlink >/dev/null 2>&1 && command -v flock >/dev/null 2>&1 || { f fallback; exit 0; }
if [ -e "$p" ]; then
  { [ -d "$p" ] && [ -r "$p" ] && [ -x "$p" ]; } || { f fallback; exit 0; }
else
  q=$p
  while [ "$q" != / ] && [ ! -e "$q" ] && [ ! -L "$q" ]; do q="${q%/*}"; q="${q:-/}"; done
  { [ -d "$q" ] && [ -x "$q" ]; } || { f fallback; exit 0; }
fi
c="$p/current"
if [ -L "$c" ]; then f current-link; readlink "$c" || { f fallback; exit 0; }
elif [ -e "$c" ]; then f current-other
fi
r="$p/releases"
if [ -d "$r" ]; then
  { [ -r "$r" ] && [ -x "$r" ]; } || { f fallback; exit 0; }
  for e in "$r"/* "$r"/.[!.]* "$r"/..?*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    if [ -d "$e" ] && [ ! -L "$e" ]; then f dir; else f other; fi
    printf '%s' "${e##*/}"
  done
fi
l="$p/ledger.json"
if [ -e "$l" ] || [ -L "$l" ]; then
  [ -r "$l" ] && [ ! -d "$l" ] || { f fallback; exit 0; }
  f ledger; cat "$l" || { f fallback; exit 0; }
fi
k="$p/.release.lock"
if [ -L "$k" ]; then f fallback; exit 0; fi
if [ -e "$k" ]; then
  rc=2; { flock -n -s 9; rc=$?; } 2>/dev/null 9<"$k"
  if [ "$rc" = 0 ]; then f lock-free
  elif [ "$rc" = 1 ]; then f lock-held; dd if="$k" bs=65536 count=1 2>/dev/null
  else f fallback; exit 0
  fi
fi
f end
"""


class Snapshot(t.NamedTuple):
    current: str | None  # the link's target; None: no current; "" with current_is_link False: not a symlink
    current_is_link: bool
    entries: list[tuple[str, bool]]  # (name, is a directory) for every entry of releases/
    ledger: bytes | None
    lock_held: bool
    holder: bytes


def snapshot_command(path: str, nonce: str) -> str:
    """The shell command that prints the snapshot of path (an absolute path) with nonce marking its fields."""
    if not RELEASE_ID.fullmatch(nonce):
        raise ValueError("the nonce must be letters and digits")
    # the file names come from _release, so this command and the module can never disagree about them
    script = _SCRIPT.replace("/ledger.json", "/" + LEDGER).replace("/.release.lock", "/" + LOCK)
    return f"p={shlex.quote(path)} n={shlex.quote(nonce)} v={shlex.quote(FORMAT)}; {script.strip()}"


def parse_snapshot(raw: bytes, nonce: str) -> Snapshot | None:
    """The snapshot the command printed, or None when the module must read the root instead (or the output is cut)."""
    head, sep, rest = raw.partition(b"\n")
    if head == FORMAT.encode() + b"\r":
        # through a terminal (ssh -tt, as ansible runs a command that may need become): it wrote every \n as \r\n
        # and changed nothing else, so this gives back every byte, a \r\n of a name or of the ledger included
        rest = rest.replace(b"\r\n", b"\n")
    elif not sep or head != FORMAT.encode():
        return None
    current: str | None = None
    current_is_link = False
    entries: list[tuple[str, bool]] = []
    ledger: bytes | None = None
    lock_held = False
    holder = b""
    ended = False
    marker = b"\n" + nonce.encode() + b" "
    fields = (b"\n" + rest).split(marker)
    if fields[0].strip():
        return None  # something printed before the first field
    for field in fields[1:]:
        kind, sep, content = field.partition(b"\n")
        if ended or not sep and kind != b"end":
            return None
        if kind in (b"current-link", b"dir", b"other"):
            try:
                name = content.decode("utf-8")
            except UnicodeDecodeError:
                return None  # the module's result cannot carry such a name either: it says so
            if kind != b"current-link":
                entries.append((name, kind == b"dir"))
            elif not name.endswith("\n"):
                return None  # readlink ends its line
            else:
                current, current_is_link = name[:-1], True
        elif kind == b"current-other":
            current, current_is_link = "", False
        elif kind == b"ledger":
            ledger = content
        elif kind == b"lock-free":
            lock_held = False
        elif kind == b"lock-held":
            lock_held, holder = True, content
        elif kind == b"end":
            ended = True
        else:
            return None  # "fallback", or a field this code does not know
    return Snapshot(current, current_is_link, entries, ledger, lock_held, holder) if ended else None


class ReleaseSnapshot(ReleaseManager):
    """ReleaseManager reading an application root from a Snapshot instead of the disk (info() only)."""

    def __init__(self, path: str, snapshot: Snapshot) -> None:
        super().__init__(path, check_mode=True)
        self.snapshot = snapshot

    def _scan_releases(self) -> set[str]:
        return {name for name, is_dir in self.snapshot.entries if is_dir and RELEASE_ID.fullmatch(name)}

    def leftovers(self) -> list[str]:
        return sorted(name for name, _is_dir in self.snapshot.entries if name.startswith(LEFTOVER_PREFIXES))

    def _readlink_current(self) -> str:
        if self.snapshot.current is None:
            raise FileNotFoundError(errno.ENOENT, "no such file", self.current_link)
        if not self.snapshot.current_is_link:
            raise OSError(errno.EINVAL, "not a symlink", self.current_link)
        return self.snapshot.current

    def _ledger_document(self) -> t.Any:
        return None if self.snapshot.ledger is None else parse_json(self.snapshot.ledger, self.ledger_path)

    def _lock_holder(self) -> dict[str, t.Any] | None:
        return (parse_holder(self.snapshot.holder) or {}) if self.snapshot.lock_held else None
