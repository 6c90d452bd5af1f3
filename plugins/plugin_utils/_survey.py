# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

"""Private to sre.ops: AWX / Automation Controller survey specs from a role's argument spec.

A survey answer reaches the playbook as an extra var of the question's type: text, integer or float. Options
of those types map to a question of the same name. Options a survey cannot type (bool, list, dict, raw) map
to a question named ``<option>_yaml`` whose answer is YAML; one ``set_fact`` turns it into the option
(docs/awx.md), because an extra var of the option's own name could not be replaced by its decoded value.
"""

from __future__ import annotations

import json
import re
import typing as t

YAML_SUFFIX = "_yaml"
# The question types AWX accepts, with the Python types their defaults must have (awx.api.views).
QUESTION_TYPES: dict[str, tuple[type, ...]] = {
    "text": (str,),
    "textarea": (str,),
    "password": (str,),
    "multiplechoice": (str,),
    "multiselect": (str,),
    "integer": (int,),
    "float": (float, int),
}
TEXT_MAX = 1024
TEXTAREA_MAX = 4096
_MARKUP = re.compile(r"\b([CIBVOMPRU]|RV|E|HORIZONTALLINE)\(([^()]*)\)")
_LINK = re.compile(r"\bL\(([^,()]*),[^()]*\)")


class SurveyError(Exception):
    """The argument spec cannot become a survey; the message names the option."""


def plain_text(description: t.Any) -> str:
    """A documentation description (string or list of paragraphs) as plain text without Ansible markup."""
    paragraphs = description if isinstance(description, list) else [description or ""]
    text = " ".join(str(p).strip() for p in paragraphs if str(p).strip())
    text = _LINK.sub(r"\1", text)
    return _MARKUP.sub(lambda m: m.group(2).split("=")[0] if m.group(1) == "O" else m.group(2), text)


def question_name(option: str, prefix: str) -> str:
    label = option[len(prefix):] if prefix and option.startswith(prefix) and option != prefix else option
    label = label.replace("_", " ").strip()
    return label[:1].upper() + label[1:]


def _is_template(value: t.Any) -> bool:
    return isinstance(value, str) and ("{{" in value or "{%" in value)


def _yaml_text(value: t.Any) -> str:
    # JSON is YAML: one line, no YAML library needed, and what a user types back parses the same way.
    return json.dumps(value, sort_keys=True)


def option_question(option: str, spec: dict[str, t.Any], prefix: str = "") -> dict[str, t.Any]:
    """The survey question for one argument-spec option."""
    kind = spec.get("type", "str")
    choices = spec.get("choices")
    default = spec.get("default")
    question: dict[str, t.Any] = {
        "question_name": question_name(option, prefix),
        "question_description": plain_text(spec.get("description", "")),
        "variable": option,
        "required": bool(spec.get("required", False)),
    }
    decoded = False  # the answer is YAML in <option>_yaml
    if spec.get("no_log"):
        question.update(type="password", min=0, max=TEXT_MAX)
    elif kind in ("str", "path") and choices:
        question.update(type="multiplechoice", choices=[str(c) for c in choices])
    elif kind in ("str", "path"):
        question.update(type="text", min=0, max=TEXT_MAX)
    elif kind == "int" and not choices:
        question.update(type="integer")
    elif kind == "float" and not choices:
        question.update(type="float")
    elif kind == "list" and spec.get("elements", "str") == "str" and choices:
        # multiselect answers arrive as a list of strings: already the option's type
        question.update(type="multiselect", choices=[str(c) for c in choices])
    elif kind == "bool" or (kind in ("int", "float") and choices):
        decoded = True
        question.update(type="multiplechoice", choices=[_yaml_text(c) for c in (choices or [True, False])])
    elif kind in ("list", "dict", "raw", "jsonarg", "json"):
        decoded = True
        question.update(type="textarea", min=0, max=TEXTAREA_MAX)
        question["question_description"] = (question["question_description"] + " (YAML or JSON)").strip()
    else:
        raise SurveyError(f"option {option!r} has type {kind!r}, which no survey question can carry")
    if decoded:
        question["variable"] = option + YAML_SUFFIX

    if default is None or any(_is_template(v) for v in _leaves(default)) or question["type"] == "password":
        # no default: AWX then passes the variable only when someone answers, and the role's own default applies;
        # a secret's default never goes into a survey
        return question
    if decoded:
        question["default"] = _yaml_text(default)
    elif question["type"] == "multiselect":
        question["default"] = "\n".join(str(v) for v in default)
    elif question["type"] in ("integer", "float"):
        question["default"] = default
    else:
        question["default"] = str(default)
    return question


def _leaves(value: t.Any) -> t.Iterator[t.Any]:
    if isinstance(value, dict):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield value


def entry_point_options(argument_specs: dict[str, t.Any], entry_point: str = "main") -> tuple[dict[str, t.Any], str]:
    """The options of an entry point, from a whole meta/argument_specs.yml or one entry point's spec."""
    if "argument_specs" in argument_specs:
        argument_specs = argument_specs["argument_specs"]
    if "options" in argument_specs and isinstance(argument_specs["options"], dict):
        return argument_specs["options"], plain_text(argument_specs.get("short_description", ""))
    if entry_point not in argument_specs:
        raise SurveyError(f"no entry point {entry_point!r} in the argument spec (it has: {', '.join(sorted(argument_specs)) or 'none'})")
    spec = argument_specs[entry_point] or {}
    return spec.get("options") or {}, plain_text(spec.get("short_description", ""))


def argspec_to_survey(
    argument_specs: dict[str, t.Any],
    entry_point: str = "main",
    name: str = "",
    description: str = "",
    exclude: t.Sequence[str] = (),
    prefix: str = "",
) -> dict[str, t.Any]:
    """An AWX survey spec (name, description, spec) asking for every option of ``entry_point``."""
    if not isinstance(argument_specs, dict):
        raise SurveyError(f"expected the argument spec as a dict, got {type(argument_specs).__name__}")
    options, short_description = entry_point_options(argument_specs, entry_point)
    unknown = sorted(set(exclude) - set(options))
    if unknown:
        raise SurveyError(f"exclude names options the entry point does not have: {', '.join(unknown)}")
    questions = [option_question(option, spec or {}, prefix) for option, spec in options.items() if option not in exclude]
    survey = {"name": name or entry_point, "description": description or short_description, "spec": questions}
    errors = validate_survey_spec(survey)
    if errors:
        raise SurveyError("the survey would be refused: " + "; ".join(errors))
    return survey


def validate_survey_spec(survey: t.Any) -> list[str]:
    """What AWX's survey_spec endpoint would refuse, plus defaults its launch check would refuse."""
    if not isinstance(survey, dict):
        return ["the survey spec must be a dict"]
    errors = [f"{field!r} must be a {kind.__name__}" for field, kind in (("name", str), ("description", str), ("spec", list))
              if not isinstance(survey.get(field), kind)]
    if errors:
        return errors
    if not survey["spec"]:
        return ["'spec' has no questions"]
    seen: set[str] = set()
    for index, question in enumerate(survey["spec"]):
        errors += [f"question {index}: {e}" for e in _question_errors(question, seen)]
    return errors


def _question_errors(question: t.Any, seen: set[str]) -> list[str]:
    if not isinstance(question, dict):
        return ["is not a dict"]
    for field, kind in (("type", str), ("question_name", str), ("variable", str), ("required", bool)):
        if not isinstance(question.get(field), kind):
            return [f"{field!r} missing or not a {kind.__name__}"]
    errors = []
    variable, qtype = question["variable"], question["type"]
    if variable in seen:
        errors.append(f"variable {variable!r} asked twice")
    seen.add(variable)
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", variable):
        errors.append(f"variable {variable!r} is not a valid Ansible variable name")
    if qtype not in QUESTION_TYPES:
        return errors + [f"type {qtype!r} is not one of {', '.join(QUESTION_TYPES)}"]
    for limit in ("min", "max"):
        if question.get(limit) is not None and (not isinstance(question[limit], int) or isinstance(question[limit], bool)):
            errors.append(f"{limit} must be an integer")
    has_default = "default" in question and question["default"] != ""
    default = question.get("default")
    if has_default and (not isinstance(default, QUESTION_TYPES[qtype]) or isinstance(default, bool)):
        errors.append(f"default {default!r} is not of the type a {qtype} question takes")
        return errors
    if qtype in ("multiplechoice", "multiselect"):
        choices = question.get("choices")
        if isinstance(choices, str):
            choices = [c for c in choices.splitlines() if c.strip()]
        if not isinstance(choices, list) or not choices:
            return errors + [f"a {qtype} question needs choices"]
        if has_default:
            defaults = default.splitlines() if isinstance(default, str) else default
            if qtype == "multiplechoice" and len(defaults) > 1:
                errors.append("a multiplechoice question takes one default")
            if any(d not in choices for d in defaults):
                errors.append(f"default {default!r} is not among the choices {choices}")
    if has_default and qtype in ("text", "textarea", "password"):
        low, high = question.get("min"), question.get("max")
        if low not in (None, "") and len(default) < low or high not in (None, "") and len(default) > high:
            errors.append(f"default is {len(default)} characters, outside min {low} / max {high}")
    if has_default and qtype in ("integer", "float"):
        low, high = question.get("min"), question.get("max")
        if low not in (None, "") and default < low or high not in (None, "") and default > high:
            errors.append(f"default {default} is outside min {low} / max {high}")
    if question.get("required") and qtype == "password" and has_default:
        errors.append("a password question must not carry a default")
    return errors


def answers_to_vars(answers: dict[str, t.Any], loads: t.Callable[[str], t.Any] = json.loads) -> dict[str, t.Any]:
    """The role variables a set of survey answers stands for (what the set_fact in docs/awx.md does)."""
    result = {}
    for variable, value in answers.items():
        if variable.endswith(YAML_SUFFIX) and isinstance(value, str):
            result[variable[: -len(YAML_SUFFIX)]] = loads(value)
        else:
            result[variable] = value
    return result


def default_answers(survey: dict[str, t.Any]) -> dict[str, t.Any]:
    """The extra vars AWX passes when a survey is launched with every default accepted."""
    answers = {}
    for question in survey["spec"]:
        if "default" not in question:
            continue
        default = question["default"]
        answers[question["variable"]] = default.splitlines() if question["type"] == "multiselect" else default
    return answers
