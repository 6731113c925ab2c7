"""The API's only request parser: strict JSON (see reviewapp.jsoninput), so no endpoint takes forms."""

from __future__ import annotations

from typing import IO, Any

from rest_framework import exceptions
from rest_framework.parsers import JSONParser

from reviewapp.jsoninput import JsonInputError, json_decode


class BadJson(exceptions.ParseError):
    """A body we refuse to read; ``path`` names where, for the 400's ``errors`` list."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.path = path


class StrictJSONParser(JSONParser):
    """UTF-8 only, nesting at most MAX_DEPTH levels, no NUL anywhere (keys included).

    A JSONParser subclass so DRF hands it ``request.body``, which enforces DATA_UPLOAD_MAX_MEMORY_SIZE.
    """

    media_type = "application/json"

    def parse(self, stream: IO[bytes], media_type: str | None = None, parser_context: Any = None) -> Any:
        try:
            return json_decode(stream.read())
        except JsonInputError as exc:
            raise BadJson(exc.message, exc.path) from None
