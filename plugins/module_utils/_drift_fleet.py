# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: compare hosts with a golden host or with the majority of their group, moving little data.

Every facet is a two-level tree: a file root's nodes are its directories, any other facet's nodes are 64
buckets of its items (by a hash of the key). Three rounds, each one task over the hosts that have something
to send:

1. summary - every host sends per-facet digests and, per file root, the Merkle digest of the tree (~1 KB).
   Hosts equal to the reference on every digest are done.
2. nodes - for each facet or root that differs, one host per distinct digest sends its node digests
   (bucket digests, or directory digests; never items or file lists).
3. leaves - for each node whose digest is not the same everywhere, one host per distinct node digest sends
   that node's content (the bucket's items, the directory's entries).

Hosts with equal digests hold equal content, so each distinct content crosses the network once, whatever the
number of hosts holding it; the majority is counted over hosts, not over what was sent. Only portable
attributes take part (type, mode, owner, size, link target, sha256): inode numbers and times differ between
hosts by nature.
"""

from __future__ import annotations

import fnmatch
import json
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError
from ansible_collections.sre.ops.plugins.module_utils._snapshot import bucket_of

AGAINST = ("majority", "golden")
TYPE_NAMES = {"f": "file", "d": "directory", "l": "symlink", "p": "fifo", "s": "socket", "c": "char device", "b": "block device"}


def _canonical(value: t.Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


class FleetInput:
    """The hosts, their groups, and what they sent in each round (hosts that sent nothing are absent)."""

    def __init__(self, groups: dict[str, list[str]], summaries: dict[str, dict[str, t.Any]], against: str = "majority",
                 golden: str | None = None, details: dict[str, dict[str, t.Any]] | None = None,
                 entries: dict[str, dict[str, t.Any]] | None = None, ignore: list[dict[str, str]] | None = None) -> None:
        if against not in AGAINST:
            raise InvalidInputError(f"against must be one of {', '.join(AGAINST)}, got {against!r}")
        if against == "golden":
            if not golden:
                raise InvalidInputError("against is golden but no golden host is named")
            if golden not in summaries:
                raise InvalidInputError(f"the golden host {golden} has no snapshot summary (is it in the play, and did its snapshot succeed?)")
        self.against = against
        self.golden = golden
        self.summaries = summaries
        self.groups = {name: sorted(h for h in hosts if h in summaries) for name, hosts in groups.items()}
        if against == "golden":
            self.groups = {name: sorted(set(hosts) | {t.cast(str, golden)}) for name, hosts in self.groups.items()}
        self.details = details or {}
        self.entries = entries or {}
        self.ignore = []
        for index, rule in enumerate(ignore or []):
            if not isinstance(rule, dict) or set(rule) - {"facet", "key"} or not rule:
                raise InvalidInputError(f"ignore[{index}] must be a mapping with facet and/or key (globs), got {rule!r}")
            self.ignore.append((str(rule.get("facet", "*")), str(rule.get("key", "*"))))
        self._cache: dict[tuple[t.Any, ...], t.Any] = {}

    # ----- who holds what --------------------------------------------------------------------------------
    def representative(self, hosts: t.Iterable[str]) -> str:
        """The host that sends content several hosts share: the golden host if it is one of them, else the first by name."""
        hosts = list(hosts)
        if self.golden in hosts:
            return t.cast(str, self.golden)
        return sorted(hosts)[0]

    def ignored(self, facet: str, key: str) -> bool:
        return any(fnmatch.fnmatchcase(facet, f) and fnmatch.fnmatchcase(key, k) for f, k in self.ignore)

    def digest(self, host: str, tree: tuple[str, str]) -> str | None:
        """The top digest of a tree ("facet", name) or ("root", path) on host."""
        summary = self.summaries.get(host) or {}
        if tree[0] == "facet":
            return ((summary.get("facets") or {}).get(tree[1]) or {}).get("digest")
        return (summary.get("roots") or {}).get(tree[1])

    def trees(self, hosts: list[str]) -> list[tuple[str, str]]:
        facets: set[str] = set()
        roots: set[str] = set()
        for host in hosts:
            facets.update(k for k in (self.summaries[host].get("facets") or {}) if k != "files")
            roots.update((self.summaries[host].get("roots") or {}).keys())
        return [("facet", f) for f in sorted(facets)] + [("root", r) for r in sorted(roots)]

    def differs(self, hosts: list[str], tree: tuple[str, str]) -> bool:
        return len({self.digest(h, tree) for h in hosts}) > 1

    def _index(self, hosts: list[str], tree: tuple[str, str]) -> tuple[dict[str, str], dict[str, t.Any], dict[str, dict[str, str]]]:
        """For one group and tree: top digest -> sender; top digest -> the node map it sent; node -> node digest -> sender."""
        key = (tuple(hosts), tree)
        if key not in self._cache:
            holders: dict[str, list[str]] = {}
            for host in hosts:
                top = self.digest(host, tree)
                if top is not None:
                    holders.setdefault(top, []).append(host)
            senders = {top: self.representative(group) for top, group in holders.items()}
            field = "buckets" if tree[0] == "facet" else "trees"
            nodes = {}
            for top, sender in senders.items():
                sent = ((self.details.get(sender) or {}).get(field) or {}).get(tree[1])
                nodes[top] = (sent or {}) if tree[0] == "facet" else ((sent or {}).get("dirs") or {})
            by_node: dict[str, dict[str, str]] = {}
            for top, sender in sorted(senders.items(), key=lambda item: (item[1] != self.golden, item[1])):
                for node, node_digest in nodes[top].items():
                    by_node.setdefault(node, {}).setdefault(node_digest, sender)
            self._cache[key] = (senders, nodes, by_node)
        return self._cache[key]

    def node_digests(self, hosts: list[str], tree: tuple[str, str]) -> dict[str, dict[str, str | None]]:
        """node -> host -> node digest (None where the host has no such node)."""
        _senders, nodes, by_node = self._index(hosts, tree)
        per_host = {h: nodes.get(t.cast(str, self.digest(h, tree))) or {} for h in hosts if self.digest(h, tree) is not None}
        return {node: {h: per_host[h].get(node) for h in per_host} for node in sorted(by_node)}

    def node_sender(self, hosts: list[str], tree: tuple[str, str], node: str, node_digest: str) -> str:
        return self._index(hosts, tree)[2][node][node_digest]

    def root_entry(self, host: str, hosts: list[str], root: str) -> tuple[list[str], list[t.Any] | None]:
        senders = self._index(hosts, ("root", root))[0]
        top = self.digest(host, ("root", root))
        sent = ((self.details.get(senders[top]) or {}).get("trees") or {}).get(root) if top in senders else None
        return (sent or {}).get("attributes") or [], (sent or {}).get("entry")

    def reference(self, values: dict[str, t.Any]) -> tuple[bool, t.Any]:
        """(found, value): the golden host's value, or the value more than half of the hosts hold."""
        if self.against == "golden":
            return True, values.get(t.cast(str, self.golden))
        tally: dict[str, list[str]] = {}
        for host, value in values.items():
            tally.setdefault(_canonical(value), []).append(host)
        best = max(tally.values(), key=len)
        if len(best) * 2 > len(values):
            return True, values[best[0]]
        return False, None


def _add(requests: dict[str, dict[str, t.Any]], host: str, kind: str, name: str, node: str | None = None) -> None:
    wanted = requests.setdefault(host, {"facet_buckets": set(), "roots": set(), "buckets": {}, "dirs": set()})
    if kind == "buckets":
        wanted["buckets"].setdefault(name, set()).add(t.cast(str, node))
    else:
        wanted[kind].add(name)


def _finish(requests: dict[str, dict[str, t.Any]]) -> dict[str, dict[str, t.Any]]:
    out = {}
    for host, wanted in sorted(requests.items()):
        out[host] = {
            "facet_buckets": sorted(wanted["facet_buckets"]),
            "roots": sorted(wanted["roots"]),
            "buckets": {facet: sorted(nodes) for facet, nodes in sorted(wanted["buckets"].items())},
            "dirs": sorted(wanted["dirs"]),
        }
    return out


def plan_details(data: FleetInput) -> dict[str, dict[str, t.Any]]:
    """Round 2: for every facet or file root that differs, one host per distinct digest sends its node digests."""
    requests: dict[str, dict[str, t.Any]] = {}
    for hosts in data.groups.values():
        for tree in data.trees(hosts):
            if not data.differs(hosts, tree):
                continue
            for sender in data._index(hosts, tree)[0].values():  # pylint: disable=protected-access
                _add(requests, sender, "facet_buckets" if tree[0] == "facet" else "roots", tree[1])
    return _finish(requests)


def plan_entries(data: FleetInput) -> dict[str, dict[str, t.Any]]:
    """Round 3: for every node whose digest is not the same on all hosts, one host per distinct node digest sends it."""
    requests: dict[str, dict[str, t.Any]] = {}
    for hosts in data.groups.values():
        for tree in data.trees(hosts):
            if not data.differs(hosts, tree):
                continue
            for node, digests in data.node_digests(hosts, tree).items():
                if len(set(digests.values())) <= 1:
                    continue
                for node_digest in {d for d in digests.values() if d is not None}:
                    sender = data.node_sender(hosts, tree, node, node_digest)
                    if tree[0] == "facet":
                        _add(requests, sender, "buckets", tree[1], node)
                    else:
                        _add(requests, sender, "dirs", node)
    return _finish(requests)


def _file_value(attributes: list[str], values: list[t.Any] | None) -> dict[str, t.Any] | None:
    if values is None:
        return None
    out = {}
    for attr, value in zip(attributes, values):
        if value is None:
            continue
        if attr == "mode":
            value = f"{value:04o}"
        elif attr == "type":
            value = TYPE_NAMES.get(value, value)
        out[attr] = value
    return out


def _difference(key: str, reference: dict[str, t.Any] | None, value: dict[str, t.Any] | None) -> tuple[str, dict[str, t.Any]]:
    if reference is None:
        return "added", {"key": key, "attributes": value}
    if value is None:
        return "removed", {"key": key, "attributes": reference}
    changes = {f: {"before": reference.get(f), "after": value.get(f)} for f in sorted(set(reference) | set(value)) if reference.get(f) != value.get(f)}
    return "changed", {"key": key, "changes": changes}


class _Votes:
    """Each host's differences from the reference, and the keys without a majority."""

    def __init__(self, data: FleetInput, hosts: t.Iterable[str]) -> None:
        self.data = data
        self.per_host: dict[str, dict[str, dict[str, list[t.Any]]]] = {h: {} for h in hosts}
        self.undecided: list[dict[str, t.Any]] = []
        self.seen: set[tuple[str, str, str]] = set()

    def vote(self, group: str, facet: str, key: str, values: dict[str, t.Any]) -> None:
        if self.data.ignored(facet, key):
            return
        found, reference = self.data.reference(values)
        if not found:
            tally: dict[str, dict[str, t.Any]] = {}
            for host, value in sorted(values.items()):
                tally.setdefault(_canonical(value), {"value": value, "hosts": []})["hosts"].append(host)
            self.undecided.append({"group": group, "facet": facet, "key": key, "values": sorted(tally.values(), key=lambda v: -len(v["hosts"]))})
            return
        for host, value in values.items():
            if value != reference and (host, facet, key) not in self.seen:
                self.seen.add((host, facet, key))
                change, item = _difference(key, reference, value)
                self.per_host[host].setdefault(facet, {"added": [], "removed": [], "changed": []})[change].append(item)


def compare_fleet(data: FleetInput, max_items: int = 200) -> dict[str, t.Any]:
    """Each host's differences from the reference, per facet; keys where no value has a majority are undecided."""
    votes = _Votes(data, (h for hosts in data.groups.values() for h in hosts))
    for group, hosts in data.groups.items():
        for tree in data.trees(hosts):
            if not data.differs(hosts, tree):
                continue
            kind, name = tree
            if kind == "root":
                attributes = next((a for a in (data.root_entry(h, hosts, name)[0] for h in hosts) if a), [])
                votes.vote(group, "files", name, {h: _file_value(attributes, data.root_entry(h, hosts, name)[1]) for h in hosts})
            for node, digests in data.node_digests(hosts, tree).items():
                if len(set(digests.values())) <= 1:
                    continue
                contents: dict[str, dict[str, t.Any]] = {}
                for host in hosts:
                    node_digest = digests.get(host)
                    if node_digest is None:
                        if kind == "facet" and host in digests:
                            contents[host] = {}  # an empty bucket: none of its keys
                        continue  # a missing directory: its parent's listing says so
                    sender = data.node_sender(hosts, tree, node, node_digest)
                    if kind == "facet":
                        found = (((data.entries.get(sender) or {}).get("bucket_items") or {}).get(name) or {})
                        contents[host] = {k: v for k, v in found.items() if bucket_of(k) == node}
                    else:
                        rows = ((data.entries.get(sender) or {}).get("entries") or {}).get(node)
                        if rows is not None:
                            attributes = next((a for a in (data.root_entry(h, hosts, name)[0] for h in hosts) if a), [])
                            contents[host] = {row[0]: _file_value(attributes, row[1:]) for row in rows}
                if data.against == "golden" and data.golden not in contents:
                    continue
                keys: set[str] = set()
                for content in contents.values():
                    keys.update(content)
                prefix = node.rstrip("/") + "/"
                for key in sorted(keys):
                    if kind == "facet":
                        votes.vote(group, name, key, {h: c.get(key) for h, c in contents.items()})
                    else:
                        votes.vote(group, "files", prefix + key, {h: c.get(key) for h, c in contents.items()})
    hosts_out = {}
    for host, facets in sorted(votes.per_host.items()):
        total = sum(len(items) for kinds in facets.values() for items in kinds.values())
        shown = {}
        for facet, kinds in facets.items():
            shown[facet] = {change: items[:max_items] for change, items in kinds.items()}
            shown[facet]["counts"] = {change: len(items) for change, items in kinds.items()}
        hosts_out[host] = {"count": total, "facets": shown}
    outliers = sorted((h for h, v in hosts_out.items() if v["count"]), key=lambda h: (-hosts_out[h]["count"], h))
    return {
        "against": data.against,
        "golden": data.golden,
        "groups": dict(data.groups),
        "hosts": hosts_out,
        "outliers": outliers,
        "undecided": votes.undecided[:max_items],
        "undecided_count": len(votes.undecided),
    }
