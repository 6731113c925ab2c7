"""YAML at the edges (schemas as code): read strictly, written plainly.

Read with PyYAML's safe loader (plain data only: no Python objects) that also refuses aliases, so a
small hostile file cannot expand into a huge structure (a "billion laughs"), then held to the same
rules as JSON (``jsoninput.check_value``: nesting depth, no NUL). Errors are ``JsonInputError``, so
callers report them exactly as bad JSON.
"""

from __future__ import annotations

from typing import Any

import msgspec
import yaml

from reviewapp.jsoninput import MAX_DEPTH, JsonInputError, check_value


class _SafeNoAliasLoader(yaml.SafeLoader):
    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise JsonInputError(f"YAML aliases (*name) are not accepted (line {mark.line + 1}).")
        return super().compose_node(parent, index)


def yaml_decode(body: bytes | str, *, max_depth: int = MAX_DEPTH) -> Any:
    """One YAML document as plain data (dicts, lists, strings, numbers, booleans, None)."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise JsonInputError(f"The body is not valid UTF-8 (byte {exc.start}).") from None
    try:
        data = yaml.load(body, Loader=_SafeNoAliasLoader)  # noqa: S506  # a SafeLoader subclass
    except RecursionError:
        raise JsonInputError(f"Nested more than {max_depth} levels deep.") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise JsonInputError(f"Invalid YAML{where}: {problem}") from None
    try:
        # JSON's values only: YAML dates become ISO strings, anything else JSON cannot hold is refused.
        data = msgspec.json.decode(msgspec.json.encode(data))
    except (TypeError, msgspec.EncodeError, msgspec.DecodeError) as exc:
        raise JsonInputError(f"The YAML holds a value JSON cannot: {exc}") from None
    check_value(data, max_depth=max_depth)
    return data


def yaml_encode(data: Any) -> str:
    """Plain block-style YAML, keys in the order given (a schema file reads like the editor)."""
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, default_flow_style=False, width=100)
