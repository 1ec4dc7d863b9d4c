"""``trackhook trackers``: what a configuration's ``type:`` may name here, and each one's fields.

This is the one place that imports every installed tracker class (to read its ``config_model``);
a tracker that fails to import is listed with the reason instead of stopping the listing. Defaults
can be read from the environment (a token) and reasons can quote one: both are redacted.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from trackhook.cli._output import Output
from trackhook.redaction import REDACTED, is_secret_field, redact_text

__all__ = ["TrackerDescription", "describe_installed_trackers", "trackers_command"]


@dataclass
class FieldDescription:
    name: str
    type: str
    default: str
    description: str = ""


@dataclass
class TrackerDescription:
    name: str
    distribution: str
    version: str
    fields: list[FieldDescription] = field(default_factory=list)
    problem: str | None = None


def trackers_command(arguments: argparse.Namespace) -> int:
    out = Output(plain=arguments.plain)
    rows = []
    for tracker in describe_installed_trackers():
        first = [tracker.name, tracker.distribution, tracker.version]
        if tracker.problem is not None:
            rows.append([*first, "(cannot be loaded)", "", tracker.problem])
            first = ["", "", ""]
        elif not tracker.fields:
            rows.append([*first, "(no settings)", "", ""])
        for index, item in enumerate(tracker.fields):
            rows.append(
                [*(first if index == 0 else ["", "", ""]), item.name, item.type, item.default]
            )
    out.table(["type", "distribution", "version", "config field", "field type", "default"], rows)
    return 0


def describe_installed_trackers() -> list[TrackerDescription]:
    """Every tracker type a configuration may name, sorted, with its distribution and fields."""
    from importlib.metadata import entry_points

    from trackhook.__about__ import __version__
    from trackhook.errors import TrackhookError
    from trackhook.registry import ENTRY_POINT_GROUP, installed_trackers, load_tracker_class
    from trackhook.trackers import contract_problem

    points = {point.name: point for point in entry_points(group=ENTRY_POINT_GROUP)}
    described = []
    for name in installed_trackers():
        point = points.get(name)
        if point is not None and point.dist is not None:
            tracker = TrackerDescription(name, point.dist.name, point.dist.version)
        elif point is not None:
            tracker = TrackerDescription(name, "(unknown)", "")
        else:
            tracker = TrackerDescription(name, "trackhook (built in)", __version__)
        try:
            found = load_tracker_class(name, "trackhook trackers")
        except TrackhookError as error:
            tracker.problem = redact_text(str(error))
        else:
            if point is None and found.distribution != "trackhook":
                tracker.distribution, tracker.version = found.distribution, ""
            tracker.fields = describe_config_model(getattr(found.factory, "config_model", None))
            problem = contract_problem(found.factory)
            tracker.problem = redact_text(problem) if problem is not None else None
        described.append(tracker)
    return described


def describe_config_model(model: Any) -> list[FieldDescription]:
    """The fields of a pydantic model: name (and alias), type, default, description."""
    if model is None:
        return []
    fields = []
    for name, info in model.model_fields.items():
        label = name if not info.alias or info.alias == name else f"{name} (alias {info.alias})"
        default = _shown_default(name, info)
        description = redact_text(info.description or _model_summary(info.annotation))
        fields.append(FieldDescription(label, type_name(info.annotation), default, description))
    return fields


def _shown_default(name: str, info: Any) -> str:
    """The default as the listing shows it: never a secret (a token read from the environment)."""
    if info.is_required():
        return "required"
    default = info.get_default(call_default_factory=True)
    secret = is_secret_field(name) or (info.alias is not None and is_secret_field(info.alias))
    if secret and default not in (None, "", {}):
        return REDACTED
    return redact_text(repr(default))


def _model_summary(annotation: Any) -> str:
    """For a field without a description whose type is a model: the model's first doc line."""
    if isinstance(annotation, type) and hasattr(annotation, "model_fields"):
        return (annotation.__doc__ or "").strip().split("\n")[0]
    for argument in get_args(annotation):
        summary = _model_summary(argument)
        if summary:
            return summary
    return ""


def type_name(annotation: Any) -> str:
    """A type as people write it: ``str | None``, ``Literal['online', 'offline']``."""
    if annotation is None or annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    if annotation is Any:
        return "Any"
    origin, arguments = get_origin(annotation), get_args(annotation)
    if origin is Union or origin is UnionType:
        return " | ".join(type_name(argument) for argument in arguments)
    if origin is Literal:
        return f"Literal[{', '.join(repr(argument) for argument in arguments)}]"
    if origin is Annotated:
        return type_name(arguments[0])
    if origin is not None:
        inner = ", ".join(type_name(argument) for argument in arguments)
        return (
            f"{getattr(origin, '__name__', str(origin))}[{inner}]" if inner else type_name(origin)
        )
    if isinstance(annotation, type):
        return annotation.__name__
    return re.sub(r"\b(?:[a-z_]\w*\.)+(?=\w)", "", repr(annotation))
