# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.sre.ops.plugins.filter.argspec_to_survey import FilterModule


def test_the_filter_returns_the_survey_and_turns_errors_into_filter_errors():
    to_survey = FilterModule().filters()["argspec_to_survey"]
    survey = to_survey({"options": {"count": {"type": "int", "default": 2}}}, name="n")
    assert survey == {"name": "n", "description": "", "spec": [
        {"question_name": "Count", "question_description": "", "variable": "count", "required": False, "type": "integer", "default": 2}]}
    with pytest.raises(AnsibleFilterError, match="sre.ops.argspec_to_survey: no entry point 'other'"):
        to_survey({"argument_specs": {"main": {}}}, entry_point="other")
