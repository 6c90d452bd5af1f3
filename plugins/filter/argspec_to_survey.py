# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import annotations

DOCUMENTATION = r"""
name: argspec_to_survey
short_description: An AWX / Automation Controller survey spec from a role's argument spec
version_added: 0.1.0
description:
  - Turns the options of one entry point of a role's C(meta/argument_specs.yml) into a survey spec that
    M(awx.awx.job_template) accepts as O(awx.awx.job_template#module:survey_spec), with a question per option that carries
    its type, choices, default, whether it is required, and its description as plain text.
  - Options of type C(str) and C(path) become C(text) questions (C(multiplechoice) with choices, C(password) when
    C(no_log)); C(int) and C(float) become C(integer) and C(float) questions. The answer arrives under the option's
    own name.
  - A survey answer cannot be a boolean, a list or a dict. Options of those types become a question named
    C(<option>_yaml) whose answer is YAML (C(multiplechoice) V(true)/V(false) for booleans, C(textarea) otherwise);
    the job template's playbook turns each into its option with one C(set_fact), see C(docs/awx.md).
  - Defaults that are Jinja expressions are left out, so the role's own default applies unless someone answers.
  - Fails when the result would be refused by AWX (the rules of its survey_spec endpoint), naming the question.
positional: _input
options:
  _input:
    description: The content of C(meta/argument_specs.yml) (a dict with C(argument_specs)), or one entry point's spec.
    type: dict
    required: true
  entry_point:
    description: The entry point whose options are asked.
    type: str
    default: main
  name:
    description: The survey's name. Defaults to the entry point's name.
    type: str
    default: ""
  description:
    description: The survey's description. Defaults to the entry point's C(short_description).
    type: str
    default: ""
  exclude:
    description: Options not to ask (for example those the job template sets in its extra vars).
    type: list
    elements: str
    default: []
  prefix:
    description: Left out of each question's label (for example V(deploy_)); the variable keeps its full name.
    type: str
    default: ""
seealso:
  - module: awx.awx.job_template
"""

EXAMPLES = r"""
---
- name: A job template whose survey asks for every option of the deploy role
  awx.awx.job_template:
    name: deploy
    project: sre
    playbook: deploy.yml
    inventory: production
    survey_enabled: true
    survey_spec: >-
      {{ lookup('ansible.builtin.file', 'ansible_collections/sre/ops/roles/deploy/meta/argument_specs.yml')
         | ansible.builtin.from_yaml
         | sre.ops.argspec_to_survey(name='deploy', prefix='deploy_', exclude=['deploy_artifact']) }}

- name: Turn the survey's YAML answers (<option>_yaml) into the role's options, before the role runs
  ansible.builtin.set_fact:
    "{{ item | regex_replace('_yaml$', '') }}": "{{ lookup('ansible.builtin.vars', item) | ansible.builtin.from_yaml }}"
  loop: "{{ query('ansible.builtin.varnames', '^deploy_.+_yaml$') }}"
"""

RETURN = r"""
_value:
  description: The survey spec.
  type: dict
  contains:
    name:
      description: The survey's name.
      type: str
    description:
      description: The survey's description.
      type: str
    spec:
      description: One question per option (type, question_name, question_description, variable, required, default, choices, min, max).
      type: list
      elements: dict
"""

import typing as t

from ansible.errors import AnsibleFilterError

from ansible_collections.sre.ops.plugins.plugin_utils._survey import SurveyError, argspec_to_survey


def _argspec_to_survey(argument_specs: t.Any, entry_point: str = "main", name: str = "", description: str = "",
                       exclude: t.Sequence[str] = (), prefix: str = "") -> dict[str, t.Any]:
    try:
        return argspec_to_survey(argument_specs, entry_point=entry_point, name=name, description=description, exclude=exclude, prefix=prefix)
    except SurveyError as exc:
        raise AnsibleFilterError(f"sre.ops.argspec_to_survey: {exc}") from exc


class FilterModule:
    def filters(self) -> dict[str, t.Callable[..., t.Any]]:
        return {"argspec_to_survey": _argspec_to_survey}
