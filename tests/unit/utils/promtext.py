# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""A strict reader of the Prometheus text exposition format, as node_exporter's textfile collector accepts it.

Stricter than the collector where the format allows choices: every family needs HELP and TYPE before its
samples, samples of a family are contiguous, no series twice, no timestamps (the textfile collector
rejects them), valid names and escapes, a final newline.
"""

from __future__ import annotations

import math
import re

NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"')
TYPES = ("counter", "gauge", "histogram", "summary", "untyped")


class FormatError(ValueError):
    pass


def _value(text: str, line: int) -> float:
    if text in ("NaN", "+Inf", "-Inf"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?", text):
        raise FormatError(f"line {line}: {text!r} is not a sample value")
    return float(text)


def parse(text: str) -> dict[str, dict]:
    """{family: {"type", "help", "samples": {labels-tuple: value}}}; raises FormatError on anything invalid."""
    if text and not text.endswith("\n"):
        raise FormatError("the file must end with a newline")
    families: dict[str, dict] = {}
    closed: set[str] = set()
    current = None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if line.startswith("#"):
            parts = line.split(None, 3)
            if len(parts) >= 3 and parts[1] in ("HELP", "TYPE"):
                name = parts[2]
                if not NAME.fullmatch(name):
                    raise FormatError(f"line {number}: invalid metric name {name!r}")
                family = families.setdefault(name, {"type": None, "help": None, "samples": {}})
                key = parts[1].lower()
                if family[key] is not None:
                    raise FormatError(f"line {number}: second {parts[1]} for {name}")
                if family["samples"]:
                    raise FormatError(f"line {number}: {parts[1]} for {name} after its samples")
                value = parts[3] if len(parts) > 3 else ""
                if key == "type" and value not in TYPES:
                    raise FormatError(f"line {number}: unknown type {value!r}")
                family[key] = value
            continue
        match = re.fullmatch(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? ([^ ]+)( [^ ]+)?", line)
        if not match:
            raise FormatError(f"line {number}: not a sample: {line!r}")
        name, _braces, labels_text, value_text, timestamp = match.groups()
        if timestamp:
            raise FormatError(f"line {number}: timestamps are not allowed in textfile collector files")
        family = families.get(name)
        if family is None or family["type"] is None or family["help"] is None:
            raise FormatError(f"line {number}: sample of {name} without HELP and TYPE before it")
        if name in closed:
            raise FormatError(f"line {number}: samples of {name} are not together")
        if current not in (None, name):
            closed.add(current)
        current = name
        labels = []
        if labels_text:
            rest = labels_text
            while rest:
                label = LABEL.match(rest)
                if not label:
                    raise FormatError(f"line {number}: bad label syntax in {labels_text!r}")
                labels.append((label.group(1), label.group(2)))
                rest = rest[label.end():]
                if rest.startswith(","):
                    rest = rest[1:]
                elif rest:
                    raise FormatError(f"line {number}: bad label syntax in {labels_text!r}")
            names = [label_name for label_name, _value in labels]
            if len(set(names)) != len(names) or any(n.startswith("__") for n in names):
                raise FormatError(f"line {number}: duplicate or reserved label name")
        key = tuple(sorted(labels))
        if key in family["samples"]:
            raise FormatError(f"line {number}: series {name}{dict(key)} appears twice")
        value = _value(value_text, number)
        if family["type"] == "counter" and (value < 0 or math.isnan(value)):
            raise FormatError(f"line {number}: counter {name} must not be negative")
        family["samples"][key] = value
    return families
