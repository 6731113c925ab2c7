"""Typed input at the edges: msgspec types say what a JSON input may hold; this module is the one
translator from a failed conversion to the API's ``{"index", "field", "message"}`` errors.

An input is a :class:`TypedInput` Struct. A field's annotation may carry the message a person
reads when the value does not fit, ``Annotated[int, msgspec.Meta(ge=1), says("Give ...")]``;
without one, msgspec's own wording is passed on (ingest has always shown it). :func:`struct_errors`
converts each field on its own, so every bad field is reported at once (msgspec stops at the first),
under the field's name as the client wrote it (``dataset.limit``, ``scorers[2].threshold``).
Rules that need the database or several fields stay in the service, which reports them with
:func:`field_error` in the same shape.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, TypeVar, Union, get_args, get_origin

import msgspec

from reviewapp.errors import FieldError, ValidationFailed
from reviewapp.jsoninput import JsonInputError

S = TypeVar("S", bound="TypedInput")
_AT = re.compile(r"^(?P<message>.*?) - at `\$(?P<path>[^`]*)`$", re.S)
_UNKNOWN = re.compile(r"Object contains unknown field `(?P<name>[^`]+)`")


class TypedInput(msgspec.Struct, forbid_unknown_fields=True):
    """Base of input Structs. ``unknown_message`` is said of a key the Struct does not know
    (``{key}`` is replaced); ``not_object_message`` of a value that is not a JSON object."""

    unknown_message: ClassVar[str] = "Unknown field."
    not_object_message: ClassVar[str] = "Give an object."


def says(message: str) -> msgspec.Meta:
    """The message for a field whose value does not fit its type (also when a required one is missing)."""
    return msgspec.Meta(extra={"message": message})


def field_error(field: str, message: str, index: int | None = None) -> FieldError:
    return {"index": index, "field": field, "message": message}


def refusal(field: str, message: str, index: int | None = None) -> ValidationFailed:
    """One refused field, its message also the summary (raise it)."""
    return ValidationFailed([field_error(field, message, index)], message)


def field_join(prefix: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{prefix}[{key}]"
    return f"{prefix}.{key}" if prefix else key


def error_from(
    exc: msgspec.ValidationError | JsonInputError,
    *,
    field: str = "",
    index: int | None = None,
    message: str | None = None,
) -> FieldError:
    """One msgspec failure (or JSON refused by reviewapp.jsoninput) as our error: its path joined to ``field``.

    ``message`` (a field's ``says``) replaces msgspec's wording and speaks of the whole field, so the
    error names ``field`` itself, not the element inside it that failed.
    """
    if message:
        return field_error(field, message, index)
    if isinstance(exc, JsonInputError):
        return field_error(".".join(p for p in (field, exc.path) if p), exc.message, index)
    text = str(exc)
    match = _AT.match(text)
    said, path = (match["message"], match["path"]) if match else (text, "")
    unknown = _UNKNOWN.match(said)
    if unknown:
        path = f"{path}.{unknown['name']}"
        said = "Unknown field."
    where = f"{field}{path}" if field else path.lstrip(".")
    return field_error(where, said, index)


def _said(annotation: Any) -> str | None:
    """The ``says(...)`` message on an annotation (also inside ``X | None``)."""
    if get_origin(annotation) is Annotated:
        for meta in get_args(annotation)[1:]:
            if isinstance(meta, msgspec.Meta) and meta.extra and "message" in meta.extra:
                return str(meta.extra["message"])
        return _said(get_args(annotation)[0])
    if get_origin(annotation) is Union or type(annotation).__name__ == "UnionType":
        for arg in get_args(annotation):
            message = _said(arg)
            if message:
                return message
    return None


def value_convert(
    value: Any,
    type_: Any,
    *,
    field: str,
    index: int | None = None,
    strict: bool = True,
    summary: str | None = None,
) -> Any:
    """``value`` as ``type_``, or ValidationFailed naming ``field`` (with the ``says`` message, if any).

    ``summary`` is the refusal's own message (ValidationFailed's default without it)."""
    try:
        return msgspec.convert(value, type_, strict=strict)
    except msgspec.ValidationError as exc:
        errors = [error_from(exc, field=field, index=index, message=_said(type_))]
        raise (ValidationFailed(errors, summary) if summary else ValidationFailed(errors)) from None


def struct_errors(
    raw: Any, cls: type[S], *, field: str = "", index: int | None = None
) -> tuple[S | None, list[FieldError]]:
    """``raw`` as ``cls`` and the errors of every bad field.

    With errors, the Struct holds the fields that fit (bad ones keep their defaults), so a service
    can still check the rest and report everything at once; it is None when a required field is bad.
    """
    if not isinstance(raw, dict):
        return None, [field_error(field, cls.not_object_message, index)]
    fields = {f.encode_name: f for f in msgspec.structs.fields(cls)}
    errors: list[FieldError] = []
    values: dict[str, Any] = {}
    for key, value in raw.items():
        info = fields.get(key)
        if info is None:
            errors.append(
                field_error(field_join(field, str(key)), cls.unknown_message.replace("{key}", str(key)), index)
            )
            continue
        try:
            values[info.name] = msgspec.convert(value, info.type)
        except msgspec.ValidationError as exc:
            errors.append(error_from(exc, field=field_join(field, key), index=index, message=_said(info.type)))
    missing = False
    for info in fields.values():
        required = info.default is msgspec.NODEFAULT and info.default_factory is msgspec.NODEFAULT
        if required and info.name not in values:
            missing = True
            if info.encode_name not in raw:
                message = _said(info.type) or "This field is required."
                errors.append(field_error(field_join(field, info.encode_name), message, index))
    return (None if missing else cls(**values)), errors
