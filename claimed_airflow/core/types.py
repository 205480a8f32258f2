"""Artifact markers and coercion of parameter values given as strings (CLI, env, templates)."""

from __future__ import annotations

import ast
import json
import types
import typing
from collections.abc import Sequence
from typing import Any, Literal

from claimed_airflow.core.errors import ParameterError


class InputPath(str):
    """Annotation for an input artifact: the component receives a local path (file, folder or glob)."""


class OutputPath(str):
    """Annotation for an output artifact: the component writes a file or folder at the given local path."""


_TRUE = {"true", "yes", "y", "1", "on"}
_FALSE = {"false", "no", "n", "0", "off"}
_NONE = {"", "none", "null"}


def unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """``X | None`` -> (X, True); anything else -> (annotation, False)."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if len(args) == 1 and len(typing.get_args(annotation)) == 2:
            return args[0], True
    return annotation, False


def type_name(annotation: Any) -> str:
    """A short, stable name for a parameter type, used in specs, docs and the CLI."""
    base, optional = unwrap_optional(annotation)
    origin = typing.get_origin(base)
    if origin is Literal:
        name = "str"
    elif origin in (list, tuple):
        (item,) = typing.get_args(base)[:1] or (str,)
        name = f"list[{item.__name__}]"
    elif origin is dict or base is dict:
        name = "dict"
    elif base is list:
        name = "list[str]"
    else:
        name = getattr(base, "__name__", str(base))
    return f"{name} | None" if optional else name


def choices(annotation: Any) -> tuple | None:
    base, _ = unwrap_optional(annotation)
    return typing.get_args(base) if typing.get_origin(base) is Literal else None


def coerce(name: str, value: Any, annotation: Any) -> Any:
    """Validate ``value`` for parameter ``name`` of type ``annotation``, converting strings.

    Raises :class:`ParameterError` naming the parameter and the offending value.
    """
    base, optional = unwrap_optional(annotation)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in _NONE):
        if optional:
            return None
        raise ParameterError(f"{name}: a value is required")
    origin = typing.get_origin(base)
    if origin is Literal:
        allowed = typing.get_args(base)
        if value not in allowed:
            raise ParameterError(f"{name}: expected one of {', '.join(map(repr, allowed))}, got {value!r}")
        return value
    if base in (str, InputPath, OutputPath):
        if isinstance(value, (dict, list)):
            raise ParameterError(f"{name}: expected a string, got {value!r}")
        return str(value)
    if base is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
        raise ParameterError(f"{name}: expected a boolean (true/false), got {value!r}")
    if base is int:
        if isinstance(value, bool):
            raise ParameterError(f"{name}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        try:
            return int(str(value).strip())
        except ValueError:
            raise ParameterError(f"{name}: expected an integer, got {value!r}") from None
    if base is float:
        if isinstance(value, bool):
            raise ParameterError(f"{name}: expected a number, got {value!r}")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise ParameterError(f"{name}: expected a number, got {value!r}") from None
    if origin in (list, tuple) or base is list:
        (item_type,) = typing.get_args(base)[:1] or (str,)
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = _json(name, text, list)
            else:
                value = [part.strip() for part in text.split(",") if part.strip()]
        if isinstance(value, Sequence) and not isinstance(value, (str, bytes, list, tuple)):
            value = list(value)  # the lazy sequence of a mapped task's XComs (one per shard)
        if not isinstance(value, (list, tuple)):
            raise ParameterError(f"{name}: expected a list, got {value!r}")
        return [coerce(f"{name}[{i}]", item, item_type) for i, item in enumerate(value)]
    if origin is dict or base is dict:
        if isinstance(value, str):
            value = _json(name, value, dict)
        if not isinstance(value, dict):
            raise ParameterError(f"{name}: expected a JSON object, got {value!r}")
        return dict(value)
    raise TypeError(f"{name}: unsupported parameter type {annotation!r}")


def _json(name: str, text: str, kind: type) -> Any:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        try:  # a Jinja-rendered Python literal, e.g. "['a', 'b']" from "{{ params.names }}"
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            raise ParameterError(f"{name}: expected JSON ({kind.__name__}), got {text!r}: {exc.msg}") from None
    if not isinstance(value, kind):
        raise ParameterError(f"{name}: expected a JSON {kind.__name__}, got {text!r}")
    return value
