"""The one translator from msgspec failures to the API's {index, field, message} errors."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec
import pytest

from reviewapp.errors import ValidationFailed
from reviewapp.typed_input import TypedInput, says, struct_errors, value_convert


class Chunk(msgspec.Struct, forbid_unknown_fields=True):
    content: str


class Entry(TypedInput):
    unknown_message: ClassVar[str] = "No field “{key}” here."
    not_object_message: ClassVar[str] = "Give an entry object."

    name: Annotated[str, msgspec.Meta(min_length=1), says("Give a name.")]
    size: Annotated[int, msgspec.Meta(ge=1), says("Give a size of at least 1.")] = 1
    tags: Annotated[list[str], says("Give a list of tags.")] = []
    chunks: list[Chunk] = []


def test_every_bad_field_is_named_at_once_in_our_words() -> None:
    parsed, errors = struct_errors(
        {"name": "", "size": 0, "tags": ["a", 2], "colour": "red"}, Entry, field="entries[3]", index=3
    )
    assert parsed is None  # a required field is bad
    assert errors == [
        {"index": 3, "field": "entries[3].name", "message": "Give a name."},
        {"index": 3, "field": "entries[3].size", "message": "Give a size of at least 1."},
        # A field's own message speaks of the whole field, not the element inside it.
        {"index": 3, "field": "entries[3].tags", "message": "Give a list of tags."},
        {"index": 3, "field": "entries[3].colour", "message": "No field “colour” here."},
    ]


def test_the_fields_that_fit_are_kept_when_others_do_not() -> None:
    parsed, errors = struct_errors({"name": "n", "size": "big"}, Entry)
    assert parsed == Entry(name="n") and [e["field"] for e in errors] == ["size"]


def test_missing_required_fields_and_non_objects() -> None:
    assert struct_errors({}, Entry)[1] == [{"index": None, "field": "name", "message": "Give a name."}]
    assert struct_errors([1], Entry, field="entry")[1] == [
        {"index": None, "field": "entry", "message": "Give an entry object."}
    ]


def test_without_a_message_msgspec_speaks_and_names_the_nested_path() -> None:
    _, errors = struct_errors({"name": "n", "chunks": [{"content": "a"}, {"content": 5}]}, Entry)
    assert errors == [{"index": None, "field": "chunks[1].content", "message": "Expected `str`, got `int`"}]
    _, errors = struct_errors({"name": "n", "chunks": [{"content": "a", "x": 1}]}, Entry)
    assert errors == [{"index": None, "field": "chunks[0].x", "message": "Unknown field."}]


def test_one_value_converts_or_raises_validation_failed() -> None:
    assert value_convert("4", Annotated[int, says("Give a number.")], field="limit", strict=False) == 4
    with pytest.raises(ValidationFailed) as caught:
        value_convert("x", Annotated[int, says("Give a number.")], field="limit")
    assert caught.value.errors == [{"index": None, "field": "limit", "message": "Give a number."}]
    assert caught.value.message == "The input is not valid."
    with pytest.raises(ValidationFailed) as caught:
        value_convert(0, Annotated[int, msgspec.Meta(ge=1), says("Use 1 to 20.")], field="n", summary="Not saved.")
    assert (caught.value.message, caught.value.errors[0]["message"]) == ("Not saved.", "Use 1 to 20.")
