"""Strict reading of untrusted JSON and text: the one place that decides what input we refuse.

PostgreSQL cannot store NUL (U+0000) in text or jsonb, a deeply nested document exhausts the
stack of whoever walks it (msgspec, the stdlib, our own code), and a body that is not UTF-8 has
no meaning. Each is refused up front with the JSON path of the first offending value, so a client
gets a 400 naming the field instead of a 500 from the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

MAX_DEPTH = 64  # levels of arrays/objects; real payloads (chat messages, metadata) use fewer than 10
INT32_MIN = -(2**31)
INT32_MAX = 2**31 - 1  # the range of an IntegerField column on PostgreSQL


class JsonInputError(ValueError):
    """A JSON body we refuse; ``path`` is where (``""`` for the whole body)."""

    def __init__(self, message: str, path: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.path = path


def _join(path: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    key = key.replace("\x00", "\\u0000")  # name an offending key readably in the error
    return f"{path}.{key}" if path else key


def check_value(value: Any, *, path: str = "", max_depth: int = MAX_DEPTH, reject_nul: bool = True) -> None:
    """Raise JsonInputError at the first string/key with NUL, or where nesting passes ``max_depth``.

    Iterative (no recursion), so a hostile document cannot exhaust the stack here either.
    """
    stack: list[tuple[Any, str, int]] = [(value, path, 0)]
    while stack:
        node, where, depth = stack.pop()
        if isinstance(node, str):
            if reject_nul and "\x00" in node:
                raise JsonInputError("NUL characters (\\u0000) are not allowed.", where)
            continue
        if isinstance(node, Mapping | list | tuple):
            if depth >= max_depth:
                raise JsonInputError(f"Nested more than {max_depth} levels deep.", where)
            if isinstance(node, Mapping):
                children = list(node.items())
                for key, _ in children:
                    if reject_nul and isinstance(key, str) and "\x00" in key:
                        raise JsonInputError("NUL characters (\\u0000) are not allowed in keys.", _join(where, key))
                # Reversed so that the first offending value in document order is the one reported.
                stack.extend((child, _join(where, str(key)), depth + 1) for key, child in reversed(children))
            else:
                stack.extend((node[i], _join(where, i), depth + 1) for i in reversed(range(len(node))))


def json_decode(body: bytes | str, *, max_depth: int = MAX_DEPTH, reject_nul: bool = True) -> Any:
    """Decode one JSON document strictly: UTF-8 only, nesting at most ``max_depth``, no NUL.

    ``reject_nul=False`` leaves the NUL check to the caller (ingest reports it per row, with the row's index).
    """
    if isinstance(body, bytes):
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonInputError(f"The body is not valid UTF-8 (byte {exc.start}).") from None
    else:
        text = body
    try:
        data = msgspec.json.decode(text)
    except RecursionError:
        raise JsonInputError(f"Nested more than {max_depth} levels deep.") from None
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:  # ValidationError: a number like 1e400
        raise JsonInputError(f"Invalid JSON: {exc}") from None
    check_value(data, max_depth=max_depth, reject_nul=reject_nul)
    return data


def nul_field(values: Mapping[str, Any]) -> str | None:
    """The first key of a form (``QueryDict`` or plain dict) whose name or any value holds NUL."""
    getlist = getattr(values, "getlist", None)
    for key in values:
        items = getlist(key) if getlist else [values[key]]
        if "\x00" in key or any(isinstance(v, str) and "\x00" in v for v in items):
            return key.replace("\x00", "\\u0000")
    return None
