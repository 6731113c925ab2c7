"""Input fields that refuse what the database or the meaning cannot hold."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from reviewapp.jsoninput import INT32_MAX, INT32_MIN


class Int32Field(serializers.IntegerField):
    """An integer stored in an IntegerField column: outside ±2^31 is a 400, not a database error."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", INT32_MIN)
        kwargs.setdefault("max_value", INT32_MAX)
        super().__init__(**kwargs)


class NumberField(serializers.FloatField):
    """A JSON number; ``true``/``false`` are refused (Python would read them as 1.0 and 0.0)."""

    default_error_messages = {"invalid": "A number is required (not a boolean)."}

    def to_internal_value(self, data: Any) -> float:
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)
