# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import yaml

from ansible_collections.sre.ops.plugins.modules import haproxy_info

from ...utils.haproxy import running_haproxy
from ._run import run_main


def test_unreachable_socket_fails_clearly_even_in_check_mode(capsys):
    code, result = run_main(haproxy_info, {"socket": "/run/nowhere.sock", "_ansible_check_mode": True}, capsys)
    assert code == 1 and result["msg"] == "cannot reach the HAProxy runtime API at /run/nowhere.sock to send 'show stat': No such file or directory"


def undocumented(value, documented, where):
    """The keys of a returned dict that RETURN does not describe (dicts keyed by backend, frontend or server
    name are described by what each of their values contains)."""
    missing = []
    for key, item in value.items():
        if key not in documented:
            missing.append(f"{where}.{key}")
        elif isinstance(item, dict) and "contains" in documented[key]:
            contains = documented[key]["contains"]
            named = all(isinstance(v, dict) for v in item.values()) and not set(item) & set(contains)
            for name, entry in item.items() if named else [("", item)]:
                missing += undocumented(entry, contains, f"{where}.{key}" + (f"[{name}]" if name else ""))
    return missing


def test_every_returned_field_is_documented(capsys, tmp_path):
    """What a real HAProxy gives haproxy_info, every field of it, is in the module's RETURN documentation."""
    documented = yaml.safe_load(haproxy_info.RETURN)
    with running_haproxy(str(tmp_path)) as lb:
        code, result = run_main(haproxy_info, {"socket": lb["socket"], "maps": [lb["map"]]}, capsys)
    assert code == 0, result
    assert result["backends"]["be_app"]["servers"]["web1"]["name"] == "web1" and result["frontends"] and result["maps"]
    # ansible's own result keys; warnings/deprecations may also carry over from other tests in this process
    result = {k: v for k, v in result.items() if k not in ("changed", "invocation", "warnings", "deprecations")}
    assert undocumented(result, documented, "result") == []
    assert set(result["servers"][0]) == set(documented["backends"]["contains"]["servers"]["contains"]), "servers has the fields of backends"
