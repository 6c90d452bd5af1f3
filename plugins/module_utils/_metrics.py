# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: node_exporter textfile-collector files, written atomically.

The collector reads every *.prom file in its directory at each scrape; a file written in place could be
read half-written, so each file is written to a temporary name in the same directory and renamed.
"""

from __future__ import annotations

import math
import os
import re
import typing as t

from ansible_collections.sre.ops.plugins.module_utils._errors import InvalidInputError
from ansible_collections.sre.ops.plugins.module_utils._io import write_atomic

METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
JOB_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def check_job_name(name: str, option: str = "name") -> str:
    if not JOB_NAME.match(name or ""):
        raise InvalidInputError(f"{option} {name!r} must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    return name


def escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def format_value(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def render(families: list[tuple[str, str, str, list[tuple[dict[str, str], float]]]]) -> str:
    """Text exposition format: one HELP and TYPE line per family, then its samples."""
    lines = []
    for name, kind, help_text, samples in families:
        if not METRIC_NAME.match(name):
            raise InvalidInputError(f"invalid metric name {name!r}")
        lines.append(f"# HELP {name} {help_text.replace(chr(92), chr(92) * 2).replace(chr(10), ' ')}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            for label in labels:
                if not LABEL_NAME.match(label) or label.startswith("__"):
                    raise InvalidInputError(f"invalid label name {label!r}")
            rendered = ",".join(f'{k}="{escape_label_value(str(v))}"' for k, v in sorted(labels.items()))
            lines.append(f"{name}{{{rendered}}} {format_value(value)}" if rendered else f"{name} {format_value(value)}")
    return "\n".join(lines) + "\n"


def read_samples(path: str) -> dict[str, float]:
    """Sample values of a file written by render() (name -> value; labels ignored), or {} when unreadable."""
    values: dict[str, float] = {}
    try:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                match = _SAMPLE.match(line.strip())
                if match and not line.startswith("#"):
                    try:
                        values[match.group(1)] = float(match.group(3))
                    except ValueError:
                        continue
    except OSError:
        return {}
    return values


def write_textfile(path: str, text: str) -> None:
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        os.makedirs(directory, mode=0o755, exist_ok=True)
    write_atomic(path, text.encode("utf-8"), mode=0o644)


def metrics_path(directory: str, kind: str, name: str) -> str:
    return os.path.join(directory, f"sreops_{kind}_{name}.prom")


def gauge(name: str, help_text: str, labels: dict[str, str], value: float | None) -> list[tuple[str, str, str, list[tuple[dict[str, str], float]]]]:
    return [] if value is None else [(name, "gauge", help_text, [(labels, value)])]


def backup_families(name: str, outcome: dict[str, t.Any], previous: dict[str, float]) -> list[t.Any]:
    """The sreops_backup_* families after a run; a failed run keeps the last success figures it cannot replace."""
    labels = {"backup": name}
    ok = bool(outcome.get("success"))
    last_success = outcome.get("finished") if ok else previous.get("sreops_backup_last_success_timestamp_seconds")
    families: list[t.Any] = []
    families += gauge("sreops_backup_last_run_timestamp_seconds", "When the last backup run finished (Unix time).", labels, outcome.get("finished"))
    families += gauge("sreops_backup_last_run_success", "1 if the last backup run succeeded, else 0.", labels, 1 if ok else 0)
    families += gauge("sreops_backup_last_success_timestamp_seconds", "When the last successful backup finished (Unix time).", labels, last_success)
    keep = ("duration_seconds", "files_new", "files_changed", "files_unmodified", "added_bytes", "processed_bytes")
    helps = {
        "duration_seconds": "Wall time of the last successful backup run.",
        "files_new": "Files new in the last successful backup.",
        "files_changed": "Files changed since the parent snapshot in the last successful backup.",
        "files_unmodified": "Files unmodified in the last successful backup.",
        "added_bytes": "Bytes added to the repository by the last successful backup.",
        "processed_bytes": "Bytes read by the last successful backup.",
    }
    for key in keep:
        metric = f"sreops_backup_{key}"
        value = outcome.get(key) if ok else previous.get(metric)
        families += gauge(metric, helps[key], labels, value)
    return families


def drill_families(name: str, outcome: dict[str, t.Any], previous: dict[str, float]) -> list[t.Any]:
    labels = {"backup": name}
    ok = bool(outcome.get("success"))
    families: list[t.Any] = []
    families += gauge("sreops_restore_drill_last_run_timestamp_seconds", "When the last restore drill finished (Unix time).", labels, outcome.get("finished"))
    families += gauge("sreops_restore_drill_success", "1 if the last restore drill restored, verified and passed its probe, else 0.", labels, 1 if ok else 0)
    last_success = outcome.get("finished") if ok else previous.get("sreops_restore_drill_last_success_timestamp_seconds")
    families += gauge("sreops_restore_drill_last_success_timestamp_seconds", "When the last successful restore drill finished (Unix time).",
                      labels, last_success)
    for key, help_text in (("rto_seconds", "Measured recovery time of the last successful drill: restore, verify and probe."),
                           ("data_age_seconds", "Age of the restored snapshot when the last successful drill restored it (the RPO met)."),
                           ("restored_bytes", "Bytes restored by the last successful drill."),
                           ("restored_files", "Files restored by the last successful drill.")):
        metric = f"sreops_restore_drill_{key}"
        families += gauge(metric, help_text, labels, outcome.get(key) if ok else previous.get(metric))
    return families
