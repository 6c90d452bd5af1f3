# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Surveys from argument specs: every role of the collection, checked against AWX's survey rules, round-tripped
through the answers AWX would pass back into the role's own argument validation."""

from __future__ import annotations

import copy
import glob
import os

import pytest
import yaml
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator

from ansible_collections.sre.ops.plugins.plugin_utils import _survey

COLLECTION_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
ROLE_SPECS = sorted(glob.glob(os.path.join(COLLECTION_ROOT, "roles", "*", "meta", "argument_specs.yml")))
ENTRY_POINTS = [
    pytest.param(path, entry, id=f"{path.split(os.sep)[-3]}:{entry}")
    for path in ROLE_SPECS
    for entry in yaml.safe_load(open(path, encoding="utf-8"))["argument_specs"]
]
# What a user must answer for required options that have no default (one plausible value per type).
REQUIRED_ANSWERS = {"str": "x", "path": "/x", "int": 1, "float": 1.0, "bool": "true", "list": "[]", "dict": "{}", "raw": "x"}


def load(path):
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_every_role_has_an_argument_spec():
    roles = sorted(os.path.basename(p) for p in glob.glob(os.path.join(COLLECTION_ROOT, "roles", "*")) if not os.path.basename(p).startswith("_"))
    assert roles and [p.split(os.sep)[-3] for p in ROLE_SPECS] == roles


@pytest.mark.parametrize("path, entry_point", ENTRY_POINTS)
def test_every_option_of_every_role_becomes_a_question_awx_accepts(path, entry_point):
    specs = load(path)
    options = specs["argument_specs"][entry_point].get("options") or {}
    survey = _survey.argspec_to_survey(specs, entry_point=entry_point, prefix=path.split(os.sep)[-3] + "_")
    assert _survey.validate_survey_spec(survey) == []
    asked = {q["variable"].removesuffix(_survey.YAML_SUFFIX) for q in survey["spec"]}
    assert asked == set(options) and len(survey["spec"]) == len(options)
    for question in survey["spec"]:
        option = options[question["variable"].removesuffix(_survey.YAML_SUFFIX)]
        assert question["required"] is bool(option.get("required", False))
        if option.get("choices") and option.get("type", "str") in ("str", "path"):
            assert question["type"] == "multiplechoice" and question["choices"] == [str(c) for c in option["choices"]]


@pytest.mark.parametrize("path, entry_point", ENTRY_POINTS)
def test_the_answers_awx_passes_back_pass_the_roles_own_validation_with_the_same_values(path, entry_point):
    specs = load(path)
    options = copy.deepcopy(specs["argument_specs"][entry_point].get("options") or {})
    survey = _survey.argspec_to_survey(specs, entry_point=entry_point)
    answers = _survey.default_answers(survey)
    for question in survey["spec"]:
        if question["required"] and "default" not in question:
            kind = options[question["variable"].removesuffix(_survey.YAML_SUFFIX)].get("type", "str")
            answers[question["variable"]] = REQUIRED_ANSWERS[kind]
    role_vars = _survey.answers_to_vars(answers, loads=yaml.safe_load)
    result = ArgumentSpecValidator(options).validate(role_vars)
    assert result.error_messages == []
    for option, spec in options.items():
        if option in role_vars and "default" in spec and not spec.get("required"):
            assert role_vars[option] == spec["default"], f"{option}: the survey's default must be the role's default, typed"
            assert type(role_vars[option]) is type(spec["default"]) or isinstance(spec["default"], (int, float)), option


SPEC = {"argument_specs": {"main": {"short_description": "Do C(it)", "options": {
    "mode": {"type": "str", "choices": ["a", "b"], "default": "a", "description": "Pick O(mode=a) or V(b)."},
    "count": {"type": "int", "default": 3, "description": ["How many.", "See M(sre.ops.release)."]},
    "ratio": {"type": "float", "default": 0.5},
    "enabled": {"type": "bool", "default": False},
    "steps": {"type": "list", "elements": "dict", "default": [{"pause": 2}]},
    "names": {"type": "list", "elements": "str", "choices": ["x", "y"], "default": ["y"]},
    "token": {"type": "str", "no_log": True, "default": "s3cret"},
    "host": {"type": "str", "default": "{{ groups['lb'][0] }}"},
    "artifact": {"type": "path", "required": True},
}}}}


def test_question_types_defaults_and_plain_descriptions():
    survey = _survey.argspec_to_survey(SPEC, name="deploy")
    by_var = {q["variable"]: q for q in survey["spec"]}
    assert survey["name"] == "deploy" and survey["description"] == "Do it"
    assert by_var["mode"] == {"question_name": "Mode", "question_description": "Pick mode or b.", "variable": "mode", "required": False,
                              "type": "multiplechoice", "choices": ["a", "b"], "default": "a"}
    assert by_var["count"]["type"] == "integer" and by_var["count"]["default"] == 3
    assert by_var["count"]["question_description"] == "How many. See sre.ops.release."
    assert by_var["ratio"]["type"] == "float" and by_var["ratio"]["default"] == 0.5
    assert by_var["enabled_yaml"]["type"] == "multiplechoice" and by_var["enabled_yaml"]["choices"] == ["true", "false"]
    assert by_var["enabled_yaml"]["default"] == "false"
    assert by_var["steps_yaml"]["type"] == "textarea" and yaml.safe_load(by_var["steps_yaml"]["default"]) == [{"pause": 2}]
    assert by_var["names"]["type"] == "multiselect" and by_var["names"]["default"] == "y"
    assert by_var["token"]["type"] == "password" and "default" not in by_var["token"], "a secret's default never goes into a survey"
    assert "default" not in by_var["host"], "a Jinja default must be left to the role"
    assert by_var["artifact"]["required"] is True and by_var["artifact"]["type"] == "text"


def test_prefix_shortens_labels_only_and_exclude_drops_options():
    survey = _survey.argspec_to_survey(SPEC, prefix="co", exclude=["token", "host"])
    assert [q["variable"] for q in survey["spec"]][:2] == ["mode", "count"]
    assert survey["spec"][1]["question_name"] == "Unt"
    assert "token" not in {q["variable"] for q in survey["spec"]}


@pytest.mark.parametrize("kwargs, message", [
    ({"entry_point": "nope"}, "no entry point 'nope'"),
    ({"exclude": ["missing"]}, "exclude names options the entry point does not have: missing"),
])
def test_bad_requests_are_named(kwargs, message):
    with pytest.raises(_survey.SurveyError, match=message):
        _survey.argspec_to_survey(SPEC, **kwargs)


def test_an_option_type_no_question_carries_is_refused():
    with pytest.raises(_survey.SurveyError, match="option 'blob' has type 'bits'"):
        _survey.argspec_to_survey({"options": {"blob": {"type": "bits"}}})


GOOD = {"type": "text", "question_name": "Q", "variable": "v", "required": False}


@pytest.mark.parametrize("question, error", [
    ({**GOOD, "type": "list"}, "type 'list' is not one of"),
    ({**GOOD, "required": "yes"}, "'required' missing or not a bool"),
    ({k: v for k, v in GOOD.items() if k != "variable"}, "'variable' missing"),
    ({**GOOD, "variable": "bad-name"}, "not a valid Ansible variable name"),
    ({**GOOD, "type": "integer", "default": "3"}, "default '3' is not of the type a integer question takes"),
    ({**GOOD, "type": "integer", "default": True}, "is not of the type"),
    ({**GOOD, "type": "multiplechoice"}, "needs choices"),
    ({**GOOD, "type": "multiplechoice", "choices": ["a"], "default": "b"}, "not among the choices"),
    ({**GOOD, "type": "multiplechoice", "choices": ["a", "b"], "default": "a\nb"}, "takes one default"),
    ({**GOOD, "default": "x" * 20, "max": 10}, "outside min"),
    ({**GOOD, "min": "1"}, "min must be an integer"),
    ({**GOOD, "type": "float", "default": 9.5, "max": 5}, "outside min"),
])
def test_the_validator_refuses_what_awx_refuses(question, error):
    errors = _survey.validate_survey_spec({"name": "", "description": "", "spec": [question]})
    assert any(error in e for e in errors), errors


def test_the_validator_refuses_duplicate_variables_and_empty_specs():
    assert "question 1: variable 'v' asked twice" in _survey.validate_survey_spec({"name": "", "description": "", "spec": [GOOD, GOOD]})
    assert _survey.validate_survey_spec({"name": "", "description": "", "spec": []}) == ["'spec' has no questions"]
    assert _survey.validate_survey_spec({"name": 1, "description": "", "spec": [GOOD]}) == ["'name' must be a str"]
    assert _survey.validate_survey_spec({"name": "", "description": "", "spec": [GOOD]}) == []
